"""SNMP: the real snmpd (SNMPv3 authPriv only) with the mailnode-snmp
subagent over AgentX in front of a real node, driven with snmpget,
snmpwalk, snmpbulkwalk and snmpset, and snmptrapd receiving the
notifications."""
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

import pytest
import yaml

from conftest import Node, free_offset, port_open, wait_until
from snmp_harness import ENTERPRISE, MIBS, MN, Snmp, parse

SERVICE = MN + ".2.1"
TENANT = MN + ".3.1"
RULE = MN + ".4.1"
PASSWORD = "a long enough password"

TENANTS = """\
apiVersion: mailnode/v1
kind: Tenant
metadata: {name: acme}
spec:
  limits: {domains: 3, mailboxes: 5, storage: 2GiB, messageSize: 10MiB, sendRate: 100/h}
  access: {mode: deny-listed, addresses: [192.0.2.7, 198.51.100.0/24]}
---
apiVersion: mailnode/v1
kind: Domain
metadata: {name: acme.test, tenant: acme}
spec: {}
---
apiVersion: mailnode/v1
kind: Mailbox
metadata: {name: ann@acme.test, tenant: acme}
spec: {password: "%s"}
---
apiVersion: mailnode/v1
kind: Mailbox
metadata: {name: bob@acme.test, tenant: acme}
spec: {}
---
apiVersion: mailnode/v1
kind: Tenant
metadata: {name: beta}
spec: {state: suspended}
""" % PASSWORD


def apply_text(node, text):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        return node.ctl("apply", "-f", f.name, check=False)
    finally:
        os.unlink(f.name)


@pytest.fixture(scope="module")
def env():
    with tempfile.TemporaryDirectory(prefix="mn-snmp-") as d:
        node = Node(os.path.join(d, "var"), free_offset()).start()
        r = apply_text(node, TENANTS)
        assert r.returncode == 0, r.stdout + r.stderr
        snmp = Snmp(node, os.path.join(d, "snmp"))
        try:
            snmp.start()
            yield node, snmp
        finally:
            rc = snmp.stop()
            assert node.stop() == 0, node.log_text()[-3000:]
            assert rc == 0, "mailnode-snmp exited %s:\n%s" % (rc, snmp.agent_log_text()[-3000:])


def service_index(snmp, name):
    names = snmp.walk(SERVICE + ".2")
    for oid, v in names.items():
        if v == name:
            return int(oid.rsplit(".", 1)[1])
    raise AssertionError("no service %s in %s" % (name, names))


def tenant_index(snmp, name):
    for oid, v in snmp.walk(TENANT + ".2").items():
        if v == name:
            return int(oid.rsplit(".", 1)[1])
    raise AssertionError("no tenant " + name)


def str_index(s):
    return "%d.%s" % (len(s), ".".join(str(ord(c)) for c in s))


def fresh(snmp, oid, want, timeout=5):
    """Value of oid once it equals want (the subagent caches ~1 s)."""
    last = [None]

    def check():
        last[0] = parse(snmp.get(oid).stdout).get(oid)
        return last[0] == want
    assert wait_until(check, timeout), "%s is %r, not %r" % (oid, last[0], want)


def test_the_mib_and_the_agent_name_the_same_arc():
    import re
    text = open(os.path.join(MIBS, "MAILNODE-MIB.txt")).read()
    m = re.search(r"mailnodeMIB MODULE-IDENTITY.*?::= \{ enterprises (\d+) \}", text, re.S)
    assert m and ENTERPRISE == ".1.3.6.1.4.1." + m.group(1), (m and m.group(1), ENTERPRISE)


