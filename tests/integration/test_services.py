"""Services as units on the real node: status, settings, stop/start of a
real listener, refusals, draining sessions, and the http redirect."""
import http.client
import os
import socket
import stat
import time

import yaml

from conftest import port_open, wait_until

ALL_SERVICES = ["smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps", "http",
                "https", "admin", "ldap", "spool", "indexing", "imap-retrieval", "pop-retrieval"]


def test_status_lists_every_service_with_state(node):
    doc = node.ctl_yaml("status")[0]
    assert doc["kind"] == "NodeStatus"
    assert doc["node"]["database"] == {"mode": "embedded", "status": "up"}
    by_name = {s["name"]: s for s in doc["services"]}
    assert list(by_name) == ALL_SERVICES
    assert by_name["http"]["state"] == "running"
    assert by_name["http"]["port"] == node.port(2080)
    # Services whose protocol is not built refuse to pretend.
    assert by_name["imap"]["state"] == "running"
    assert by_name["ldap"]["state"] == "stopped"
    assert "no protocol handler" in by_name["ldap"]["reason"]
    table = node.ctl("status").stdout
    assert "database embedded (up)" in table
    for name in ALL_SERVICES:
        assert name in table


def test_services_show_their_settings(node):
    docs = node.ctl_yaml("services")
    assert [d["metadata"]["name"] for d in docs] == ALL_SERVICES
    http = next(d for d in docs if d["metadata"]["name"] == "http")
    assert http["apiVersion"] == "mailnode/v1" and http["kind"] == "Service"
    assert http["spec"] == {"state": "running", "bind": ["127.0.0.1"], "port": node.port(2080),
                            "maxClients": 1000, "timeout": "60s", "autoStart": True,
                            "restartOnChange": True}
    spool = next(d for d in docs if d["metadata"]["name"] == "spool")
    # A service without a listener has no bind/port/maxClients/timeout.
    assert set(spool["spec"]) == {"state", "autoStart", "restartOnChange"}
    table = node.ctl("services").stdout
    assert "127.0.0.1" in table and str(node.port(2080)) in table


