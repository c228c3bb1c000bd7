"""Remote delivery through a relay host: a scripted SMTP server on loopback
takes the node's hand-overs. Recipients it accepts are delivered; a 5xx
fails them and the sender gets a delivery status report in the INBOX; a
4xx is retried with backoff; one that never succeeds bounces at the end of
the queue lifetime, after one delay report. Remote workers run per
destination in parallel: a black-holed destination holds its workers and
nothing else."""
import imaplib
import os
import poplib
import smtplib
import socket
import ssl
import subprocess
import threading
import time

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
                                          "--retry-min", "1", "--queue-lifetime", "6",
                                          "--delay-warning", "2"]).start()
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


def inbox_reports(n, action=None):
    rows = n.sql("SELECT m.file FROM messages m JOIN folders f ON f.id = m.folder_id "
                 "JOIN mailboxes x ON x.id = f.mailbox_id WHERE x.address = 'alice@demo.test' "
                 "AND m.return_path = ''")
    out = []
    for (f,) in rows:
        with open(os.path.join(n.state_dir, "mail", f), "rb") as fh:
            body = fh.read()
        if action is None or ("Action: %s\r\n" % action).encode() in body:
            out.append(body)
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
    assert wait_until(lambda: any(b"slow@remote.example" in r for r in inbox_reports(n, "failed")), timeout=40)
    report = next(r for r in inbox_reports(n, "failed") if b"slow@remote.example" in r)
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


def test_delay_report_once_then_the_bounce(relay):
    """451 every time: past --delay-warning (2 s) the sender hears once that
    the mail is delayed and still queued, then at the lifetime that it failed."""
    n, sink = relay
    qid = send(n, ["slow@late.example"], "delayed")
    assert wait_until(lambda: any(b"slow@late.example" in r for r in inbox_reports(n, "failed")), timeout=40)
    delays = [r for r in inbox_reports(n, "delayed") if b"slow@late.example" in r]
    assert len(delays) == 1, "one delay report per recipient, not one per try"
    d = delays[0]
    assert b"Subject: Delayed Mail (still being retried)" in d
    assert b"Final-Recipient: rfc822; slow@late.example" in d and b"Status: 4.3.0" in d
    assert b"Will-Retry-Until: " in d and b"X-Mailnode-Queue-ID: %s" % qid.encode() in d
    assert b"Content-Type: text/rfc822-headers" in d and b"body of delayed" not in d, "headers only"
    assert sink.tries["slow@late.example"] >= 3


def mailbox_id(n, address):
    return n.sql("SELECT id FROM mailboxes WHERE address = '%s'" % address)[0][0]


def test_failing_local_delivery_backs_off_and_bounces(relay):
    """A mailbox directory that cannot take files (here: a plain file where
    it should be) defers local delivery with the remote backoff, warns once,
    and bounces at the queue lifetime instead of retrying forever."""
    n, sink = relay
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: broken@demo.test, tenant: demo}\n"
                "spec: {}\n")
    n.ctl("apply", "-f", f.name)
    os.unlink(f.name)
    where = os.path.join(n.state_dir, "mail", mailbox_id(n, "broken@demo.test"))
    if os.path.isdir(where):
        os.rmdir(where)
    with open(where, "w") as fh:
        fh.write("in the way\n")
    try:
        qid = send(n, ["broken@demo.test"], "local trouble")
        assert wait_until(lambda: any(b"broken@demo.test" in r for r in inbox_reports(n, "failed")),
                          timeout=40)
        report = next(r for r in inbox_reports(n, "failed") if b"broken@demo.test" in r)
        assert b"gave up after" in report and b"Not a directory" in report
        assert b"body of local trouble" in report
        assert len([r for r in inbox_reports(n, "delayed") if b"broken@demo.test" in r]) == 1
        assert n.sql("SELECT COUNT(*) FROM queue_messages WHERE qid = '%s'" % qid) == [["0"]]
    finally:
        os.unlink(where)


