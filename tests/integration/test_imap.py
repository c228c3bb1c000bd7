"""IMAP on the real node with real clients (python3 imaplib, curl, fetchmail): login
rules (TLS first, suspended accounts, delayed failures), folders, FETCH of
flags and sections, STORE, COPY, MOVE, EXPUNGE, APPEND with and without
LITERAL+, SEARCH and SORT, IDLE seeing mail delivered through SMTP, two
sessions seeing each other's changes, tenant isolation, quota, and the
error paths of the protocol."""
import base64
import imaplib
import os
import re
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from conftest import MAILNODECTL, TOP, ScramClient, crypt_sha512, wait_until

ALICE_PW = "alice-imap-" + os.urandom(6).hex()
BOB_PW = "bob-imap-" + os.urandom(6).hex()
CAROL_PW = "carol-imap-" + os.urandom(6).hex()

MSG = (b"From: Sender One <one@example.org>\r\n"
       b"To: alice@demo.test\r\n"
       b"Subject: Quarterly numbers\r\n"
       b"Date: Mon, 2 Nov 2026 10:00:00 +0000\r\n"
       b"Message-ID: <q1@example.org>\r\n"
       b"\r\n"
       b"The numbers are in. Blue widgets sold well.\r\n")


def apply_text(node, text):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        node.ctl("apply", "-f", f.name)
    finally:
        os.unlink(f.name)


def passwd(node, address, pw):
    r = subprocess.run([MAILNODECTL, "--state-dir", node.state_dir, "passwd", address],
                       input=pw + "\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def imap(node):
    node.ctl("apply", "-f", os.path.join(TOP, "docs", "examples", "demo.yaml"))
    apply_text(node, """\
apiVersion: mailnode/v1
kind: Tenant
metadata: {name: other}
spec: {}
---
apiVersion: mailnode/v1
kind: Domain
metadata: {name: other.test, tenant: other}
spec: {}
---
apiVersion: mailnode/v1
kind: Mailbox
metadata: {name: bob@other.test, tenant: other}
spec: {quota: 4KiB}
---
apiVersion: mailnode/v1
kind: Mailbox
metadata: {name: carol@other.test, tenant: other}
spec: {suspend: {login: true}}
""")
    passwd(node, "alice@demo.test", ALICE_PW)
    passwd(node, "bob@other.test", BOB_PW)
    passwd(node, "carol@other.test", CAROL_PW)
    return node


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def imaps(node, user="alice@demo.test", pw=None):
    m = imaplib.IMAP4_SSL("127.0.0.1", node.port(2993), ssl_context=tls_ctx())
    if user:
        typ, _ = m.login(user, pw if pw is not None else ALICE_PW)
        assert typ == "OK"
    return m


def fresh_folder(m, name):
    """An empty folder of this name (created anew)."""
    m.delete(name)
    typ, data = m.create(name)
    assert typ == "OK", data
    return name


class Raw:
    """A line-level IMAP client over TLS for what imaplib will not send."""

    def __init__(self, node, login=True, user="alice@demo.test", pw=None, source="127.0.0.1"):
        s = socket.create_connection(("127.0.0.1", node.port(2993)), timeout=15,
                                     source_address=(source, 0))
        self.s = tls_ctx().wrap_socket(s)
        self.buf = b""
        self.n = 0
        assert self.line().startswith(b"* OK")
        if login:
            lines = self.cmd("LOGIN %s \"%s\"" % (user, pw or ALICE_PW))
            assert lines[-1].split()[1] == b"OK", lines

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

    def until_tagged(self, tag):
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            # A literal in a response: take its bytes as they come.
            m = re.search(rb"\{(\d+)\}$", line)
            if m:
                want = int(m.group(1))
                while len(self.buf) < want:
                    self.buf += self.s.recv(65536)
                lines.append(self.buf[:want])
                self.buf = self.buf[want:]
                continue
            if line.startswith(tag + b" ") or line.startswith(b"* BYE"):
                return lines

    def cmd(self, text):
        self.n += 1
        tag = b"r%d" % self.n
        self.send(tag + b" " + (text.encode() if isinstance(text, str) else text) + b"\r\n")
        return self.until_tagged(tag)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


# Login and TLS.

def test_plaintext_login_refused_before_starttls(imap):
    m = imaplib.IMAP4("127.0.0.1", imap.port(2143))
    try:
        assert "STARTTLS" in m.capabilities and "LOGINDISABLED" in m.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            m.login("alice@demo.test", ALICE_PW)
        typ, _ = m.starttls(ssl_context=tls_ctx())
        assert typ == "OK"
        assert "AUTH=PLAIN" in m.capabilities and "LOGINDISABLED" not in m.capabilities
        typ, data = m.login("alice@demo.test", ALICE_PW)
        assert typ == "OK"
        assert b"IDLE" in data[0] and b"CONDSTORE" in data[0]
    finally:
        m.logout()



def test_plaintext_login_when_the_admin_allows_it(imap):
    apply_text(imap, "apiVersion: mailnode/v1\nkind: Service\nmetadata: {name: imap}\n"
                     "spec: {allowPlaintextAuth: true}\n")
    try:
        m = imaplib.IMAP4("127.0.0.1", imap.port(2143))
        assert "LOGINDISABLED" not in m.capabilities and "AUTH=PLAIN" in m.capabilities
        assert m.login("alice@demo.test", ALICE_PW)[0] == "OK"
        m.logout()
    finally:
        apply_text(imap, "apiVersion: mailnode/v1\nkind: Service\nmetadata: {name: imap}\n"
                         "spec: {allowPlaintextAuth: false}\n")
    m = imaplib.IMAP4("127.0.0.1", imap.port(2143))
    assert "LOGINDISABLED" in m.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        m.login("alice@demo.test", ALICE_PW)
    m.logout()
    # imaps has no such setting: it is TLS from the first byte.
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("apiVersion: mailnode/v1\nkind: Service\nmetadata: {name: imaps}\n"
                "spec: {allowPlaintextAuth: true}\n")
    try:
        r = imap.ctl("apply", "-f", f.name, check=False)
    finally:
        os.unlink(f.name)
    assert r.returncode != 0 and "allowPlaintextAuth" in r.stderr + r.stdout

def test_authenticate_plain_with_and_without_initial_response(imap):
    m = imaps(imap, user=None)
    typ, _ = m.authenticate("PLAIN", lambda _: b"\0alice@demo.test\0" + ALICE_PW.encode())
    assert typ == "OK"
    m.logout()
    r = Raw(imap, login=False)
    import base64
    ir = base64.b64encode(b"\0alice@demo.test\0" + ALICE_PW.encode()).decode()
    assert r.cmd("AUTHENTICATE PLAIN " + ir)[-1].startswith(b"r1 OK")
    r.close()


class IMAP4_SSL_From(imaplib.IMAP4_SSL):
    """imaplib over TLS from a given loopback address: failed logins count
    per address, so a test of them does not slow the others."""

    def __init__(self, source, *args, **kwargs):
        self.source = source
        super().__init__(*args, **kwargs)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout, source_address=(self.source, 0))
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def test_authenticate_scram_sha256(imap):
    # Offered where PLAIN is: under TLS, not on plain imap before STARTTLS.
    m = imaplib.IMAP4("127.0.0.1", imap.port(2143))
    assert "AUTH=SCRAM-SHA-256" not in m.capabilities
    m.starttls(ssl_context=tls_ctx())
    assert "AUTH=SCRAM-SHA-256" in m.capabilities and "AUTH=PLAIN" in m.capabilities
    c = ScramClient("alice@demo.test", ALICE_PW)
    typ, data = m.authenticate("SCRAM-SHA-256", c)
    assert typ == "OK" and c.verified, "the server proved it knows alice's keys too"
    assert m.select("INBOX")[0] == "OK"
    m.logout()
    # SASL-IR: the first message on the command line.
    r = Raw(imap, login=False)
    c = ScramClient("alice@demo.test", ALICE_PW)
    r.send(b"a1 AUTHENTICATE SCRAM-SHA-256 " + base64.b64encode(c.first()) + b"\r\n")
    line = r.line()
    assert line.startswith(b"+ "), line
    r.send(base64.b64encode(c.final(base64.b64decode(line[2:]))) + b"\r\n")
    line = r.line()
    assert line.startswith(b"+ ") and c.check(base64.b64decode(line[2:])), line
    r.send(b"\r\n")
    assert r.until_tagged(b"a1")[-1].startswith(b"a1 OK [CAPABILITY")
    r.close()
    # "*" cancels, at any step; junk is a BAD.
    r = Raw(imap, login=False)
    r.send(b"a1 AUTHENTICATE SCRAM-SHA-256\r\n")
    assert r.line() == b"+ "
    r.send(b"*\r\n")
    assert r.until_tagged(b"a1")[-1] == b"a1 BAD Authentication cancelled"
    c = ScramClient("alice@demo.test", ALICE_PW)
    r.send(b"a2 AUTHENTICATE SCRAM-SHA-256 " + base64.b64encode(c.first()) + b"\r\n")
    assert r.line().startswith(b"+ ")
    r.send(b"*\r\n")
    assert r.until_tagged(b"a2")[-1] == b"a2 BAD Authentication cancelled"
    assert r.cmd("AUTHENTICATE SCRAM-SHA-256 bm9wZQ==")[-1] == b"r1 BAD Malformed SCRAM message"
    # A suspended account proves its password and is told why.
    c = ScramClient("carol@other.test", CAROL_PW)
    m = imaps(imap, user=None)
    with pytest.raises(imaplib.IMAP4.error, match="CONTACTADMIN"):
        m.authenticate("SCRAM-SHA-256", c)
    m.logout()
    r.close()


