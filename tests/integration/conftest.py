"""Integration harness: starts the real mailnoded (with its own embedded
MariaDB) in a private state directory on loopback ports, and drives it with
mailnodectl and real clients."""
import base64
import hashlib
import hmac
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("MAILNODE_BUILD", os.path.join(TOP, "build"))
MAILNODED = os.path.join(BUILD, "node", "mailnoded")
MAILNODECTL = os.path.join(BUILD, "provisioning", "mailnodectl")
SANITIZED = os.environ.get("MAILNODE_SANITIZED") == "1"

# Dev ports plus an offset keep the tests clear of a running ./run up.
_next_offset = [30000 + (os.getpid() % 50) * 200]


def free_offset():
    """A port offset whose http port (2080 + offset) is free right now."""
    while True:
        _next_offset[0] += 1000
        if _next_offset[0] > 60000:
            _next_offset[0] = 30000
        off = _next_offset[0]
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", 2080 + off))
            return off
        except OSError:
            continue
        finally:
            s.close()


class Node:
    """One mailnoded process over a state directory that outlives restarts."""

    def __init__(self, state_dir, port_offset, database=None, extra=()):
        self.state_dir = state_dir
        self.port_offset = port_offset
        self.database = database
        self.extra = list(extra)
        self.proc = None
        self.log_path = os.path.join(state_dir, "mailnoded.log")

    def port(self, dev_port):
        return dev_port + self.port_offset

    def start(self, wait=True):
        os.makedirs(self.state_dir, exist_ok=True)
        args = [MAILNODED, "--state-dir", self.state_dir, "--dev", "--no-syslog",
                "--port-offset", str(self.port_offset)]
        if self.database:
            args += ["--database", self.database]
        args += self.extra
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("mailnoded exited with %s:\n%s" % (self.proc.returncode, self.log_text()))
            r = self.ctl("status", check=False)
            if r.returncode == 0:
                return
            time.sleep(0.2)
        raise AssertionError("mailnoded not ready in %ss:\n%s" % (timeout, self.log_text()))

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def ctl(self, *args, check=True):
        r = subprocess.run([MAILNODECTL, "--state-dir", self.state_dir] + list(args),
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("mailnodectl %s failed (%d): %s%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def ctl_yaml(self, *args):
        return list(yaml.safe_load_all(self.ctl("-o", "yaml", *args).stdout))

    def service(self, name):
        return self.ctl_yaml("service", "show", name)[0]

    def stop(self, sig=signal.SIGTERM, timeout=90):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            self.log.close()
        return rc

    def mariadb_pids(self):
        """Processes of the embedded server that serve this state directory."""
        datadir = os.path.join(self.state_dir, "db", "data")
        out = subprocess.run(["pgrep", "-f", "--", "--datadir=" + datadir],
                             capture_output=True, text=True).stdout.split()
        return [int(p) for p in out]

    def sql(self, query):
        sock = os.path.join(self.state_dir, "run", "mariadb.sock")
        r = subprocess.run(["mariadb", "-S", sock, "-u", "root", "-N", "-B", "-r", "mailnode", "-e", query],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return [line.split("\t") for line in r.stdout.splitlines()]


class ScramClient:
    """The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) for tests over
    any protocol. Called with each server challenge (decoded), it returns
    the next response (not encoded), as imaplib's authenticate wants: the
    first message, the proof, then an empty answer to the server's
    signature, which it checks (verified). tamper spoils the proof."""

    def __init__(self, user, password, tamper=False):
        self.password = password
        self.tamper = tamper
        self.cnonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), self.cnonce)
        self.step = 0
        self.verified = False

    def first(self):
        return ("n,," + self.first_bare).encode()

    def final(self, server_first):
        server_first = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert attrs["r"].startswith(self.cnonce)
        self.salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(attrs["s"]),
                                          int(attrs["i"]))
        client_key = hmac.new(self.salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = "c=biws,r=" + attrs["r"]
        self.auth_msg = ",".join((self.first_bare, server_first, without_proof)).encode()
        sig = hmac.new(stored_key, self.auth_msg, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        if self.tamper:
            proof = bytes([proof[0] ^ 1]) + proof[1:]
        return (without_proof + ",p=" + base64.b64encode(proof).decode()).encode()

    def check(self, server_final):
        server_key = hmac.new(self.salted, b"Server Key", "sha256").digest()
        expect = "v=" + base64.b64encode(hmac.new(server_key, self.auth_msg, "sha256").digest()).decode()
        self.verified = server_final.decode() == expect
        return self.verified

    def __call__(self, challenge):
        self.step += 1
        if self.step == 1:
            return self.first()
        if self.step == 2:
            return self.final(challenge)
        self.check(challenge)
        return b""


def crypt_sha512(password):
    """A passwordHash as migrated from elsewhere: no SCRAM keys."""
    r = subprocess.run(["openssl", "passwd", "-6", password], capture_output=True, text=True, check=True)
    return "{SHA512-CRYPT}" + r.stdout.strip()


def wait_until(pred, timeout=10.0, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def port_open(port, host="127.0.0.1"):
    s = socket.socket()
    s.settimeout(0.5)
    try:
        s.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture(scope="module")
def node():
    """A node shared by the tests of one module."""
    with tempfile.TemporaryDirectory(prefix="mn-it-") as d:
        n = Node(os.path.join(d, "var"), free_offset()).start()
        yield n
        rc = n.stop()
        assert rc == 0, "mailnoded exited %s on SIGTERM:\n%s" % (rc, n.log_text()[-4000:])


@pytest.fixture
def fresh_state():
    with tempfile.TemporaryDirectory(prefix="mn-it-") as d:
        yield os.path.join(d, "var")
