"""POP3 on the real node with real clients (python3 poplib, curl, fetchmail): pop3 with
STLS and pop3s, login rules (TLS first unless allowPlaintextAuth, suspended
accounts, delayed failures, tenant access rules, one session per maildrop), LIST/STAT/UIDL/TOP/
RETR of mail delivered through SMTP, DELE applied only at QUIT (quota given
back), RSET, a dropped connection deleting nothing, pipelining, a message
larger than the connection's output bound, the protocol's error paths, SASL
SCRAM-SHA-256, and a POP3 session's RETR/DELE as a selected IMAP session
sees them."""
import base64
import imaplib
import os
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from conftest import MAILNODECTL, ScramClient, crypt_sha512, wait_until

PW = "pop-" + os.urandom(6).hex()
USERS = ["ann", "dan", "eve", "fay", "gus", "hal", "ivy", "cat"]


def apply_text(node, text):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        node.ctl("apply", "-f", f.name)
    finally:
        os.unlink(f.name)


def msg(subject, body):
    return ("From: Sender <sender@example.org>\r\n"
            "To: someone@pop.test\r\n"
            "Subject: %s\r\n"
            "Message-ID: <%s@example.org>\r\n"
            "\r\n%s" % (subject, os.urandom(4).hex(), body)).encode()


def deliver(node, user, data):
    """Send through the MX port and wait until the spool put it in INBOX."""
    before = count(node, user)
    with smtplib.SMTP("127.0.0.1", node.port(2525), timeout=30) as s:
        s.sendmail("sender@example.org", ["%s@pop.test" % user], data)
    assert wait_until(lambda: count(node, user) == before + 1, timeout=30)


def count(node, user):
    return int(node.sql("SELECT COUNT(*) FROM messages m JOIN folders f ON f.id = m.folder_id "
                        "JOIN mailboxes b ON b.id = f.mailbox_id WHERE b.address = '%s@pop.test' "
                        "AND f.name = 'INBOX'" % user)[0][0])


def used_bytes(node, user):
    return int(node.sql("SELECT used_bytes FROM mailboxes WHERE address = '%s@pop.test'" % user)[0][0])


BODY1 = "Line one\r\n.starts with a dot\r\n..two dots\r\nlast line\r\n"
BODY2 = "Second message\r\nwith three\r\nlines\r\n"


@pytest.fixture(scope="module")
def pop(node):
    apply_text(node, """\
apiVersion: mailnode/v1
kind: Tenant
metadata: {name: poptest}
spec: {}
---
apiVersion: mailnode/v1
kind: Domain
metadata: {name: pop.test, tenant: poptest}
spec: {}
""" + "".join("""---
apiVersion: mailnode/v1
kind: Mailbox
metadata: {name: %s@pop.test, tenant: poptest}
spec: {%s}
""" % (u, "suspend: {login: true}" if u == "cat" else "") for u in USERS))
    for u in USERS:
        r = subprocess.run([MAILNODECTL, "--state-dir", node.state_dir, "passwd", "%s@pop.test" % u],
                           input=PW + "\n", capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    deliver(node, "ann", msg("first", BODY1))
    deliver(node, "ann", msg("second", BODY2))
    return node


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def pop3s(node, user="ann"):
    p = poplib.POP3_SSL("127.0.0.1", node.port(2995), context=tls_ctx(), timeout=30)
    if user:
        p.user("%s@pop.test" % user)
        p.pass_(PW)
    return p


def pop3_stls(node, user="ann"):
    p = poplib.POP3("127.0.0.1", node.port(2110), timeout=30)
    p.stls(tls_ctx())
    if user:
        p.user("%s@pop.test" % user)
        p.pass_(PW)
    return p


class Raw:
    """A line-level POP3 client for what poplib will not send."""

    def __init__(self, node, tls=True, source="127.0.0.1"):
        s = socket.create_connection(("127.0.0.1", node.port(2995 if tls else 2110)), timeout=30,
                                     source_address=(source, 0))
        self.s = tls_ctx().wrap_socket(s) if tls else s
        self.buf = b""
        assert self.line().startswith(b"+OK")

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, text):
        self.send(text.encode() + b"\r\n")
        return self.line()

    def multi(self):
        lines = []
        while True:
            line = self.line()
            if line == b".":
                return lines
            lines.append(line[1:] if line.startswith(b".") else line)

    def login(self, user="ann"):
        assert self.cmd("USER %s@pop.test" % user).startswith(b"+OK")
        r = self.cmd("PASS " + PW)
        assert r.startswith(b"+OK"), r

    def closed(self):
        try:
            self.s.settimeout(10)
            return self.s.recv(1) == b""
        except (ConnectionResetError, ssl.SSLError):
            return True

    def close(self):
        self.s.close()