def test_scram_wrong_proof_and_unknown_user_read_the_same(imap):
    m = IMAP4_SSL_From("127.0.0.51", "127.0.0.1", imap.port(2993), ssl_context=tls_ctx())
    t0 = time.time()
    with pytest.raises(imaplib.IMAP4.error, match=r"\[AUTHENTICATIONFAILED\] Authentication failed"):
        m.authenticate("SCRAM-SHA-256", ScramClient("alice@demo.test", ALICE_PW, tamper=True))
    assert time.time() - t0 >= 0.9
    # No such user: the exchange runs to the proof and fails the same way.
    t0 = time.time()
    c = ScramClient("nobody@demo.test", ALICE_PW)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[AUTHENTICATIONFAILED\] Authentication failed"):
        m.authenticate("SCRAM-SHA-256", c)
    assert c.step == 2, "it got a challenge like a real user"
    assert time.time() - t0 >= 1.9
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.authenticate("SCRAM-SHA-256", ScramClient("alice@demo.test", "not " + ALICE_PW))
    with pytest.raises((imaplib.IMAP4.abort, OSError, EOFError)):
        m.noop()


def test_scram_refused_without_keys_but_plain_works(imap):
    pw = "migrated-" + os.urandom(6).hex()
    apply_text(imap, "apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: mig@other.test, "
                     "tenant: other}\nspec: {passwordHash: '%s'}\n" % crypt_sha512(pw))
    m = IMAP4_SSL_From("127.0.0.52", "127.0.0.1", imap.port(2993), ssl_context=tls_ctx())
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.authenticate("SCRAM-SHA-256", ScramClient("mig@other.test", pw))
    assert m.login("mig@other.test", pw)[0] == "OK"
    m.logout()


def test_bad_password_is_refused_after_a_growing_delay(imap):
    m = imaps(imap, user=None)
    t0 = time.time()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login("alice@demo.test", "wrong")
    first = time.time() - t0
    assert first >= 0.9
    t0 = time.time()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login("nobody@demo.test", "wrong")
    assert time.time() - t0 >= 1.9
    # The third failure ends the session.
    with pytest.raises(imaplib.IMAP4.error):
        m.login("alice@demo.test", "wrong again")
    with pytest.raises((imaplib.IMAP4.abort, OSError, EOFError)):
        m.noop()


def test_suspended_login_gets_a_clear_code(imap):
    m = imaps(imap, user=None)
    with pytest.raises(imaplib.IMAP4.error, match="CONTACTADMIN"):
        m.login("carol@other.test", CAROL_PW)
    m.logout()


# Folders.

def test_new_mailbox_has_special_use_folders(imap):
    m = imaps(imap)
    typ, data = m.list()
    assert typ == "OK"
    lines = [d.decode() for d in data]
    for name, use in (("Sent", "\\Sent"), ("Drafts", "\\Drafts"), ("Trash", "\\Trash"),
                      ("Junk", "\\Junk"), ("Archive", "\\Archive")):
        assert any(use in l and l.endswith('"%s"' % name) for l in lines), lines
    assert any(l.endswith('"INBOX"') for l in lines)
    # LIST-EXTENDED: only special-use folders, and RETURN (SUBSCRIBED STATUS).
    r = Raw(imap)
    out = r.cmd('LIST (SPECIAL-USE) "" "*"')
    assert len([l for l in out if l.startswith(b"* LIST")]) == 5
    out = r.cmd('LIST "" "INBOX" RETURN (SUBSCRIBED STATUS (MESSAGES UIDNEXT))')
    assert any(b"\\Subscribed" in l and l.endswith(b'"INBOX"') for l in out), out
    assert any(l.startswith(b'* STATUS "INBOX" (MESSAGES ') for l in out), out
    assert r.cmd("NAMESPACE")[0] == b'* NAMESPACE (("" "/")) NIL NIL'
    # Top level only with %, INBOX in any case, and wildcards that would
    # make a backtracking matcher spin answer at once.
    r.cmd("CREATE Lvl/Deep")
    out = r.cmd('LIST "" "%"')
    assert any(l.endswith(b'"Lvl"') for l in out) and not any(b"Lvl/Deep" in l for l in out), out
    assert r.cmd('LIST "" "inbox"')[0].endswith(b'"INBOX"')
    assert r.cmd('LIST "" ""')[0] == b'* LIST (\\Noselect) "/" ""'
    t0 = time.time()
    out = r.cmd('LIST "" "' + "*%" * 400 + 'zz"')
    assert time.time() - t0 < 5 and out[-1].split()[1] == b"OK" and len(out) == 1
    r.cmd("DELETE Lvl/Deep")
    r.cmd("DELETE Lvl")
    r.close()
    m.logout()


def test_create_rename_delete_subscribe_with_utf7_names(imap):
    m = imaps(imap)
    m.delete("Projekte/B&AOQ-r")
    m.delete("Projekte")
    m.delete("Neu/Gr&APw-n")
    m.delete("Neu")
    typ, _ = m.create("Projekte/B&AOQ-r")
    assert typ == "OK"
    typ, data = m.list('""', "Projekte*")
    assert [d for d in data if d.endswith(b'"Projekte/B&AOQ-r"')], data
    assert [d for d in data if b"\\HasChildren" in d and d.endswith(b'"Projekte"')], data
    # The store keeps UTF-8 (one tenant's name, the user's own).
    assert imap.sql("SELECT COUNT(*) FROM folders WHERE name = 'Projekte/Bär'") == [["1"]]
    typ, _ = m.create("Projekte/B&AOQ-r")
    assert typ == "NO"
    typ, data = m.create("Bad&Name")
    assert typ == "NO"
    typ, _ = m.rename("Projekte", "Neu")
    assert typ == "OK"
    typ, data = m.list('""', "Neu/*")
    assert [d for d in data if d.endswith(b'"Neu/B&AOQ-r"')], data
    typ, _ = m.unsubscribe("Neu/B&AOQ-r")
    assert typ == "OK"
    typ, data = m.lsub('""', "Neu/*")
    assert data == [None] or not [d for d in data if d and b"B&AOQ-r" in d], data
    # Neu is not subscribed, its child was unsubscribed above: subscribe
    # Neu/B&AOQ-r again and unsubscribe Neu; RECURSIVEMATCH shows the parent.
    m.subscribe("Neu/B&AOQ-r")
    m.unsubscribe("Neu")
    r = Raw(imap)
    out = r.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert b'* LIST (\\HasChildren) "/" "Neu" ("CHILDINFO" ("SUBSCRIBED"))' in out, out
    out = r.cmd('LIST (SUBSCRIBED) "" "Neu*"')
    assert [l for l in out if l.startswith(b"* LIST")] == [b'* LIST (\\HasNoChildren \\Subscribed) "/" "Neu/B&AOQ-r"']
    r.close()
    typ, data = m.delete("Neu")
    assert typ == "NO" and b"INUSE" in data[0]
    assert m.delete("Neu/B&AOQ-r")[0] == "OK"
    assert m.delete("Neu")[0] == "OK"
    typ, data = m.delete("INBOX")
    assert typ == "NO"
    # A parent with a non-ASCII name moves with its children (characters,
    # not bytes), and a folder cannot move under itself.
    for name in ("&AMQ-l/x_y", "&AMQ-l", "B&AOQ-r/x_y", "B&AOQ-r"):
        m.delete(name)
    assert m.create("B&AOQ-r/x_y")[0] == "OK"
    assert m.rename("B&AOQ-r", "B&AOQ-r/sub")[0] == "NO"
    assert m.rename("B&AOQ-r", "&AMQ-l")[0] == "OK"
    typ, data = m.list('""', "&AMQ-l*")
    assert sorted(d.rsplit(b" ", 1)[1] for d in data) == [b'"&AMQ-l"', b'"&AMQ-l/x_y"'], data
    assert m.delete("&AMQ-l/x_y")[0] == "OK" and m.delete("&AMQ-l")[0] == "OK"
    typ, data = m.select("Neu")
    assert typ == "NO" and b"NONEXISTENT" in data[0]
    m.logout()


