"""Access control and connection limits on the real node, over loopback from
different source addresses (127.0.0.1, 127.0.0.2, ... and ::1): service
rules at accept, each mode and pattern form, per-address concurrency and
per-minute rate, exempt lists, idle timeout, tenant rules attributed by
login domain, recipient domain, SNI and dedicated address, login
throttling, rule changes under open sessions, and ending a session."""
import base64
import imaplib
import os
import poplib
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

import pytest
import yaml

from conftest import MAILNODECTL, Node, free_offset, wait_until

PASSWORD = "a long test password"


def apply_text(node, text, check=True):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        return node.ctl("apply", "-f", f.name, check=check)
    finally:
        os.unlink(f.name)


def service_doc(name, extra):
    return "apiVersion: mailnode/v1\nkind: Service\nmetadata: {name: %s}\nspec: %s\n" % (name, extra)


def tenant_doc(name, spec):
    return "apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: %s}\nspec: %s\n" % (name, spec)


def greet(port, src="127.0.0.1", host="127.0.0.1", family=socket.AF_INET, timeout=5):
    """Connect from src and return (socket, first line) of the greeting."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect((host, port))
    f = s.makefile("rb")
    line = f.readline().decode(errors="replace")
    return s, f, line


def banner(port, src="127.0.0.1", host="127.0.0.1", family=socket.AF_INET):
    s, f, line = greet(port, src, host, family)
    f.close()
    s.close()
    return line


def access_status(node):
    return node.ctl_yaml("access")[0]


def tenant_counts(node, name):
    for t in access_status(node)["tenants"]:
        if t["name"] == name:
            return t
    raise AssertionError("no tenant %s in %s" % (name, access_status(node)))


def svc_counts(node, name):
    return node.service(name)["status"]["connections"]


@pytest.fixture(scope="module")
def an(node):
    """Tenants acme (acme.test) and beta (beta.test), one mailbox each;
    smtp also listens on ::1 and on 127.0.0.5, acme's dedicated address."""
    apply_text(node, """\
apiVersion: mailnode/v1
kind: Tenant
metadata: {name: acme}
spec: {}
---
apiVersion: mailnode/v1
kind: Domain
metadata: {name: acme.test, tenant: acme}
spec: {}
---
apiVersion: mailnode/v1
kind: Mailbox
metadata: {name: user@acme.test, tenant: acme}
spec: {}
---
apiVersion: mailnode/v1
kind: Tenant
metadata: {name: beta}
spec: {}
---
apiVersion: mailnode/v1
kind: Domain
metadata: {name: beta.test, tenant: beta}
spec: {}
---
apiVersion: mailnode/v1
kind: Mailbox
metadata: {name: user@beta.test, tenant: beta}
spec: {}
""")
    for who in ("user@acme.test", "user@beta.test"):
        r = subprocess.run([MAILNODECTL, "--state-dir", node.state_dir, "passwd", who],
                           input=PASSWORD + "\n", capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    apply_text(node, service_doc("smtp", "{bind: [127.0.0.1, '::1', 127.0.0.5]}"))
    node.ctl("service", "stop", "spool")
    assert wait_until(lambda: port_ok(node.port(2525), "::1", socket.AF_INET6))
    return node


def port_ok(port, host="127.0.0.1", family=socket.AF_INET):
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def set_smtp_rules(node, access=None, connections=None):
    spec = {}
    spec["access"] = access or {"mode": "open"}
    spec["connections"] = connections or {}
    apply_text(node, service_doc("smtp", yaml.safe_dump(spec, default_flow_style=True).strip()))


MODES = [
    # (access, source addresses refused, source addresses admitted)
    ({"mode": "deny-listed", "addresses": ["127.0.0.2"]}, ["127.0.0.2"], ["127.0.0.1", "127.0.0.3"]),
    ({"mode": "deny-listed", "addresses": ["127.0.0.*"]}, ["127.0.0.2", "127.0.0.200"], ["127.0.1.1"]),
    ({"mode": "deny-listed", "addresses": ["127.0.2.1/16"]}, ["127.0.0.9", "127.0.255.1"], ["127.1.0.1"]),
    ({"mode": "allow-listed", "addresses": ["127.0.0.1", "127.1.*"]}, ["127.0.0.2", "127.2.0.1"],
     ["127.0.0.1", "127.1.200.3"]),
    ({"mode": "allow-listed", "addresses": ["127.*"]}, [], ["127.0.0.1", "127.250.0.1"]),
    ({"mode": "open", "addresses": ["127.0.0.2"]}, [], ["127.0.0.2"]),
]


@pytest.mark.parametrize("access,refused,admitted", MODES)
def test_service_access_modes_and_patterns(an, access, refused, admitted):
    port = an.port(2525)
    set_smtp_rules(an, access)
    before = svc_counts(an, "smtp")
    for src in refused:
        assert banner(port, src).startswith("554 5.7.1"), src
    for src in admitted:
        assert banner(port, src).startswith("220 "), src
    after = svc_counts(an, "smtp")
    assert after["rejectedByAccess"] - before["rejectedByAccess"] == len(refused)
    set_smtp_rules(an)


def test_ipv6_peer_and_v6_wildcard(an):
    port = an.port(2525)
    set_smtp_rules(an, {"mode": "deny-listed", "addresses": ["::*"]})
    assert banner(port, "::1", "::1", socket.AF_INET6).startswith("554 5.7.1")
    assert banner(port, "127.0.0.1").startswith("220 ")
    set_smtp_rules(an, {"mode": "allow-listed", "addresses": ["::1"]})
    assert banner(port, "::1", "::1", socket.AF_INET6).startswith("220 ")
    assert banner(port, "127.0.0.1").startswith("554 5.7.1")
    set_smtp_rules(an)


def test_max_concurrent_per_address_and_exempt(an):
    port = an.port(2525)
    set_smtp_rules(an, connections={"maxConcurrent": 2, "exempt": ["127.0.0.9"]})
    held = [greet(port, "127.0.0.3") for _ in range(2)]
    assert all(h[2].startswith("220 ") for h in held)
    assert banner(port, "127.0.0.3").startswith("421 4.7.0")
    # Another address has its own count; an exempt one is never limited.
    assert banner(port, "127.0.0.4").startswith("220 ")
    extra = [greet(port, "127.0.0.9") for _ in range(4)]
    assert all(h[2].startswith("220 ") for h in extra)
    # One closes: one more may come.
    s, f, _ = held.pop()
    f.close()
    s.close()
    assert wait_until(lambda: banner(port, "127.0.0.3").startswith("220 "), timeout=5)
    for s, f, _ in held + extra:
        f.close()
        s.close()
    set_smtp_rules(an)


def test_per_minute_rate(an):
    port = an.port(2525)
    set_smtp_rules(an, connections={"perIpPerMinute": 3})
    before = svc_counts(an, "smtp")["rejectedByLimit"]
    got = [banner(port, "127.0.0.6")[:3] for _ in range(5)]
    assert got == ["220", "220", "220", "421", "421"]
    assert banner(port, "127.0.0.7").startswith("220 ")
    assert svc_counts(an, "smtp")["rejectedByLimit"] - before == 2
    set_smtp_rules(an)


def test_rule_change_applies_to_new_connections_while_sessions_stay(an):
    port = an.port(2525)
    s, f, line = greet(port, "127.0.0.8")
    assert line.startswith("220 ")
    set_smtp_rules(an, {"mode": "deny-listed", "addresses": ["127.0.0.8"]})
    # Within a second, new connections meet the rule ...
    assert wait_until(lambda: banner(port, "127.0.0.8").startswith("554 5.7.1"), timeout=1.0)
    # ... and the session already open keeps working.
    s.sendall(b"EHLO client.test\r\n")
    line = f.readline().decode()
    assert line.startswith("250"), line
    f.close()
    s.close()
    set_smtp_rules(an)


def test_idle_timeout(an):
    port = an.port(2525)
    apply_text(an, service_doc("smtp", "{timeout: 2}"))
    s, f, line = greet(port)
    t0 = time.time()
    rest = f.readline().decode()
    assert rest.startswith("421"), rest
    assert 1.0 < time.time() - t0 < 10
    f.close()
    s.close()
    apply_text(an, service_doc("smtp", "{timeout: 300}"))


def smtp_auth(port, user, password, src="127.0.0.1"):
    c = smtplib.SMTP("127.0.0.1", port, timeout=20, source_address=(src, 0))
    c.ehlo("client.test")
    c.starttls(context=ssl._create_unverified_context())
    c.ehlo("client.test")
    try:
        code, msg = c.docmd("AUTH", "PLAIN " + base64.b64encode(
            ("\0%s\0%s" % (user, password)).encode()).decode())
    except smtplib.SMTPServerDisconnected:
        return 0, b"disconnected", None
    return code, msg, c


def test_tenant_rules_by_login_domain(an):
    port = an.port(2587)
    apply_text(an, tenant_doc("acme", "{access: {mode: deny-listed, addresses: [127.0.0.11]}}"))
    code, msg, c = smtp_auth(port, "user@acme.test", PASSWORD, "127.0.0.11")
    assert code == 554 and b"5.7.1" in msg, (code, msg)
    # Another tenant's user from the same address is welcome.
    code, msg, c = smtp_auth(port, "user@beta.test", PASSWORD, "127.0.0.11")
    assert code == 235, (code, msg)
    sessions = an.ctl_yaml("sessions", "--tenant", "beta")[0]["items"]
    assert any(s["user"] == "user@beta.test" and s["peer"].startswith("127.0.0.11:") for s in sessions)
    c.quit()
    assert tenant_counts(an, "acme")["rejectedByAccess"] >= 1
    apply_text(an, tenant_doc("acme", "{}"))


def test_tenant_limit_by_login_domain(an):
    port = an.port(2587)
    apply_text(an, tenant_doc("beta", "{connections: {maxConcurrent: 1}}"))
    code, msg, first = smtp_auth(port, "user@beta.test", PASSWORD, "127.0.0.12")
    assert code == 235, (code, msg)
    code, msg, _ = smtp_auth(port, "user@beta.test", PASSWORD, "127.0.0.12")
    assert code == 421 and b"4.7.0" in msg, (code, msg)
    first.quit()
    assert wait_until(lambda: smtp_auth(port, "user@beta.test", PASSWORD, "127.0.0.12")[0] == 235)
    assert tenant_counts(an, "beta")["rejectedByLimit"] >= 1
    apply_text(an, tenant_doc("beta", "{}"))


def test_tenant_rules_by_recipient_domain(an):
    port = an.port(2525)
    apply_text(an, tenant_doc("acme", "{access: {mode: deny-listed, addresses: [127.0.0.13]}}"))
    c = smtplib.SMTP(timeout=20, source_address=("127.0.0.13", 0))
    c.connect("127.0.0.1", port)
    c.ehlo("client.test")
    c.mail("sender@example.org")
    code, msg = c.rcpt("user@acme.test")
    assert code == 550 and b"5.7.1" in msg, (code, msg)
    # The session goes on: beta's recipient is accepted.
    code, msg = c.rcpt("user@beta.test")
    assert code == 250, (code, msg)
    c.quit()
    apply_text(an, tenant_doc("acme", "{}"))


def test_tenant_rules_by_dedicated_address(an):
    port = an.port(2525)
    apply_text(an, tenant_doc("acme", "{addresses: [127.0.0.5], access: {mode: allow-listed, "
                                      "addresses: [127.0.0.14]}}"))
    # Connections to acme's address are acme's from the first byte.
    assert wait_until(lambda: banner(port, "127.0.0.15", "127.0.0.5").startswith("554 5.7.1"), timeout=2)
    s, f, line = greet(port, "127.0.0.14", "127.0.0.5")
    assert line.startswith("220 ")
    sessions = an.ctl_yaml("sessions", "--tenant", "acme")[0]["items"]
    assert any(x["peer"].startswith("127.0.0.14:") for x in sessions)
    f.close()
    s.close()
    # The node's other address is not acme's.
    assert banner(port, "127.0.0.15", "127.0.0.1").startswith("220 ")
    apply_text(an, tenant_doc("acme", "{}"))


def test_tenant_rules_by_sni(an):
    port = an.port(2465)
    apply_text(an, tenant_doc("acme", "{access: {mode: deny-listed, addresses: [127.0.0.16]}}"))
    ctx = ssl._create_unverified_context()

    def first_line(name, src):
        raw = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(src, 0))
        s = ctx.wrap_socket(raw, server_hostname=name)
        try:
            return s.recv(512).decode()
        finally:
            s.close()
    assert wait_until(lambda: first_line("mail.acme.test", "127.0.0.16").startswith("554 5.7.1"), timeout=2)
    assert first_line("mail.beta.test", "127.0.0.16").startswith("220 ")
    assert first_line("mail.acme.test", "127.0.0.17").startswith("220 ")
    apply_text(an, tenant_doc("acme", "{}"))