def test_plain_pop3_wants_stls_first(pop):
    r = Raw(pop, tls=False)
    r.send(b"CAPA\r\n")
    assert r.line().startswith(b"+OK")
    caps = r.multi()
    assert b"STLS" in caps and b"USER" not in caps and b"SASL PLAIN" not in caps
    assert b"RESP-CODES" in caps and b"PIPELINING" in caps and b"UIDL" in caps and b"TOP" in caps
    assert r.cmd("USER ann@pop.test").startswith(b"-ERR [AUTH]")
    assert r.cmd("PASS " + PW).startswith(b"-ERR [AUTH]")
    assert r.cmd("AUTH PLAIN " + base64.b64encode(b"\0ann@pop.test\0" + PW.encode()).decode()) \
        .startswith(b"-ERR [AUTH]")
    assert r.cmd("QUIT").startswith(b"+OK")
    r.close()


def test_stls_then_login_and_retr(pop):
    p = pop3_stls(pop)
    caps = p.capa()
    assert "STLS" not in caps       # logged in: nothing of the login phase
    n, size = p.stat()
    assert n == 2
    resp, lines, octets = p.retr(1)
    assert resp.startswith(b"+OK")
    text = b"\r\n".join(lines) + b"\r\n"
    # poplib took the dot-stuffing off: the message is what was delivered
    assert text.endswith(BODY1.encode())
    assert b"Subject: first" in text
    listing = p.list()[1]
    assert len(listing) == 2
    sizes = [int(x.split()[1]) for x in listing]
    assert sum(sizes) == size
    assert p.quit().startswith(b"+OK")


def test_pop3s_and_uidl_stable_and_matching_imap_uids(pop):
    p = pop3s(pop)
    first = p.uidl()[1]
    p.quit()
    p = pop3s(pop)
    second = p.uidl()[1]
    one = p.uidl(2)
    p.quit()
    assert first == second and len(first) == 2
    rows = pop.sql("SELECT f.uidvalidity, m.uid FROM messages m JOIN folders f ON f.id = m.folder_id "
                   "JOIN mailboxes b ON b.id = f.mailbox_id WHERE b.address = 'ann@pop.test' "
                   "AND f.name = 'INBOX' ORDER BY m.uid")
    want = [b"%d %s.%s" % (i + 1, r[0].encode(), r[1].encode()) for i, r in enumerate(rows)]
    assert first == want
    assert one == b"+OK " + want[1]


def test_top(pop):
    p = pop3s(pop)
    resp, lines, _ = p.top(1, 0)
    assert resp.startswith(b"+OK")
    assert lines[-1] == b"" and b"Subject: first" in lines  # header, the empty line, no body
    resp, lines, _ = p.top(1, 2)
    assert lines[-3:] == [b"", b"Line one", b".starts with a dot"]
    resp, lines, _ = p.top(2, 100)   # more lines than there are: the whole body
    assert lines[-3:] == [b"Second message", b"with three", b"lines"]
    p.quit()


