"""Remote delivery through a relay host: a scripted SMTP server on loopback
takes the node's hand-overs. Recipients it accepts are delivered; a 5xx
fails them and the sender gets a delivery status report in the INBOX; a
4xx is retried with backoff; one that never succeeds bounces at the end of
the queue lifetime."""
import os
import smtplib
import socket
import ssl
import subprocess
import threading

import pytest

from conftest import MAILNODECTL, TOP, Node, free_offset, wait_until

PASSWORD = "alice's remote secret"


class Sink:
    """A minimal SMTP server: answers per recipient as scripted."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = []              # (sender, [rcpts], data)
        self.tries = {}                 # rcpt -> attempts seen
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def answer(self, rcpt):
        n = self.tries[rcpt] = self.tries.get(rcpt, 0) + 1
        if rcpt.startswith("bad@"):
            return b"550 5.1.1 no such user here"
        if rcpt.startswith("slow@"):
            return b"451 4.3.0 try again"
        if rcpt.startswith("later@") and n <= 2:
            return b"450 4.2.0 busy, later"
        return b"250 2.1.5 ok"

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        f = c.makefile("rb")
        c.sendall(b"220 sink ESMTP\r\n")
        sender, rcpts = None, []
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.strip().upper()
            if cmd.startswith(b"EHLO") or cmd.startswith(b"HELO"):
                c.sendall(b"250-sink\r\n250-SIZE 100000000\r\n250-8BITMIME\r\n250 PIPELINING\r\n")
            elif cmd.startswith(b"MAIL FROM:"):
                sender = line.strip()[10:].split(b" ")[0].strip(b"<>").decode()
                rcpts = []
                c.sendall(b"250 2.1.0 ok\r\n")
            elif cmd.startswith(b"RCPT TO:"):
                rcpt = line.strip()[8:].split(b" ")[0].strip(b"<>").decode()
                with self.lock:
                    reply = self.answer(rcpt)
                if reply.startswith(b"250"):
                    rcpts.append(rcpt)
                c.sendall(reply + b"\r\n")
            elif cmd == b"DATA":
                c.sendall(b"354 go\r\n")
                data = b""
                while True:
                    l = f.readline()
                    if l in (b".\r\n", b""):
                        break
                    data += l[1:] if l.startswith(b"..") else l
                with self.lock:
                    self.received.append((sender, list(rcpts), data))
                c.sendall(b"250 2.0.0 queued at the sink\r\n")
            elif cmd == b"QUIT":
                c.sendall(b"221 bye\r\n")
                c.close()
                return
            else:
                c.sendall(b"250 ok\r\n")


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    sink = Sink()
    state = str(tmp_path_factory.mktemp("remote") / "var")
    n = Node(state, free_offset(), extra=["--relay-host", "127.0.0.1:%d" % sink.port,
                                          "--retry-min", "1", "--queue-lifetime", "6"]).start()
    n.ctl("apply", "-f", os.path.join(TOP, "docs", "examples", "demo.yaml"))
    r = subprocess.run([MAILNODECTL, "--state-dir", state, "passwd", "alice@demo.test"],
                       input=PASSWORD + "\n", capture_output=True, text=True)
    assert r.returncode == 0
    yield n, sink
    assert n.stop() == 0


def send(n, rcpts, subject):
    ctx = ssl.create_default_context(cafile=os.path.join(n.state_dir, "tls", "ca.pem"))
    with smtplib.SMTP_SSL("localhost", n.port(2465), timeout=10, context=ctx) as s:
        s.login("alice@demo.test", PASSWORD)
        s.mail("alice@demo.test")
        for r in rcpts:
            assert s.rcpt(r)[0] == 250
        code, reply = s.data("Subject: %s\r\n\r\nbody of %s\r\n" % (subject, subject))
        assert code == 250
        return reply.split(b"queued as ")[1].strip().decode()


def states(n, qid):
    return dict(n.sql("SELECT r.address, r.state FROM queue_recipients r JOIN queue_messages m "
                      "ON m.id = r.message_id WHERE m.qid = '%s'" % qid))


def inbox_reports(n):
    rows = n.sql("SELECT m.file FROM messages m JOIN folders f ON f.id = m.folder_id "
                 "JOIN mailboxes x ON x.id = f.mailbox_id WHERE x.address = 'alice@demo.test' "
                 "AND m.return_path = ''")
    out = []
    for (f,) in rows:
        with open(os.path.join(n.state_dir, "mail", f), "rb") as fh:
            out.append(fh.read())
    return out


def test_handed_over_and_permanent_failure_bounces(relay):
    n, sink = relay
    qid = send(n, ["ok@remote.example", "bad@remote.example"], "first")
    assert wait_until(lambda: any("ok@remote.example" in r for _, r, _ in sink.received), timeout=20)
    sender, rcpts, data = next(x for x in sink.received if "ok@remote.example" in x[1])
    assert sender == "alice@demo.test" and rcpts == ["ok@remote.example"]
    assert data.endswith(b"body of first\r\n") and b"Received: from" in data
    # The failure is reported to alice, in her INBOX, as RFC 3464 says.
    assert wait_until(lambda: any(b"bad@remote.example" in r for r in inbox_reports(n)), timeout=20)
    report = next(r for r in inbox_reports(n) if b"bad@remote.example" in r)
    assert b"Content-Type: multipart/report; report-type=delivery-status" in report
    assert b"Final-Recipient: rfc822; bad@remote.example" in report
    assert b"Action: failed" in report and b"Status: 5.1.1" in report
    assert b"Diagnostic-Code: smtp; 550 5.1.1 no such user here" in report
    assert b"body of first" in report, "the original message is returned"
    assert wait_until(lambda: n.sql("SELECT COUNT(*) FROM queue_messages WHERE qid = '%s'" % qid) == [["0"]],
                      timeout=20)


def test_temporary_failures_are_retried(relay):
    n, sink = relay
    send(n, ["later@remote.example"], "second")
    assert wait_until(lambda: any("later@remote.example" in r for _, r, _ in sink.received), timeout=30)
    assert sink.tries["later@remote.example"] >= 3


def test_lifetime_ends_in_a_bounce(relay):
    n, sink = relay
    qid = send(n, ["slow@remote.example"], "third")
    assert wait_until(lambda: any(b"slow@remote.example" in r for r in inbox_reports(n)), timeout=40)
    report = next(r for r in inbox_reports(n) if b"slow@remote.example" in r)
    assert b"gave up after" in report and b"Status: 4.4.7" in report, "delivery time expired"
    assert sink.tries["slow@remote.example"] >= 2
    assert n.sql("SELECT COUNT(*) FROM queue_messages WHERE qid = '%s'" % qid) == [["0"]]


def test_forwarding_keeps_a_copy_unless_told_not_to(relay):
    n, sink = relay
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: fwd@demo.test, tenant: demo}\n"
                "spec: {forwardTo: [away@remote.example, bob@demo.test]}\n---\n"
                "apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: gone@demo.test, tenant: demo}\n"
                "spec: {forwardTo: [elsewhere@remote.example], keepCopy: false}\n")
    n.ctl("apply", "-f", f.name)
    os.unlink(f.name)
    with smtplib.SMTP("127.0.0.1", n.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        s.mail("someone@outside.example")
        assert s.rcpt("fwd@demo.test")[0] == 250
        assert s.rcpt("gone@demo.test")[0] == 250
        code, reply = s.data("Subject: fwd\r\n\r\nforward me\r\n")
    qid = reply.split(b"queued as ")[1].strip().decode()
    # Remote forward targets go out through the relay with the original sender.
    assert wait_until(lambda: any("away@remote.example" in r for _, r, _ in sink.received), timeout=20)
    assert wait_until(lambda: any("elsewhere@remote.example" in r for _, r, _ in sink.received), timeout=20)
    got = n.sql("SELECT x.address FROM messages m JOIN folders f ON f.id = m.folder_id "
                "JOIN mailboxes x ON x.id = f.mailbox_id WHERE m.queue_qid = '%s' ORDER BY x.address" % qid)
    # fwd keeps a copy, bob (a local forward target) gets one, gone keeps none.
    assert got == [["bob@demo.test"], ["fwd@demo.test"]]


def test_handed_over_mail_counts_for_its_tenant(relay):
    n, sink = relay
    before = {t["name"]: t for t in n.ctl_yaml("stats", "tenants")[0]["items"]}["demo"]
    send(n, ["counted@remote.example"], "counted")
    assert wait_until(lambda: any("counted@remote.example" in r for _, r, _ in sink.received), timeout=20)

    def demo():
        return {t["name"]: t for t in n.ctl_yaml("stats", "tenants")[0]["items"]}["demo"]
    # Sent by alice (demo) through submission: in when accepted, out when handed over.
    assert wait_until(lambda: demo()["messagesOut"] > before["messagesOut"], timeout=10)
    after = demo()
    assert after["messagesIn"] > before["messagesIn"]
    assert after["bytesOut"] - before["bytesOut"] >= len("body of counted")
    assert n.ctl_yaml("stats")[0]["traffic"]["recipientsOut"] >= 1