# Messages.

def status_uidvalidity(m, name):
    typ, data = m.status(name, "(UIDVALIDITY)")
    assert typ == "OK", data
    return int(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1))


def test_uidvalidity_never_repeats_when_a_folder_is_made_again(imap):
    """RFC 3501 2.3.1.1: a name that comes back with uids starting over must
    come back with another UIDVALIDITY, however fast it happens."""
    m = imaps(imap)
    try:
        seen = []
        for _ in range(25):
            fresh_folder(m, "Churn")
            assert m.append("Churn", None, None, MSG)[0] == "OK"
            seen.append(status_uidvalidity(m, "Churn"))
            m.select("Churn")
            assert m.uid("SEARCH", "ALL")[1] == [b"1"], "uids start over in the new folder"
            m.close()
        assert len(set(seen)) == len(seen), seen
        # RENAME onto a name just deleted.
        fresh_folder(m, "Churn2")
        before = status_uidvalidity(m, "Churn")
        assert m.delete("Churn")[0] == "OK"
        assert m.rename("Churn2", "Churn")[0] == "OK"
        after = status_uidvalidity(m, "Churn")
        assert after != before and after not in seen
        assert m.delete("Churn")[0] == "OK"
    finally:
        m.logout()


def tagged(lines):
    """The tagged reply of a Raw command, without its tag."""
    return lines[-1].split(b" ", 1)[1]


def test_unselect_enable_id_examine_and_advertised_extensions(imap):
    m = imaps(imap)
    try:
        caps = m.capability()[1][0].split()
        assert b"CREATE-SPECIAL-USE" in caps and b"STATUS=SIZE" in caps and b"UNSELECT" in caps
        typ, data = m.xatom("ID", "NIL")
        assert typ == "OK" and m.response("ID")[1] == [b'("name" "mailnode")']
        fresh_folder(m, "RO")
        assert m.append("RO", None, None, MSG)[0] == "OK"
        # STATUS SIZE: the octets of the folder's messages.
        typ, data = m.status("RO", "(MESSAGES SIZE)")
        assert typ == "OK" and b"SIZE %d" % len(MSG) in data[0], data
        # EXAMINE is read-only: no STORE, no EXPUNGE, and no \Seen from a FETCH.
        typ, data = m.select("RO", readonly=True)
        assert typ == "OK" and m.response("READ-ONLY")[1]
        assert m.store("1", "+FLAGS", "(\\Deleted)")[0] == "NO"
        r = Raw(imap)
        r.cmd("EXAMINE RO")
        assert tagged(r.cmd("STORE 1 +FLAGS (\\Deleted)")).startswith(b"NO [READ-ONLY]")
        assert tagged(r.cmd("EXPUNGE")).startswith(b"NO [READ-ONLY]")
        r.cmd("FETCH 1 BODY[]")
        # UNSELECT leaves the folder without expunging and without ending the session.
        assert tagged(r.cmd("UNSELECT")) == b"OK UNSELECT completed"
        assert tagged(r.cmd("FETCH 1 FLAGS")).startswith(b"BAD")
        # ENABLE CONDSTORE: FETCH and STORE replies carry MODSEQ from now on.
        lines = r.cmd("ENABLE CONDSTORE")
        assert lines[0] == b"* ENABLED CONDSTORE" and tagged(lines).startswith(b"OK")
        r.cmd("SELECT RO")
        lines = r.cmd("STORE 1 +FLAGS (\\Flagged)")
        assert tagged(lines).startswith(b"OK") and re.search(rb"\* 1 FETCH \(.*MODSEQ \(\d+\)", lines[0]), lines
        lines = r.cmd("FETCH 1 FLAGS")
        assert b"\\Seen" not in lines[0], "EXAMINE's FETCH of BODY[] set no \\Seen"
        assert b"MODSEQ" in lines[0]
        r.close()
        m.close()
        # CREATE-SPECIAL-USE.
        m.delete("Receipts")
        assert m._simple_command("CREATE", "Receipts", "(USE (\\Archive))")[0] == "OK"
        typ, data = m.list('""', "Receipts")
        assert typ == "OK" and b"\\Archive" in data[0], data
        assert m._simple_command("CREATE", "Bogus", "(USE (\\Nonsense))")[0] == "NO"
        assert m.delete("Receipts")[0] == "OK"
    finally:
        m.logout()


def test_append_fetch_sections_and_seen(imap):
    m = imaps(imap)
    fresh_folder(m, "T1")
    typ, data = m.append("T1", "(\\Flagged $Work)", imaplib.Time2Internaldate(1700000000), MSG)
    assert typ == "OK"
    mo = re.search(rb"APPENDUID (\d+) (\d+)", data[0])
    assert mo and mo.group(2) == b"1"
    typ, data = m.select("T1")
    assert typ == "OK" and data == [b"1"]
    typ, data = m.fetch("1", "(UID FLAGS INTERNALDATE RFC822.SIZE)")
    head = data[0].decode()
    assert "UID 1" in head and "\\Flagged" in head and "$Work" in head and "\\Seen" not in head
    assert 'INTERNALDATE "14-Nov-2023 22:13:20 +0000"' in head
    assert "RFC822.SIZE %d" % len(MSG) in head
    # Peeking sets nothing; a partial fetch is the bytes asked for.
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] BODY.PEEK[]<4.10>)")
    assert data[0][1] == b"From: Sender One <one@example.org>\r\nSubject: Quarterly numbers\r\n\r\n"
    assert data[1][0].endswith(b"BODY[]<4> {10}") and data[1][1] == MSG[4:14]
    typ, data = m.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in data[0]
    typ, data = m.fetch("1", "(BODY[TEXT] BODY[HEADER] BODY[1] RFC822.HEADER)")
    hdr_len = MSG.index(b"\r\n\r\n") + 4
    parts = [d for d in data if isinstance(d, tuple)]
    assert parts[0][0].endswith(b"BODY[TEXT] {%d}" % (len(MSG) - hdr_len)) and parts[0][1] == MSG[hdr_len:]
    assert parts[1][0].endswith(b"BODY[HEADER] {%d}" % hdr_len) and parts[1][1] == MSG[:hdr_len]
    assert parts[2][0].endswith(b"BODY[1] {%d}" % (len(MSG) - hdr_len)) and parts[2][1] == MSG[hdr_len:]
    assert parts[3][0].endswith(b"RFC822.HEADER {%d}" % hdr_len) and parts[3][1] == MSG[:hdr_len]
    typ, data = m.fetch("1", "(FLAGS)")
    assert b"\\Seen" in data[0]
    typ, data = m.fetch("1", "RFC822")
    assert data[0][1] == MSG
    # Sequence numbers past the end are an error, UIDs past the end are not.
    with pytest.raises(imaplib.IMAP4.error, match="Invalid message sequence number"):
        m.fetch("5", "FLAGS")
    typ, data = m.uid("FETCH", "5:7", "FLAGS")
    assert typ == "OK"
    m.logout()


MULTI = (b"From: =?UTF-8?Q?J=C3=BCrgen?= <jurgen@example.org>\r\n"
         b"To: Alice <alice@demo.test>, bob@other.test\r\n"
         b"Subject: Report with attachment\r\n"
         b"Date: Tue, 3 Nov 2026 08:00:00 +0100\r\n"
         b"Message-ID: <m2@example.org>\r\n"
         b"MIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n"
         b"\r\n"
         b"preamble\r\n"
         b"--XYZ\r\n"
         b"Content-Type: text/plain; charset=utf-8\r\n"
         b"\r\n"
         b"See the attachment.\r\n"
         b"--XYZ\r\n"
         b"Content-Type: application/pdf; name=\"r.pdf\"\r\n"
         b"Content-Transfer-Encoding: base64\r\n"
         b"Content-Disposition: attachment; filename=\"r.pdf\"\r\n"
         b"\r\n"
         b"JVBERi0xLjQK\r\n"
         b"--XYZ\r\n"
         b"Content-Type: message/rfc822\r\n"
         b"\r\n"
         b"Subject: inner\r\n"
         b"From: inner@example.org\r\n"
         b"\r\n"
         b"inner body\r\n"
         b"--XYZ--\r\n")


