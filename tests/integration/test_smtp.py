"""SMTP on the real node with real clients: inbound (smtp), submission with
STARTTLS and AUTH, smtps; recipient checks against the tenant directory; no
open relay; and durable acceptance (250 only once the body file and the
queue rows exist; a kill -9 loses nothing that got 250)."""
import base64
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest
import yaml

from conftest import TOP, Node, ScramClient, crypt_sha512, free_offset, wait_until

PASSWORD = "alice's long secret"


def apply_text(node, text):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        node.ctl("apply", "-f", f.name)
    finally:
        os.unlink(f.name)


@pytest.fixture(scope="module")
def mx(node):
    node.ctl("apply", "-f", os.path.join(TOP, "docs", "examples", "demo.yaml"))
    from conftest import MAILNODECTL
    r = subprocess.run([MAILNODECTL, "--state-dir", node.state_dir, "passwd", "alice@demo.test"],
                       input=PASSWORD + "\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    apply_text(node, """\
apiVersion: mailnode/v1
kind: Tenant
metadata: {name: other}
spec: {limits: {messageSize: 2KiB}}
---
apiVersion: mailnode/v1
kind: Domain
metadata: {name: other.test, tenant: other}
spec: {catchAll: owner@other.test, blockedSenders: ["*@spam.example", bad@ok.example]}
---
apiVersion: mailnode/v1
kind: Mailbox
metadata: {name: owner@other.test, tenant: other}
spec: {}
---
apiVersion: mailnode/v1
kind: Mailbox
metadata: {name: full@other.test, tenant: other}
spec: {quota: 1KiB}
---
apiVersion: mailnode/v1
kind: Mailbox
metadata: {name: away@other.test, tenant: other}
spec: {suspend: {incoming: true}}
---
apiVersion: mailnode/v1
kind: Domain
metadata: {name: alias.test, tenant: other}
spec: {aliasOf: other.test}
""")
    node.sql("UPDATE mailboxes SET used_bytes = 4096 WHERE address = 'full@other.test'")
    # The acceptance tests look at the queue: no delivery takes it away
    # meanwhile. The delivery tests at the end start the spool again.
    node.ctl("service", "stop", "spool")
    return node


def queued(node, qid):
    rows = node.sql("SELECT m.size, m.sender, r.address, COALESCE(r.mailbox_id, 0) FROM queue_messages m "
                    "JOIN queue_recipients r ON r.message_id = m.id WHERE m.qid = '%s' ORDER BY r.address" % qid)
    return rows


def spool_file(node, qid):
    with open(os.path.join(node.state_dir, "spool", "msg", qid), "rb") as f:
        return f.read()


def mailbox_id(node, address):
    return node.sql("SELECT id FROM mailboxes WHERE address = '%s'" % address)[0][0]


def qid_of(reply):
    assert b"queued as " in reply, reply
    return reply.split(b"queued as ")[1].split()[0].decode()


def test_ehlo_offers_the_extensions(mx):
    with smtplib.SMTP("127.0.0.1", mx.port(2525), timeout=10) as s:
        code, msg = s.ehlo("client.example")
        assert code == 250
        for ext in ("pipelining", "size", "8bitmime", "enhancedstatuscodes", "smtputf8", "chunking",
                    "dsn", "starttls"):
            assert s.has_extn(ext), ext
        assert not s.has_extn("auth"), "inbound MX must not offer AUTH"


def test_inbound_message_is_queued_durably(mx):
    body = "Subject: hi\r\n\r\nline one\r\n.starts with a dot\r\nlast\r\n"
    with smtplib.SMTP("127.0.0.1", mx.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        s.mail("sender@remote.example")
        s.rcpt("Alice@Demo.Test")
        code, reply = s.data(body)
    assert code == 250 and reply.startswith(b"2.0.0 Ok: queued as ")
    qid = qid_of(reply)
    # The 250 came after the row and the file were durable: both are there.
    rows = queued(mx, qid)
    assert rows == [[str(len(spool_file(mx, qid))), "sender@remote.example", "alice@demo.test",
                     mailbox_id(mx, "alice@demo.test")]]
    stored = spool_file(mx, qid)
    assert stored.startswith(b"Received: from client.example (127.0.0.1:")
    assert b"with ESMTP id S" in stored and b"for <alice@demo.test>" in stored
    # smtplib dot-stuffed ".starts"; the node unstuffed it: the body as sent.
    assert stored.endswith(body.encode())


def test_alias_and_catch_all_and_domain_alias_expand(mx):
    with smtplib.SMTP("127.0.0.1", mx.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        s.mail("x@remote.example")
        assert s.rcpt("team@demo.test")[0] == 250
        assert s.rcpt("whoever@other.test")[0] == 250      # catch-all
        assert s.rcpt("owner@alias.test")[0] == 250        # domain alias
        code, reply = s.data("Subject: t\r\n\r\nx\r\n")
    rows = queued(mx, qid_of(reply))
    owner = mailbox_id(mx, "owner@other.test")
    assert rows == [["%s" % rows[0][0], "x@remote.example", "alice@demo.test", mailbox_id(mx, "alice@demo.test")],
                    ["%s" % rows[0][0], "x@remote.example", "bob@demo.test", mailbox_id(mx, "bob@demo.test")],
                    ["%s" % rows[0][0], "x@remote.example", "owner@other.test", owner],
                    ["%s" % rows[0][0], "x@remote.example", "owner@other.test", owner]]


@pytest.mark.parametrize("rcpt,code,enhanced", [
    ("nobody@demo.test", 550, b"5.1.1"),
    ("full@other.test", 552, b"5.2.2"),
    ("away@other.test", 450, b"4.2.1"),
    ("someone@not-hosted.example", 554, b"5.7.1"),
])
def test_recipient_refusals(mx, rcpt, code, enhanced):
    with smtplib.SMTP("127.0.0.1", mx.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        s.mail("x@remote.example")
        c, msg = s.rcpt(rcpt)
        assert (c, msg[:5]) == (code, enhanced), msg


def test_blocked_senders_and_tenant_message_size(mx):
    with smtplib.SMTP("127.0.0.1", mx.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        s.mail("x@spam.example")
        c, msg = s.rcpt("owner@other.test")
        assert c == 550 and msg.startswith(b"5.7.1")
        s.rset()
        s.mail("bad@ok.example")
        assert s.rcpt("owner@other.test")[0] == 550
        s.rset()
        s.mail("x@remote.example", ["SIZE=5000"])
        c, msg = s.rcpt("owner@other.test")
        assert c == 552 and msg.startswith(b"5.3.4")
        s.rset()
        s.mail("x@remote.example")
        assert s.rcpt("owner@other.test")[0] == 250
        c, msg = s.data("Subject: big\r\n\r\n" + "x" * 3000 + "\r\n")
        assert c == 552 and msg.startswith(b"5.3.4")
        s.mail("x@remote.example", ["SIZE=100000000"])
    # The node-wide limit is refused at MAIL already.


def test_size_over_the_node_maximum(mx):
    with smtplib.SMTP("127.0.0.1", mx.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        c, msg = s.mail("x@remote.example", ["SIZE=999999999999"])
        assert c == 552 and msg.startswith(b"5.3.4")


RELAY_TRICKS = [
    "victim@evil.example",
    "victim%evil.example@demo.test",
    "\"victim@evil.example\"@demo.test",
    "@demo.test:victim@evil.example",
    "victim!evil.example@demo.test",
    "evil.example!victim@demo.test",
    "victim@[192.0.2.1]",
    "victim@[127.0.0.1]",
    "victim@[IPv6:::1]",
    "victim@evil.example@demo.test",
    "victim@demo.test@evil.example",
    "victim@demo.test.evil.example",
    "victim@evil.example.",
    "victim@demo.test%evil.example",
    "victim@demo.test:25",
    "victim%evil.example",
    "<victim@evil.example>",
    "victim@evil.example (demo.test)",
    "\"victim%evil.example\"@demo.test",
    "victim@localhost",
    "postmaster@evil.example",
]


@pytest.mark.parametrize("trick", RELAY_TRICKS)
def test_no_open_relay(mx, trick):
    before = mx.sql("SELECT COUNT(*) FROM queue_messages")
    s = socket.create_connection(("127.0.0.1", mx.port(2525)), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220")
    s.sendall(b"EHLO relay.example\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    s.sendall(b"MAIL FROM:<spammer@evil.example>\r\n")
    assert f.readline().startswith(b"250")
    s.sendall(b"RCPT TO:<" + trick.encode() + b">\r\n")
    answer = f.readline()
    assert answer[:1] in (b"5",), "relay trick %r got %r" % (trick, answer)
    s.sendall(b"DATA\r\n")
    assert f.readline()[:1] in (b"5", b"4")
    s.sendall(b"QUIT\r\n")
    s.close()
    assert mx.sql("SELECT COUNT(*) FROM queue_messages") == before


def test_pipelined_commands_answer_in_order(mx):
    s = socket.create_connection(("127.0.0.1", mx.port(2525)), timeout=10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"EHLO p.example\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<nobody@demo.test>\r\n"
              b"RCPT TO:<bob@demo.test>\r\nDATA\r\n")
    lines = []
    while True:
        line = f.readline()
        lines.append(line)
        if line.startswith(b"354"):
            break
    codes = [l[:4] for l in lines if l[3:4] == b" "]
    assert codes == [b"250 ", b"250 ", b"550 ", b"250 ", b"354 "]
    s.sendall(b"Subject: p\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    assert f.readline().startswith(b"250 2.0.0 Ok: queued as")
    assert f.readline().startswith(b"221")
    s.close()


def test_bdat_chunks(mx):
    s = socket.create_connection(("127.0.0.1", mx.port(2525)), timeout=10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"EHLO c.example\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    s.sendall(b"MAIL FROM:<a@remote.example> BODY=8BITMIME\r\nRCPT TO:<bob@demo.test>\r\n")
    assert f.readline().startswith(b"250") and f.readline().startswith(b"250")
    s.sendall(b"BDAT 12\r\nSubject: b\r\n")
    assert f.readline().startswith(b"250 2.0.0")
    s.sendall(b"BDAT 9 LAST\r\n\r\nhello\r\n")
    reply = f.readline()
    qid = qid_of(reply)
    assert spool_file(mx, qid).endswith(b"Subject: b\r\n\r\nhello\r\n")
    s.close()


def test_utf8_recipients_need_smtputf8(mx):
    s = socket.create_connection(("127.0.0.1", mx.port(2525)), timeout=10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"EHLO u.example\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    s.sendall(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<j\xc3\xb6rg@demo.test>\r\n")
    assert f.readline().startswith(b"250")
    assert f.readline().startswith(b"553 5.6.7")
    s.sendall(b"RSET\r\nMAIL FROM:<a@remote.example> SMTPUTF8\r\nRCPT TO:<j\xc3\xb6rg@demo.test>\r\n")
    assert f.readline().startswith(b"250") and f.readline().startswith(b"250")
    assert f.readline().startswith(b"550 5.1.1"), "a UTF-8 address is looked up like any other"
    s.close()


def test_syntax_errors_and_limits(mx):
    s = socket.create_connection(("127.0.0.1", mx.port(2525)), timeout=10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"MAIL FROM:<a@b.example>\r\n")
    assert f.readline().startswith(b"503 5.5.1")
    s.sendall(b"FOO\r\n")
    assert f.readline().startswith(b"500 5.5.2")
    s.sendall(b"EHLO x\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    s.sendall(b"MAIL FROM:<a@b.example> FROB=1\r\n")
    assert f.readline().startswith(b"555 5.5.4")
    s.sendall(b"RCPT TO:<x@demo.test>\r\n")
    assert f.readline().startswith(b"503 5.5.1")
    s.sendall(b"NOOP " + b"x" * 2000 + b"\r\n")
    assert f.readline().startswith(b"500 5.5.6")
    s.sendall(b"AUTH PLAIN AGFAYgBj\r\n")
    assert f.readline().startswith(b"502 5.5.1")
    s.sendall(b"QUIT\r\n")
    assert f.readline().startswith(b"221")
    s.close()


def tls_context(node):
    return ssl.create_default_context(cafile=os.path.join(node.state_dir, "tls", "ca.pem"))


def test_submission_requires_tls_then_auth(mx):
    with smtplib.SMTP("localhost", mx.port(2587), timeout=10) as s:
        s.ehlo("laptop.example")
        assert not s.has_extn("auth")
        code, msg = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice@demo.test\0" + PASSWORD.encode()).decode())
        assert code == 538 and msg.startswith(b"5.7.11")
        c, msg = s.mail("alice@demo.test")
        assert c == 530 and msg.startswith(b"5.7.0")
        s.starttls(context=tls_context(mx))
        s.ehlo("laptop.example")
        assert "PLAIN" in s.esmtp_features["auth"].upper()
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login("alice@demo.test", "wrong password!")
        assert e.value.smtp_code == 535
        s.login("alice@demo.test", PASSWORD)
        c, msg = s.mail("bob@demo.test")
        assert c == 553 and msg.startswith(b"5.7.1"), "may not send as another mailbox"
        s.rset()
        s.mail("alice@demo.test")
        assert s.rcpt("friend@remote.example")[0] == 250, "authenticated users relay"
        c, reply = s.data("Subject: out\r\n\r\nhello\r\n")
    assert c == 250
    rows = queued(mx, qid_of(reply))
    assert rows[0][2:] == ["friend@remote.example", "0"]
    assert b"with ESMTPSA" in spool_file(mx, qid_of(reply))


def test_smtps_implicit_tls_with_auth_login(mx):
    with smtplib.SMTP_SSL("localhost", mx.port(2465), timeout=10, context=tls_context(mx)) as s:
        s.ehlo("laptop.example")
        s.login("alice@demo.test", PASSWORD)   # smtplib picks a mechanism; force LOGIN below
    with smtplib.SMTP_SSL("localhost", mx.port(2465), timeout=10, context=tls_context(mx)) as s:
        s.ehlo("laptop.example")
        s.user, s.password = "alice@demo.test", PASSWORD
        code, msg = s.auth("LOGIN", s.auth_login)
        assert code == 235
        s.mail("team@demo.test")                 # an alias that delivers to alice
        assert s.rcpt("bob@demo.test")[0] == 250
        assert s.data("Subject: s\r\n\r\nx\r\n")[0] == 250


def scram_auth(s, user, password, tamper=False):
    """SCRAM-SHA-256 over smtplib's docmd: returns the final reply code and
    whether the server's signature checked out."""
    c = ScramClient(user, password, tamper)
    code, msg = s.docmd("AUTH", "SCRAM-SHA-256 " + base64.b64encode(c.first()).decode())
    if code != 334:
        return code, False
    code, msg = s.docmd(base64.b64encode(c.final(base64.b64decode(msg))).decode())
    if code != 334:
        return code, False
    verified = c.check(base64.b64decode(msg))
    code, msg = s.docmd("")
    return code, verified


def test_submission_auth_scram_sha256(mx):
    with smtplib.SMTP("localhost", mx.port(2587), timeout=30) as s:
        s.ehlo("laptop.example")
        s.starttls(context=tls_context(mx))
        s.ehlo("laptop.example")
        assert "SCRAM-SHA-256" in s.esmtp_features["auth"].upper()
        # A wrong proof and an unknown user get the same answer as a bad password.
        assert scram_auth(s, "alice@demo.test", PASSWORD, tamper=True)[0] == 535
        assert scram_auth(s, "nobody@demo.test", PASSWORD)[0] == 535
        code, verified = scram_auth(s, "alice@demo.test", PASSWORD)
        assert code == 235 and verified, "the server proved it knows alice's keys too"
        s.mail("alice@demo.test")
        assert s.rcpt("bob@demo.test")[0] == 250
    # A hash migrated from elsewhere has no SCRAM keys: PLAIN still works.
    apply_text(mx, "apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: migrated@other.test, "
                   "tenant: other}\nspec: {passwordHash: '%s'}\n" % crypt_sha512("migrated pw 1"))
    assert mx.sql("SELECT scram_sha256 IS NULL FROM mailboxes WHERE address = 'migrated@other.test'") == [["1"]]
    assert mx.sql("SELECT scram_sha256 LIKE '{SCRAM-SHA-256}4096,%' FROM mailboxes "
                  "WHERE address = 'alice@demo.test'") == [["1"]]
    with smtplib.SMTP("localhost", mx.port(2587), timeout=30) as s:
        s.ehlo("laptop.example")
        s.starttls(context=tls_context(mx))
        s.ehlo("laptop.example")
        assert scram_auth(s, "migrated@other.test", "migrated pw 1")[0] == 535
        s.login("migrated@other.test", "migrated pw 1")


def test_kill9_loses_no_accepted_message(fresh_state):
    """Many senders; kill -9 in the middle; after restart every 250 has its
    queue rows and body file, and nothing unacknowledged is left behind."""
    n = Node(fresh_state, free_offset()).start()
    n.ctl("apply", "-f", os.path.join(TOP, "docs", "examples", "demo.yaml"))
    accepted, lock, stop = [], threading.Lock(), threading.Event()

    def sender(k):
        i = 0
        while not stop.is_set() and i < 200:
            i += 1
            try:
                with smtplib.SMTP("127.0.0.1", n.port(2525), timeout=10) as s:
                    s.ehlo("c%d.example" % k)
                    s.mail("s%d@remote.example" % k)
                    s.rcpt("bob@demo.test")
                    code, reply = s.data("Subject: %d-%d\r\n\r\n%s\r\n" % (k, i, "y" * 2000))
                    if code == 250:
                        with lock:
                            accepted.append(qid_of(reply))
            except (OSError, smtplib.SMTPException):
                return
    threads = [threading.Thread(target=sender, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(accepted) >= 40, timeout=60)
    n.proc.send_signal(signal.SIGKILL)
    n.proc.wait()
    n.log.close()
    stop.set()
    for t in threads:
        t.join()
    assert wait_until(lambda: n.mariadb_pids() == [], timeout=60)
    n.start()
    # Recovery found every queued row with its body: no row lost its file.
    assert "has no file" not in n.log_text()
    # Delivery resumes at once, so wait for the queue to drain and then
    # check the end state: every 250 delivered exactly once, intact, and
    # nothing left in the spool (unacknowledged bodies were removed).
    assert wait_until(lambda: n.sql("SELECT COUNT(*) FROM queue_messages") == [["0"]], timeout=60)
    delivered = {}
    for qid, f in n.sql("SELECT queue_qid, file FROM messages"):
        delivered.setdefault(qid, []).append(f)
    missing = [q for q in accepted if q not in delivered]
    assert missing == [], "accepted but lost: %s" % missing
    assert all(len(v) == 1 for v in delivered.values()), "delivered twice"
    assert os.listdir(os.path.join(fresh_state, "spool", "msg")) == []
    assert os.listdir(os.path.join(fresh_state, "spool", "tmp")) == []
    for q in accepted:
        with open(os.path.join(fresh_state, "mail", delivered[q][0]), "rb") as f:
            assert f.read().endswith(b"y" * 2000 + b"\r\n")
    assert n.stop() == 0


def test_queue_operations_and_status(mx):
    with smtplib.SMTP("127.0.0.1", mx.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        s.mail("ops@remote.example")
        s.rcpt("bob@demo.test")
        qid = qid_of(s.data("Subject: ops\r\n\r\nq\r\n")[1])
        s.mail("ops@remote.example")
        s.rcpt("bob@demo.test")
        doomed = qid_of(s.data("Subject: gone\r\n\r\nq\r\n")[1])
    listing = mx.ctl_yaml("queue")[0]["items"]
    assert {qid, doomed} <= {m["id"] for m in listing}
    assert qid in mx.ctl("queue").stdout
    shown = mx.ctl_yaml("queue", "show", qid)[0]["message"]
    assert shown["sender"] == "ops@remote.example" and shown["held"] is False
    assert shown["recipients"] == [{"address": "bob@demo.test", "delivery": "local", "state": "queued",
                                    "attempts": 0, "nextAttempt": shown["recipients"][0]["nextAttempt"]}]
    assert mx.ctl_yaml("queue", "hold", qid)[0]["message"]["held"] is True
    assert wait_until(lambda: mx.ctl_yaml("status")[0]["node"].get("queue", {}).get("depth", 0) >= 2,
                      timeout=10)
    r = mx.ctl("queue", "delete", doomed)
    assert "deleted " + doomed in r.stdout
    assert not os.path.exists(os.path.join(mx.state_dir, "spool", "msg", doomed))
    assert mx.ctl("queue", "show", doomed, check=False).returncode == 1
    assert mx.ctl("queue", "show", "not-a-queue-id", check=False).returncode == 1
    # Held mail is not delivered when the spool runs; released, it is.
    mx.ctl("service", "start", "spool")
    time.sleep(1.5)
    assert mx.sql("SELECT COUNT(*) FROM queue_messages WHERE qid = '%s'" % qid) == [["1"]]
    mx.ctl("queue", "release", qid)
    assert wait_until(lambda: mx.sql("SELECT COUNT(*) FROM messages WHERE queue_qid = '%s'" % qid) == [["1"]],
                      timeout=20)
    mx.ctl("service", "stop", "spool")


def test_local_delivery_into_inbox_exactly_once(mx):
    """From RCPT to the INBOX: the spool delivers local recipients once each
    (an address given twice through an alias counts once), links the body
    into the mail root, allocates UIDs and accounts the quota."""
    mx.ctl("service", "start", "spool")
    bob = mailbox_id(mx, "bob@demo.test")
    before = int(mx.sql("SELECT messages FROM mailboxes WHERE id = %s" % bob)[0][0])
    with smtplib.SMTP("127.0.0.1", mx.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        s.mail("deliver@remote.example")
        s.rcpt("bob@demo.test")
        s.rcpt("team@demo.test")           # alice and bob again
        code, reply = s.data("Subject: to the inbox\r\n\r\nhello bob\r\n")
    qid = qid_of(reply)
    assert wait_until(lambda: mx.sql("SELECT COUNT(*) FROM queue_messages WHERE qid = '%s'" % qid) == [["0"]],
                      timeout=20), "still queued: %s" % mx.sql("SELECT state, last_error FROM queue_recipients")
    rows = mx.sql("SELECT f.name, x.address, m.uid, m.size, m.return_path, m.file FROM messages m "
                  "JOIN folders f ON f.id = m.folder_id JOIN mailboxes x ON x.id = f.mailbox_id "
                  "WHERE m.queue_qid = '%s' ORDER BY x.address" % qid)
    assert [(r[0], r[1], r[4]) for r in rows] == [("INBOX", "alice@demo.test", "deliver@remote.example"),
                                                   ("INBOX", "bob@demo.test", "deliver@remote.example")]
    for r in rows:
        with open(os.path.join(mx.state_dir, "mail", r[5]), "rb") as f:
            body = f.read()
        assert body.endswith(b"hello bob\r\n") and int(r[3]) == len(body)
    assert not os.path.exists(os.path.join(mx.state_dir, "spool", "msg", qid)), "retired from the spool"
    assert int(mx.sql("SELECT messages FROM mailboxes WHERE id = %s" % bob)[0][0]) == before + 1
    # New mailboxes come with their special-use folders.
    folders = mx.sql("SELECT name, special_use FROM folders WHERE mailbox_id = %s ORDER BY name" % bob)
    assert folders == [["Archive", "\\Archive"], ["Drafts", "\\Drafts"], ["INBOX", ""],
                       ["Junk", "\\Junk"], ["Sent", "\\Sent"], ["Trash", "\\Trash"]]


def test_stopping_the_spool_keeps_mail_queued(mx):
    mx.ctl("service", "stop", "spool")
    try:
        with smtplib.SMTP("127.0.0.1", mx.port(2525), timeout=10) as s:
            s.ehlo("client.example")
            s.mail("held@remote.example")
            s.rcpt("alice@demo.test")
            code, reply = s.data("Subject: wait\r\n\r\nlater\r\n")
        qid = qid_of(reply)
        time.sleep(1.5)
        assert mx.sql("SELECT r.state FROM queue_recipients r JOIN queue_messages m ON m.id = r.message_id "
                      "WHERE m.qid = '%s'" % qid) == [["queued"]]
    finally:
        mx.ctl("service", "start", "spool")
    assert wait_until(lambda: mx.sql("SELECT COUNT(*) FROM queue_messages WHERE qid = '%s'" % qid) == [["0"]],
                      timeout=20)
    assert mx.sql("SELECT COUNT(*) FROM messages WHERE queue_qid = '%s'" % qid) == [["1"]]
