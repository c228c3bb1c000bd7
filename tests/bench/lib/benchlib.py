"""Shared pieces of the side-by-side benchmarks: installing the peers from
Debian packages without starting system servers, the mailnode node, the
disk's fdatasync rate, process memory, and how figures are printed."""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration"))
from conftest import Node, free_offset  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
# Where the benchmarks keep their state: the same filesystem for both sides.
BENCH_TMP = os.environ.get("BENCH_TMP") or None


def raise_fd_limit(want=200000):
    """Thousands of connections need as many descriptors, in the load
    generators and in the servers they start (who inherit the limit)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if os.getuid() == 0 and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


raise_fd_limit()


def say(text):
    print(text, flush=True)


def sudo():
    return [] if os.getuid() == 0 else ["sudo"]


def require_root():
    """The peers run as their own private instances, and both need root to
    start (Postfix's master, Dovecot's master drop privileges themselves)."""
    if os.getuid() != 0:
        raise SystemExit("bench: the Postfix and Dovecot instances need root: run `sudo ./run bench`")


def installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return r.returncode == 0 and "ok installed" in r.stdout


def ensure_packages(pkgs, debconf=()):
    """apt-get install what is missing. Package scripts must not start
    system-wide servers (a policy-rc.d that refuses, as ./run deps does) and
    Postfix must not configure a system mailer (debconf preseed)."""
    missing = [p for p in pkgs if not installed(p)]
    if not missing:
        return
    say("installing: " + " ".join(missing))
    if debconf:
        subprocess.run(sudo() + ["debconf-set-selections"], input="".join(l + "\n" for l in debconf),
                       text=True, check=True)
    policy = "/usr/sbin/policy-rc.d"
    placed = False
    if not os.path.exists(policy):
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(f.name, 0o755)
        subprocess.run(sudo() + ["cp", f.name, policy], check=True)
        os.unlink(f.name)
        placed = True
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(sudo() + ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update", "-q"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(sudo() + ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
                                 "--no-install-recommends"] + missing, env=env, check=True)
    finally:
        if placed:
            subprocess.run(sudo() + ["rm", "-f", policy], check=False)


POSTFIX_DEBCONF = ("postfix postfix/main_mailer_type select No configuration",
                   "postfix postfix/mailname string localhost")


def free_port_base(ports):
    """A port offset (from 30000 up, distinct from the nodes') at which every
    port in `ports` is free on loopback now."""
    for off in range(31500 + (os.getpid() % 40) * 50, 60000, 997):
        ok = True
        for p in ports:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", p + off))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            return off
    raise RuntimeError("no free loopback ports for the peer")


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
            return
        except OSError:
            time.sleep(0.1)
        finally:
            s.close()
    raise RuntimeError("nothing listens on 127.0.0.1:%d" % port)


def fdatasync_rate(directory, seconds=2.0, block=4096):
    """fdatasync calls per second after 4 KiB writes into a preallocated file
    on the filesystem the benchmarks write to: the most times per second any
    server there can make one write durable, whatever it does."""
    path = os.path.join(directory, "fdatasync.probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        slots = 256
        os.posix_fallocate(fd, 0, slots * block)
        os.fsync(fd)
        data = os.urandom(block)
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            os.pwrite(fd, data, (n % slots) * block)
            os.fdatasync(fd)
            n += 1
        return n / (time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)


def process_tree(root_pids):
    """All pids descending from root_pids (inclusive), from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], list(root_pids)
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_kib(pids):
    """Sum of resident set sizes (VmRSS) of pids, KiB."""
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def mem_used_kib():
    """The whole machine's used memory (MemTotal - MemAvailable), KiB."""
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            info[k] = int(v.split()[0])
    return info["MemTotal"] - info["MemAvailable"]


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def p99(xs):
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(0.99 * len(s)))]


def ratio(a, b):
    return a / b if b else float("nan")


def machine():
    """One line on the machine the figures come from."""
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    load = os.getloadavg()
    return "%d cores (%s), %d MiB RAM, load %.2f %.2f %.2f, kernel %s" % (
        os.cpu_count(), cpu, mem, load[0], load[1], load[2], os.uname().release)


class Table:
    """Rows of (label, mailnode figure, peer figure, unit); ratios computed."""

    def __init__(self, peer):
        self.peer = peer
        self.rows = []

    def add(self, label, mine, theirs, unit, lower_better=False):
        self.rows.append((label, mine, theirs, unit, lower_better))

    def print(self):
        say("%-46s %14s %14s %9s" % ("figure (median of %d rounds)" % ROUNDS, "mailnode", self.peer,
                                    "mn/peer"))
        for label, mine, theirs, unit, lower_better in self.rows:
            say("%-46s %14s %14s %8.3gx%s" % (label, fmt(mine, unit), fmt(theirs, unit), ratio(mine, theirs),
                                             "  (lower is better)" if lower_better else ""))


def fmt(v, unit):
    if v != v:
        return "n/a"
    if unit == "ms":
        return "%.2f ms" % v
    if unit == "KiB":
        return "%.1f KiB" % v
    return "%.0f %s" % (v, unit)


def rmtree(path):
    """Removes a benchmark's directory, unless BENCH_KEEP=1 (to read logs)."""
    if os.environ.get("BENCH_KEEP") == "1":
        say("kept %s (BENCH_KEEP=1)" % path)
        return
    shutil.rmtree(path, ignore_errors=True)