def test_curl_pop3s_and_pop3_with_stls(pop):
    out = subprocess.run(["curl", "-s", "-k", "--user", "ann@pop.test:" + PW,
                          "pop3s://127.0.0.1:%d/" % pop.port(2995)],
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith(b"1 ") and len(out.stdout.splitlines()) == 2
    out = subprocess.run(["curl", "-s", "-k", "--ssl-reqd", "--user", "ann@pop.test:" + PW,
                          "pop3://127.0.0.1:%d/2" % pop.port(2110)],
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith(BODY2.encode())
    # curl without TLS cannot log in: no password goes out in clear
    out = subprocess.run(["curl", "-s", "--user", "ann@pop.test:" + PW,
                          "pop3://127.0.0.1:%d/" % pop.port(2110)],
                         capture_output=True, timeout=60)
    assert out.returncode != 0


def test_dele_then_rset_keeps_everything(pop):
    deliver(pop, "dan", msg("keep me", "body\r\n"))
    p = pop3s(pop, "dan")
    n, _ = p.stat()
    assert p.dele(1).startswith(b"+OK")
    assert p.stat()[0] == n - 1
    with pytest.raises(poplib.error_proto) as e:
        p.retr(1)
    assert b"deleted" in e.value.args[0]
    with pytest.raises(poplib.error_proto):
        p.dele(1)
    assert p.rset().startswith(b"+OK")
    assert p.stat()[0] == n
    p.quit()
    p = pop3s(pop, "dan")
    assert p.stat()[0] == n
    p.quit()


def test_dele_then_drop_removes_nothing(pop):
    deliver(pop, "dan", msg("still here", "body\r\n"))
    before = count(pop, "dan")
    used = used_bytes(pop, "dan")
    r = Raw(pop)
    r.login("dan")
    assert r.cmd("DELE 1").startswith(b"+OK")
    r.close()                        # no QUIT: no UPDATE state
    time.sleep(0.5)
    assert count(pop, "dan") == before and used_bytes(pop, "dan") == used
    p = pop3s(pop, "dan")           # the maildrop is free again
    assert p.stat()[0] == before
    p.quit()


def test_dele_then_quit_removes_and_gives_quota_back(pop):
    deliver(pop, "dan", msg("remove me", "x" * 1000 + "\r\n"))
    p = pop3s(pop, "dan")
    listing = p.list()[1]
    n = len(listing)
    last = int(listing[-1].split()[1])
    uidl_before = p.uidl()[1]
    used = used_bytes(pop, "dan")
    assert p.dele(n).startswith(b"+OK")
    assert count(pop, "dan") == n    # DELE alone removes nothing
    assert p.quit() == b"+OK Bye, 1 messages deleted"
    assert count(pop, "dan") == n - 1
    assert used_bytes(pop, "dan") == used - last
    p = pop3s(pop, "dan")
    assert p.stat()[0] == n - 1
    assert p.uidl()[1] == uidl_before[:-1]
    p.quit()


def test_bad_password_is_delayed_and_limited(pop):
    r = Raw(pop, source="127.0.0.23")   # its own address: failures count per address
    t = time.time()
    assert r.cmd("USER ann@pop.test") == b"+OK Send the password"
    assert r.cmd("PASS wrong") == b"-ERR [AUTH] Authentication failed"
    assert time.time() - t >= 0.9
    # an unknown user reads exactly the same
    assert r.cmd("USER nobody@pop.test").startswith(b"+OK")
    assert r.cmd("PASS wrong") == b"-ERR [AUTH] Authentication failed"
    assert r.cmd("AUTH PLAIN " + base64.b64encode(b"\0ann@pop.test\0nope").decode()) \
        == b"-ERR [AUTH] Authentication failed"
    assert r.line().startswith(b"-ERR Too many failed logins")
    assert r.closed()


def test_auth_plain_both_forms(pop):
    r = Raw(pop)
    assert r.cmd("AUTH").startswith(b"+OK")
    assert r.multi() == [b"PLAIN", b"SCRAM-SHA-256"]
    assert r.cmd("AUTH CRAM-MD5").startswith(b"-ERR")
    assert r.cmd("AUTH PLAIN") == b"+ "
    assert r.cmd("*") == b"-ERR Authentication cancelled"
    assert r.cmd("AUTH PLAIN") == b"+ "
    assert r.cmd(base64.b64encode(b"\0ann@pop.test\0" + PW.encode()).decode()).startswith(b"+OK Logged in")
    assert r.cmd("QUIT").startswith(b"+OK")
    r = Raw(pop, tls=False)
    assert r.cmd("STLS") == b"+OK Begin TLS negotiation"
    r.s = tls_ctx().wrap_socket(r.s)
    assert r.cmd("AUTH PLAIN " + base64.b64encode(b"ann@pop.test\0ann@pop.test\0" + PW.encode()).decode()) \
        .startswith(b"+OK Logged in")
    assert r.cmd("QUIT").startswith(b"+OK")


def test_suspended_login(pop):
    r = Raw(pop)
    r.cmd("USER cat@pop.test")
    assert r.cmd("PASS " + PW) == b"-ERR [SYS/PERM] Login suspended for this account"
    r.close()


def test_suspended_tenant_cannot_log_in(pop):
    apply_text(pop, "apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: poptest}\n"
                    "spec: {state: suspended}\n")
    try:
        r = Raw(pop)
        r.cmd("USER ann@pop.test")
        assert r.cmd("PASS " + PW) == b"-ERR [SYS/PERM] Login suspended for this account"
        r.close()
    finally:
        apply_text(pop, "apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: poptest}\nspec: {}\n")
    p = pop3s(pop)
    assert p.quit().startswith(b"+OK")


def test_one_session_per_maildrop(pop):
    a = pop3s(pop, "fay")
    sessions = pop.ctl_yaml("sessions", "--service", "pop3s")[0]["items"]
    assert any(x.get("user") == "fay@pop.test" and x.get("tenant") == "poptest" for x in sessions), sessions
    r = Raw(pop)
    r.cmd("USER fay@pop.test")
    assert r.cmd("PASS " + PW).startswith(b"-ERR [IN-USE]")
    a.quit()
    r.cmd("USER fay@pop.test")
    assert r.cmd("PASS " + PW).startswith(b"+OK")
    r.close()


def test_commands_in_the_wrong_state_and_bad_commands(pop):
    r = Raw(pop)
    for c in ("STAT", "LIST", "RETR 1", "DELE 1", "UIDL", "TOP 1 1", "RSET", "NOOP"):
        resp = r.cmd(c)
        assert resp.startswith(b"-ERR") and b"after login" in resp, (c, resp)
    assert r.cmd("PASS x") == b"-ERR USER first"
    assert r.cmd("APOP ann@pop.test 0123456789abcdef0123456789abcdef").startswith(b"-ERR")
    assert r.cmd("FROB") == b"-ERR Unknown command"
    r.close()
    r = Raw(pop)                     # a fresh error count
    r.login()
    assert r.cmd("USER ann@pop.test") == b"-ERR Already logged in"
    assert r.cmd("STLS") == b"-ERR Already logged in"
    assert r.cmd("RETR 99") == b"-ERR No such message"
    assert r.cmd("RETR 0") == b"-ERR Invalid message number"
    assert r.cmd("RETR abc") == b"-ERR Invalid message number"
    assert r.cmd("RETR") == b"-ERR A message number is needed"
    assert r.cmd("RETR 1 2") == b"-ERR Too many arguments"
    assert r.cmd("TOP 1") == b"-ERR TOP needs a message number and a line count"
    assert r.cmd("TOP 1 -1") == b"-ERR Invalid line count"
    assert r.cmd("LIST 4294967296") == b"-ERR Invalid message number"
    assert r.cmd("STAT now") == b"-ERR No arguments expected"
    assert r.cmd("noop") == b"+OK"   # verbs in any case
    assert r.cmd("QUIT") == b"+OK Bye, 0 messages deleted"
    assert r.closed()


def test_over_long_line(pop):
    r = Raw(pop)
    r.send(b"USER " + b"a" * 10000 + b"\r\n")
    assert r.line() == b"-ERR Line too long"
    # the rest of that line is dropped and the session goes on
    r.login()
    assert r.cmd("STAT").startswith(b"+OK 2 ")
    r.send(b"LIST " + b"1" * 5000 + b"\r\nNOOP\r\n")
    assert r.line() == b"-ERR Line too long"
    assert r.line() == b"+OK"
    # one byte over the limit, with a bare LF (it fits the buffer)
    r.send(b"NOOP " + b"x" * 2044 + b"\nNOOP\r\n")
    assert r.line() == b"-ERR Line too long"
    assert r.line() == b"+OK"
    r.close()


def test_too_many_errors_end_the_session(pop):
    r = Raw(pop)
    r.send(b"FROB\r\n" * 25)         # what follows the 20th is not read
    for _ in range(20):
        assert r.line() == b"-ERR Unknown command"
    assert r.line() == b"-ERR Too many errors, closing"
    assert r.buf == b"" and r.closed()


def test_pipelining(pop):
    r = Raw(pop)
    r.send(("USER ann@pop.test\r\nPASS %s\r\nSTAT\r\nRETR 2\r\nLIST\r\nUIDL 1\r\nTOP 1 0\r\nNOOP\r\nQUIT\r\n"
            % PW).encode())
    assert r.line().startswith(b"+OK")
    assert r.line().startswith(b"+OK Logged in")
    assert r.line().startswith(b"+OK 2 ")
    assert r.line().startswith(b"+OK")
    assert b"\r\n".join(r.multi()).endswith(BODY2.rstrip("\r\n").encode())
    assert r.line().startswith(b"+OK 2 messages")
    assert len(r.multi()) == 2
    assert r.line().startswith(b"+OK 1 ")
    assert r.line().startswith(b"+OK")
    assert r.multi()[-1] == b""
    assert r.line() == b"+OK"
    assert r.line().startswith(b"+OK Bye")


def test_large_message_streams_through(pop):
    # Several MiB: more than conn's output bound, so RETR must go in pieces.
    body = "".join("%07d %s\r\n" % (i, "." * (i % 90)) if i % 7 else ".%d\r\n" % i
                   for i in range(60000))
    data = msg("big", body)
    deliver(pop, "eve", data)
    p = pop3s(pop, "eve")
    resp, lines, octets = p.retr(1)
    got = b"\r\n".join(lines) + b"\r\n"
    assert got.endswith(data)        # after the trace fields delivery adds
    assert resp == b"+OK %d octets" % len(got)
    resp_retr = resp
    # TOP of it sends only what was asked
    resp, lines, _ = p.top(1, 3)
    assert lines[-3:] == [b".0", b"0000001 .", b"0000002 .."]
    p.quit()
    # Commands pipelined behind it are answered once it is out, in order.
    r = Raw(pop)
    r.send(("USER eve@pop.test\r\nPASS %s\r\nRETR 1\r\nRETR 1\r\nNOOP\r\nQUIT\r\n" % PW).encode())
    assert r.line().startswith(b"+OK")
    assert r.line().startswith(b"+OK Logged in")
    for _ in range(2):
        assert r.line() == resp_retr
        assert b"\r\n".join(r.multi()) + b"\r\n" == got
    assert r.line() == b"+OK"
    assert r.line().startswith(b"+OK Bye")


def test_quit_marks_retrieved_messages_seen(pop):
    deliver(pop, "gus", msg("read me", "body\r\n"))
    deliver(pop, "gus", msg("not read", "body\r\n"))
    p = pop3s(pop, "gus")
    p.retr(1)
    p.top(2, 0)
    p.quit()
    rows = pop.sql("SELECT m.uid, m.sysflags & 1 FROM messages m JOIN folders f ON f.id = m.folder_id "
                   "JOIN mailboxes b ON b.id = f.mailbox_id WHERE b.address = 'gus@pop.test' ORDER BY m.uid")
    assert [r[1] for r in rows] == ["1", "0"]


def test_allow_plaintext_auth_setting(pop):
    apply_text(pop, "apiVersion: mailnode/v1\nkind: Service\nmetadata: {name: pop3}\n"
                    "spec: {allowPlaintextAuth: true}\n")
    try:
        p = poplib.POP3("127.0.0.1", pop.port(2110), timeout=30)
        assert "USER" in p.capa()
        p.user("ann@pop.test")
        assert p.pass_(PW).startswith(b"+OK")
        p.quit()
    finally:
        apply_text(pop, "apiVersion: mailnode/v1\nkind: Service\nmetadata: {name: pop3}\n"
                        "spec: {allowPlaintextAuth: false}\n")
    r = Raw(pop, tls=False)
    assert r.cmd("USER ann@pop.test").startswith(b"-ERR [AUTH]")
    r.close()
    # not a setting of the MX service
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("apiVersion: mailnode/v1\nkind: Service\nmetadata: {name: smtp}\n"
                "spec: {allowPlaintextAuth: true}\n")
    try:
        out = pop.ctl("apply", "-f", f.name, check=False)
    finally:
        os.unlink(f.name)
    assert out.returncode != 0
    assert "allowPlaintextAuth is a setting of pop3 imap only, not of smtp" in out.stdout + out.stderr


def test_tenant_access_rules_apply_at_login(pop):
    apply_text(pop, "apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: poptest}\n"
                    "spec: {access: {mode: deny-listed, addresses: [127.0.0.22]}}\n")
    try:
        r = Raw(pop, source="127.0.0.22")
        r.cmd("USER ann@pop.test")
        assert r.cmd("PASS " + PW) == b"-ERR [SYS/PERM] Access from your address is refused by your domain"
        assert r.closed()
        # the same user from another address is welcome
        r = Raw(pop, source="127.0.0.24")
        r.login()
        assert r.cmd("QUIT").startswith(b"+OK Bye")
    finally:
        apply_text(pop, "apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: poptest}\nspec: {}\n")


def test_unreadable_body_is_a_temporary_error(pop):
    deliver(pop, "fay", msg("file trouble", "body\r\n"))
    rel = pop.sql("SELECT m.file FROM messages m JOIN folders f ON f.id = m.folder_id "
                  "JOIN mailboxes b ON b.id = f.mailbox_id WHERE b.address = 'fay@pop.test' "
                  "ORDER BY m.uid DESC LIMIT 1")[0][0]
    path = os.path.join(pop.state_dir, "mail", rel)
    assert os.path.exists(path)
    r = Raw(pop)
    r.login("fay")
    n = int(r.cmd("STAT").split()[1])
    os.rename(path, path + ".away")
    try:
        assert r.cmd("RETR %d" % n) == b"-ERR [SYS/TEMP] The message cannot be read now"
        assert r.cmd("TOP %d 0" % n) == b"-ERR [SYS/TEMP] The message cannot be read now"
        assert r.cmd("NOOP") == b"+OK"
    finally:
        os.rename(path + ".away", path)
    assert r.cmd("RETR %d" % n).startswith(b"+OK")
    assert r.multi()[-1] == b"body"
    assert r.cmd("QUIT").startswith(b"+OK Bye, 0")


def fetchmail(pop, tmp_path, options):
    out = tmp_path / "mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text('set no syslog\npoll 127.0.0.1 service %d protocol POP3 auth password uidl\n'
                  '  user "hal@pop.test" password "%s"\n'
                  '  ssl no sslcertck %s\n'
                  '  mda "/bin/sh -c \'cat >> %s\'"\n' % (pop.port(2995), PW, options, out))
    rc.chmod(0o600)
    r = subprocess.run(["fetchmail", "-f", str(rc), "--pidfile", str(tmp_path / "pid"), "-v"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path)))
    text = out.read_text() if out.exists() else ""
    return r, text


