"""The node's life: first start with its own MariaDB, clean stop, kill -9 and
recovery without double migration, a busy port failing only its service, an
external database by DSN, and ./run up brought up and stopped with Ctrl-C."""
import os
import signal
import socket
import subprocess
import time

import yaml

from conftest import (BUILD, SANITIZED, TOP, Node, free_offset, port_open,
                      wait_until)


def migrations(node):
    return node.sql("SELECT version, name FROM schema_migrations ORDER BY version")


def test_sigterm_stops_node_and_its_mariadb(fresh_state):
    n = Node(fresh_state, free_offset()).start()
    assert len(n.mariadb_pids()) == 1
    assert n.stop(signal.SIGTERM) == 0
    assert n.mariadb_pids() == []
    assert not os.path.exists(os.path.join(fresh_state, "run", "control.sock"))
    assert not port_open(n.port(2080))


def test_sigint_stops_cleanly(fresh_state):
    n = Node(fresh_state, free_offset()).start()
    assert n.stop(signal.SIGINT) == 0
    assert n.mariadb_pids() == []


def test_kill9_then_restart_keeps_data_without_migrating_twice(fresh_state):
    n = Node(fresh_state, free_offset()).start()
    first = migrations(n)
    files = sorted(f for f in os.listdir(os.path.join(TOP, "schemas")) if f.endswith(".sql"))
    assert [name for _, name in first] == files
    n.ctl("service", "stop", "http")
    assert wait_until(lambda: n.sql("SELECT state FROM services WHERE name='http'") == [["stopped"]])
    n.sql("CREATE TABLE crash_marker (v INT) ENGINE=InnoDB; INSERT INTO crash_marker VALUES (42)")

    n.proc.kill()
    n.proc.wait()
    n.log.close()
    # The embedded server dies with the node (parent-death signal).
    assert wait_until(lambda: n.mariadb_pids() == [], timeout=60), "mariadbd outlived a killed node"

    n.start()
    assert migrations(n) == first
    assert n.sql("SELECT v FROM crash_marker") == [["42"]]
    assert "0 migrations applied now" in n.log_text()
    # autoStart brings http back at node start.
    assert n.service("http")["status"]["state"] == "running"
    assert n.stop() == 0


def test_leftover_mariadb_of_a_killed_node_is_replaced(fresh_state):
    """Even if the embedded server survived (it was stopped, so no death
    signal reached it), the next start stops it and starts its own."""
    n = Node(fresh_state, free_offset()).start()
    old = n.mariadb_pids()
    assert len(old) == 1
    os.kill(old[0], signal.SIGSTOP)         # ignore the parent-death SIGTERM for now
    n.proc.kill()
    n.proc.wait()
    n.log.close()
    os.kill(old[0], signal.SIGCONT)
    n.start()
    assert n.mariadb_pids() != old and len(n.mariadb_pids()) == 1
    assert n.ctl_yaml("status")[0]["node"]["database"]["status"] == "up"
    assert n.stop() == 0


def test_port_in_use_fails_only_that_service(fresh_state):
    off = free_offset()
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", 2080 + off))
    blocker.listen(1)
    try:
        n = Node(fresh_state, off).start()
        st = n.service("http")["status"]
        assert st["state"] == "failed"
        assert "Address already in use" in st["reason"] and str(2080 + off) in st["reason"]
        assert "failed" in n.ctl("status").stdout
        r = n.ctl("service", "start", "http", check=False)
        assert r.returncode == 1 and "Address already in use" in r.stderr
    finally:
        blocker.close()
    n.ctl("service", "start", "http")
    assert n.service("http")["status"]["state"] == "running"
    assert port_open(n.port(2080))
    assert n.stop() == 0


def test_external_database_by_dsn(fresh_state, tmp_path):
    """The same code path with an external server: here the embedded server
    of another node, reached through its socket like any MariaDB."""
    a = Node(fresh_state, free_offset()).start()
    try:
        sock = os.path.join(fresh_state, "run", "mariadb.sock")
        b = Node(str(tmp_path / "b"), free_offset(),
                 database="mysql://root@localhost/mailnode_b?socket=" + sock).start()
        st = b.ctl_yaml("status")[0]["node"]["database"]
        assert st == {"mode": "external", "status": "up"}
        assert b.mariadb_pids() == []
        rows = subprocess.run(["mariadb", "-S", sock, "-u", "root", "-N", "-B", "mailnode_b", "-e",
                               "SELECT COUNT(*) FROM services"], capture_output=True, text=True)
        assert rows.stdout.strip() == "15"
        assert b.stop() == 0
    finally:
        assert a.stop() == 0


def test_bad_dsn_is_refused_clearly(fresh_state):
    n = Node(fresh_state, free_offset(), database="postgres://x/y")
    n.start(wait=False)
    assert n.proc.wait(timeout=30) == 1
    assert "must start with mysql://" in n.log_text()