def test_walk_of_every_table(env):
    node, snmp = env
    status = node.ctl_yaml("status")[0]
    mn = snmp.walk(MN)
    # Node scalars.
    assert mn[MN + ".1.1.0"] == status["node"]["version"]
    assert mn[MN + ".1.4.0"] == "1"          # database up
    assert mn[MN + ".1.6.0"] == "1"          # node reachable
    assert int(mn[MN + ".1.3.0"]) >= 1       # the tenants' apply bumped it
    # One service row per service, with the node's state.
    services = node.ctl_yaml("services")
    names = [v for k, v in mn.items() if k.startswith(SERVICE + ".2.")]
    assert names == [s["metadata"]["name"] for s in services]
    smtp = service_index(snmp, "smtp")
    assert mn["%s.4.%d" % (SERVICE, smtp)] == "3"      # running
    assert mn["%s.5.%d" % (SERVICE, smtp)] == "1"      # admin up
    assert mn["%s.7.%d" % (SERVICE, smtp)] == str(node.port(2525))
    assert mn["%s.6.%d" % (SERVICE, smtp)] == "127.0.0.1"
    # Tenants: limits in their units, state, holdings.
    acme, beta = tenant_index(snmp, "acme"), tenant_index(snmp, "beta")
    assert mn["%s.3.%d" % (TENANT, acme)] == "1" and mn["%s.3.%d" % (TENANT, beta)] == "2"
    assert mn["%s.5.%d" % (TENANT, acme)] == "5"
    assert mn["%s.7.%d" % (TENANT, acme)] == "2048"     # MiB
    assert mn["%s.8.%d" % (TENANT, acme)] == "10240"    # KiB
    assert mn["%s.15.%d" % (TENANT, acme)] == "2"       # mailboxes
    assert mn["%s.18.%d" % (TENANT, acme)] == "1"       # domains
    assert mn["%s.19.%d" % (TENANT, acme)] == "2"       # deny-listed
    # Access rules of the tenant, indexed by type, name and pattern.
    for addr in ("192.0.2.7", "198.51.100.0/24"):
        key = "%s.5.2.%s.%s" % (RULE, str_index("acme"), str_index(addr))
        assert mn[key] == "1", sorted(k for k in mn if k.startswith(RULE))
        assert mn[key.replace(RULE + ".5.", RULE + ".4.")] == "2"
    # Queue and thresholds.
    for i in range(1, 6):
        assert MN + ".5.%d.0" % i in mn
    assert mn[MN + ".6.1.0"] == "1000"
    # The standard MIBs: applTable, mtaTable, mtaGroupTable.
    appl = snmp.walk(".1.3.6.1.2.1.27.1.1")
    assert [v for k, v in appl.items() if k.startswith(".1.3.6.1.2.1.27.1.1.2.")] == names
    assert appl[".1.3.6.1.2.1.27.1.1.6.%d" % smtp] == "1"     # up
    spool = service_index(snmp, "spool")
    mta = snmp.walk(".1.3.6.1.2.1.28")
    assert ".1.3.6.1.2.1.28.1.1.1.%d" % spool in mta
    assert mta[".1.3.6.1.2.1.28.2.1.25.%d.1" % spool] == "spool"
    # A plain GETNEXT walk gives the same as the bulk walk.
    assert snmp.walk(MN + ".3", bulk=False) == {k: v for k, v in mn.items() if k.startswith(MN + ".3.")}


def test_admin_status_stops_and_starts_a_listener_and_traps(env):
    node, snmp = env
    http = service_index(snmp, "http")
    port = node.port(2080)
    assert port_open(port)
    snmp.set("%s.5.%d" % (SERVICE, http), "i", "2")
    assert wait_until(lambda: not port_open(port), 10)
    assert node.service("http")["spec"]["state"] == "stopped"
    fresh(snmp, "%s.4.%d" % (SERVICE, http), "1")          # stopped
    # snmptrapd got the state change, with the service's name.
    notif = MN.rsplit(".", 1)[0] + ".0.1"
    assert wait_until(lambda: notif in snmp.traps_text() and '"http"' in snmp.traps_text(), 15), \
        snmp.traps_text() + snmp.agent_log_text() + snmp.snmpd_log()[-3000:]
    snmp.set("%s.5.%d" % (SERVICE, http), "i", "1")
    assert wait_until(lambda: port_open(port), 10)
    assert node.service("http")["spec"]["state"] == "running"
    # admin cannot be stopped: inconsistentValue, and it keeps running.
    admin = service_index(snmp, "admin")
    r = snmp.set("%s.5.%d" % (SERVICE, admin), "i", "2", check=False)
    assert r.returncode != 0 and "inconsistentValue" in r.stderr, r.stderr
    assert node.service("admin")["status"]["state"] == "running"
    # Out of range and wrong type are refused before anything is asked.
    r = snmp.set("%s.5.%d" % (SERVICE, http), "i", "3", check=False)
    assert "wrongValue" in r.stderr, r.stderr
    r = snmp.set("%s.5.%d" % (SERVICE, http), "s", "down", check=False)
    assert "wrongType" in r.stderr, r.stderr


