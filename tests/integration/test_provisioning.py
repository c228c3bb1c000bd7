"""The YAML provisioning API on the real node: apply through mailnodectl
(control socket) and through the admin HTTPS service, get/delete, errors
with line:column that leave the database unchanged, idempotence, dry runs,
secrets, tenant-scoped tokens, limits, and Service documents that reconcile
the running node."""
import json
import os
import ssl
import subprocess
import tempfile
import textwrap
import urllib.error
import urllib.request

import pytest
import yaml

from conftest import TOP, port_open, wait_until

DEMO = os.path.join(TOP, "docs", "examples", "demo.yaml")


def apply(node, text, *extra, check=True):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(textwrap.dedent(text))
    try:
        r = node.ctl("-o", "yaml", "apply", "-f", f.name, *extra, check=False)
    finally:
        os.unlink(f.name)
    doc = yaml.safe_load(r.stdout) if r.stdout.strip() else None
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r.returncode, doc


def actions(doc):
    return {(x["kind"], x["name"]): x["action"] for x in doc["results"]}


def snapshot(node):
    """Everything stored, to show a failed apply changed nothing."""
    return [node.sql("SELECT name, spec FROM tenants ORDER BY name"),
            node.sql("SELECT name, spec FROM domains ORDER BY name"),
            node.sql("SELECT address, spec, password_hash FROM mailboxes ORDER BY address"),
            node.sql("SELECT address, spec FROM aliases ORDER BY address"),
            node.sql("SELECT v FROM node_meta WHERE k = 'config_generation'")]


@pytest.fixture(scope="module")
def demo(node):
    rc, doc = apply(node, open(DEMO).read())
    assert doc["summary"] == {"created": 5, "updated": 0, "unchanged": 0}
    return node


def test_apply_is_idempotent_and_get_round_trips(demo):
    rc, doc = apply(demo, open(DEMO).read())
    assert doc["summary"] == {"created": 0, "updated": 0, "unchanged": 5}
    # get -> apply reports everything unchanged.
    stream = ""
    for kind in ("tenants", "domains", "mailboxes", "aliases"):
        stream += demo.ctl("get", kind, "--tenant", "demo").stdout
    rc, doc = apply(demo, stream)
    assert doc["summary"]["unchanged"] == 5 and doc["summary"]["updated"] == 0
    t = yaml.safe_load(demo.ctl("get", "tenants", "demo").stdout)
    # Sizes come back in canonical form whatever form they were sent in.
    assert t["spec"]["limits"]["storage"] == "10GiB"
    rc, doc = apply(demo, """\
        apiVersion: mailnode/v1
        kind: Tenant
        metadata: {name: demo}
        spec:
          state: active
          limits: {domains: 5, mailboxes: 100, aliases: 100, storage: 10737418240,
                   messageSize: 26214400, sendRate: 500/h}
          connections: {maxConcurrent: 200, perIpPerMinute: 60}
        """)
    assert actions(doc)[("Tenant", "demo")] == "unchanged"


def test_dry_run_reports_the_diff_and_changes_nothing(demo):
    before = snapshot(demo)
    rc, doc = apply(demo, """\
        apiVersion: mailnode/v1
        kind: Mailbox
        metadata: {name: alice@demo.test, tenant: demo}
        spec: {quota: 2GiB, state: suspended}
        ---
        apiVersion: mailnode/v1
        kind: Mailbox
        metadata: {name: carol@demo.test, tenant: demo}
        spec: {}
        """, "--dry-run")
    assert doc["dryRun"] is True and doc["applied"] is False
    res = {x["name"]: x for x in doc["results"]}
    assert res["alice@demo.test"]["action"] == "updated"
    assert sorted(res["alice@demo.test"]["fields"]) == ["spec.quota", "spec.state"]
    assert res["carol@demo.test"]["action"] == "created"
    assert snapshot(demo) == before