def test_fetchmail_keeps_track_by_uidl_then_deletes(pop, tmp_path):
    deliver(pop, "hal", msg("fm one", "first body\r\n"))
    deliver(pop, "hal", msg("fm two", "second body\r\n"))
    r, text = fetchmail(pop, tmp_path, "keep")
    assert r.returncode == 0, r.stdout + r.stderr
    assert text.count("Subject: fm ") == 2
    # with keep and uidl, a second run finds nothing new (exit 1: no mail)
    r, text = fetchmail(pop, tmp_path, "keep")
    assert r.returncode == 1, r.stdout + r.stderr
    assert text.count("Subject: fm ") == 2
    deliver(pop, "hal", msg("fm three", "third body\r\n"))
    r, text = fetchmail(pop, tmp_path, "keep")
    assert r.returncode == 0, r.stdout + r.stderr
    assert text.count("Subject: fm ") == 3 and "Subject: fm three" in text
    assert count(pop, "hal") == 3
    # without keep, what it fetches is deleted on the server at QUIT
    r, text = fetchmail(pop, tmp_path, "fetchall nokeep")
    assert r.returncode == 0, r.stdout + r.stderr
    assert count(pop, "hal") == 0 and used_bytes(pop, "hal") == 0


def test_database_outage_is_temporary_and_loses_nothing(pop):
    """Last in the module: it takes the database away."""
    import signal
    r = Raw(pop)
    r.login("dan")
    n = int(r.cmd("STAT").split()[1])
    assert n > 0 and r.cmd("DELE 1").startswith(b"+OK")
    pids = pop.mariadb_pids()
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    # The UPDATE state cannot reach the store: QUIT says so, nothing is lost.
    assert r.cmd("QUIT") == b"-ERR [SYS/TEMP] Deleted messages were not removed, try again later"
    assert r.closed()
    # Logins meanwhile are a temporary failure, not a wrong password.
    seen = []
    deadline = time.time() + 10
    while time.time() < deadline:
        r = Raw(pop)
        r.cmd("USER dan@pop.test")
        seen.append(r.cmd("PASS " + PW))
        r.close()
        if seen[-1].startswith(b"-ERR [SYS/TEMP]"):
            break
    assert seen[-1].startswith(b"-ERR [SYS/TEMP]"), seen
    assert not any(s.startswith(b"-ERR [AUTH]") for s in seen), seen

    def works():
        try:
            p = pop3s(pop, "dan")
        except poplib.error_proto:
            return False
        count_now = p.stat()[0]
        p.quit()
        return count_now == n
    assert wait_until(works, timeout=90, step=0.5)