def test_login_throttling_blocks_an_address_then_exempt_is_spared(an):
    port = an.port(2587)
    src = "127.0.0.21"
    t0 = time.time()
    for i in range(10):
        code, msg, c = smtp_auth(port, "user@acme.test", "wrong password %d" % i, src)
        assert code == 535, (code, msg)
        c.close()
    # Each failure slowed the next answer: 250 ms more every time.
    assert time.time() - t0 > 0.25 * sum(range(1, 11)) * 0.9
    # Blocked now, even with the right password.
    code, msg, c = smtp_auth(port, "user@acme.test", PASSWORD, src)
    assert code == 454 and b"from your address" in msg, (code, msg)
    c.close()
    # Another address is not blocked.
    code, msg, c = smtp_auth(port, "user@acme.test", PASSWORD, "127.0.0.22")
    assert code == 235, (code, msg)
    c.quit()
    # Exempt addresses are never throttled.
    apply_text(an, service_doc("submission", "{connections: {exempt: [%s]}}" % src))
    code, msg, c = smtp_auth(an.port(2587), "user@acme.test", PASSWORD, src)
    assert code == 235, (code, msg)
    c.quit()
    assert access_status(an)["logins"]["blocks"] >= 1
    assert svc_counts(an, "submission")["authFailures"] >= 10
    apply_text(an, service_doc("submission", "{connections: {}}"))