@pytest.mark.parametrize("text,line,col,path,words", [
    ("apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: x\n", 4, 1, None, "flow mapping"),
    ("apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: zed@demo.test, tenant: demo}\n"
     "spec:\n  quotaa: 1GiB\n", 5, 3, "spec.quotaa", "unknown field 'quotaa'"),
    ("apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: demo}\nspec:\n  limits:\n"
     "    mailboxes: ten\n", 6, 16, "spec.limits.mailboxes", "expected an integer"),
    ("apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: demo}\nspec:\n  access:\n"
     "    mode: allow-listed\n    addresses: [192.168.0.*, 10.0.0.1/33]\n", 7, 30,
     "spec.access.addresses[1]", "prefix"),
    ("apiVersion: mailnode/v1\nkind: Tenat\nmetadata: {name: demo}\nspec: {}\n", 2, 7, "kind",
     "expected one of"),
    ("apiVersion: mailnode/v1\nkind: Alias\nmetadata: {name: a@demo.test, tenant: demo}\n"
     "spec: {to: [not-an-address]}\n", 4, 13, "spec.to[0]", "local@domain"),
])
def test_bad_documents_name_the_place_and_change_nothing(demo, text, line, col, path, words):
    before = snapshot(demo)
    # A good document first: all-or-nothing means it is not applied either.
    good = "apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: first@demo.test, tenant: demo}\nspec: {}\n---\n"
    rc, doc = apply(demo, good + text, check=False)
    assert rc == 1 and doc["applied"] is False
    errs = doc["errors"]
    offset = good.count("\n") + 1
    hit = [e for e in errs if e.get("line") == line + offset - 1 and e.get("column") == col]
    assert hit, errs
    assert words in hit[0]["message"], hit[0]
    if path:
        assert hit[0]["path"] == path
    assert snapshot(demo) == before
    assert demo.ctl("get", "mailboxes", "first@demo.test", check=False).returncode == 1


def test_references_and_ownership(demo):
    before = snapshot(demo)
    rc, doc = apply(demo, """\
        apiVersion: mailnode/v1
        kind: Domain
        metadata: {name: ghost.test, tenant: nobody}
        spec: {}
        ---
        apiVersion: mailnode/v1
        kind: Mailbox
        metadata: {name: x@unknown.test, tenant: demo}
        spec: {}
        """, check=False)
    msgs = [e["message"] for e in doc["errors"]]
    assert any("tenant 'nobody' does not exist" in m for m in msgs)
    assert any("unknown.test is not a domain of tenant demo" in m for m in msgs)
    # Another tenant cannot take demo.test, and is not told whose it is.
    rc, doc = apply(demo, """\
        apiVersion: mailnode/v1
        kind: Tenant
        metadata: {name: rival}
        spec: {}
        ---
        apiVersion: mailnode/v1
        kind: Domain
        metadata: {name: demo.test, tenant: rival}
        spec: {}
        """, check=False)
    assert rc == 1
    msg = doc["errors"][0]["message"]
    assert "already hosted here for another tenant" in msg and "demo" not in msg.replace("demo.test", "")
    assert snapshot(demo) == before


def test_tenant_limits_are_enforced_at_apply(demo):
    rc, doc = apply(demo, """\
        apiVersion: mailnode/v1
        kind: Tenant
        metadata: {name: small}
        spec: {limits: {mailboxes: 2}}
        ---
        apiVersion: mailnode/v1
        kind: Domain
        metadata: {name: small.test, tenant: small}
        spec: {}
        ---
        apiVersion: mailnode/v1
        kind: Mailbox
        metadata: {name: a@small.test, tenant: small}
        spec: {}
        ---
        apiVersion: mailnode/v1
        kind: Mailbox
        metadata: {name: b@small.test, tenant: small}
        spec: {}
        """)
    before = snapshot(demo)
    rc, doc = apply(demo, """\
        apiVersion: mailnode/v1
        kind: Mailbox
        metadata: {name: c@small.test, tenant: small}
        spec: {}
        """, check=False)
    assert rc == 1
    e = doc["errors"][0]
    assert e["name"] == "c@small.test" and "allows 2 mailboxes" in e["message"]
    assert e["line"] == 3
    assert snapshot(demo) == before
    # Lowering a limit below what the tenant holds is refused too.
    rc, doc = apply(demo, "apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: small}\n"
                    "spec: {limits: {mailboxes: 1}}\n", check=False)
    assert rc == 1 and "already has 2 mailboxes" in doc["errors"][0]["message"]