def test_envelope_bodystructure_and_part_sections(imap):
    r = Raw(imap)
    r.cmd("DELETE Mime")
    r.cmd("CREATE Mime")
    r.cmd(b"APPEND Mime {%d+}\r\n" % len(MULTI) + MULTI)
    # Parsed once at APPEND: the row holds the structure.
    rows = imap.sql("SELECT envelope IS NOT NULL, body_structure LIKE '(%' FROM messages m JOIN folders f "
                    "ON f.id = m.folder_id WHERE f.name = 'Mime'")
    assert rows == [["1", "1"]]
    r.cmd("SELECT Mime")
    out = r.cmd("FETCH 1 (ENVELOPE BODYSTRUCTURE BODY)")
    text = b"".join(out[:-1])
    assert b'"Report with attachment"' in text and b'"<m2@example.org>"' in text
    assert b'"jurgen" "example.org"' in text and b'"alice" "demo.test"' in text
    assert b'"mixed"' in text.lower() or b'"MIXED"' in text
    assert b'"PDF"' in text.upper() and b'"RFC822"' in text.upper()
    out = r.cmd("FETCH 1 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[3.HEADER] BODY.PEEK[3.TEXT] "
                "BODY.PEEK[2]<0.4> BODY.PEEK[9])")
    assert b"See the attachment." in out[1]
    assert out[1].rstrip(b"\r\n").endswith(b"See the attachment.")
    assert out[2].startswith(b"BODY[2.MIME] {") or out[2].startswith(b" BODY[2.MIME] {"), out
    assert b"Content-Type: application/pdf" in out[3] and b"JVBERi0" not in out[3]
    assert b"Subject: inner\r\nFrom: inner@example.org\r\n\r\n" == out[5]
    assert out[7] == b"inner body"   # the CRLF before a boundary belongs to it
    assert out[9] == b"JVBE"
    assert out[10].endswith(b"BODY[9] NIL)")
    # A row stored without its structure gets it at its first FETCH.
    imap.sql("UPDATE messages m JOIN folders f ON f.id = m.folder_id SET m.envelope = NULL, "
             "m.body_structure = NULL, m.body_basic = NULL, m.mime_index = NULL WHERE f.name = 'Mime'")
    out2 = r.cmd("FETCH 1 (ENVELOPE BODYSTRUCTURE BODY)")
    assert b"".join(out2[:-1]) == text
    assert imap.sql("SELECT envelope IS NOT NULL FROM messages m JOIN folders f ON f.id = m.folder_id "
                    "WHERE f.name = 'Mime'") == [["1"]]
    r.close()


def test_store_copy_move_expunge_uidplus(imap):
    m = imaps(imap)
    fresh_folder(m, "T2")
    fresh_folder(m, "T2b")
    for i in range(4):
        assert m.append("T2", None, None, MSG.replace(b"Quarterly", b"Msg%d" % i))[0] == "OK"
    m.select("T2")
    typ, data = m.store("2:3", "+FLAGS", "(\\Deleted)")
    assert typ == "OK" and len(data) == 2 and b"\\Deleted" in data[0]
    typ, data = m.store("1", "+FLAGS.SILENT", "(\\Answered)")
    assert typ == "OK" and data == [None]
    typ, data = m.store("1", "-FLAGS", "(\\Answered)")
    assert b"\\Answered" not in data[0]
    typ, data = m.copy("1:2", "T2b")
    assert typ == "OK"
    assert re.search(rb"COPYUID \d+ 1:2 1:2", data[0]), data
    typ, data = m.copy("1", "Nowhere")
    assert typ == "NO" and b"TRYCREATE" in data[0]
    typ, data = m.uid("MOVE", "4", "T2b")
    assert typ == "OK"
    assert m.untagged_responses.pop("EXPUNGE") == [b"4"]
    assert any(re.search(rb"COPYUID \d+ 4 3", x) for x in m.untagged_responses.pop("OK", [])), data
    typ, data = m.expunge()
    assert typ == "OK" and data == [b"2", b"2"], data   # uid 2 then uid 3 (renumbered)
    typ, data = m.search(None, "ALL")
    assert data == [b"1"]
    # The copies share the body file: one inode, two names.
    files = imap.sql("SELECT m.file FROM messages m JOIN folders f ON f.id = m.folder_id "
                     "WHERE f.name IN ('T2', 'T2b') AND m.size > 0 ORDER BY f.name, m.uid")
    inodes = [os.stat(os.path.join(imap.state_dir, "mail", f[0])).st_ino for f in files]
    assert inodes[0] == inodes[1]
    typ, data = m.status("T2b", "(MESSAGES UIDNEXT)")
    assert b"MESSAGES 3" in data[0] and b"UIDNEXT 4" in data[0]
    m.select("T2b")
    typ, data = m.uid("STORE", "1:*", "+FLAGS", "(\\Deleted)")
    assert typ == "OK"
    r = Raw(imap)
    r.cmd("SELECT T2b")
    out = r.cmd("UID EXPUNGE 1")
    assert out[0] == b"* 1 EXPUNGE" and out[-1].startswith(b"r3 OK")
    out = r.cmd("CLOSE")
    assert out[-1].startswith(b"r4 OK") and not any(b"EXPUNGE" in l for l in out)
    assert r.cmd("STATUS T2b (MESSAGES)")[0] == b'* STATUS "T2b" (MESSAGES 0)'
    r.close()
    m.logout()


def test_append_with_literal_plus_and_quota_used(imap):
    r = Raw(imap)
    r.cmd("DELETE T3")
    r.cmd("CREATE T3")
    before = int(imap.sql("SELECT used_bytes FROM mailboxes WHERE address = 'alice@demo.test'")[0][0])
    body = b"Subject: plus\r\n\r\nno continuation needed\r\n"
    r.n += 1
    r.send(b"p1 APPEND T3 (\\Seen) {%d+}\r\n" % len(body) + body + b"\r\n")
    out = r.until_tagged(b"p1")
    assert not any(l.startswith(b"+") for l in out)
    assert out[-1].startswith(b"p1 OK [APPENDUID")
    after = int(imap.sql("SELECT used_bytes FROM mailboxes WHERE address = 'alice@demo.test'")[0][0])
    assert after == before + len(body)
    # With a synchronizing literal the server asks for the data.
    r.send(b"p2 APPEND T3 {%d}\r\n" % len(body))
    assert r.line().startswith(b"+ ")
    r.send(body + b"\r\n")
    assert r.until_tagged(b"p2")[-1].startswith(b"p2 OK [APPENDUID")
    out = r.cmd("SELECT T3")
    assert b"* 2 EXISTS" in out
    out = r.cmd("FETCH 1:2 (FLAGS BODY.PEEK[TEXT])")
    assert b"no continuation needed\r\n" in out
    r.cmd("STORE 1:* +FLAGS (\\Deleted)")
    r.cmd("EXPUNGE")
    final = int(imap.sql("SELECT used_bytes FROM mailboxes WHERE address = 'alice@demo.test'")[0][0])
    assert final == before
    r.close()


def test_quota_and_overquota(imap):
    m = imaps(imap, "bob@other.test", BOB_PW)
    typ, data = m.getquotaroot("INBOX")
    assert typ == "OK"
    assert data[0] == [b'"INBOX" ""'] and b"STORAGE" in data[1][0] and data[1][0].endswith(b" 4)")
    big = b"Subject: big\r\n\r\n" + b"x" * 5000 + b"\r\n"
    typ, data = m.append("INBOX", None, None, big)
    assert typ == "NO" and b"OVERQUOTA" in data[0]
    assert imap.sql("SELECT used_bytes FROM mailboxes WHERE address = 'bob@other.test'") == [["0"]]
    typ, _ = m.append("INBOX", None, None, MSG)
    assert typ == "OK"
    m.logout()


