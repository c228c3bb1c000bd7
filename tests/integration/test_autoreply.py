"""Autoreplies (Mailbox spec.autoreply) by RFC 3834: mail from outside to a
mailbox with an autoreply on gets one reply, with the null reverse-path,
to its envelope sender, out through the relay host (a scripted sink);
the same sender gets no second one; list, bulk and automatic mail, the
null sender, daemon and list addresses, mail that does not name the
mailbox in To or Cc, and mail outside the from/until window get none."""
import email
import email.policy
import os
import smtplib
import tempfile

import pytest

from conftest import TOP, Node, free_offset, wait_until
from test_remote import Sink

SUBJECT = "Außer Haus: back on Monday"
BODY = "I am away until Monday.\nYour mail will be read then.\n"


def apply(n, text):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        n.ctl("apply", "-f", f.name)
    finally:
        os.unlink(f.name)


def set_autoreply(n, start="2020-01-01T00:00:00Z", until="2999-01-01T00:00:00+01:00"):
    apply(n, "apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: alice@demo.test, tenant: demo}\n"
             "spec:\n  quota: 1GiB\n  autoreply:\n    subject: \"%s\"\n    body: |\n      %s\n"
             "    from: \"%s\"\n    until: \"%s\"\n"
          % (SUBJECT, BODY.replace("\n", "\n      ").rstrip(), start, until))


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    sink = Sink()
    state = str(tmp_path_factory.mktemp("autoreply") / "var")
    n = Node(state, free_offset(), extra=["--relay-host", "127.0.0.1:%d" % sink.port,
                                          "--retry-min", "1"]).start()
    n.ctl("apply", "-f", os.path.join(TOP, "docs", "examples", "demo.yaml"))
    set_autoreply(n)
    yield n, sink
    assert n.stop() == 0


def deliver(n, sender, headers, rcpt="alice@demo.test", msgid=None):
    """An inbound message on port 25; returns once it is in the INBOX."""
    msgid = msgid or "<%s.%d@outside.example>" % (sender.replace("@", ".") or "null", len(headers))
    text = "".join("%s\r\n" % h for h in headers)
    text += "Message-ID: %s\r\nSubject: hello\r\n\r\nhi alice\r\n" % msgid
    with smtplib.SMTP("127.0.0.1", n.port(2525), timeout=10) as s:
        s.ehlo("client.example")
        assert s.mail(sender)[0] == 250
        assert s.rcpt(rcpt)[0] == 250
        code, reply = s.data(text)
        assert code == 250
    qid = reply.split(b"queued as ")[1].strip().decode()
    assert wait_until(lambda: n.sql("SELECT COUNT(*) FROM messages WHERE queue_qid = '%s'" % qid) != [["0"]],
                      timeout=20)
    return msgid


def replies_to(sink, rcpt):
    with sink.lock:
        return [d for s, r, d in sink.received if rcpt in r]


def decided(n, sender, reason):
    """The runner has looked at sender's message and said why it sent nothing."""
    want = ("to %s not sent: " % sender).lower()
    return wait_until(lambda: any(want in l.lower() and reason in l for l in n.log_text().splitlines()),
                      timeout=20)


def test_one_reply_per_sender(relay):
    n, sink = relay
    msgid = deliver(n, "carol@outside.example", ["From: Carol <carol@outside.example>",
                                                  "To: \"Alice, A.\" <Alice@Demo.test>",
                                                  "References: <older@outside.example>"])
    assert wait_until(lambda: replies_to(sink, "carol@outside.example"), timeout=30)
    with sink.lock:
        sender, rcpts, data = next(x for x in sink.received if "carol@outside.example" in x[1])
    assert sender == "", "autoreplies go out with the null reverse-path"
    assert rcpts == ["carol@outside.example"]
    m = email.message_from_bytes(data, policy=email.policy.default)
    assert m["Auto-Submitted"] == "auto-replied"
    assert m["From"] == "alice@demo.test" and m["To"] == "carol@outside.example"
    assert str(m["Subject"]) == SUBJECT
    assert m["In-Reply-To"] == msgid
    assert m["References"].split() == ["<older@outside.example>", msgid]
    assert m["Message-ID"] and m["Message-ID"] != msgid and m["Date"]
    assert m.get_content() == BODY.replace("\n", "\r\n")

    # A second message from the same sender (any case) gets none.
    deliver(n, "Carol@Outside.example", ["From: carol@outside.example", "To: alice@demo.test"])
    assert decided(n, "Carol@Outside.example", "already sent to this sender lately")
    assert len(replies_to(sink, "carol@outside.example")) == 1
    assert n.sql("SELECT COUNT(*) FROM autoreply_log WHERE sender = 'carol@outside.example'") == [["1"]]


