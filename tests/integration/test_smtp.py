"""SMTP on the real node with real clients: inbound (smtp), submission with
STARTTLS and AUTH, smtps; recipient checks against the tenant directory; no
open relay; and durable acceptance (250 only once the body file and the
queue rows exist; a kill -9 loses nothing that got 250)."""
import base64
import imaplib
import os
import re
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

from conftest import MAILNODECTL, TOP, Node, ScramClient, crypt_sha512, free_offset, wait_until

PASSWORD = "alice's long secret"


def ehlo_session(node, helo):
    """A raw SMTP session on the MX port, greeted and past EHLO."""
    s = socket.create_connection(("127.0.0.1", node.port(2525)), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220")
    s.sendall(b"EHLO %s\r\n" % helo.encode())
    while not f.readline().startswith(b"250 "):
        pass
    return s, f


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
    s, f = ehlo_session(mx, "relay.example")
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
    s, f = ehlo_session(mx, "c.example")
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
    s, f = ehlo_session(mx, "u.example")
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


LIMITS_PASSWORD = "pw-" + base64.b32encode(os.urandom(10)).decode()


@pytest.fixture(scope="module")
def limits(mx):
    """Tenants whose limits and states the session enforces: a send rate,
    a sender-side message size, suspended outgoing and incoming, storage,
    and aliases that loop or lead to mailboxes that cannot take mail."""
    docs = []

    def doc(kind, name, spec, tenant=None):
        meta = {"name": name}
        if tenant:
            meta["tenant"] = tenant
        docs.append({"apiVersion": "mailnode/v1", "kind": kind, "metadata": meta, "spec": spec})
    for t, spec in [("rated", {"limits": {"sendRate": "3/m"}}), ("small", {"limits": {"messageSize": "2KiB"}}),
                    ("quiet", {"suspend": {"outgoing": True}}), ("frozen", {"state": "suspended"}),
                    ("paused", {"suspend": {"incoming": True}}), ("store", {"limits": {"storage": "10KiB"}}),
                    ("loops", {})]:
        doc("Tenant", t, spec)
        doc("Domain", t + ".test", {}, t)
        doc("Mailbox", "u@%s.test" % t, {"password": LIMITS_PASSWORD}, t)
    doc("Mailbox", "mute@store.test", {"password": LIMITS_PASSWORD, "suspend": {"outgoing": True}}, "store")
    doc("Mailbox", "q@store.test", {"quota": "5KiB"}, "store")
    doc("Alias", "tofull@other.test", {"to": ["full@other.test"]}, "other")
    doc("Alias", "toaway@other.test", {"to": ["owner@other.test", "away@other.test"]}, "other")
    doc("Mailbox", "fwdfull@other.test", {"forwardTo": ["full@other.test"]}, "other")
    doc("Alias", "a1@loops.test", {"to": ["a2@loops.test"]}, "loops")
    doc("Alias", "a2@loops.test", {"to": ["a1@loops.test"]}, "loops")
    doc("Alias", "c1@loops.test", {"to": ["c2@loops.test", "team@demo.test"]}, "loops")
    doc("Alias", "c2@loops.test", {"to": ["u@loops.test", "c1@loops.test", "owner@alias.test"]}, "loops")
    for i in range(10):
        doc("Alias", "d%d@loops.test" % i, {"to": ["d%d@loops.test" % (i + 1) if i < 9 else "u@loops.test"]},
            "loops")
    apply_text(mx, yaml.safe_dump_all(docs))
    # u@store.test holds 8 KiB of the tenant's 10, q@store.test 1000 bytes of its 5 KiB.
    mx.sql("UPDATE mailboxes SET used_bytes = 8192 WHERE address = 'u@store.test'")
    mx.sql("UPDATE mailboxes SET used_bytes = 1000 WHERE address = 'q@store.test'")
    return mx


def submit_session(node, login, password=LIMITS_PASSWORD):
    s = smtplib.SMTP("localhost", node.port(2587), timeout=30)
    s.ehlo("laptop.example")
    s.starttls(context=tls_context(node))
    s.ehlo("laptop.example")
    s.login(login, password)
    return s


def tenant_counters(node, name):
    return {t["name"]: t for t in node.ctl_yaml("stats", "tenants")[0]["items"]}.get(name, {})


def test_send_rate_of_the_tenant(limits):
    """sendRate 3/m: three messages pass, the fourth in the minute gets a
    temporary refusal (at MAIL, or at the end of DATA when another session
    used the last place meanwhile); other tenants are unaffected."""
    before = tenant_counters(limits, "rated").get("sendRateRefusals", 0)
    with submit_session(limits, "u@rated.test") as s:
        for i in range(2):
            s.mail("u@rated.test")
            assert s.rcpt("friend@remote.example")[0] == 250
            assert s.data("Subject: %d\r\n\r\nx\r\n" % i)[0] == 250
        # Two sessions both pass MAIL with one place left; the first to end
        # its data takes it.
        with submit_session(limits, "u@rated.test") as late:
            assert late.mail("u@rated.test")[0] == 250
            assert late.rcpt("friend@remote.example")[0] == 250
            s.mail("u@rated.test")
            assert s.rcpt("friend@remote.example")[0] == 250
            assert s.data("Subject: 3\r\n\r\nx\r\n")[0] == 250
            code, msg = late.data("Subject: late\r\n\r\nx\r\n")
            assert code == 450 and msg.startswith(b"4.7.0 Sending rate exceeded"), msg
        code, msg = s.mail("u@rated.test")
        assert code == 450 and msg.startswith(b"4.7.0") and b"3 messages per minute" in msg, msg
    assert tenant_counters(limits, "rated")["sendRateRefusals"] == before + 2
    # Another tenant's users still send; inbound mail to the tenant still arrives.
    with submit_session(limits, "u@small.test") as s:
        assert s.mail("u@small.test")[0] == 250
        assert s.rcpt("friend@remote.example")[0] == 250
        assert s.data("Subject: other\r\n\r\nx\r\n")[0] == 250
    with smtplib.SMTP("127.0.0.1", limits.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        s.mail("x@remote.example")
        assert s.rcpt("u@rated.test")[0] == 250
        assert s.data("Subject: in\r\n\r\nx\r\n")[0] == 250


def test_sender_tenant_message_size_on_submission(limits):
    """A 2 KiB tenant cannot send more to remote recipients, declared or not."""
    with submit_session(limits, "u@small.test") as s:
        code, msg = s.mail("u@small.test", ["SIZE=5000"])
        assert code == 552 and msg.startswith(b"5.3.4") and b"your domain's limit" in msg, msg
        assert s.mail("u@small.test")[0] == 250
        assert s.rcpt("friend@remote.example")[0] == 250
        code, msg = s.data("Subject: big\r\n\r\n" + "x" * 3000 + "\r\n")
        assert code == 552 and msg.startswith(b"5.3.4"), msg
        assert s.mail("u@small.test", ["SIZE=1000"])[0] == 250
        assert s.rcpt("friend@remote.example")[0] == 250
        assert s.data("Subject: small\r\n\r\nfits\r\n")[0] == 250
    # A tenant without the limit sends the same 3000 bytes.
    with submit_session(limits, "u@loops.test") as s:
        assert s.mail("u@loops.test", ["SIZE=5000"])[0] == 250
        assert s.rcpt("friend@remote.example")[0] == 250
        assert s.data("Subject: big\r\n\r\n" + "x" * 3000 + "\r\n")[0] == 250


@pytest.mark.parametrize("login", ["u@quiet.test", "mute@store.test"])
def test_outgoing_suspension(limits, login):
    """suspend.outgoing (the tenant's or the mailbox's): the login works,
    sending does not; mail to the address still comes in."""
    with submit_session(limits, login) as s:
        code, msg = s.mail(login)
        assert code == 553 and msg.startswith(b"5.7.1") and b"sending is suspended" in msg, msg
    with smtplib.SMTP("127.0.0.1", limits.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        s.mail("x@remote.example")
        assert s.rcpt(login)[0] == 250


def test_suspended_tenant_refuses_incoming_with_a_clear_reason(limits):
    with smtplib.SMTP("127.0.0.1", limits.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        s.mail("x@remote.example")
        code, msg = s.rcpt("u@frozen.test")
        assert code == 550 and msg.startswith(b"5.2.1") and b"domain is suspended" in msg, msg
        code, msg = s.rcpt("u@paused.test")
        assert code == 450 and msg.startswith(b"4.2.1") and b"domain is temporarily" in msg, msg
        # A mailbox of its own still says mailbox.
        code, msg = s.rcpt("away@other.test")
        assert code == 450 and msg.startswith(b"4.2.1 <away@other.test>: Mailbox"), msg
    # A suspended tenant's users cannot log in either.
    with smtplib.SMTP("localhost", limits.port(2587), timeout=30) as s:
        s.ehlo("laptop.example")
        s.starttls(context=tls_context(limits))
        s.ehlo("laptop.example")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login("u@frozen.test", LIMITS_PASSWORD)


def received_headers(n):
    return "".join("Received: from hop%d.example by hop%d.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                   % (i, i + 1) for i in range(n))


def test_received_hop_limit(limits):
    """More than 50 Received: fields is a loop: 554 5.4.6, by DATA or BDAT;
    50 pass, and a Received: line in the body does not count."""
    with smtplib.SMTP("127.0.0.1", limits.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        s.mail("x@remote.example")
        s.rcpt("bob@demo.test")
        code, msg = s.data(received_headers(51) + "Subject: loop\r\n\r\nx\r\n")
        assert code == 554 and msg.startswith(b"5.4.6"), msg
        s.mail("x@remote.example")
        s.rcpt("bob@demo.test")
        code, reply = s.data(received_headers(50) + "Subject: ok\r\n\r\n" + received_headers(10))
        assert code == 250
    assert spool_file(limits, qid_of(reply)).count(b"\nReceived: ") == 60
    body = (received_headers(51) + "Subject: loop\r\n\r\nx\r\n").encode()
    s, f = ehlo_session(limits, "c.example")
    s.sendall(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@demo.test>\r\n")
    assert f.readline().startswith(b"250") and f.readline().startswith(b"250")
    # Cut in the middle of a field name: still counted.
    cut = body.index(b"Received", 2000) + 4
    s.sendall(b"BDAT %d\r\n" % cut + body[:cut])
    assert f.readline().startswith(b"250 2.0.0")
    s.sendall(b"BDAT %d LAST\r\n" % (len(body) - cut) + body[cut:])
    assert f.readline().startswith(b"554 5.4.6")
    s.close()


def test_local_aliases_expand_recursively_and_loops_end(limits):
    with smtplib.SMTP("127.0.0.1", limits.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        s.mail("x@remote.example")
        code, msg = s.rcpt("a1@loops.test")
        assert code == 554 and msg.startswith(b"5.4.6"), msg
        code, msg = s.rcpt("d0@loops.test")
        assert code == 554 and msg.startswith(b"5.4.6"), "ten levels of aliases are too deep"
        assert s.rcpt("d3@loops.test")[0] == 250, "seven levels are fine"
        s.rset()
        s.mail("x@remote.example")
        # c1 -> c2 -> (u, c1 again, owner@alias.test), team -> (alice, bob):
        # every target local, each once, nothing sent out.
        assert s.rcpt("c1@loops.test")[0] == 250
        code, reply = s.data("Subject: aliases\r\n\r\nx\r\n")
    rows = queued(limits, qid_of(reply))
    assert [(r[2], r[3]) for r in rows] == [
        ("alice@demo.test", mailbox_id(limits, "alice@demo.test")),
        ("bob@demo.test", mailbox_id(limits, "bob@demo.test")),
        ("owner@other.test", mailbox_id(limits, "owner@other.test")),
        ("u@loops.test", mailbox_id(limits, "u@loops.test"))]


def test_quota_with_declared_size_tenant_storage_and_alias_targets(limits):
    with smtplib.SMTP("127.0.0.1", limits.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        # q@store.test: 1000 of 5 KiB used.
        s.mail("x@remote.example", ["SIZE=1000"])
        assert s.rcpt("q@store.test")[0] == 250
        s.rset()
        s.mail("x@remote.example", ["SIZE=4500"])
        code, msg = s.rcpt("q@store.test")
        assert (code, msg) == (552, b"5.2.2 <q@store.test>: Mailbox full"), msg
        s.rset()
        # The tenant: 9192 of 10 KiB used across its mailboxes.
        s.mail("x@remote.example")
        assert s.rcpt("u@store.test")[0] == 250
        s.rset()
        s.mail("x@remote.example", ["SIZE=2000"])
        code, msg = s.rcpt("u@store.test")
        assert code == 552 and msg.startswith(b"5.2.2") and b"domain's storage" in msg, msg
        s.rset()
        # Aliases and forwards do not hide a full or paused mailbox.
        s.mail("x@remote.example")
        code, msg = s.rcpt("tofull@other.test")
        assert code == 552 and msg.startswith(b"5.2.2"), msg
        code, msg = s.rcpt("fwdfull@other.test")
        assert code == 552 and msg.startswith(b"5.2.2"), msg
        code, msg = s.rcpt("toaway@other.test")
        assert code == 450 and msg.startswith(b"4.2.1"), msg
    mx = limits
    mx.sql("UPDATE mailboxes SET used_bytes = 0 WHERE address = 'u@store.test'")
    with smtplib.SMTP("127.0.0.1", mx.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        s.mail("x@remote.example", ["SIZE=2000"])
        assert s.rcpt("u@store.test")[0] == 250


def test_recipient_limit(limits):
    """1000 recipients per message; the next gets 452 4.5.3 and the
    message goes to the 1000."""
    s = socket.create_connection(("127.0.0.1", limits.port(2525)), timeout=60)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"EHLO c.example\r\nMAIL FROM:<a@remote.example>\r\n" + b"RCPT TO:<bob@demo.test>\r\n" * 1001)
    while not f.readline().startswith(b"250 "):
        pass
    assert f.readline().startswith(b"250")
    answers = [f.readline() for _ in range(1001)]
    assert all(a.startswith(b"250 2.1.5") for a in answers[:1000])
    assert answers[1000].startswith(b"452 4.5.3"), answers[1000]
    s.sendall(b"DATA\r\n")
    assert f.readline().startswith(b"354")
    s.sendall(b"Subject: many\r\n\r\nx\r\n.\r\n")
    qid = qid_of(f.readline())
    s.close()
    assert limits.sql("SELECT COUNT(*) FROM queue_recipients r JOIN queue_messages m ON m.id = r.message_id "
                      "WHERE m.qid = '%s'" % qid) == [["1000"]]


def test_twenty_errors_end_the_session(limits):
    s = socket.create_connection(("127.0.0.1", limits.port(2525)), timeout=10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"MAIL FROM:<broken\r\n" * 19)
    for _ in range(19):
        assert f.readline()[:1] == b"5"
    s.sendall(b"NOOP\r\n")
    assert f.readline().startswith(b"250"), "19 errors are not yet too many"
    s.sendall(b"MAIL FROM:<broken\r\n")
    assert f.readline()[:1] == b"5"
    assert f.readline().startswith(b"421 4.7.0")
    assert f.readline() == b"", "the node hung up"
    s.close()


def test_kill9_loses_no_accepted_message(fresh_state):
    """Many senders; kill -9 in the middle; after restart every 250 has its
    queue rows and body file, and nothing unacknowledged is left behind."""
    n = Node(fresh_state, free_offset()).start()
    n.ctl("apply", "-f", os.path.join(TOP, "docs", "examples", "demo.yaml"))
    accepted, lock, stop = [], threading.Lock(), threading.Event()
    last_sent = {}      # sender -> the subject of its last DATA started

    def sender(k):
        i = 0
        while not stop.is_set() and i < 200:
            i += 1
            try:
                with smtplib.SMTP("127.0.0.1", n.port(2525), timeout=10) as s:
                    s.ehlo("c%d.example" % k)
                    s.mail("s%d@remote.example" % k)
                    s.rcpt("bob@demo.test")
                    last_sent[k] = "%d-%d" % (k, i)
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
    local = os.path.join(fresh_state, "spool", "local")
    assert not os.path.isdir(local) or os.listdir(local) == []
    for q in accepted:
        with open(os.path.join(fresh_state, "mail", delivered[q][0]), "rb") as f:
            assert f.read().endswith(b"y" * 2000 + b"\r\n")
    # Mail delivered without its 250 reaching the client can only be a
    # sender's last message, whose DATA was in flight at the kill: nothing
    # refused or never sent shows up.
    for q in set(delivered) - set(accepted):
        with open(os.path.join(fresh_state, "mail", delivered[q][0]), "rb") as f:
            m = re.search(rb"^Subject: (\d+-\d+)\r$", f.read(), re.M)
        assert m and m.group(1).decode() in last_sent.values(), (q, m)
    # No mailbox damaged: the counters match the rows, UIDs are below
    # uidnext and unique, every row has its file, and IMAP reads them.
    for mbox, count, used, rows, size in n.sql(
            "SELECT x.id, x.messages, x.used_bytes, COUNT(m.id), COALESCE(SUM(m.size), 0) "
            "FROM mailboxes x JOIN folders f ON f.mailbox_id = x.id "
            "LEFT JOIN messages m ON m.folder_id = f.id GROUP BY x.id"):
        assert (count, used) == (rows, size), "mailbox %s: counters %s/%s, rows %s/%s" % (
            mbox, count, used, rows, size)
    assert n.sql("SELECT COUNT(*) FROM messages m JOIN folders f ON f.id = m.folder_id "
                 "WHERE m.uid >= f.uidnext") == [["0"]]
    for (f,) in n.sql("SELECT file FROM messages"):
        assert os.path.exists(os.path.join(fresh_state, "mail", f)), f
    subprocess.run([MAILNODECTL, "--state-dir", n.state_dir, "passwd", "bob@demo.test"],
                   input="kill9 test password\n", text=True, check=True, capture_output=True)
    c = imaplib.IMAP4_SSL("127.0.0.1", n.port(2993), ssl_context=ssl._create_unverified_context(),
                          timeout=30)
    c.login("bob@demo.test", "kill9 test password")
    typ, data = c.select("INBOX", readonly=True)
    assert typ == "OK" and int(data[0]) == len(delivered)
    typ, data = c.fetch("1:*", "(RFC822.SIZE)")
    assert typ == "OK" and len([d for d in data if d]) == len(delivered)
    c.logout()
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