def test_session_listing_and_kill(an):
    port = an.port(2525)
    s, f, line = greet(port, "127.0.0.30")
    s.sendall(b"EHLO client.test\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    items = an.ctl_yaml("sessions", "--service", "smtp")[0]["items"]
    mine = [x for x in items if x["peer"].startswith("127.0.0.30:")]
    assert len(mine) == 1
    assert mine[0]["bytesIn"] >= len(b"EHLO client.test\r\n") and mine[0]["bytesOut"] > 50
    r = an.ctl("session", "kill", str(mine[0]["id"]))
    assert "ending" in r.stdout
    # The client gets SMTP's goodbye, then the end.
    line = f.readline().decode()
    assert line.startswith("421 "), line
    assert f.readline() == b""
    assert wait_until(lambda: not any(x["id"] == mine[0]["id"] for x in
                                      an.ctl_yaml("sessions")[0]["items"]))
    r = an.ctl("session", "kill", str(mine[0]["id"]), check=False)
    assert r.returncode == 1 and "no live session" in (r.stdout + r.stderr)
    r = an.ctl("session", "kill", "abc", check=False)
    assert r.returncode == 2
    f.close()
    s.close()


def http_status(port, src):
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(src, 0))
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return s.recv(64).decode(errors="replace")
    except OSError:
        return ""  # refused at accept: closed without an answer
    finally:
        s.close()