def test_alias_and_cc_count_as_addressed(relay):
    n, sink = relay
    deliver(n, "frank@outside.example", ["To: team@demo.test"], rcpt="team@demo.test")
    assert wait_until(lambda: replies_to(sink, "frank@outside.example"), timeout=30)
    deliver(n, "gina@outside.example", ["To: someone@outside.example", "Cc: x@y.example, alice@demo.test"])
    assert wait_until(lambda: replies_to(sink, "gina@outside.example"), timeout=30)


@pytest.mark.parametrize("sender,headers,reason", [
    ("list1@outside.example", ["To: alice@demo.test", "Precedence: list"], "bulk or list"),
    ("bulk1@outside.example", ["To: alice@demo.test", "Precedence: Bulk"], "bulk or list"),
    ("auto1@outside.example", ["To: alice@demo.test", "Auto-Submitted: auto-generated"], "automatic"),
    ("auto2@outside.example", ["To: alice@demo.test", "Auto-Submitted: auto-replied (vacation)"], "automatic"),
    ("list2@outside.example", ["To: alice@demo.test", "List-Id: <talk.lists.example>"], "mailing list"),
    ("list3@outside.example", ["To: alice@demo.test", "List-Unsubscribe: <mailto:u@lists.example>"],
     "mailing list"),
    ("bcc1@outside.example", ["To: undisclosed-recipients:;"], "not in To or Cc"),
    ("bcc2@outside.example", ["To: \"alice@demo.test\" <other@outside.example>"], "not in To or Cc"),
])
def test_no_reply_to_lists_automatic_or_unaddressed_mail(relay, sender, headers, reason):
    n, sink = relay
    deliver(n, sender, headers)
    assert decided(n, sender, reason)
    assert replies_to(sink, sender) == []


def test_auto_submitted_no_still_gets_one(relay):
    n, sink = relay
    deliver(n, "human@outside.example", ["To: alice@demo.test", "Auto-Submitted: no"])
    assert wait_until(lambda: replies_to(sink, "human@outside.example"), timeout=30)


def test_no_reply_to_null_daemon_or_list_senders(relay):
    n, sink = relay
    # The header From is not where replies go: the envelope is, and it is null.
    deliver(n, "", ["From: nulled@outside.example", "To: alice@demo.test"])
    for s in ("MAILER-DAEMON@outside.example", "owner-talk@lists.example", "talk-request@lists.example",
              "talk-bounces@lists.example"):
        deliver(n, s, ["From: %s" % s, "To: alice@demo.test"])
    # A marker that does get a reply: everything before it was decided.
    deliver(n, "marker@outside.example", ["To: alice@demo.test"])
    assert wait_until(lambda: replies_to(sink, "marker@outside.example"), timeout=30)
    for s in ("nulled@outside.example", "MAILER-DAEMON@outside.example", "owner-talk@lists.example",
              "talk-request@lists.example", "talk-bounces@lists.example"):
        assert replies_to(sink, s) == [], s
    assert n.sql("SELECT COUNT(*) FROM autoreply_log WHERE sender LIKE '%lists.example' "
                 "OR sender LIKE 'mailer-daemon%' OR sender = ''") == [["0"]]


def test_only_inside_the_window(relay):
    n, sink = relay
    try:
        set_autoreply(n, start="2020-01-01T00:00:00Z", until="2021-01-01T00:00:00Z")
        deliver(n, "late@outside.example", ["To: alice@demo.test"])
        assert decided(n, "late@outside.example", "over")
        set_autoreply(n, start="2998-01-01T00:00:00-05:00", until="2999-01-01T00:00:00Z")
        deliver(n, "early@outside.example", ["To: alice@demo.test"])
        assert decided(n, "early@outside.example", "not on yet")
        assert replies_to(sink, "late@outside.example") == [] and replies_to(sink, "early@outside.example") == []
    finally:
        set_autoreply(n)