# SASL SCRAM-SHA-256 (RFC 5034, RFC 7677).

def scram(r, user, password, initial=True, tamper=False):
    """AUTH SCRAM-SHA-256 over a Raw session: the last line, and whether
    the server's signature checked out."""
    c = ScramClient(user, password, tamper)
    if initial:
        line = r.cmd("AUTH SCRAM-SHA-256 " + base64.b64encode(c.first()).decode())
    else:
        assert r.cmd("AUTH SCRAM-SHA-256") == b"+ "
        line = r.cmd(base64.b64encode(c.first()).decode())
    if not line.startswith(b"+ "):
        return line, False
    line = r.cmd(base64.b64encode(c.final(base64.b64decode(line[2:]))).decode())
    if not line.startswith(b"+ "):
        return line, False
    verified = c.check(base64.b64decode(line[2:]))
    return r.cmd(""), verified


def test_auth_scram_sha256(pop):
    r = Raw(pop)
    assert r.cmd("CAPA").startswith(b"+OK")
    assert b"SASL PLAIN SCRAM-SHA-256" in r.multi()
    line, verified = scram(r, "hal@pop.test", PW)
    assert line.startswith(b"+OK Logged in") and verified, line
    assert r.cmd("STAT").startswith(b"+OK")
    assert r.cmd("QUIT").startswith(b"+OK")
    # Without an initial response; and "*" cancels.
    r = Raw(pop)
    assert r.cmd("AUTH SCRAM-SHA-256") == b"+ "
    assert r.cmd("*") == b"-ERR Authentication cancelled"
    assert r.cmd("AUTH SCRAM-SHA-256 bm9wZQ==").startswith(b"-ERR Malformed SCRAM")
    line, verified = scram(r, "hal@pop.test", PW, initial=False)
    assert line.startswith(b"+OK Logged in") and verified, line
    assert r.cmd("QUIT").startswith(b"+OK")
    # A suspended account proves its password and is told why.
    r = Raw(pop)
    assert scram(r, "cat@pop.test", PW)[0] == b"-ERR [SYS/PERM] Login suspended for this account"
    r.close()