def test_http_service_rules_at_accept(an):
    port = an.port(2080)
    apply_text(an, service_doc("http", "{access: {mode: deny-listed, addresses: [127.0.0.40]}, "
                                       "connections: {perIpPerMinute: 2}}"))
    before = svc_counts(an, "http")
    assert http_status(port, "127.0.0.40") == ""
    assert [http_status(port, "127.0.0.41")[:12] for _ in range(3)] == ["HTTP/1.1 301"] * 2 + [""]
    after = svc_counts(an, "http")
    assert after["rejectedByAccess"] - before["rejectedByAccess"] == 1
    assert after["rejectedByLimit"] - before["rejectedByLimit"] == 1
    apply_text(an, service_doc("http", "{access: {mode: open}, connections: {}}"))
    assert http_status(port, "127.0.0.40").startswith("HTTP/1.1 301")


def test_max_clients_busy_reply(an):
    port = an.port(2525)
    apply_text(an, service_doc("smtp", "{maxClients: 2}"))
    before = svc_counts(an, "smtp")
    held = [greet(port, "127.0.0.50") for _ in range(2)]
    assert all(h[2].startswith("220 ") for h in held)
    # The service is full, whoever asks: the busy reply, counted.
    assert banner(port, "127.0.0.51").startswith("421 4.7.0 Too many connections")
    after = svc_counts(an, "smtp")
    assert after["rejected"] - before["rejected"] == 1
    assert after["rejectedByLimit"] - before["rejectedByLimit"] == 1
    for s, f, _ in held:
        f.close()
        s.close()
    assert wait_until(lambda: banner(port, "127.0.0.51").startswith("220 "), timeout=5)
    apply_text(an, service_doc("smtp", "{maxClients: 1000}"))