def test_passwords_are_hashed_never_shown_and_compared(demo):
    secret = "correct horse battery staple"
    doc_text = """\
        apiVersion: mailnode/v1
        kind: Mailbox
        metadata: {name: dave@demo.test, tenant: demo}
        spec: {password: "%s"}
        """
    rc, doc = apply(demo, doc_text % secret)
    assert actions(doc)[("Mailbox", "dave@demo.test")] == "created"
    stored = demo.sql("SELECT password_hash, spec FROM mailboxes WHERE address = 'dave@demo.test'")[0]
    assert stored[0].startswith("{SHA512-CRYPT}$6$") and secret not in stored[0]
    assert secret not in stored[1]
    got = demo.ctl("get", "mailboxes", "dave@demo.test").stdout
    assert secret not in got and "password" not in yaml.safe_load(got)["spec"]
    assert yaml.safe_load(got)["status"]["hasPassword"] is True
    assert secret not in demo.log_text()
    # Same password: unchanged. Another: updated, named as a field, not shown.
    rc, doc = apply(demo, doc_text % secret)
    assert actions(doc)[("Mailbox", "dave@demo.test")] == "unchanged"
    rc, doc = apply(demo, doc_text % "another long password")
    assert doc["results"][0]["fields"] == ["spec.password"]
    assert "another long password" not in json.dumps(doc)
    # Migrated hashes are taken as they are, bad ones refused.
    argon = ("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$c29tZXNhbHRzb21lc2FsdA"
             "$rRs1dcPgk3dEpIdoTIcRZJoYy2NS1UwfnSVbAk0Qqx8")
    rc, doc = apply(demo, "apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: erin@demo.test, "
                    "tenant: demo}\nspec: {passwordHash: '%s'}\n" % argon)
    assert demo.sql("SELECT password_hash FROM mailboxes WHERE address='erin@demo.test'") == [[argon]]
    rc, doc = apply(demo, "apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: erin@demo.test, "
                    "tenant: demo}\nspec: {passwordHash: '{MD5}abc'}\n", check=False)
    assert rc == 1 and doc["errors"][0]["path"] == "spec.passwordHash"
    # mailnodectl passwd sets one from standard input.
    r = subprocess.run([demo_ctl(demo)[0], "--state-dir", demo.state_dir, "passwd", "erin@demo.test"],
                       input="a brand new secret\n", capture_output=True, text=True)
    assert r.returncode == 0 and "SHA512-CRYPT" in r.stdout
    assert demo.sql("SELECT password_hash FROM mailboxes WHERE address='erin@demo.test'")[0][0] \
        .startswith("{SHA512-CRYPT}")


def demo_ctl(node):
    from conftest import MAILNODECTL
    return [MAILNODECTL]


def test_delete_never_loses_mail_silently(demo):
    apply(demo, "apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: full@demo.test, tenant: demo}\n"
          "spec: {}\n")
    demo.sql("UPDATE mailboxes SET messages = 3, used_bytes = 4096 WHERE address = 'full@demo.test'")
    r = demo.ctl("delete", "mailboxes", "full@demo.test", check=False)
    assert r.returncode == 1 and "holds 3 messages" in r.stderr and "purge" in r.stderr
    assert demo.sql("SELECT COUNT(*) FROM mailboxes WHERE address = 'full@demo.test'") == [["1"]]
    r = demo.ctl("delete", "mailboxes", "full@demo.test", "--purge")
    assert "3 messages purged" in r.stdout
    assert demo.sql("SELECT COUNT(*) FROM mailboxes WHERE address = 'full@demo.test'") == [["0"]]
    assert demo.ctl("delete", "aliases", "nosuch@demo.test", check=False).returncode == 1


def test_deleting_a_tenant_removes_its_objects(demo):
    apply(demo, """\
        apiVersion: mailnode/v1
        kind: Tenant
        metadata: {name: gone}
        spec: {}
        ---
        apiVersion: mailnode/v1
        kind: Domain
        metadata: {name: gone.test, tenant: gone}
        spec: {}
        ---
        apiVersion: mailnode/v1
        kind: Mailbox
        metadata: {name: m@gone.test, tenant: gone}
        spec: {}
        """)
    demo.ctl("delete", "tenants", "gone")
    assert demo.sql("SELECT COUNT(*) FROM domains WHERE name = 'gone.test'") == [["0"]]
    assert demo.sql("SELECT COUNT(*) FROM mailboxes WHERE address = 'm@gone.test'") == [["0"]]