def make_users(n, domain="bench.test"):
    """n mailboxes with fresh random passwords and their SHA512-CRYPT hashes
    (5000 rounds, the default of both servers): the same hash goes to both
    sides, so a login costs both the same."""
    import secrets
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    users = {}
    for i in range(n):
        pw = secrets.token_urlsafe(12)
        users["u%04d@%s" % (i, domain)] = (pw, "{SHA512-CRYPT}" + crypt.crypt(pw, crypt.mksalt(crypt.METHOD_SHA512)))
    return users


class Mailnode:
    """mailnoded from the release build with its own state directory and port
    offset (embedded MariaDB), one tenant `bench` with the given mailboxes,
    and the services' limits raised above what the benchmarks open."""

    def __init__(self, top, users, domain="bench.test", max_clients=20000):
        self.top = top
        self.users = users
        self.domain = domain
        self.max_clients = max_clients
        self.node = None

    def start(self):
        self.node = Node(os.path.join(self.top, "var"), free_offset()).start()
        docs = ["apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: bench}\n"
                "spec: {limits: {mailboxes: 0, storage: 1TiB, messageSize: 25MiB},"
                " connections: {maxConcurrent: 0, exempt: [127.0.0.1]}}\n",
                "apiVersion: mailnode/v1\nkind: Domain\nmetadata: {name: %s, tenant: bench}\nspec: {}\n"
                % self.domain]
        for addr, (_, h) in self.users.items():
            docs.append("apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: %s, tenant: bench}\n"
                        "spec: {quota: 0, passwordHash: \"%s\"}\n" % (addr, h))
        for svc in ("smtp", "imap", "pop3"):
            docs.append("apiVersion: mailnode/v1\nkind: Service\nmetadata: {name: %s}\n"
                        "spec: {maxClients: %d, connections: {exempt: [127.0.0.1]}}\n"
                        % (svc, self.max_clients))
        path = os.path.join(self.top, "bench.yaml")
        with open(path, "w") as f:
            f.write("---\n".join(docs))
        self.node.ctl("apply", "-f", path)
        return self

    def port(self, dev_port):
        return self.node.port(dev_port)

    def service_port(self, name):
        """The loopback port of a protocol service that runs in this build,
        with passwords in clear allowed on it (loopback, as on the peer),
        or None when the build has no such service yet."""
        show = self.node.ctl_yaml("service", "show", name)[0]
        spec = show.get("spec", {})
        if "allowPlaintextAuth" in spec and not spec["allowPlaintextAuth"]:
            path = os.path.join(self.top, "plain-%s.yaml" % name)
            with open(path, "w") as f:
                f.write("apiVersion: mailnode/v1\nkind: Service\nmetadata: {name: %s}\n"
                        "spec: {allowPlaintextAuth: true}\n" % name)
            self.node.ctl("apply", "-f", path)
            show = self.node.ctl_yaml("service", "show", name)[0]
        status = show.get("status", {})
        if status.get("state") != "running":
            say("mailnode: service %s is %s (%s)" % (name, status.get("state"), status.get("reason", "")))
            return None
        return int(show["spec"]["port"])

    def pids(self):
        return process_tree([self.node.proc.pid]) + self.node.mariadb_pids()

    def delivered(self):
        """Messages in the bench tenant's mailboxes (rows of the store)."""
        return int(self.node.sql("SELECT COUNT(*) FROM messages")[0][0])

    def queued(self):
        return int(self.node.sql("SELECT COUNT(*) FROM queue_recipients")[0][0])

    def stop(self):
        if self.node:
            self.node.stop()


def corpus(user_index, count):
    """The messages every server of the IMAP and POP3 benchmarks holds in a
    mailbox: deterministic, 1 to 30 KiB, plain and multipart, From
    sender-0..9@example.org. Bytes with CRLF line ends."""
    import random
    rnd = random.Random(user_index * 7919 + count)
    out = []
    for i in range(count):
        size = rnd.choice((1024, 2048, 4096, 6144, 12288, 30720))
        k = (user_index + i) % 10
        head = ("Return-Path: <sender-%d@example.org>\r\n"
                "From: Sender %d <sender-%d@example.org>\r\nTo: <u%04d@bench.test>\r\n"
                "Subject: message %d of mailbox %d\r\nDate: Mon, 2 Jun 2025 %02d:%02d:00 +0000\r\n"
                "Message-ID: <m%d.u%d@example.org>\r\nMIME-Version: 1.0\r\n"
                % (k, k, k, user_index, i, user_index, (i // 60) % 24, i % 60, i, user_index))
        line = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz     ") for _ in range(72)) + "\r\n"
        text = line * max(1, size // len(line))
        if i % 3 == 2:
            msg = head + ('Content-Type: multipart/alternative; boundary="b%d"\r\n\r\n'
                          "--b%d\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s"
                          "--b%d\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>%s</p>\r\n--b%d--\r\n"
                          % (i, i, text[: len(text) // 2], i, text[len(text) // 2:], i))
        else:
            msg = head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text
        out.append(msg.encode())
    return out


def seed_maildir(maildir, messages, owner_uid, owner_gid):
    """Puts messages into a Maildir's cur/ (already seen by a client, as a
    long-lived mailbox is), LF line ends as an MTA writes them."""
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    now = int(time.time())
    for i, m in enumerate(messages):
        lf = m.replace(b"\r\n", b"\n")
        name = "%d.M%dP%d.bench,S=%d,W=%d:2,S" % (now - 86400 + i, i, os.getpid(), len(lf), len(m))
        with open(os.path.join(maildir, "cur", name), "wb") as f:
            f.write(lf)
    for root, dirs, files in os.walk(os.path.dirname(os.path.dirname(maildir))):
        for n in dirs + files:
            os.chown(os.path.join(root, n), owner_uid, owner_gid)
