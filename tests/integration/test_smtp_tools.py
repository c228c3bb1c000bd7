"""SMTP with the command-line tools admins reach for: swaks (inbound
delivery, submission with STARTTLS or implicit TLS and AUTH PLAIN/LOGIN),
openssl s_client (STARTTLS on submission, implicit TLS on smtps) and
gnutls-cli (STARTTLS). Each checks that the certificate is the node's and
that AUTH is offered only once TLS is on. A missing tool skips its test."""
import base64
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import TOP

PASSWORD = "tools-" + base64.b32encode(os.urandom(10)).decode()


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip("%s is not installed" % tool)


@pytest.fixture(scope="module")
def mx(node):
    node.ctl("apply", "-f", os.path.join(TOP, "docs", "examples", "demo.yaml"))
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: alice@demo.test, tenant: demo}\n"
                "spec: {quota: 1GiB, password: \"%s\"}\n" % PASSWORD)
    try:
        node.ctl("apply", "-f", f.name)
    finally:
        os.unlink(f.name)
    # The tests look at the queue: nothing takes it away meanwhile.
    node.ctl("service", "stop", "spool")
    return node


def ca(node):
    return os.path.join(node.state_dir, "tls", "ca.pem")


def fingerprint(pem):
    r = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"], input=pem,
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def node_fingerprint(node):
    with open(os.path.join(node.state_dir, "tls", "server.pem")) as f:
        return fingerprint(f.read())


def first_cert(text):
    begin = text.index("-----BEGIN CERTIFICATE-----")
    end = text.index("-----END CERTIFICATE-----", begin) + len("-----END CERTIFICATE-----")
    return text[begin:end] + "\n"


def queued_with_subject(node, subject):
    """The queue rows (sender, recipient) of the message with this Subject."""
    out = []
    for qid, sender, rcpt in node.sql("SELECT m.qid, m.sender, r.address FROM queue_messages m "
                                      "JOIN queue_recipients r ON r.message_id = m.id"):
        with open(os.path.join(node.state_dir, "spool", "msg", qid), "rb") as f:
            if ("Subject: %s\r\n" % subject).encode() in f.read():
                out.append((sender, rcpt))
    return out


def swaks(*args):
    need("swaks")
    return subprocess.run(["swaks", "--timeout", "20"] + list(args), capture_output=True, text=True,
                          timeout=60)


def test_swaks_inbound_delivery(mx):
    r = swaks("--server", "127.0.0.1", "--port", str(mx.port(2525)), "--helo", "swaks.example",
              "--from", "someone@remote.example", "--to", "bob@demo.test",
              "--header", "Subject: swaks inbound")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<-  250 2.0.0 Ok: queued as" in r.stdout
    assert queued_with_subject(mx, "swaks inbound") == [("someone@remote.example", "bob@demo.test")]
    # The MX is no relay, for swaks either.
    r = swaks("--server", "127.0.0.1", "--port", str(mx.port(2525)), "--from", "someone@remote.example",
              "--to", "victim@elsewhere.example", "--quit-after", "RCPT")
    assert r.returncode != 0 and "<** 554 5.7.1" in r.stdout, r.stdout


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_submission_starttls_auth(mx, mech):
    subject = "swaks starttls " + mech
    r = swaks("--server", "localhost", "--port", str(mx.port(2587)), "--tls", "--tls-verify",
              "--tls-ca-path", ca(mx), "--auth", mech, "--auth-user", "alice@demo.test",
              "--auth-password", PASSWORD, "--from", "alice@demo.test", "--to", "friend@remote.example",
              "--header", "Subject: " + subject)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<~  235 2.7.0" in r.stdout and "<~  250 2.0.0 Ok: queued as" in r.stdout, r.stdout
    # AUTH was offered in the EHLO after STARTTLS (<~), not before it (<-).
    assert "<~  250-AUTH PLAIN LOGIN" in r.stdout and "<-  250-AUTH" not in r.stdout, r.stdout
    assert "=== TLS peer DN=\"/CN=localhost\"" in r.stdout
    assert queued_with_subject(mx, subject) == [("alice@demo.test", "friend@remote.example")]


def test_swaks_submission_refuses_auth_without_tls(mx):
    r = swaks("--server", "localhost", "--port", str(mx.port(2587)), "--auth", "PLAIN",
              "--auth-user", "alice@demo.test", "--auth-password", PASSWORD,
              "--from", "alice@demo.test", "--to", "friend@remote.example")
    # Without TLS the node offers no AUTH: swaks gives up before sending mail.
    assert r.returncode != 0, r.stdout
    assert "AUTH" not in "".join(l for l in r.stdout.splitlines(True) if l.startswith("<-  250"))