def test_thousand_mailboxes_in_one_stream(demo):
    parts = ["apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: big}\nspec: {}\n",
             "apiVersion: mailnode/v1\nkind: Domain\nmetadata: {name: big.test, tenant: big}\nspec: {}\n"]
    parts += ["apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: u%04d@big.test, tenant: big}\n"
              "spec: {quota: 1GiB}\n" % i for i in range(1000)]
    rc, doc = apply(demo, "---\n".join(parts))
    assert doc["summary"]["created"] == 1002
    assert demo.sql("SELECT COUNT(*) FROM mailboxes WHERE address LIKE '%@big.test'") == [["1000"]]
    rc, doc = apply(demo, "---\n".join(parts))
    assert doc["summary"] == {"created": 0, "updated": 0, "unchanged": 1002}


# --- the admin HTTPS service -------------------------------------------------

def https(node, method, path, token=None, body=None, accept=None):
    ctx = ssl.create_default_context(cafile=os.path.join(node.state_dir, "tls", "ca.pem"))
    req = urllib.request.Request("https://localhost:%d%s" % (node.port(2444), path), method=method,
                                 data=body.encode() if body is not None else None)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def token(node, *args):
    out = node.ctl("token", "create", *args).stdout
    tok = out.split()[0]
    assert tok.startswith("mn_")
    return tok


def test_admin_api_applies_and_reads_back(demo):
    tok = token(demo, "--description", "panel one")
    assert demo.sql("SELECT COUNT(*) FROM api_tokens WHERE token_sha256 = SHA2('%s', 256)" % tok) == [["1"]]
    assert tok not in demo.log_text()
    status, _, body = https(demo, "POST", "/v1/apply", tok,
                            "apiVersion: mailnode/v1\nkind: Alias\nmetadata: {name: sales@demo.test, "
                            "tenant: demo}\nspec: {to: [alice@demo.test]}\n")
    assert status == 200, body
    assert yaml.safe_load(body)["results"][0]["action"] == "created"
    status, headers, body = https(demo, "GET", "/v1/aliases/sales@demo.test", tok,
                                  accept="application/json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["spec"] == {"to": ["alice@demo.test"]}
    # JSON in, too (JSON is YAML's flow form).
    status, _, body = https(demo, "POST", "/v1/apply?dryRun=true", tok, json.dumps(
        {"apiVersion": "mailnode/v1", "kind": "Alias", "metadata": {"name": "sales@demo.test",
         "tenant": "demo"}, "spec": {"to": ["bob@demo.test"]}}), accept="application/json")
    assert status == 200 and json.loads(body)["results"][0]["fields"] == ["spec.to[]"] or \
        json.loads(body)["results"][0]["action"] == "updated"
    # Errors over HTTPS carry the same line:column.
    status, _, body = https(demo, "POST", "/v1/apply", tok, "apiVersion: mailnode/v1\nkind: Tenant\n"
                            "metadata: {name: demo}\nspec: {state: gone}\n")
    err = yaml.safe_load(body)["errors"][0]
    assert status == 400 and (err["line"], err["column"], err["path"]) == (4, 15, "spec.state")
    status, _, body = https(demo, "DELETE", "/v1/aliases/sales@demo.test", tok)
    assert status == 200 and yaml.safe_load(body)["kind"] == "DeleteResult"


def test_admin_api_refuses_without_a_good_token(demo):
    status, headers, body = https(demo, "GET", "/v1/tenants")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    status, _, body = https(demo, "GET", "/v1/tenants", "mn_not-a-real-token")
    assert status == 401 and "unknown token" in body
    # Tokens are made on the node, not through the API.
    tok = token(demo)
    status, _, body = https(demo, "POST", "/v1/tokens", tok)
    assert status == 403


def test_tenant_scoped_token_cannot_reach_another_tenant(demo):
    apply(demo, "apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: other}\nspec: {}\n---\n"
          "apiVersion: mailnode/v1\nkind: Domain\nmetadata: {name: other.test, tenant: other}\nspec: {}\n")
    tok = token(demo, "--tenant", "demo")
    before = snapshot(demo)
    # Reads: only its own tenant's objects, others look absent.
    status, _, body = https(demo, "GET", "/v1/domains", tok)
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(body)]
    assert status == 200 and "demo.test" in names and "other.test" not in names
    assert https(demo, "GET", "/v1/domains/other.test", tok)[0] == 404
    assert https(demo, "GET", "/v1/domains?tenant=other", tok)[0] == 403
    assert https(demo, "GET", "/v1/services", tok)[0] == 403
    assert https(demo, "GET", "/v1/status", tok)[0] == 403
    # Writes: 403, nothing applied (even the part for its own tenant).
    status, _, body = https(demo, "POST", "/v1/apply", tok,
                            "apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: z@demo.test, "
                            "tenant: demo}\nspec: {}\n---\napiVersion: mailnode/v1\nkind: Mailbox\n"
                            "metadata: {name: z@other.test, tenant: other}\nspec: {}\n")
    assert status == 403 and yaml.safe_load(body)["errors"][0]["line"] == 8
    assert https(demo, "DELETE", "/v1/domains/other.test", tok)[0] == 404
    assert snapshot(demo) == before


