"""Two nodes sharing one database and one mail root (docs/architecture.md,
"Several nodes"): node A with its embedded MariaDB, node B reaching it by
DSN, both with --mail-root on another filesystem than their spools. An IMAP
session on B sees what A's IMAP sessions and A's SMTP delivery do."""
import imaplib
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import tempfile
import yaml

import pytest

from conftest import MAILNODECTL, TOP, Node, free_offset, wait_until

PW = "multi-" + os.urandom(6).hex()


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


LISTENERS = ["smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps", "http", "https",
             "admin", "ldap"]


def login(port, host="127.0.0.1"):
    m = imaplib.IMAP4_SSL(host, port, ssl_context=tls_ctx(), timeout=30)
    assert m.login("alice@demo.test", PW)[0] == "OK"
    return m


@pytest.fixture
def shared_root():
    # tmpfs, while the state directories (and spools) are under /tmp: a link
    # from the spool into the mail root fails with EXDEV there.
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    d = tempfile.mkdtemp(prefix="mn-mailroot-", dir=base)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def lines_until(sock_file, pred):
    while True:
        line = sock_file.readline()
        assert line, "connection closed"
        if pred(line):
            return line


def test_second_node_sees_changes_made_on_the_first(fresh_state, tmp_path, shared_root):
    a = Node(fresh_state, free_offset(), extra=["--mail-root", shared_root]).start()
    b = None
    try:
        a.ctl("apply", "-f", os.path.join(TOP, "docs", "examples", "demo.yaml"))
        r = subprocess.run([MAILNODECTL, "--state-dir", a.state_dir, "passwd", "alice@demo.test"],
                           input=PW + "\n", capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        # SMTP delivery on A puts the body under the shared root (a copy when
        # the spool is on another filesystem) before B exists, so only A's
        # runner sees it (the queue is not shared between nodes yet).
        with smtplib.SMTP("127.0.0.1", a.port(2525), timeout=15) as s:
            s.sendmail("someone@example.org", ["alice@demo.test"],
                       b"From: someone@example.org\r\nSubject: by smtp\r\n\r\ndelivered on A\r\n")
        q = ("SELECT m.file FROM messages m JOIN folders f ON f.id = m.folder_id JOIN mailboxes x "
             "ON x.id = f.mailbox_id WHERE x.address = 'alice@demo.test' AND f.name = 'INBOX'")
        assert wait_until(lambda: len(a.sql(q)) == 1, timeout=30), a.log_text()[-3000:]
        body = os.path.join(shared_root, a.sql(q)[0][0])
        assert open(body, "rb").read().endswith(b"delivered on A\r\n")
        assert not os.path.exists(os.path.join(fresh_state, "mail"))
        if os.stat(body).st_dev != os.stat(fresh_state).st_dev:
            assert os.stat(body).st_nlink == 1      # copied, not linked

        # Service settings live in the shared database, so B would bind A's
        # addresses; on one test host B gets 127.0.0.2 (the same ports). A
        # keeps its listeners: without restartOnChange a new bind waits for
        # the next start.
        docs = [{"apiVersion": "mailnode/v1", "kind": "Service", "metadata": {"name": n},
                 "spec": {"bind": ["127.0.0.2"], "restartOnChange": False}} for n in LISTENERS]
        path = str(tmp_path / "bind.yaml")
        with open(path, "w") as f:
            yaml.safe_dump_all(docs, f)
        a.ctl("apply", "-f", path)
        imaps_port = a.port(2993)
        login(imaps_port).logout()      # A still serves where it did
        sock = os.path.join(fresh_state, "run", "mariadb.sock")
        b = Node(str(tmp_path / "b"), free_offset(), database="mysql://root@localhost/mailnode?socket=" + sock,
                 extra=["--mail-root", shared_root]).start()
        assert b.ctl_yaml("status")[0]["node"]["database"]["mode"] == "external"

        mb = login(imaps_port, "127.0.0.2")
        typ, data = mb.select("INBOX")
        assert typ == "OK" and data == [b"1"]
        typ, data = mb.fetch("1", "(BODY.PEEK[TEXT])")
        assert data[0][1] == b"delivered on A\r\n"

        # APPEND on A: B's NOOP reports it, and B reads its body.
        ma = login(imaps_port)
        msg = b"From: a@example.org\r\nSubject: appended on A\r\n\r\nhello from node A\r\n"
        typ, data = ma.append("INBOX", None, None, msg)
        assert typ == "OK", data
        uid = int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))

        def exists():
            mb.noop()
            return mb.untagged_responses.get("EXISTS", [None])[-1]
        assert wait_until(lambda: exists() == b"2", timeout=15)
        typ, data = mb.uid("FETCH", str(uid), "(BODY.PEEK[])")
        assert data[0][1] == msg

        # A flag set on A shows up on B as an unsolicited FETCH.
        assert ma.select("INBOX")[0] == "OK"
        assert ma.uid("STORE", str(uid), "+FLAGS", "(\\Flagged)")[0] == "OK"

        def flagged():
            mb.noop()
            return any(b"\\Flagged" in x for x in mb.untagged_responses.get("FETCH", []) if x)
        assert wait_until(flagged, timeout=15)
        mb.untagged_responses.pop("FETCH", None)
        assert mb.uid("SEARCH", "FLAGGED")[1] == [str(uid).encode()]

        # An EXPUNGE on A reaches B while B is in IDLE.
        tag = mb._new_tag()
        mb.send(tag + b" IDLE\r\n")
        assert mb.readline().startswith(b"+ ")
        assert ma.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert ma.expunge()[0] == "OK"
        mb.sock.settimeout(20)
        assert lines_until(mb.file, lambda l: l.endswith(b"EXPUNGE\r\n")) == b"* 1 EXPUNGE\r\n"
        mb.send(b"DONE\r\n")
        assert lines_until(mb.file, lambda l: l.startswith(tag)).startswith(tag + b" OK")
        typ, data = mb.fetch("1", "(UID)")
        assert data == [b"1 (UID %d)" % uid]
        ma.logout()
        mb.logout()

        # With both spool services running, mail accepted on either node is
        # delivered by that node alone (its spool holds the file): at once,
        # exactly once, and neither node ever takes the other's.
        subjects = []
        for host in ("127.0.0.1", "127.0.0.2"):
            with smtplib.SMTP(host, a.port(2525), timeout=15) as s:   # B: the same ports
                for i in range(5):
                    subj = "both nodes %s %d" % (host, i)
                    subjects.append(subj)
                    s.sendmail("someone@example.org", ["alice@demo.test"],
                               ("From: someone@example.org\r\nSubject: %s\r\n\r\nx\r\n" % subj).encode())
        assert wait_until(lambda: a.sql("SELECT COUNT(*) FROM queue_messages") == [["0"]], timeout=30), \
            (a.sql("SELECT m.qid, m.spool, r.state, r.attempts, r.last_error, r.next_attempt, NOW() FROM queue_messages m JOIN queue_recipients r ON r.message_id = m.id"), a.log_text()[-2500:], b.log_text()[-2500:])
        files = [f for (f,) in a.sql(q)]
        got = []
        for f in files:
            m = re.search(rb"^Subject: (both nodes [^\r]*)\r$", open(os.path.join(shared_root, f), "rb").read(),
                          re.M)
            if m:
                got.append(m.group(1).decode())
        assert sorted(got) == sorted(subjects)
        for node in (a, b):
            assert "deferred" not in node.log_text() and "message file is missing" not in node.log_text()
        assert b.stop() == 0
        b = None
    finally:
        if b is not None:
            b.stop()
        assert a.stop() == 0