def test_scram_wrong_proof_and_unknown_user_read_the_same(pop):
    r = Raw(pop, source="127.0.0.41")
    t = time.time()
    assert scram(r, "hal@pop.test", PW, tamper=True)[0] == b"-ERR [AUTH] Authentication failed"
    assert time.time() - t >= 0.9
    t = time.time()
    # No such user: the exchange runs to the proof and fails the same way.
    assert scram(r, "nobody@pop.test", PW)[0] == b"-ERR [AUTH] Authentication failed"
    assert time.time() - t >= 1.9
    # The wrong password (right user): the third failure ends the session.
    assert scram(r, "hal@pop.test", "not " + PW)[0] == b"-ERR [AUTH] Authentication failed"
    assert r.line().startswith(b"-ERR Too many failed logins")
    assert r.closed()


def test_scram_refused_without_keys_but_plain_works(pop):
    pw = "migrated-" + os.urandom(6).hex()
    apply_text(pop, "apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: mig@pop.test, "
                    "tenant: poptest}\nspec: {passwordHash: '%s'}\n" % crypt_sha512(pw))
    r = Raw(pop, source="127.0.0.42")
    assert scram(r, "mig@pop.test", pw)[0] == b"-ERR [AUTH] Authentication failed"
    assert r.cmd("USER mig@pop.test").startswith(b"+OK")
    assert r.cmd("PASS " + pw).startswith(b"+OK Logged in")
    r.cmd("QUIT")