def test_run_up_serves_and_ctrl_c_stops_everything(tmp_path):
    if SANITIZED:
        # ./run up builds and runs the release node; once per test run is enough.
        import pytest
        pytest.skip("covered by the non-sanitized run")
    state = tmp_path / "var"
    off = free_offset()
    env = dict(os.environ, MAILNODE_STATE_DIR=str(state), MAILNODE_PORT_OFFSET=str(off),
               MAILNODE_BUILD=BUILD)
    log = open(tmp_path / "up.log", "wb")
    p = subprocess.Popen([os.path.join(TOP, "run"), "up"], stdout=log, stderr=subprocess.STDOUT,
                         env=env, start_new_session=True)
    try:
        assert wait_until(lambda: b"Ctrl-C stops everything" in (tmp_path / "up.log").read_bytes(),
                          timeout=180), (tmp_path / "up.log").read_text()
        out = (tmp_path / "up.log").read_text()
        assert "http (redirects to https):  http://127.0.0.1:%d/" % (2080 + off) in out
        assert port_open(2080 + off)
        creds_path = state / "credentials.yaml"
        assert oct(creds_path.stat().st_mode & 0o777) == "0o600"
        creds = yaml.safe_load(creds_path.read_text())["snmp"]
        ro = creds["readOnly"]
        # snmpd answers SNMPv3 authPriv with the generated user...
        r = subprocess.run(["snmpget", "-v3", "-l", "authPriv", "-u", ro["user"], "-a", "SHA",
                            "-A", ro["authPassphrase"], "-x", "AES", "-X", ro["privPassphrase"],
                            "-r", "2", "-t", "2", "127.0.0.1:%d" % (2161 + off), ".1.3.6.1.2.1.1.1.0"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "STRING" in r.stdout, r.stderr
        # The mailnode-snmp subagent serves MAILNODE-MIB through it (mnNodeVersion).
        def node_version():
            r = subprocess.run(["snmpget", "-v3", "-l", "authPriv", "-u", ro["user"], "-a", "SHA",
                                "-A", ro["authPassphrase"], "-x", "AES", "-X", ro["privPassphrase"],
                                "-r", "1", "-t", "2", "127.0.0.1:%d" % (2161 + off),
                                ".1.3.6.1.4.1.32473.1.1.1.0"], capture_output=True, text=True, timeout=30)
            return r.stdout
        assert wait_until(lambda: '"0.1.0"' in node_version(), timeout=30), node_version()
        # ...and nothing without credentials (no v1/v2c community).
        r = subprocess.run(["snmpget", "-v2c", "-c", "public", "-r", "0", "-t", "1",
                            "127.0.0.1:%d" % (2161 + off), ".1.3.6.1.2.1.1.1.0"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        ctl = subprocess.run([os.path.join(TOP, "run"), "ctl", "status"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert ctl.returncode == 0 and "http" in ctl.stdout
        # A service stopped and started again reaches the dev trap receiver
        # as mnServiceStateChange informs.
        traps = state / "log" / "traps.log"
        for verb in ("stop", "start"):
            ctl = subprocess.run([os.path.join(TOP, "run"), "ctl", "service", verb, "http"], env=env,
                                 capture_output=True, text=True, timeout=60)
            assert ctl.returncode == 0, ctl.stdout + ctl.stderr
            time.sleep(1.5)   # the subagent compares states once a second
        assert wait_until(lambda: traps.exists() and
                          traps.read_text().count(".1.3.6.1.4.1.32473.0.1") >= 2 and
                          '"http"' in traps.read_text(), timeout=30), \
            traps.read_text() if traps.exists() else "no traps.log"
        # The demo tenant is there, its mailboxes have the generated passwords,
        # and the admin token works over HTTPS.
        full = yaml.safe_load(creds_path.read_text())
        ctl = subprocess.run([os.path.join(TOP, "run"), "ctl", "get", "mailboxes", "--tenant", "demo"],
                             env=env, capture_output=True, text=True, timeout=60)
        boxes = {d["metadata"]["name"]: d for d in yaml.safe_load_all(ctl.stdout)}
        assert set(boxes) == {"alice@demo.test", "bob@demo.test"}
        assert all(b["status"]["hasPassword"] for b in boxes.values())
        assert len(full["mailboxes"]["alice@demo.test"]) >= 16
        import ssl
        import urllib.request
        req = urllib.request.Request(full["admin"]["url"] + "tenants/demo",
                                     headers={"Authorization": "Bearer " + full["admin"]["token"]})
        ctx = ssl.create_default_context(cafile=full["admin"]["ca"])
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            assert yaml.safe_load(r.read())["metadata"]["name"] == "demo"
    finally:
        os.killpg(p.pid, signal.SIGINT)
        rc = p.wait(timeout=120)
        log.close()
    out = (tmp_path / "up.log").read_text()
    assert "stopped" in out
    datadir = str(state / "db" / "data")
    left = subprocess.run(["pgrep", "-f", str(state)], capture_output=True, text=True).stdout.split()
    assert left == [], "left running after Ctrl-C: %s" % left
    assert not port_open(2080 + off)
    assert not os.path.exists(os.path.join(datadir, "..", "..", "run", "control.sock"))
    assert rc in (0, 130), out


def test_mariadb_crash_is_seen_and_recovered(fresh_state):
    n = Node(fresh_state, free_offset()).start()
    try:
        pids = n.mariadb_pids()
        assert len(pids) == 1
        os.kill(pids[0], signal.SIGKILL)

        def db_status():
            return n.ctl_yaml("status")[0]["node"]["database"]["status"]
        # The NOC sees the outage, the node keeps answering, then recovers on its own.
        assert wait_until(lambda: db_status() == "down", timeout=15), n.log_text()[-3000:]
        assert wait_until(lambda: db_status() == "up", timeout=60), n.log_text()[-3000:]
        new = n.mariadb_pids()
        assert len(new) == 1 and new != pids
        assert "embedded MariaDB exited" in n.log_text()
        # Writes work again through the reconnected workers.
        n.ctl("service", "stop", "http")
        assert wait_until(lambda: n.sql("SELECT state FROM services WHERE name='http'") == [["stopped"]])
    finally:
        assert n.stop() == 0
        assert n.mariadb_pids() == []