def test_search_esearch_and_sort(imap):
    m = imaps(imap)
    fresh_folder(m, "T4")
    msgs = [
        (b"From: Zed <zed@example.org>\r\nSubject: Re: apples\r\nDate: Tue, 3 Nov 2026 09:00:00 +0000\r\n\r\nred fruit\r\n", "(\\Seen)"),
        (b"From: Amy <amy@example.org>\r\nSubject: bananas\r\nDate: Sun, 1 Nov 2026 09:00:00 +0000\r\nX-Tag: yellow\r\n\r\nyellow fruit, longer body here\r\n", None),
        (b"From: Bob <bob@example.org>\r\nSubject: cherries\r\nDate: Mon, 2 Nov 2026 09:00:00 +0000\r\n\r\nsmall\r\n", "(\\Flagged)"),
    ]
    for body, flags in msgs:
        assert m.append("T4", flags, imaplib.Time2Internaldate(1780000000), body)[0] == "OK"
    m.select("T4")
    assert m.search(None, "ALL")[1] == [b"1 2 3"]
    assert m.search(None, "UNSEEN")[1] == [b"2 3"]
    assert m.search(None, "FLAGGED")[1] == [b"3"]
    assert m.search(None, "FROM", "amy")[1] == [b"2"]
    assert m.search(None, "BODY", "fruit")[1] == [b"1 2"]
    assert m.search(None, "TEXT", "Bob")[1] == [b"3"]
    assert m.search(None, "HEADER", "X-Tag", "yellow")[1] == [b"2"]
    assert m.search(None, "OR", "SUBJECT", "apples", "SUBJECT", "cherries")[1] == [b"1 3"]
    assert m.search(None, "NOT", "SEEN", "NOT", "FLAGGED")[1] == [b"2"]
    assert m.search(None, "SENTBEFORE", "2-Nov-2026")[1] == [b"2"]
    assert m.search(None, "SENTON", "2-Nov-2026")[1] == [b"3"]
    assert m.search(None, "LARGER", "120")[1] == [b"2"]
    assert m.search(None, "2:*", "UNSEEN")[1] == [b"2 3"]
    assert m.search("UTF-8", "SUBJECT", "bananas")[1] == [b"2"]
    typ, data = m.uid("SEARCH", "UID", "2:3")
    assert data == [b"2 3"]
    typ, data = m.search("KOI8-R", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0]
    r = Raw(imap)
    r.cmd("SELECT T4")
    out = r.cmd("SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN")
    assert out[0] == b'* ESEARCH (TAG "r3") MIN 2 MAX 3 COUNT 2 ALL 2:3', out
    out = r.cmd("UID SEARCH RETURN () ALL")
    assert out[0] == b'* ESEARCH (TAG "r4") UID ALL 1:3', out
    assert r.cmd("SORT (SUBJECT) UTF-8 ALL")[0] == b"* SORT 1 2 3"
    assert r.cmd("SORT (FROM) UTF-8 ALL")[0] == b"* SORT 2 3 1"
    assert r.cmd("SORT (DATE) UTF-8 ALL")[0] == b"* SORT 2 3 1"
    assert r.cmd("SORT (REVERSE SIZE) UTF-8 ALL")[0] == b"* SORT 2 1 3"
    assert r.cmd("UID SORT (ARRIVAL) UTF-8 UNSEEN")[0] == b"* SORT 2 3"
    r.close()
    m.logout()


def search_message(hdrs, body):
    return ("".join("%s: %s\r\n" % h for h in hdrs) + "\r\n" + body).encode()


# Four messages built by APPEND, with what each SEARCH key looks at chosen:
# (flags, internal date, headers, body). UIDs 1 and 2 are claimed as \Recent
# by an earlier session, 3 and 4 are \Recent in the session that searches.
SEARCH_MSGS = [
    ("(\\Answered \\Seen $Work)", '"01-Jan-2026 10:00:00 +0000"',
     [("From", "=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.org>"),
      ("To", "Ann <ann@example.org>"), ("Cc", "carl@example.org"),
      ("Subject", "=?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?="),
      ("Date", "Wed, 31 Dec 2025 22:00:00 -0500")], "alpha\r\n"),
    ("(\\Deleted $Work $Later)", '"15-Jan-2026 23:30:00 +0000"',
     [("From", "bob@example.org"), ("To", "bob@example.com"), ("Bcc", "secret-list@example.net"),
      ("Subject", "Re: Quarterly plan"), ("Date", "Thu, 15 Jan 2026 08:00:00 +0100")],
     "bravo bravo\r\n" * 200),
    ("(\\Draft \\Flagged \\Seen)", '"01-Feb-2026 00:10:00 +0000"',
     [("From", "dora@example.org"), ("To", "ann@example.org, Zed <zed@example.org>"),
      ("Cc", "=?ISO-8859-1?Q?Dor=E9?= <dora@example.org>"), ("Subject", "Draft notes"),
      ("Date", "Tue, 10 Feb 2026 09:00:00 +0000")], "charlie\r\n"),
    (None, '"10-Feb-2026 12:00:00 +0000"',
     [("From", "=?iso-8859-1?q?Andr=E9?= <andre@example.org>"), ("To", "carl@example.org"),
      ("Subject", "=?ISO-8859-1?Q?Caf=E9?= menu"), ("Date", "Sun, 1 Mar 2026 23:59:00 +1400")],
     "delta\r\n"),
]

# Every RFC 3501 search key (6.4.4), alone and combined: criteria -> UIDs.
SEARCH_TABLE = [
    (["ALL"], "1 2 3 4"),
    (["ANSWERED"], "1"), (["UNANSWERED"], "2 3 4"),
    (["DELETED"], "2"), (["UNDELETED"], "1 3 4"),
    (["DRAFT"], "3"), (["UNDRAFT"], "1 2 4"),
    (["FLAGGED"], "3"), (["UNFLAGGED"], "1 2 4"),
    (["SEEN"], "1 3"), (["UNSEEN"], "2 4"),
    (["RECENT"], "3 4"), (["NEW"], "4"), (["OLD"], "1 2"),
    (["KEYWORD", "$Work"], "1 2"), (["KEYWORD", "$Later"], "2"), (["KEYWORD", "$None"], ""),
    (["UNKEYWORD", "$Work"], "3 4"), (["UNKEYWORD", "$None"], "1 2 3 4"),
    (["BCC", "secret-list"], "2"), (["CC", "carl"], "1"), (["CC", "dora@"], "3"),
    (["TO", "ann@example.org"], "1 3"), (["TO", "zed"], "3"), (["TO", "example.com"], "2"),
    (["FROM", "example.org"], "1 2 3 4"), (["FROM", "bob"], "2"),
    (["SUBJECT", "quarterly"], "2"), (["SUBJECT", "menu"], "4"),
    (["HEADER", "Cc", '""'], "1 3"), (["HEADER", "X-Missing", '""'], ""),
    (["HEADER", "Subject", "notes"], "3"),
    (["BODY", "bravo"], "2"), (["BODY", "example.org"], ""),
    (["TEXT", "charlie"], "3"), (["TEXT", "secret-list"], "2"),
    (["BEFORE", "15-Jan-2026"], "1"), (["ON", "15-Jan-2026"], "2"),
    (["SINCE", "01-Feb-2026"], "3 4"), (["SINCE", "15-Jan-2026"], "2 3 4"),
    (["SENTBEFORE", "1-Jan-2026"], "1"), (["SENTON", "15-Jan-2026"], "2"),
    (["SENTON", "1-Mar-2026"], "4"), (["SENTSINCE", "10-Feb-2026"], "3 4"),
    (["SENTSINCE", "1-Jan-2026"], "2 3 4"),
    (["LARGER", "1000"], "2"), (["SMALLER", "1000"], "1 3 4"),
    (["UID", "2:3"], "2 3"), (["UID", "3:*"], "3 4"), (["1,3"], "1 3"), (["2:*"], "2 3 4"),
    (["*"], "4"),
    (["NOT", "DELETED"], "1 3 4"), (["OR", "ANSWERED", "DRAFT"], "1 3"),
    (["OR", "(SEEN", "FLAGGED)", "NEW"], "3 4"), (["NOT", "OR", "SEEN", "DELETED"], "4"),
    (["(SINCE", "15-Jan-2026", "UNDELETED)"], "3 4"), (["1:3", "NOT", "SEEN"], "2"),
    (["OR", "KEYWORD", "$Later", "TO", "carl"], "2 4"),
    (["NOT", "(OR", "BEFORE", "15-Jan-2026", "LARGER", "1000)"], "3 4"),
    (["UNSEEN", "UNDELETED", "SMALLER", "1000", "SENTSINCE", "1-Jan-2026"], "4"),
]