def get(port, path="/", host="mail.demo.test"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", path, headers={"Host": host})
    r = c.getresponse()
    r.read()
    c.close()
    return r


def test_http_redirects_to_https(node):
    r = get(node.port(2080), "/mail/inbox?folder=Sent", host="mail.demo.test:%d" % node.port(2080))
    assert r.status == 301
    assert r.getheader("Location") == "https://mail.demo.test:%d/mail/inbox?folder=Sent" % node.port(2443)
    r = get(node.port(2080), "/", host="[::1]:80")
    assert r.getheader("Location") == "https://[::1]:%d/" % node.port(2443)
    assert get(node.port(2080), "/", host="bad host").status == 400


def test_stop_closes_port_and_start_reopens(node):
    port = node.port(2080)
    assert port_open(port)
    total_before = node.service("http")["status"]["connections"]["total"]
    node.ctl("service", "stop", "http")
    t0 = time.time()
    assert wait_until(lambda: not port_open(port), timeout=1.0), "port still open 1s after stop"
    assert time.time() - t0 < 1.0
    st = node.service("http")["status"]
    assert st["state"] == "stopped" and st["reason"] == "stopped by request"
    assert node.sql("SELECT state FROM services WHERE name = 'http'") == [["stopped"]] or \
        wait_until(lambda: node.sql("SELECT state FROM services WHERE name = 'http'") == [["stopped"]])
    node.ctl("service", "start", "http")
    assert port_open(port)
    assert get(port).status == 301
    st = node.service("http")["status"]
    assert st["state"] == "running"
    assert st["connections"]["total"] > total_before
    assert wait_until(lambda: node.sql("SELECT state FROM services WHERE name = 'http'") == [["running"]])


def test_restart_keeps_serving(node):
    node.ctl("service", "restart", "http")
    assert get(node.port(2080)).status == 301


def test_admin_cannot_be_stopped(node):
    r = node.ctl("service", "stop", "admin", check=False)
    assert r.returncode == 1
    assert "cannot be stopped" in r.stderr
    assert "(409)" in r.stderr


def test_service_without_protocol_cannot_start(node):
    r = node.ctl("service", "start", "ldap", check=False)
    assert r.returncode == 1
    assert "no protocol handler" in r.stderr
    assert not port_open(node.port(2389))
    assert node.service("ldap")["status"]["state"] == "stopped"


def test_unknown_service_is_404(node):
    r = node.ctl("service", "start", "nosuch", check=False)
    assert r.returncode == 1 and "no service named 'nosuch'" in r.stderr and "(404)" in r.stderr


def test_sessions_listed_and_drained_on_stop(node):
    port = node.port(2080)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/a", headers={"Host": "x.test"})
    r = c.getresponse()
    r.read()
    assert r.status == 301
    sessions = node.ctl_yaml("sessions", "--service", "http")[0]["items"]
    mine = [s for s in sessions if s["peer"] == "127.0.0.1:%d" % c.sock.getsockname()[1]]
    assert len(mine) == 1 and mine[0]["service"] == "http" and mine[0]["tls"] == "none"
    assert "127.0.0.1:%d" % c.sock.getsockname()[1] in node.ctl("sessions").stdout

    # Stop drains by default: the port closes, the open session is still served.
    node.ctl("service", "stop", "http")
    assert wait_until(lambda: not port_open(port), timeout=1.0)
    c.request("GET", "/b", headers={"Host": "x.test"})
    r = c.getresponse()
    r.read()
    assert r.status == 301 and r.getheader("Location").endswith("/b")
    assert node.service("http")["status"]["connections"]["current"] >= 1
    c.close()
    assert wait_until(lambda: node.service("http")["status"]["connections"]["current"] == 0)
    node.ctl("service", "start", "http")


def test_stop_now_ends_sessions(node):
    port = node.port(2080)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 301")
    node.ctl("service", "stop", "http", "--now")
    s.settimeout(5)
    assert s.recv(4096) == b"", "session survived stop --now"
    s.close()
    assert node.service("http")["status"]["connections"]["current"] == 0
    node.ctl("service", "start", "http")


def test_control_socket_is_private(node):
    path = os.path.join(node.state_dir, "run", "control.sock")
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def control_raw(node, payload):
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(node.state_dir, "run", "control.sock"))
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def test_control_socket_rejects_bad_requests(node):
    status, _, body = control_raw(node, b"garbage\n").partition(b"\n")
    assert status == b"400"
    assert yaml.safe_load(body)["kind"] == "Error"
    status, _, body = control_raw(node, b"DELETE /v1/status\n").partition(b"\n")
    assert status == b"405"
    status, _, body = control_raw(node, b"GET /v1/nothing\n").partition(b"\n")
    assert status == b"404" and b"no such resource" in body
    # The node is still fine.
    assert node.ctl_yaml("status")[0]["kind"] == "NodeStatus"


def test_mailnodectl_without_node_says_so(fresh_state):
    from conftest import MAILNODECTL
    import subprocess
    r = subprocess.run([MAILNODECTL, "--state-dir", fresh_state, "status"], capture_output=True, text=True)
    assert r.returncode == 3
    assert "cannot reach the node" in r.stderr


def test_settings_doc_is_generated_from_the_definitions():
    import subprocess
    from conftest import MAILNODED, TOP
    out = subprocess.run([MAILNODED, "--settings-markdown"], capture_output=True, text=True, check=True).stdout
    with open(os.path.join(TOP, "docs", "settings.md")) as f:
        doc = f.read()
    assert "| `maxClients` |" in out
    assert out in doc, "docs/settings.md is out of date: regenerate with mailnoded --settings-markdown"