def test_swaks_smtps_auth_login_and_a_wrong_password(mx):
    r = swaks("--server", "localhost", "--port", str(mx.port(2465)), "--tls-on-connect", "--tls-verify",
              "--tls-ca-path", ca(mx), "--auth", "LOGIN", "--auth-user", "alice@demo.test",
              "--auth-password", PASSWORD, "--from", "team@demo.test", "--to", "bob@demo.test",
              "--header", "Subject: swaks smtps")
    assert r.returncode == 0, r.stdout + r.stderr
    assert queued_with_subject(mx, "swaks smtps") == [("team@demo.test", "bob@demo.test")]
    r = swaks("--server", "localhost", "--port", str(mx.port(2465)), "--tls-on-connect",
              "--tls-ca-path", ca(mx), "--auth", "PLAIN", "--auth-user", "alice@demo.test",
              "--auth-password", "not the password", "--from", "alice@demo.test", "--to", "bob@demo.test")
    assert r.returncode != 0 and "<~* 535 5.7.8" in r.stdout, r.stdout


def s_client(args, commands):
    need("openssl")
    return subprocess.run(["openssl", "s_client", "-crlf", "-ign_eof", "-showcerts", "-verify_return_error",
                           "-verify_hostname", "localhost"] + args,
                          input=commands, capture_output=True, text=True, timeout=60)


def check_tls_session(node, r):
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "Verify return code: 0 (ok)" in out, out
    assert fingerprint(first_cert(out)) == node_fingerprint(node), "not the node's certificate"
    # The EHLO after the handshake is the one that offers AUTH.
    after = out[out.index("Hello tools.example"):]
    assert "250-AUTH PLAIN LOGIN SCRAM-SHA-256" in after, after
    assert "221 2.0.0 Bye" in after


def test_openssl_s_client_starttls_on_submission(mx):
    r = s_client(["-starttls", "smtp", "-connect", "127.0.0.1:%d" % mx.port(2587), "-CAfile", ca(mx)],
                 "EHLO tools.example\nQUIT\n")
    check_tls_session(mx, r)


def test_openssl_s_client_implicit_tls_on_smtps(mx):
    auth = base64.b64encode(b"\0alice@demo.test\0" + PASSWORD.encode()).decode()
    r = s_client(["-connect", "127.0.0.1:%d" % mx.port(2465), "-CAfile", ca(mx)],
                 "EHLO tools.example\nAUTH PLAIN %s\nQUIT\n" % auth)
    check_tls_session(mx, r)
    assert " ESMTP mailnode" in r.stdout, "the greeting came over TLS"
    assert "235 2.7.0 Authentication successful" in r.stdout, r.stdout


def test_openssl_s_client_starttls_on_the_mx_offers_no_auth(mx):
    r = s_client(["-starttls", "smtp", "-connect", "127.0.0.1:%d" % mx.port(2525), "-CAfile", ca(mx)],
                 "EHLO tools.example\nQUIT\n")
    assert r.returncode == 0 and "Verify return code: 0 (ok)" in r.stdout, r.stdout + r.stderr
    assert "Hello tools.example" in r.stdout and "AUTH" not in r.stdout.split("Hello tools.example", 1)[1]


def test_gnutls_cli_starttls_on_submission(mx):
    need("gnutls-cli")
    auth = base64.b64encode(b"\0alice@demo.test\0" + PASSWORD.encode()).decode()
    # CRLF by hand: gnutls-cli's --crlf converts only a line at the end of what it reads.
    r = subprocess.run(["gnutls-cli", "--starttls-proto=smtp", "--port", str(mx.port(2587)),
                        "--x509cafile", ca(mx), "--print-cert", "localhost"],
                       input="EHLO tools.example\r\nAUTH PLAIN %s\r\nQUIT\r\n" % auth,
                       capture_output=True, text=True, timeout=60)
    out = r.stdout
    assert "Status: The certificate is trusted." in out or "certificate is trusted" in out, out + r.stderr
    assert fingerprint(first_cert(out)) == node_fingerprint(mx), "not the node's certificate"
    after = out.split("Hello tools.example", 1)[1]
    assert "250-AUTH PLAIN LOGIN SCRAM-SHA-256" in after, out
    assert "235 2.7.0" in after and "221 2.0.0 Bye" in after, out