def test_pop3_and_imap_refuse_at_accept_with_their_own_answers(an):
    pop3, imap = an.port(2110), an.port(2143)
    apply_text(an, service_doc("pop3", "{access: {mode: deny-listed, addresses: [127.0.0.52]}, "
                                       "connections: {perIpPerMinute: 1}}"))
    apply_text(an, service_doc("imap", "{access: {mode: deny-listed, addresses: [127.0.0.52]}}"))
    assert banner(pop3, "127.0.0.52").startswith("-ERR [AUTH] ")
    assert banner(imap, "127.0.0.52").startswith("* BYE [NOPERM] ")
    assert banner(pop3, "127.0.0.53").startswith("+OK")
    assert banner(pop3, "127.0.0.53").startswith("-ERR [IN-USE] ")
    assert banner(imap, "127.0.0.53").startswith("* OK")
    assert svc_counts(an, "pop3")["rejectedByAccess"] >= 1
    assert svc_counts(an, "pop3")["rejectedByLimit"] >= 1
    apply_text(an, service_doc("pop3", "{access: {mode: open}, connections: {}}"))
    apply_text(an, service_doc("imap", "{access: {mode: open}}"))


def tenant_stat(node, name, key):
    for t in node.ctl_yaml("stats", "tenants")[0]["items"]:
        if t["name"] == name:
            return t[key]
    raise AssertionError("no tenant %s" % name)


def test_failed_imap_and_pop3_logins_count_for_the_tenant(an):
    ctx = ssl._create_unverified_context()
    before_access = tenant_counts(an, "beta")["authFailures"]
    before_stats = tenant_stat(an, "beta", "authFailures")
    other = tenant_stat(an, "acme", "authFailures")
    c = imaplib.IMAP4_SSL("127.0.0.1", an.port(2993), ssl_context=ctx, timeout=20)
    with pytest.raises(imaplib.IMAP4.error):
        c.login("user@beta.test", "not the password")
    c.logout()
    p = poplib.POP3_SSL("127.0.0.1", an.port(2995), context=ctx, timeout=20)
    p.user("user@beta.test")
    with pytest.raises(poplib.error_proto):
        p.pass_("not the password either")
    p.quit()
    # Both failures are the account's tenant's, in the access counters
    # (mailnodectl access) and in the figures SNMP serves.
    assert tenant_counts(an, "beta")["authFailures"] - before_access == 2
    assert tenant_stat(an, "beta", "authFailures") - before_stats == 2
    assert tenant_stat(an, "acme", "authFailures") == other


def test_tenant_rule_change_while_its_sessions_stay(an):
    port = an.port(2587)
    code, msg, c = smtp_auth(port, "user@acme.test", PASSWORD, "127.0.0.54")
    assert code == 235, (code, msg)
    apply_text(an, tenant_doc("acme", "{access: {mode: deny-listed, addresses: [127.0.0.54]}}"))
    # New logins of acme's users from there are refused within a second ...
    assert wait_until(lambda: smtp_auth(port, "user@acme.test", PASSWORD, "127.0.0.54")[0] == 554,
                      timeout=1.5)
    # ... while the session logged in before goes on.
    code, msg = c.mail("user@acme.test")
    assert code == 250, (code, msg)
    c.quit()
    apply_text(an, tenant_doc("acme", "{}"))
