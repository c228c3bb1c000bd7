"""Remote delivery by MX lookup (no relay host, no route), against a
loopback DNS server (dnsserver.py) that the node is pointed at with
--dns-server, and the scripted SMTP sink of test_remote.py, which MX hosts
reach through --mx-port. MX preference order, the domain itself without MX,
null MX and unknown domains bouncing at once, SERVFAIL and timeouts
deferring, and a stop that does not wait for a lookup that hangs."""
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import MAILNODECTL, TOP, Node, free_offset, wait_until
from test_remote import PASSWORD, Sink, inbox_reports, send, states
from dnsserver import DnsServer


class Sink6(Sink):
    """The same sink on [::1], at a given port."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET6)
        self.sock.bind(("::1", port))
        self.sock.listen(16)
        self.port = port
        self.received = []
        self.tries = {}
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()


def ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


RECORDS = {
    "mx.dns.test": {"MX": [(10, "mx1.dns.test")]},
    "mx1.dns.test": {"A": ["127.0.0.1"]},
    # Listed worst first: only sorting tries refuse.dns.test first.
    "pref.dns.test": {"MX": [(20, "good.dns.test"), (10, "refuse.dns.test")]},
    "refuse.dns.test": {"A": ["127.0.0.2"]},      # nothing listens there
    "good.dns.test": {"A": ["127.0.0.1"]},
    "plain.dns.test": {"A": ["127.0.0.1"]},        # no MX: the domain itself
    "nullmx.dns.test": {"MX": [(0, ".")], "A": ["127.0.0.1"]},
    "v6.dns.test": {"MX": [(10, "mx6.dns.test")]},
    "mx6.dns.test": {"AAAA": ["::1"]},
    "dual.dns.test": {"MX": [(10, "mxdual.dns.test")]},
    "mxdual.dns.test": {"AAAA": ["::1"], "A": ["127.0.0.1"]},
}


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    sink = Sink()
    sink6 = Sink6(sink.port) if ipv6_loopback() else None
    server = DnsServer(RECORDS, servfail=["servfail.dns.test"], drop=["slow.dns.test", "hang.dns.test"])
    state = str(tmp_path_factory.mktemp("dns") / "var")
    n = Node(state, free_offset(), extra=["--dns-server", "127.0.0.1:%d" % server.port,
                                          "--mx-port", str(sink.port), "--dns-timeout", "2",
                                          "--retry-min", "1"]).start()
    n.ctl("apply", "-f", os.path.join(TOP, "docs", "examples", "demo.yaml"))
    r = subprocess.run([MAILNODECTL, "--state-dir", state, "passwd", "alice@demo.test"],
                       input=PASSWORD + "\n", capture_output=True, text=True)
    assert r.returncode == 0
    yield n, sink, sink6, server
    if n.proc.poll() is None:
        assert n.stop() == 0
    server.close()


def delivered_to(sink, rcpt):
    return any(rcpt in r for _, r, _ in sink.received)


def gone(n, qid):
    return n.sql("SELECT COUNT(*) FROM queue_messages WHERE qid = '%s'" % qid) == [["0"]]


def last_error(n, qid):
    return n.sql("SELECT r.state, r.last_error FROM queue_recipients r JOIN queue_messages m "
                 "ON m.id = r.message_id WHERE m.qid = '%s'" % qid)


def test_mx_host_gets_the_mail(dns):
    n, sink, _, server = dns
    qid = send(n, ["ok@mx.dns.test"], "via mx")
    assert wait_until(lambda: delivered_to(sink, "ok@mx.dns.test"), timeout=20)
    assert wait_until(lambda: gone(n, qid), timeout=20)
    assert server.asked("mx.dns.test", "MX") and server.asked("mx1.dns.test", "A")
    assert "handed over to mx1.dns.test" in n.log_text()


def test_mx_preference_order(dns):
    n, sink, _, server = dns
    qid = send(n, ["ok@pref.dns.test"], "by preference")
    assert wait_until(lambda: delivered_to(sink, "ok@pref.dns.test"), timeout=20)
    assert wait_until(lambda: gone(n, qid), timeout=20)
    first, second = server.asked("refuse.dns.test"), server.asked("good.dns.test")
    assert first and second, "both MX hosts were looked up"
    assert min(q[2] for q in first) <= min(q[2] for q in second), "preference 10 before 20"
    assert "handed over to good.dns.test" in n.log_text()


def test_domain_without_mx_is_its_own_host(dns):
    n, sink, _, server = dns
    qid = send(n, ["ok@plain.dns.test"], "implicit mx")
    assert wait_until(lambda: delivered_to(sink, "ok@plain.dns.test"), timeout=20)
    assert wait_until(lambda: gone(n, qid), timeout=20)
    assert server.asked("plain.dns.test", "MX") and server.asked("plain.dns.test", "A")


@pytest.mark.parametrize("domain,why", [("nullmx.dns.test", "null MX"),
                                        ("nosuch.dns.test", "no such domain")])
def test_no_mail_domains_bounce_at_once(dns, domain, why):
    n, sink, _, _ = dns
    rcpt = "ok@" + domain
    qid = send(n, [rcpt], "to " + domain)
    assert wait_until(lambda: any(rcpt.encode() in r for r in inbox_reports(n, "failed")), timeout=20)
    report = next(r for r in inbox_reports(n, "failed") if rcpt.encode() in r)
    assert ("domain %s takes no mail (%s)" % (domain, why)).encode() in report
    assert wait_until(lambda: gone(n, qid), timeout=10)
    assert not delivered_to(sink, rcpt)
    assert n.sql("SELECT attempts FROM queue_recipients WHERE address = '%s'" % rcpt) in ([], [["1"]])


@pytest.mark.parametrize("domain", ["servfail.dns.test", "slow.dns.test"])
def test_dns_trouble_defers(dns, domain):
    n, sink, _, server = dns
    rcpt = "ok@" + domain
    qid = send(n, [rcpt], "to " + domain)
    assert wait_until(lambda: any(s == "deferred" for s, _ in last_error(n, qid)), timeout=20)
    state, err = last_error(n, qid)[0]
    assert ("DNS lookup of MX %s failed" % domain) in err, err
    # Retried (--retry-min 1), still queued, never bounced.
    assert wait_until(lambda: n.sql("SELECT attempts >= 2 FROM queue_recipients WHERE address = '%s'"
                                    % rcpt) == [["1"]], timeout=30)
    assert states(n, qid) == {rcpt: "deferred"}
    assert not any(rcpt.encode() in r for r in inbox_reports(n))
    n.ctl("queue", "delete", qid)


def test_aaaa_only_host_over_ipv6(dns):
    n, sink, sink6, _ = dns
    if sink6 is None:
        pytest.skip("no IPv6 loopback here")
    qid = send(n, ["ok@v6.dns.test"], "over ipv6")
    assert wait_until(lambda: delivered_to(sink6, "ok@v6.dns.test"), timeout=20)
    assert wait_until(lambda: gone(n, qid), timeout=20)
    # AAAA and A: IPv6 first (RFC 6724 puts ::1 before 127.0.0.1).
    qid = send(n, ["ok@dual.dns.test"], "dual stack")
    assert wait_until(lambda: delivered_to(sink6, "ok@dual.dns.test"), timeout=20)
    assert not delivered_to(sink, "ok@dual.dns.test")


def test_stop_does_not_wait_for_a_hanging_lookup(dns):
    n, _, _, server = dns
    # A lookup that could take two minutes: only cancelling it ends it sooner.
    assert n.stop() == 0
    n.extra[n.extra.index("--dns-timeout") + 1] = "120"
    n.start()
    qid = send(n, ["ok@hang.dns.test"], "into a silent name server")
    assert wait_until(lambda: server.asked("hang.dns.test", "MX"), timeout=20)
    time.sleep(0.5)
    t0 = time.time()
    n.ctl("service", "stop", "spool")
    assert time.time() - t0 < 10, "the stop waited for the lookup"
    rows = n.sql("SELECT r.state, r.lease_owner, r.attempts FROM queue_recipients r JOIN queue_messages m "
                 "ON m.id = r.message_id WHERE m.qid = '%s'" % qid)
    assert rows == [["queued", "", "0"]], "still queued, released, not counted as a try"
    asked = len(server.asked("hang.dns.test", "MX"))
    n.ctl("service", "start", "spool")
    assert wait_until(lambda: len(server.asked("hang.dns.test", "MX")) > asked, timeout=20)
    t0 = time.time()
    assert n.stop(timeout=60) == 0
    assert time.time() - t0 < 30