def test_settings_set_through_snmp_are_stored(env):
    node, snmp = env
    smtp = service_index(snmp, "smtp")
    snmp.set("%s.8.%d" % (SERVICE, smtp), "u", "77", "%s.9.%d" % (SERVICE, smtp), "u", "120")
    spec = node.service("smtp")["spec"]
    assert spec["maxClients"] == 77, snmp.agent_log_text()[-4000:]
    assert spec["timeout"] in ("120s", "2m", 120)
    # maxClients 0 is outside settings.c's bounds: nothing of the PDU is applied.
    r = snmp.set("%s.8.%d" % (SERVICE, smtp), "u", "0", "%s.9.%d" % (SERVICE, smtp), "u", "60",
                 check=False)
    assert r.returncode != 0 and "wrongValue" in r.stderr
    assert node.service("smtp")["spec"]["maxClients"] == 77
    # A varbind no handler takes fails the whole PDU: ours is not applied either.
    r = snmp.set("%s.8.%d" % (SERVICE, smtp), "u", "55", MN + ".9.0", "u", "1", check=False)
    assert r.returncode != 0, r.stdout
    assert node.service("smtp")["spec"]["maxClients"] == 77
    fresh(snmp, "%s.8.%d" % (SERVICE, smtp), "77")


def test_tenant_limit_set_over_snmp_is_enforced_and_in_the_api(env):
    node, snmp = env
    acme = tenant_index(snmp, "acme")
    gen = int(parse(snmp.get(MN + ".1.3.0").stdout)[MN + ".1.3.0"])
    snmp.set("%s.5.%d" % (TENANT, acme), "u", "2")
    spec = node.ctl_yaml("get", "tenants", "acme")[0]["spec"]
    assert spec["limits"]["mailboxes"] == 2
    # The rest of the tenant's spec is kept as it was.
    assert "storage" in spec["limits"], snmp.agent_log_text()[-3000:]
    assert spec["limits"]["storage"] in ("2GiB", 2147483648)
    assert spec["access"]["addresses"] == ["192.0.2.7", "198.51.100.0/24"]
    r = apply_text(node, "apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: cy@acme.test, "
                         "tenant: acme}\nspec: {}\n")
    assert r.returncode != 0 and "allows 2 mailboxes" in r.stderr, r.stdout + r.stderr
    # Below what the tenant has: inconsistentValue, nothing changes.
    r = snmp.set("%s.5.%d" % (TENANT, acme), "u", "1", check=False)
    assert "inconsistentValue" in r.stderr, r.stderr
    assert node.ctl_yaml("get", "tenants", "acme")[0]["spec"]["limits"]["mailboxes"] == 2
    fresh(snmp, MN + ".1.3.0", str(gen + 1))
    # State: suspend and back.
    snmp.set("%s.3.%d" % (TENANT, acme), "i", "2")
    assert node.ctl_yaml("get", "tenants", "acme")[0]["spec"]["state"] == "suspended"
    snmp.set("%s.3.%d" % (TENANT, acme), "i", "1", "%s.5.%d" % (TENANT, acme), "u", "5")
    spec = node.ctl_yaml("get", "tenants", "acme")[0]["spec"]
    assert spec.get("state", "active") == "active" and spec["limits"]["mailboxes"] == 5
    # A row that does not exist cannot be made.
    r = snmp.set("%s.5.%d" % (TENANT, 999999), "u", "2", check=False)
    assert "noCreation" in r.stderr, r.stderr