def test_search_every_rfc3501_key(imap):
    m = imaps(imap)
    fresh_folder(m, "Keys")
    for i, (flags, date, hdrs, body) in enumerate(SEARCH_MSGS):
        if i == 2:
            # An earlier session claims \Recent for what is there so far.
            assert m.select("Keys")[0] == "OK"
            assert m.unselect()[0] == "OK"
        typ, data = m.append("Keys", flags, date, search_message(hdrs, body))
        assert typ == "OK", data
    m.logout()
    m = imaps(imap)
    assert m.select("Keys")[0] == "OK"
    sizes = [int(x) for x in re.findall(rb"RFC822.SIZE (\d+)", b" ".join(
        d for d in m.fetch("1:4", "(RFC822.SIZE)")[1] if isinstance(d, bytes)))]
    assert sizes[1] > 1000 and max(sizes[0], sizes[2], sizes[3]) < 1000, sizes
    for criteria, want in SEARCH_TABLE:
        typ, data = m.uid("SEARCH", *criteria)
        assert typ == "OK", (criteria, data)
        assert data[0].decode() == want, (criteria, data)
        # The same by sequence number (here equal to the UIDs).
        assert m.search(None, *criteria)[1][0].decode() == want, criteria
    # Header keys compare decoded RFC 2047 words (CHARSET UTF-8 literal).
    for key, text, want in [("FROM", "J\u00fcrgen", "1"), ("FROM", "Andr\u00e9", "4"),
                            ("CC", "Dor\u00e9", "3"), ("SUBJECT", "K\u00f6ln", "1"),
                            ("SUBJECT", "Gr\u00fc\u00dfe aus", "1"), ("SUBJECT", "Caf\u00e9 menu", "4"),
                            ("HEADER Subject", "Caf\u00e9", "4")]:
        m.literal = text.encode()
        typ, data = m.uid("SEARCH", "CHARSET", "UTF-8", *key.split())
        assert typ == "OK" and data[0].decode() == want, (key, text, data)
    m.literal = "Caf\u00e9".encode()
    typ, data = m.uid("SEARCH", "CHARSET", "UTF-8", "UNSEEN", "OR", "DELETED", "SUBJECT")
    assert data[0].decode() == "2 4", data
    # SORT's base subject is taken from the decoded value (RFC 5256):
    # "caf\u00e9 menu", "draft notes", "gr\u00fc\u00dfe aus k\u00f6ln", "quarterly plan".
    typ, data = m.sort("(SUBJECT)", "UTF-8", "ALL")
    assert data == [b"4 3 1 2"], data
    typ, data = m.sort("(REVERSE SUBJECT)", "UTF-8", "UNDELETED")
    assert data == [b"1 3 4"], data
    m.logout()


def test_condstore(imap):
    r = Raw(imap)
    r.cmd("DELETE T5")
    r.cmd("CREATE T5")
    r.cmd("APPEND T5 {%d+}\r\n" % len(MSG) + MSG.decode())
    out = r.cmd("SELECT T5 (CONDSTORE)")
    hms = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"\n".join(out)).group(1))
    out = r.cmd("STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)" % hms)
    assert re.match(rb"\* 1 FETCH \(FLAGS \(\\Flagged( \\Recent)?\) MODSEQ \((\d+)\)\)", out[0]), out
    new = int(re.search(rb"MODSEQ \((\d+)\)", out[0]).group(1))
    assert new > hms
    out = r.cmd("STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % hms)
    assert out[-1].split(b" ", 1)[1].startswith(b"OK [MODIFIED 1]"), out
    out = r.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % hms)
    assert b"MODSEQ (%d)" % new in out[0]
    out = r.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % new)
    assert len(out) == 1 and out[0].split()[1] == b"OK"
    out = r.cmd("SEARCH MODSEQ %d" % new)
    assert out[0] == b"* SEARCH 1 (MODSEQ %d)" % new
    out = r.cmd("STATUS T5 (HIGHESTMODSEQ)")
    assert out[0] == b'* STATUS "T5" (HIGHESTMODSEQ %d)' % new
    r.close()



def test_large_fetch_comes_in_batches_in_order(imap):
    r = Raw(imap)
    r.cmd("DELETE Big")
    r.cmd("CREATE Big")
    body = MSG + b"x" * 20000 + b"\r\n"
    # Pipelined APPENDs with LITERAL+: no round trip per message.
    r.send(b"".join(b"b%d APPEND Big {%d+}\r\n%s\r\n" % (i, len(body), body) for i in range(130)))
    r.until_tagged(b"b129")
    r.cmd("SELECT Big")
    # A client that does not read for a while: the batches wait for it.
    r.n += 1
    r.send(b"r%d FETCH 1:* (UID BODY.PEEK[])\r\n" % r.n)
    time.sleep(1.5)
    out = r.until_tagged(b"r%d" % r.n)
    heads = [l for l in out if l.startswith(b"* ")]
    assert len(heads) == 130
    assert all(h.startswith(b"* %d FETCH (UID %d BODY[] {%d}" % (i + 1, i + 1, len(body))) for i, h in enumerate(heads))
    assert out.count(body) == 130
    assert out[-1].split()[1] == b"OK"
    # Reading the text (not peeking) sets \Seen on every one of them.
    r.cmd("FETCH 1:* BODY[TEXT]")
    assert r.cmd("SEARCH UNSEEN")[0] == b"* SEARCH"
    r.close()


def test_expunge_renumbering_across_gaps(imap):
    r = Raw(imap)
    r.cmd("DELETE Gaps")
    r.cmd("CREATE Gaps")
    r.send(b"".join(b"g%d APPEND Gaps {%d+}\r\n%s\r\n" % (i, len(MSG), MSG) for i in range(10)))
    r.until_tagged(b"g9")
    r.cmd("SELECT Gaps")
    r.cmd("UID STORE 2,5,6,9 +FLAGS.SILENT (\\Deleted)")
    out = r.cmd("EXPUNGE")
    assert [l for l in out if l.endswith(b"EXPUNGE")] == [b"* 2 EXPUNGE", b"* 4 EXPUNGE", b"* 4 EXPUNGE",
                                                         b"* 6 EXPUNGE"], out
    out = r.cmd("FETCH 1:* (UID)")
    assert [l for l in out if l.startswith(b"* ")] == [b"* %d FETCH (UID %d)" % (i + 1, u) for i, u in
                                                      enumerate([1, 3, 4, 7, 8, 10])]
    r.cmd("APPEND Gaps {%d+}\r\n" % len(MSG) + MSG.decode())
    assert r.cmd("UID SEARCH UID 4:11")[0] == b"* SEARCH 4 7 8 10 11"
    assert r.cmd("UID SEARCH 4:11")[0] == b"* SEARCH 7 8 10 11"      # a bare set is sequence numbers
    assert r.cmd("SEARCH 3:5")[0] == b"* SEARCH 3 4 5"
    r.cmd("UID STORE 1,11 +FLAGS.SILENT (\\Deleted)")
    out = r.cmd("EXPUNGE")
    assert [l for l in out if l.endswith(b"EXPUNGE")] == [b"* 1 EXPUNGE", b"* 6 EXPUNGE"], out
    out = r.cmd("FETCH 1:* (UID)")
    assert [l for l in out if l.startswith(b"* ")] == [b"* %d FETCH (UID %d)" % (i + 1, u) for i, u in
                                                      enumerate([3, 4, 7, 8, 10])]
    r.close()

# Sessions see each other.

def test_two_sessions_see_each_others_changes(imap):
    a = Raw(imap)
    b = Raw(imap)
    a.cmd("DELETE T6")
    a.cmd("CREATE T6")
    for i in range(3):
        a.cmd("APPEND T6 {%d+}\r\n" % len(MSG) + MSG.decode())
    a.cmd("SELECT T6")
    b.cmd("SELECT T6")
    b.cmd("STORE 2 +FLAGS (\\Flagged)")
    out = a.cmd("NOOP")
    assert any(l.startswith(b"* 2 FETCH (UID 2 FLAGS (\\Flagged") for l in out), out
    b.cmd("STORE 1 +FLAGS (\\Deleted)")
    b.cmd("EXPUNGE")
    b.cmd("APPEND T6 {%d+}\r\n" % len(MSG) + MSG.decode())
    # No EXPUNGE while answering FETCH; it comes at the next NOOP.
    out = a.cmd("FETCH 2 (UID)")
    assert not any(b"EXPUNGE" in l for l in out) and out[0] == b"* 2 FETCH (UID 2)"
    out = a.cmd("NOOP")
    assert b"* 1 EXPUNGE" in out and b"* 3 EXISTS" in out, out
    out = a.cmd("FETCH 1:* (UID)")
    assert [l for l in out if l.startswith(b"*")] == [b"* 1 FETCH (UID 2)", b"* 2 FETCH (UID 3)",
                                                      b"* 3 FETCH (UID 4)"]
    a.close()
    b.close()