def test_local_delivery_adds_return_path(relay):
    """What IMAP and POP3 clients fetch starts with the envelope sender."""
    n, _ = relay
    with smtplib.SMTP("127.0.0.1", n.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        s.mail("carol@outside.example")
        assert s.rcpt("alice@demo.test")[0] == 250
        code, reply = s.data("Subject: with return path\r\n\r\nsee the top\r\n")
    qid = reply.split(b"queued as ")[1].strip().decode()
    assert wait_until(lambda: n.sql("SELECT COUNT(*) FROM queue_messages WHERE qid = '%s'" % qid) == [["0"]],
                      timeout=20)
    [[size, fname]] = n.sql("SELECT m.size, m.file FROM messages m WHERE m.queue_qid = '%s'" % qid)
    stored = open(os.path.join(n.state_dir, "mail", fname), "rb").read()
    assert stored.startswith(b"Return-Path: <carol@outside.example>\r\n")
    assert int(size) == len(stored), "size and quota count the stored file"
    assert os.listdir(os.path.join(n.state_dir, "spool", "local")) == [], "the copy left with the message"
    ctx = ssl.create_default_context(cafile=os.path.join(n.state_dir, "tls", "ca.pem"))
    m = imaplib.IMAP4_SSL("127.0.0.1", n.port(2993), ssl_context=ctx)
    try:
        m.login("alice@demo.test", PASSWORD)
        m.select("INBOX")
        typ, found = m.search(None, "SUBJECT", '"with return path"')
        assert typ == "OK" and found[0]
        num = found[0].split()[-1]
        typ, data = m.fetch(num, "(RFC822.SIZE BODY.PEEK[])")
        assert data[0][1] == stored
        assert b"RFC822.SIZE %d" % len(stored) in data[0][0]
        typ, data = m.fetch(num, "(BODY.PEEK[HEADER.FIELDS (RETURN-PATH)])")
        assert data[0][1] == b"Return-Path: <carol@outside.example>\r\n\r\n"
        # Served from the structure parsed at delivery: offsets of the stored file.
        typ, data = m.fetch(num, "(BODY.PEEK[TEXT])")
        assert data[0][1] == b"see the top\r\n"
    finally:
        m.logout()
    p = poplib.POP3_SSL("127.0.0.1", n.port(2995), context=ctx, timeout=30)
    try:
        p.user("alice@demo.test")
        p.pass_(PASSWORD)
        count, _ = p.stat()
        got = [b"\r\n".join(p.retr(i)[1]) + b"\r\n" for i in range(1, count + 1)]
        mine = [g for g in got if b"Subject: with return path" in g]
        assert mine and mine[0].startswith(b"Return-Path: <carol@outside.example>\r\n")
        assert mine[0] == stored
    finally:
        p.quit()


class BlackHole:
    """Accepts connections and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.open = 0
        self.most = 0
        self.total = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.open += 1
                self.total += 1
                self.most = max(self.most, self.open)
            threading.Thread(target=self.hold, args=(c,), daemon=True).start()

    def hold(self, c):
        try:
            while c.recv(4096):
                pass
        except OSError:
            pass
        with self.lock:
            self.open -= 1
        c.close()


@pytest.fixture(scope="module")
def holes(tmp_path_factory):
    """Two routed destinations: hole.example never answers, fine.example is
    a sink. Default retry delays (300 s) and timeouts (300 s)."""
    hole, sink = BlackHole(), Sink()
    state = str(tmp_path_factory.mktemp("holes") / "var")
    n = Node(state, free_offset(), extra=["--route", "hole.example=127.0.0.1:%d" % hole.port,
                                          "--route", "Fine.Example=127.0.0.1:%d" % sink.port,
                                          "--remote-workers", "4"]).start()
    n.ctl("apply", "-f", os.path.join(TOP, "docs", "examples", "demo.yaml"))
    yield n, hole, sink
    if n.proc.poll() is None:
        assert n.stop() == 0


def inbound(n, rcpts, subject):
    with smtplib.SMTP("127.0.0.1", n.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        s.mail("dave@outside.example")
        for r in rcpts:
            assert s.rcpt(r)[0] == 250
        code, reply = s.data("Subject: %s\r\n\r\n%s\r\n" % (subject, subject))
        assert code == 250
    return reply.split(b"queued as ")[1].strip().decode()


def test_black_hole_holds_only_its_own_workers(holes):
    n, hole, sink = holes
    # Relaying needs a login; a local forward to a remote address does not.
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: void@demo.test, tenant: demo}\n"
                "spec: {forwardTo: [x@hole.example], keepCopy: false}\n---\n"
                "apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: good@demo.test, tenant: demo}\n"
                "spec: {forwardTo: [ok@fine.example], keepCopy: false}\n")
    n.ctl("apply", "-f", f.name)
    os.unlink(f.name)
    stuck = [inbound(n, ["void@demo.test"], "into the hole %d" % i) for i in range(3)]
    assert wait_until(lambda: hole.open == 2, timeout=20), "two workers in the hole"
    good = inbound(n, ["good@demo.test"], "to the healthy destination")
    local = inbound(n, ["bob@demo.test"], "local while the hole holds on")
    assert wait_until(lambda: any("ok@fine.example" in r for _, r, _ in sink.received), timeout=20)
    assert wait_until(lambda: n.sql("SELECT COUNT(*) FROM queue_messages WHERE qid IN ('%s', '%s')"
                                    % (good, local)) == [["0"]], timeout=20)
    assert n.sql("SELECT COUNT(*) FROM messages WHERE queue_qid = '%s'" % local) == [["1"]]
    # Two connections per destination: the third message waits its turn.
    time.sleep(1)
    assert hole.most == 2 and hole.open == 2
    leased = n.sql("SELECT COUNT(*) FROM queue_recipients WHERE address = 'x@hole.example' "
                   "AND lease_owner <> '' AND state = 'queued'")
    assert leased == [["2"]]
    # Stopping the spool gives the hand-overs up at once, without losing them.
    t0 = time.time()
    n.ctl("service", "stop", "spool")
    assert time.time() - t0 < 30, "the stop waited for the black hole"
    assert wait_until(lambda: hole.open == 0, timeout=10)
    rows = n.sql("SELECT r.state, r.lease_owner, r.attempts FROM queue_recipients r JOIN queue_messages m "
                 "ON m.id = r.message_id WHERE m.qid IN ('%s')" % "', '".join(stuck))
    assert sorted(rows) == [["queued", "", "0"]] * 3, "still queued, released, not counted as a try"
    n.ctl("service", "start", "spool")
    assert wait_until(lambda: hole.open == 2, timeout=20), "taken up again after the start"


def test_queue_retry_tries_a_deferred_message_now(holes):
    n, hole, sink = holes
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: busy@demo.test, tenant: demo}\n"
                "spec: {forwardTo: [later@fine.example], keepCopy: false}\n")
    n.ctl("apply", "-f", f.name)
    os.unlink(f.name)
    qid = inbound(n, ["busy@demo.test"], "retry me")
    assert wait_until(lambda: sink.tries.get("later@fine.example", 0) == 1, timeout=20)
    assert wait_until(lambda: states(n, qid) == {"later@fine.example": "deferred"}, timeout=10)
    time.sleep(2)
    assert sink.tries["later@fine.example"] == 1, "the next try is 300 s away"
    n.ctl("queue", "retry", qid)
    assert wait_until(lambda: sink.tries["later@fine.example"] == 2, timeout=20), (
        sink.tries, n.sql("SELECT state, attempts, next_attempt, NOW(), lease_owner, lease_until, "
                          "last_error FROM queue_recipients"), n.log_text()[-3000:])


def test_stopping_the_node_does_not_wait_for_the_black_hole(holes):
    n, hole, sink = holes
    assert wait_until(lambda: hole.open == 2, timeout=20)
    t0 = time.time()
    assert n.stop(timeout=60) == 0
    assert time.time() - t0 < 30
    n.start()
    # Claims of the stopped node are released; nothing was lost.
    assert wait_until(lambda: hole.open == 2, timeout=20)
    assert n.sql("SELECT COUNT(*) FROM queue_recipients WHERE address = 'x@hole.example' "
                 "AND state = 'queued'") == [["3"]]


def test_success_reports_on_request(relay):
    """NOTIFY=SUCCESS: delivered into a local mailbox gives Action:
    delivered; handed to a server without DSN (the sink) gives relayed."""
    n, sink = relay
    ctx = ssl.create_default_context(cafile=os.path.join(n.state_dir, "tls", "ca.pem"))
    with smtplib.SMTP_SSL("localhost", n.port(2465), timeout=10, context=ctx) as s:
        s.login("alice@demo.test", PASSWORD)
        s.ehlo()
        assert s.has_extn("dsn")
        s.mail("alice@demo.test", ["RET=HDRS"])
        assert s.rcpt("bob@demo.test", ["NOTIFY=SUCCESS"])[0] == 250
        assert s.rcpt("told@remote.example", ["NOTIFY=SUCCESS,FAILURE"])[0] == 250
        assert s.rcpt("quiet@remote.example")[0] == 250
        code, _ = s.data("Subject: tell me\r\n\r\nbody of tell me\r\n")
        assert code == 250

    def one(action, who):
        got = [r for r in inbox_reports(n, action) if b"Final-Recipient: rfc822; " + who in r]
        return got[0] if len(got) == 1 else None
    assert wait_until(lambda: one("delivered", b"bob@demo.test"), timeout=20)
    assert wait_until(lambda: one("relayed", b"told@remote.example"), timeout=20)
    d, r = one("delivered", b"bob@demo.test"), one("relayed", b"told@remote.example")
    assert b"Subject: Successful Mail Delivery Report" in d and b"Status: 2.0.0" in d
    assert b"Subject: Relayed Mail Delivery Report" in r and b"Status: 2.0.0" in r
    assert b"quiet@remote.example" not in r and b"body of tell me" not in d
    assert not any(b"quiet@remote.example" in x for x in inbox_reports(n))