def banner(port, src):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(src, 0))
    except OSError:
        return ""
    try:
        return s.recv(512).decode(errors="replace")
    except OSError:
        return ""
    finally:
        s.close()


def test_rowstatus_rule_blocks_an_address(env):
    node, snmp = env
    smtp = service_index(snmp, "smtp")
    port = node.port(2525)
    src = "127.0.0.23"
    assert banner(port, src).startswith("220")
    row = "%s.5.1.%s.%s" % (RULE, str_index("smtp"), str_index(src))
    # Mode and the new rule in one PDU: one apply.
    snmp.set("%s.15.%d" % (SERVICE, smtp), "i", "2", row, "i", "4")
    access = node.service("smtp")["spec"]["access"]
    assert access == {"mode": "deny-listed", "addresses": [src]}
    assert wait_until(lambda: banner(port, src).startswith("554"), 5)
    assert banner(port, "127.0.0.1").startswith("220")
    fresh(snmp, row, "1")
    # createAndGo of a row that exists, createAndWait: refused.
    r = snmp.set(row, "i", "4", check=False)
    assert "inconsistentValue" in r.stderr, r.stderr
    r = snmp.set("%s.5.1.%s.%s" % (RULE, str_index("smtp"), str_index("10.9.9.9")), "i", "5",
                 check=False)
    assert "wrongValue" in r.stderr, r.stderr
    # Not an address pattern: wrongValue; unknown scope: inconsistentName.
    r = snmp.set("%s.5.1.%s.%s" % (RULE, str_index("smtp"), str_index("10.0.0.0/99")), "i", "4",
                 check=False)
    assert "wrongValue" in r.stderr, r.stderr
    r = snmp.set("%s.5.2.%s.%s" % (RULE, str_index("nobody"), str_index("10.1.1.1")), "i", "4",
                 check=False)
    assert "inconsistentName" in r.stderr, r.stderr
    # destroy: the address is admitted again.
    snmp.set(row, "i", "6")
    assert node.service("smtp")["spec"]["access"]["addresses"] in ([], None)
    assert wait_until(lambda: banner(port, src).startswith("220"), 5)
    snmp.set("%s.15.%d" % (SERVICE, smtp), "i", "1")
    # A tenant's rules: added to and removed from its list, the rest kept.
    trow = "%s.5.2.%s.%s" % (RULE, str_index("acme"), str_index("203.0.113.9"))
    snmp.set(trow, "i", "4")
    spec = node.ctl_yaml("get", "tenants", "acme")[0]["spec"]
    assert spec["access"] == {"mode": "deny-listed",
                              "addresses": ["192.0.2.7", "198.51.100.0/24", "203.0.113.9"]}
    assert spec["limits"]["domains"] == 3
    snmp.set(trow, "i", "6")
    spec = node.ctl_yaml("get", "tenants", "acme")[0]["spec"]
    assert spec["access"]["addresses"] == ["192.0.2.7", "198.51.100.0/24"]


def test_tenant_counters_follow_mail_and_failed_logins(env):
    node, snmp = env
    acme = tenant_index(snmp, "acme")
    before = snmp.walk(TENANT)
    with smtplib.SMTP("127.0.0.1", node.port(2525), timeout=30) as c:
        c.sendmail("someone@example.org", ["ann@acme.test"], b"Subject: hi\r\n\r\nhello\r\n")
    ctx = ssl.create_default_context(cafile=os.path.join(node.state_dir, "tls", "ca.pem"))
    with smtplib.SMTP_SSL("localhost", node.port(2465), timeout=30, context=ctx) as c:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("ann@acme.test", "not the password")

    def grew(col, by):
        k = "%s.%d.%d" % (TENANT, col, acme)
        return int(snmp.walk(TENANT)[k]) - int(before[k]) >= by
    assert wait_until(lambda: grew(9, 1) and grew(11, 40) and grew(14, 1), 10), snmp.walk(TENANT)
    mta = snmp.walk(".1.3.6.1.2.1.28.1.1.1")
    assert int(list(mta.values())[0]) >= 1