def test_idle_sees_mail_delivered_by_smtp(imap):
    a = Raw(imap)
    out = a.cmd("SELECT INBOX")
    exists = int(re.search(rb"\* (\d+) EXISTS", b"\n".join(out)).group(1))
    a.send(b"i1 IDLE\r\n")
    assert a.line().startswith(b"+ ")
    with smtplib.SMTP("127.0.0.1", imap.port(2525), timeout=15) as s:
        s.sendmail("someone@example.org", ["alice@demo.test"],
                   b"From: someone@example.org\r\nSubject: idle test\r\n\r\nwake up\r\n")
    a.s.settimeout(20)
    line = a.line()
    while not line.endswith(b"EXISTS"):
        line = a.line()
    assert line == b"* %d EXISTS" % (exists + 1)
    a.send(b"DONE\r\n")
    out = a.until_tagged(b"i1")
    assert out[-1] == b"i1 OK IDLE terminated"
    out = a.cmd("FETCH %d (BODY.PEEK[HEADER.FIELDS (SUBJECT)] ENVELOPE)" % (exists + 1))
    assert b"Subject: idle test\r\n\r\n" in out
    assert b'"idle test"' in b"".join(out)
    # Delivery parsed it once and kept the structure in the row.
    assert wait_until(lambda: imap.sql(
        "SELECT COUNT(*) FROM messages m JOIN folders f ON f.id = m.folder_id JOIN mailboxes x "
        "ON x.id = f.mailbox_id WHERE x.address = 'alice@demo.test' AND f.name = 'INBOX' "
        "AND m.envelope IS NULL") == [["0"]])
    a.close()



def test_idle_sessions_each_see_only_their_folder(imap):
    w = Raw(imap)
    w.cmd("DELETE Quiet")
    w.cmd("CREATE Quiet")
    watchers = []
    for folder in ("INBOX", "INBOX", "INBOX", "Quiet"):
        r = Raw(imap)
        out = r.cmd("SELECT " + folder)
        n = int(re.search(rb"\* (\d+) EXISTS", b"\n".join(out)).group(1))
        r.send(b"w IDLE\r\n")
        assert r.line().startswith(b"+ ")
        watchers.append((r, n))
    time.sleep(1.5)
    w.cmd("APPEND INBOX {%d+}\r\n" % len(MSG) + MSG.decode())
    w.cmd("SELECT INBOX")
    w.cmd("STORE 1 +FLAGS (\\Flagged)")
    for r, n in watchers[:3]:
        r.s.settimeout(10)
        got = [r.line(), r.line()]
        assert b"* %d EXISTS" % (n + 1) in got, got
    # The watcher of the other folder hears nothing.
    quiet, _ = watchers[3]
    quiet.s.settimeout(2.5)
    with pytest.raises((socket.timeout, TimeoutError)):
        quiet.line()
    quiet.s.settimeout(10)
    for r, _ in watchers:
        r.send(b"DONE\r\n")
        assert r.until_tagged(b"w")[-1] == b"w OK IDLE terminated"
        r.close()
    w.close()

# Tenants never meet.

def test_tenant_isolation(imap):
    alice = imaps(imap)
    fresh_folder(alice, "Secret")
    assert alice.append("Secret", None, None, MSG)[0] == "OK"
    bob = imaps(imap, "bob@other.test", BOB_PW)
    typ, data = bob.list()
    assert not [d for d in data if b"Secret" in d]
    typ, data = bob.select("Secret")
    assert typ == "NO"
    typ, data = bob.status("Secret", "(MESSAGES)")
    assert typ == "NO"
    typ, data = bob.select("INBOX")
    n = int(data[0])
    typ, data = bob.search(None, "SUBJECT", "Quarterly")
    # Bob's own INBOX only: the message bob appended in the quota test.
    assert data[0].split() == [b"1"] and n == 1
    typ, data = bob.copy("1", "Secret")
    assert typ == "NO" and b"TRYCREATE" in data[0]
    alice.logout()
    bob.logout()



def test_tenant_access_rules_apply_at_login(imap):
    apply_text(imap, """\
apiVersion: mailnode/v1
kind: Tenant
metadata: {name: other}
spec: {access: {mode: deny-listed, addresses: [127.0.0.21]}}
""")
    try:
        r = Raw(imap, login=False, source="127.0.0.21")
        out = r.cmd('LOGIN bob@other.test "%s"' % BOB_PW)
        assert out[0].split(b" ", 1)[1].startswith(b"NO [NOPERM]"), out
        assert r.line().startswith(b"* BYE")
        r.close()
        # Another tenant's user from that address is welcome.
        r = Raw(imap, source="127.0.0.21")
        assert r.cmd("NOOP")[-1].split()[1] == b"OK"
        r.close()
        sessions = imap.ctl_yaml("sessions", "--service", "imaps")[0]["items"]
        assert all(s.get("tenant") != "other" or not s["peer"].startswith("127.0.0.21:") for s in sessions)
    finally:
        apply_text(imap, """\
apiVersion: mailnode/v1
kind: Tenant
metadata: {name: other}
spec: {}
""")

def test_suspended_tenant_cannot_log_in(imap):
    apply_text(imap, "apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: other}\n"
                     "spec: {state: suspended}\n")
    try:
        m = imaps(imap, user=None)
        with pytest.raises(imaplib.IMAP4.error, match=r"\[CONTACTADMIN\]"):
            m.login("bob@other.test", BOB_PW)
        m.logout()
        # The other tenant's users are not touched.
        imaps(imap).logout()
    finally:
        apply_text(imap, "apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: other}\nspec: {}\n")
    imaps(imap, "bob@other.test", BOB_PW).logout()


def test_tenant_connection_limit_at_login(imap):
    apply_text(imap, "apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: other}\n"
                     "spec: {connections: {maxConcurrent: 1}}\n")
    try:
        first = Raw(imap, user="bob@other.test", pw=BOB_PW, source="127.0.0.23")
        r = Raw(imap, login=False, source="127.0.0.23")
        out = r.cmd('LOGIN bob@other.test "%s"' % BOB_PW)
        assert out[-1].split(b" ", 1)[1].startswith(b"NO [LIMIT] Too many connections"), out
        r.close()
        # Other addresses and other tenants have their own count.
        Raw(imap, user="bob@other.test", pw=BOB_PW, source="127.0.0.25").close()
        Raw(imap, source="127.0.0.23").close()
        first.close()
        # With the first session gone there is room again.
        assert wait_until(lambda: not any(
            s.get("tenant") == "other" and s["peer"].startswith("127.0.0.23:")
            for s in imap.ctl_yaml("sessions", "--service", "imaps")[0]["items"]))
        Raw(imap, user="bob@other.test", pw=BOB_PW, source="127.0.0.23").close()
    finally:
        apply_text(imap, "apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: other}\nspec: {}\n")


# Error paths.

def test_syntax_state_and_unknown_commands(imap):
    r = Raw(imap, login=False)
    assert r.cmd("FROB")[-1].startswith(b"r1 BAD")
    assert r.cmd("SELECT INBOX")[-1].startswith(b"r2 BAD")          # not logged in
    r.send(b"\r\n")
    assert r.line().startswith(b"* BAD")
    r.cmd('LOGIN alice@demo.test "%s"' % ALICE_PW)
    assert r.cmd("FETCH 1 FLAGS")[-1].startswith(b"r4 BAD")          # nothing selected
    r.cmd("SELECT INBOX")
    assert r.cmd("FETCH 1 (FLAGS")[-1].startswith(b"r6 BAD")
    assert r.cmd("FETCH 0 FLAGS")[-1].startswith(b"r7 BAD")
    assert r.cmd("STORE 1 +FLAGS (\\Recent)")[-1].startswith(b"r8 BAD")
    assert r.cmd("SEARCH FROBNICATE")[-1].startswith(b"r9 BAD")
    assert r.cmd("SEARCH " + "(" * 40 + "ALL" + ")" * 40)[-1].startswith(b"r10 BAD")
    assert r.cmd('LIST "" "*" garbage')[-1].startswith(b"r11 BAD")
    assert r.cmd("UID FROB 1")[-1].startswith(b"r12 BAD")
    assert r.cmd("LOGIN a b")[-1].startswith(b"r13 BAD")             # already logged in
    assert r.cmd("NOOP")[-1].startswith(b"r14 OK")
    r.close()