# --- Service documents --------------------------------------------------------

def test_service_documents_reconcile_the_running_node(demo):
    old, new = demo.port(2080), demo.port(2081)
    rc, doc = apply(demo, "apiVersion: mailnode/v1\nkind: Service\nmetadata: {name: http}\n"
                    "spec: {port: %d, maxClients: 50}\n" % new)
    assert sorted(doc["results"][0]["fields"]) == ["spec.maxClients", "spec.port"]
    assert wait_until(lambda: port_open(new)) and not port_open(old)
    assert demo.service("http")["spec"]["port"] == new
    # get -> apply of a Service (status included) is unchanged.
    rc, doc = apply(demo, demo.ctl("get", "services", "http").stdout)
    assert actions(doc)[("Service", "http")] == "unchanged"
    rc, doc = apply(demo, "apiVersion: mailnode/v1\nkind: Service\nmetadata: {name: http}\n"
                    "spec: {state: stopped}\n")
    assert wait_until(lambda: not port_open(new))
    assert demo.service("http")["status"]["state"] == "stopped"
    rc, doc = apply(demo, "apiVersion: mailnode/v1\nkind: Service\nmetadata: {name: http}\n"
                    "spec: {state: running, port: %d}\n" % old)
    assert wait_until(lambda: port_open(old))
    rc, doc = apply(demo, "apiVersion: mailnode/v1\nkind: Service\nmetadata: {name: admin}\n"
                    "spec: {state: stopped}\n", check=False)
    assert rc == 1 and "cannot be stopped" in doc["errors"][0]["message"]
    rc, doc = apply(demo, "apiVersion: mailnode/v1\nkind: Service\nmetadata: {name: spool}\n"
                    "spec: {port: 25}\n", check=False)
    assert rc == 1 and "no listener" in doc["errors"][0]["message"]


def test_docs_list_every_field_of_the_schema():
    """docs/provisioning.md is checked against the schema, the one source."""
    schema = yaml.safe_load(open(os.path.join(TOP, "schemas", "mailnode-v1.schema.yaml")))
    doc = open(os.path.join(TOP, "docs", "provisioning.md")).read()
    defs = schema["$defs"]

    def fields(node, prefix=""):
        if "$ref" in node:
            node = defs[node["$ref"].split("/")[-1]]
        for name, sub in node.get("properties", {}).items():
            path = prefix + name
            target = defs[sub["$ref"].split("/")[-1]] if "$ref" in sub else sub
            if target.get("type") == "object" and "properties" in target:
                yield from fields(target, path + ".")
            else:
                yield path

    missing = []
    for kind in ("Tenant", "Domain", "Mailbox", "Alias", "Service"):
        section = doc.split("### " + kind, 1)[1].split("###", 1)[0]
        for f in fields(defs[kind + "Spec"]):
            if "`%s`" % f not in section and "`%s`" % f.split(".")[-1] not in section:
                missing.append("%s %s" % (kind, f))
    assert missing == [], "docs/provisioning.md lacks: " + ", ".join(missing)