def test_read_only_user_cannot_set(env):
    node, snmp = env
    http = service_index(snmp, "http")
    r = snmp.get("%s.4.%d" % (SERVICE, http), user="noc-ro")
    assert "INTEGER" in r.stdout
    r = snmp.set("%s.5.%d" % (SERVICE, http), "i", "2", user="noc-ro", check=False)
    assert r.returncode != 0 and ("noAccess" in r.stderr or "authorizationError" in r.stderr), r.stderr
    assert node.service("http")["status"]["state"] == "running"
    # The read-write user writes MAILNODE-MIB only, not snmpd's own objects.
    r = snmp.set(".1.3.6.1.2.1.1.6.0", "s", "elsewhere", check=False)
    assert r.returncode != 0 and ("noAccess" in r.stderr or "notWritable" in r.stderr), r.stderr


def test_wrong_passphrase_gets_nothing(env):
    node, snmp = env
    r = snmp.get(MN + ".1.1.0", user="noc-rw", auth="wrong passphrase!", check=False)
    assert r.returncode != 0 and "STRING" not in r.stdout
    # And no community at all.
    r = subprocess.run(["snmpget", "-v2c", "-c", "public", "-r", "0", "-t", "1",
                        "127.0.0.1:%d" % snmp.port, MN + ".1.1.0"], capture_output=True, text=True)
    assert r.returncode != 0 and "STRING" not in r.stdout


def test_thresholds_are_set_and_kept(env):
    node, snmp = env
    snmp.set(MN + ".6.1.0", "u", "7", MN + ".6.4.0", "u", "90")
    assert parse(snmp.get(MN + ".6.1.0").stdout)[MN + ".6.1.0"] == "7"
    kept = open(os.path.join(snmp.dir, "thresholds")).read()
    assert "queueBacklogThreshold 7" in kept and "tenantLimitThreshold 90" in kept
    r = snmp.set(MN + ".6.4.0", "u", "101", check=False)
    assert "wrongValue" in r.stderr
    snmp.set(MN + ".6.1.0", "u", "1000", MN + ".6.4.0", "u", "100")


def test_tenant_limit_notification(env):
    node, snmp = env
    acme = tenant_index(snmp, "acme")
    # acme has 1 domain of 3: at a 30% threshold that is over.
    snmp.set(MN + ".6.4.0", "u", "30")
    notif = MN.rsplit(".", 1)[0] + ".0.3"
    try:
        assert wait_until(lambda: notif in snmp.traps_text() and '"acme"' in snmp.traps_text(), 15), \
            snmp.traps_text()
    finally:
        snmp.set(MN + ".6.4.0", "u", "100")
    assert acme > 0
    # The limit and the level travel as Gauge32 (domains: 1 of 3), which
    # every kind of trap sink can carry: the subagent converted it without
    # complaint.
    text = snmp.traps_text()
    info = MN + ".7"
    assert re.search(re.escape(info + ".1.0") + r"\s*=\s*INTEGER:\s*1\b", text), text
    assert re.search(re.escape(info + ".2.0") + r"\s*=\s*Gauge32:\s*3\b", text), text
    assert re.search(re.escape(info + ".3.0") + r"\s*=\s*Gauge32:\s*1\b", text), text
    assert "failed to convert" not in snmp.agent_log_text()