def test_overlong_line_and_literals(imap):
    r = Raw(imap)
    r.send(b"x1 NOOP " + b"a" * (70 * 1024) + b"\r\n")
    assert r.line() == b"* BAD [TOOBIG] Command line too long"
    assert r.cmd("NOOP")[-1].startswith(b"r2 OK")
    # A synchronizing literal over the limit is refused before it is sent.
    r.send(b"x2 LOGIN {999999}\r\n")
    assert r.line() == b"x2 NO [TOOBIG] Literal too large"
    # An APPEND over the message limit, likewise.
    r.send(b"x3 APPEND INBOX {999999999}\r\n")
    assert r.line() == b"x3 NO [TOOBIG] Literal too large"
    # A non-synchronizing one is read and thrown away, then refused.
    r.send(b"x4 CREATE {70000+}\r\n" + b"b" * 70000 + b"\r\n")
    assert r.line() == b"x4 NO [TOOBIG] Command too large"
    assert r.cmd("NOOP")[-1].startswith(b"r3 OK")
    # Literals that are each small add up: a search of 20 x 60 KB is refused.
    chunk = b"c" * 60000
    r.send(b"x5 SEARCH" + b"".join(b" OR BODY {60000+}\r\n" + chunk for _ in range(20)) + b" ALL\r\n")
    assert r.line() == b"x5 NO [TOOBIG] Command too large"
    assert r.cmd("NOOP")[-1].startswith(b"r4 OK")
    r.close()


def test_too_many_errors_end_the_session(imap):
    r = Raw(imap)
    # Pipelined: the session ends at the 20th error; nothing after is read.
    r.send(b"".join(b"e%d BOGUS\r\n" % i for i in range(30)))
    lines = []
    with pytest.raises((EOFError, OSError)):
        while True:
            lines.append(r.line())
    assert lines[:20] == [b"e%d BAD unknown command" % i for i in range(20)], lines
    assert lines[20:] == [b"* BYE Too many errors"], lines
    r.close()


# curl.

def curl(*args):
    return subprocess.run(["curl", "-sS", "-k", "--max-time", "20"] + list(args),
                           capture_output=True, text=True)


def test_curl_imaps_and_imap_starttls(imap):
    m = imaps(imap)
    fresh_folder(m, "Curl")
    assert m.append("Curl", None, None, MSG)[0] == "OK"
    m.logout()
    user = "alice@demo.test:" + ALICE_PW
    r = curl("--user", user, "imaps://127.0.0.1:%d/" % imap.port(2993))
    assert r.returncode == 0, r.stderr
    assert '"Curl"' in r.stdout and '"INBOX"' in r.stdout
    r = curl("--user", user, "imaps://127.0.0.1:%d/Curl;UID=1" % imap.port(2993))
    assert r.returncode == 0, r.stderr
    assert "Blue widgets sold well." in r.stdout and "Subject: Quarterly numbers" in r.stdout
    r = curl("--ssl-reqd", "--user", user, "imap://127.0.0.1:%d/Curl;UID=1;SECTION=HEADER" % imap.port(2143))
    assert r.returncode == 0, r.stderr
    assert "Subject: Quarterly numbers" in r.stdout and "Blue widgets" not in r.stdout
    r = curl("--ssl-reqd", "--user", user, "-X", "SEARCH SUBJECT Quarterly",
             "imap://127.0.0.1:%d/Curl" % imap.port(2143))
    assert r.returncode == 0 and "* SEARCH 1" in r.stdout, r.stdout + r.stderr
    # Without TLS curl may not log in (LOGINDISABLED).
    r = curl("--user", user, "imap://127.0.0.1:%d/" % imap.port(2143))
    assert r.returncode != 0


def test_rename_inbox_moves_its_mail_and_deleted_folder_ends_selection(imap):
    r = Raw(imap, user="bob@other.test", pw=BOB_PW)
    r.cmd("DELETE Old")
    out = r.cmd("STATUS INBOX (MESSAGES)")
    n = int(re.search(rb"MESSAGES (\d+)", out[0]).group(1))
    assert n >= 1
    assert r.cmd("RENAME INBOX Old")[-1].split()[1] == b"OK"
    assert r.cmd("STATUS INBOX (MESSAGES)")[0] == b'* STATUS "INBOX" (MESSAGES 0)'
    out = r.cmd("STATUS Old (MESSAGES UIDNEXT)")
    assert out[0] == b'* STATUS "Old" (MESSAGES %d UIDNEXT %d)' % (n, n + 1)
    # The quota did not move: the bytes are still in the mailbox.
    used = int(imap.sql("SELECT used_bytes FROM mailboxes WHERE address = 'bob@other.test'")[0][0])
    assert used == len(MSG) * n
    # Another session deletes the folder this one has selected.
    other = Raw(imap, user="bob@other.test", pw=BOB_PW)
    r.cmd("SELECT Old")
    assert other.cmd("DELETE Old")[-1].split()[1] == b"OK"
    out = r.cmd("NOOP")
    assert out[-1].startswith(b"* BYE")
    # Deleting one's own selected folder just closes it.
    me = Raw(imap, user="bob@other.test", pw=BOB_PW)
    me.cmd("CREATE Mine")
    me.cmd("SELECT Mine")
    assert me.cmd("DELETE Mine")[-1].split()[1] == b"OK"
    assert me.cmd("FETCH 1 FLAGS")[-1].split()[1] == b"BAD"     # nothing selected now
    assert me.cmd("NOOP")[-1].split()[1] == b"OK"
    me.close()
    assert int(imap.sql("SELECT used_bytes FROM mailboxes WHERE address = 'bob@other.test'")[0][0]) == 0
    other.close()
    r.close()


def test_fetchmail_batch_fetch(imap, tmp_path):
    m = imaps(imap)
    fresh_folder(m, "Fetch")
    for i in range(2):
        assert m.append("Fetch", None, None, MSG.replace(b"Quarterly", b"Fetched%d" % i))[0] == "OK"
    m.logout()
    out = tmp_path / "mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text('set no syslog\npoll 127.0.0.1 service %d protocol IMAP auth password\n'
                  '  user "alice@demo.test" password "%s" folder "Fetch"\n'
                  '  ssl no sslcertck keep\n'
                  '  mda "/bin/sh -c \'cat >> %s\'"\n' % (imap.port(2993), ALICE_PW, out))
    rc.chmod(0o600)
    r = subprocess.run(["fetchmail", "-f", str(rc), "--pidfile", str(tmp_path / "pid"), "-v"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path)))
    assert r.returncode == 0, r.stdout + r.stderr
    text = out.read_text()
    assert "Subject: Fetched0 numbers" in text and "Subject: Fetched1 numbers" in text
    assert text.count("Blue widgets sold well.") == 2
    # fetchmail marks what it fetched as seen; the messages stay (keep).
    m = imaps(imap)
    m.select("Fetch")
    assert m.search(None, "SEEN")[1] == [b"1 2"]
    m.logout()

def test_database_outage_is_a_temporary_no_then_recovers(imap):
    """Last in the module: it takes the database away."""
    import signal
    r = Raw(imap)
    r.cmd("SELECT INBOX")
    pids = imap.mariadb_pids()
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    seen = []
    deadline = time.time() + 10
    while time.time() < deadline:
        out = r.cmd("STATUS INBOX (MESSAGES)")
        seen.append(out[-1])
        if b"[UNAVAILABLE]" in out[-1]:
            break
    assert any(l.split(b" ", 1)[1].startswith(b"NO [UNAVAILABLE]") for l in seen), seen
    # The session stays; once the node has restarted the database it works again.
    assert wait_until(lambda: r.cmd("STATUS INBOX (MESSAGES)")[-1].split()[1] == b"OK", timeout=90, step=0.5)
    out = r.cmd("FETCH 1:* (UID)")
    assert out[-1].split()[1] == b"OK"
    r.close()


