"""Per-domain certificates chosen by SNI: a Domain applied with `tls` makes
every TLS service (smtps, submission after STARTTLS, imaps) present its
certificate to a client that asks for the domain's name, and the node's
certificate to everyone else; a new certificate applied replaces it without
a restart, and deleting the domain takes it away. Certificates are made at
test time with openssl and checked with openssl s_client and gnutls-cli."""
import os
import re
import ssl
import subprocess
import textwrap

import pytest

from conftest import wait_until

NAME = "mail.example-tenant.test"
OTHER = "mail.other-tenant.test"
TOOLS = all(os.path.exists(t) for t in ("/usr/bin/openssl", "/usr/bin/gnutls-cli"))
pytestmark = pytest.mark.skipif(not TOOLS, reason="openssl and gnutls-cli are needed")


def run(*args, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=60, **kw)
    assert r.returncode == 0, "%s: %s%s" % (args[0], r.stdout, r.stderr)
    return r.stdout


def make_ca(d):
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", os.path.join(d, "ca-key.pem"), "-out", os.path.join(d, "ca.pem"),
        "-days", "2", "-subj", "/CN=example tenant test CA")
    return os.path.join(d, "ca.pem")


def make_cert(d, tag, name):
    """A key and a certificate for name signed by the test CA: (cert, key) PEM."""
    key, csr, crt = (os.path.join(d, "%s.%s" % (tag, x)) for x in ("key", "csr", "pem"))
    ext = os.path.join(d, tag + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n" % name)
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=%s" % name)
    run("openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(d, "ca.pem"),
        "-CAkey", os.path.join(d, "ca-key.pem"), "-CAcreateserial", "-days", "2",
        "-extfile", ext, "-out", crt)
    return open(crt).read(), open(key).read()


def der(pem):
    return ssl.PEM_cert_to_DER_cert(re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                                              pem, re.S).group(0))


def s_client(port, name, starttls=None):
    """The leaf certificate (DER) openssl s_client is shown for SNI name."""
    args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", name]
    if starttls:
        args += ["-starttls", starttls]
    r = subprocess.run(args, input="", capture_output=True, text=True, timeout=30)
    return der(r.stdout)


def gnutls_cli(port, name):
    r = subprocess.run(["gnutls-cli", "--insecure", "--print-cert", "--sni-hostname", name,
                        "--port", str(port), "127.0.0.1"],
                       input="", capture_output=True, text=True, timeout=30)
    return der(r.stdout)


def verified(port, name, cafile):
    """Does a client that trusts only cafile accept the server as name?"""
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", name,
                          "-CAfile", cafile, "-verify_hostname", name, "-verify_return_error"],
                         input="", capture_output=True, text=True, timeout=30).stdout
    return "Verify return code: 0 (ok)" in out


def domain_doc(cert, key=None, name="example-tenant.test", tenant="et"):
    tls = "    certificate: |\n" + textwrap.indent(cert, "      ")
    if key is not None:
        tls += "    key: |\n" + textwrap.indent(key, "      ")
    return ("apiVersion: mailnode/v1\nkind: Domain\nmetadata: {name: %s, tenant: %s}\n"
            "spec:\n  tls:\n%s" % (name, tenant, tls))


def apply(n, text, d, check=True):
    path = os.path.join(d, "doc.yaml")
    with open(path, "w") as f:
        f.write(text)
    return n.ctl("apply", "-f", path, check=check)


@pytest.fixture(scope="module")
def certs(node, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("sni"))
    os.chmod(d, 0o700)
    ca = make_ca(d)
    apply(node, "apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: et}\nspec: {}\n---\n"
                "apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: ot}\nspec: {}\n", d)
    return d, ca


def node_cert(n):
    return der(open(os.path.join(n.state_dir, "tls", "server.pem")).read())


def ports(n):
    return {"smtps": n.port(2465), "submission": n.port(2587), "imaps": n.port(2993)}


def shown(n, service, name):
    p = ports(n)[service]
    if service == "submission":
        return s_client(p, name, starttls="smtp")
    if service == "imaps":
        return gnutls_cli(p, name)
    return s_client(p, name)


def test_domain_certificate_by_sni_then_replaced_then_gone(node, certs):
    d, ca = certs
    cert1, key1 = make_cert(d, "one", NAME)
    apply(node, domain_doc(cert1, key1), d)
    for svc in ("smtps", "submission", "imaps"):
        assert wait_until(lambda: shown(node, svc, NAME) == der(cert1), timeout=5), svc
        # Any other name, and the node's own, get the node's certificate.
        assert shown(node, svc, "localhost") == node_cert(node), svc
        assert shown(node, svc, "unknown.example.test") == node_cert(node), svc
    assert verified(ports(node)["smtps"], NAME, ca)
    # The key never comes back from get.
    got = node.ctl("get", "domains", "example-tenant.test").stdout
    assert "BEGIN CERTIFICATE" in got and "PRIVATE KEY" not in got

    # A new certificate (and key) replaces it, no restart.
    cert2, key2 = make_cert(d, "two", NAME)
    apply(node, domain_doc(cert2, key2), d)
    for svc in ("smtps", "submission", "imaps"):
        assert wait_until(lambda: shown(node, svc, NAME) == der(cert2), timeout=5), svc

    # Gone with the domain.
    node.ctl("delete", "domains", "example-tenant.test")
    for svc in ("smtps", "submission", "imaps"):
        assert wait_until(lambda: shown(node, svc, NAME) == node_cert(node), timeout=5), svc
    assert not verified(ports(node)["smtps"], NAME, ca)


def test_apply_refuses_a_key_of_another_certificate(node, certs):
    d, _ = certs
    cert1, _ = make_cert(d, "three", NAME)
    _, key2 = make_cert(d, "four", NAME)
    r = apply(node, domain_doc(cert1, key2, name="refused.test"), d, check=False)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "spec.tls.certificate" in out and "key" in out, out
    assert "PRIVATE KEY" not in out
    assert node.sql("SELECT COUNT(*) FROM domains WHERE name = 'refused.test'") == [["0"]]
    # A certificate with no key given and none stored.
    r = apply(node, domain_doc(cert1, None, name="refused.test"), d, check=False)
    assert r.returncode != 0 and "spec.tls.key" in r.stdout + r.stderr
    assert node.sql("SELECT COUNT(*) FROM domains WHERE name = 'refused.test'") == [["0"]]


def test_a_stored_pair_that_does_not_load_is_skipped(node, certs):
    d, _ = certs
    cert5, key5 = make_cert(d, "five", NAME)
    cert6, key6 = make_cert(d, "six", OTHER)
    apply(node, domain_doc(cert5, key5) + "---\n" + domain_doc(cert6, key6, name="other-tenant.test",
                                                              tenant="ot"), d)
    assert wait_until(lambda: shown(node, "smtps", OTHER) == der(cert6), timeout=5)
    # Damaged behind apply's back (a restore, a hand edit): that domain
    # loses its certificate, the others keep theirs, the node carries on.
    node.sql("UPDATE domains SET tls_key = '-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n' "
             "WHERE name = 'other-tenant.test'; "
             "UPDATE node_meta SET v = v + 1 WHERE k = 'config_generation'")
    assert wait_until(lambda: "domain other-tenant.test: certificate not loaded" in node.log_text(), timeout=5)
    assert shown(node, "smtps", OTHER) == node_cert(node)
    assert shown(node, "smtps", NAME) == der(cert5)
    assert "AAAA" not in node.log_text()
    node.ctl("delete", "domains", "other-tenant.test")
    node.ctl("delete", "domains", "example-tenant.test")