# POP3 and IMAP on the same maildrop.

def test_pop3_retr_and_dele_as_a_selected_imap_session_sees_them(pop):
    deliver(pop, "ivy", msg("read by pop", "body one\r\n"))
    deliver(pop, "ivy", msg("deleted by pop", "body two\r\n"))
    m = imaplib.IMAP4_SSL("127.0.0.1", pop.port(2993), ssl_context=tls_ctx())
    try:
        assert m.login("ivy@pop.test", PW)[0] == "OK"
        assert m.select("INBOX")[1] == [b"2"]
        uidvalidity = m.response("UIDVALIDITY")[1][0].decode()
        uids = m.uid("SEARCH", "ALL")[1][0].split()
        assert len(uids) == 2
        p = pop3s(pop, "ivy")
        # UIDLs are the IMAP uidvalidity.uid of each message.
        assert p.uidl()[1] == [b"1 %s.%s" % (uidvalidity.encode(), uids[0]),
                               b"2 %s.%s" % (uidvalidity.encode(), uids[1])]
        p.retr(1)
        p.retr(2)
        p.dele(2)
        # Nothing changes before QUIT.
        m.noop()
        flags = m.fetch("1:*", "(FLAGS)")[1]
        assert len(flags) == 2 and not any(b"\\Seen" in f for f in flags), flags
        p.quit()
        assert m.noop()[0] == "OK"
        # The retrieved one is \Seen now, the deleted one is gone.
        assert any(re.match(rb"1 \(.*FLAGS \([^)]*\\Seen", f) for f in m.response("FETCH")[1] or [])
        assert m.response("EXPUNGE")[1] == [b"2"]
        left = m.uid("FETCH", "1:*", "(FLAGS)")[1]
        assert len(left) == 1 and b"UID %s " % uids[0] in left[0] and b"\\Seen" in left[0], left
    finally:
        m.logout()