def control(node, method, path):
    """One request to the node's control socket: (status, YAML documents)."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(node.state_dir, "run", "control.sock"))
    s.sendall(("%s %s\n" % (method, path)).encode())
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    status, _, body = data.decode().partition("\n")
    return int(status), list(yaml.safe_load_all(body))


def test_stats_routes_the_subagent_reads(env):
    node, snmp = env
    status, docs = control(node, "GET", "/v1/stats/tenants")
    assert status == 200 and docs[0]["kind"] == "TenantStatsList"
    items = {t["name"]: t for t in docs[0]["items"]}
    acme = items["acme"]
    assert acme["mailboxes"] == 2 and acme["domains"] == 1
    assert acme["limits"]["storage"] == 2 * 1024 ** 3 and acme["limits"]["messageSize"] == 10 * 1024 ** 2
    assert acme["access"]["mode"] == "deny-listed"
    assert acme["messagesIn"] >= 1 and acme["bytesIn"] > 0 and acme["authFailures"] >= 1
    assert items["beta"]["state"] == "suspended" and items["beta"]["messagesIn"] == 0
    assert [t["id"] for t in docs[0]["items"]] == sorted(t["id"] for t in docs[0]["items"])
    status, docs = control(node, "GET", "/v1/stats")
    assert status == 200 and docs[0]["kind"] == "NodeStats"
    assert docs[0]["configGeneration"] >= 1
    assert docs[0]["traffic"]["messagesIn"] >= 1
    assert set(docs[0]["queue"]) >= {"messages", "bytes", "oldestAge", "held", "deferred"}
    assert control(node, "POST", "/v1/stats")[0] == 405


def test_queue_backlog_notification(env):
    node, snmp = env
    node.ctl("service", "stop", "spool")
    try:
        for i in range(2):
            with smtplib.SMTP("127.0.0.1", node.port(2525), timeout=30) as c:
                c.sendmail("someone@example.org", ["bob@acme.test"], b"Subject: %d\r\n\r\nq\r\n" % i)
        fresh(snmp, MN + ".5.1.0", "2", timeout=10)     # mnQueueDepth
        snmp.set(MN + ".6.1.0", "u", "1")
        notif = MN.rsplit(".", 1)[0] + ".0.2"
        assert wait_until(lambda: notif in snmp.traps_text(), 15), snmp.traps_text()
        assert MN + ".5.1.0 = Gauge32: 2" in snmp.traps_text()
    finally:
        snmp.set(MN + ".6.1.0", "u", "1000")
        node.ctl("service", "start", "spool")
    fresh(snmp, MN + ".5.1.0", "0", timeout=20)


def test_auth_failure_burst_notification(env):
    node, snmp = env
    snmp.set(MN + ".6.2.0", "u", "2", MN + ".6.3.0", "u", "120")
    ctx = ssl.create_default_context(cafile=os.path.join(node.state_dir, "tls", "ca.pem"))
    try:
        for _ in range(3):
            with smtplib.SMTP_SSL("localhost", node.port(2465), timeout=30, context=ctx,
                                  source_address=("127.0.0.31", 0)) as c:
                with pytest.raises(smtplib.SMTPAuthenticationError):
                    c.login("bob@acme.test", "not the password")
        notif = MN.rsplit(".", 1)[0] + ".0.4"
        assert wait_until(lambda: notif in snmp.traps_text(), 15), snmp.traps_text()
    finally:
        snmp.set(MN + ".6.2.0", "u", "50", MN + ".6.3.0", "u", "60")


def test_reconnects_after_snmpd_and_node_restart(env):
    node, snmp = env
    snmp.stop_snmpd()
    snmp.start_snmpd()
    # The subagent pings every 2 s and registers again.
    assert wait_until(lambda: snmp.get(MN + ".1.1.0", check=False).returncode == 0 and
                      "No Such" not in snmp.get(MN + ".1.1.0", check=False).stdout, 30), \
        snmp.agent_log_text()[-2000:]
    # A node that hangs (stopped, its socket still open) does not hang the
    # subagent: answers keep coming, from the last values.
    node.proc.send_signal(signal.SIGSTOP)
    try:
        fresh(snmp, MN + ".1.6.0", "2", timeout=15)
        t0 = time.time()
        assert parse(snmp.get(MN + ".2.1.2.1").stdout)[MN + ".2.1.2.1"] == "smtp"
        assert time.time() - t0 < 4
    finally:
        node.proc.send_signal(signal.SIGCONT)
    fresh(snmp, MN + ".1.6.0", "1", timeout=15)
    assert node.stop() == 0
    fresh(snmp, MN + ".1.6.0", "2", timeout=10)      # node unreachable, last values kept
    assert parse(snmp.get(MN + ".1.1.0").stdout)[MN + ".1.1.0"] != ""
    node.start()
    fresh(snmp, MN + ".1.6.0", "1", timeout=20)
    assert snmp.agent.poll() is None
