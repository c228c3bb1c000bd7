#!/usr/bin/env python3
"""Benchmark: memory of idle IMAP connections. Opens N connections (default
1,000; BENCH_IMAP_CONNS) in three states and prints the growth of
mailnoded's resident memory per connection: greeted in clear (imap),
logged in over TLS (imaps), and logged in over TLS with an INBOX of 5,000
messages (with a few expunged) selected.
The embedded MariaDB is a separate process and not counted. A
measurement, never a test assertion (the target of the benchmark issue is
8 KiB per idle logged-in connection, 32 KiB over TLS, at 10,000).

    ./run bench imap_idle_memory   (or: MAILNODE_BUILD=build python3 tests/bench/imap_idle_memory.py)
"""
import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from conftest import MAILNODECTL, Node, free_offset  # noqa: E402

N = int(os.environ.get("BENCH_IMAP_CONNS", "1000"))
PW = "bench-" + os.urandom(6).hex()
USER = "user@bench.test"
TENANT = """\
apiVersion: mailnode/v1
kind: Tenant
metadata: {name: bench}
spec: {}
---
apiVersion: mailnode/v1
kind: Domain
metadata: {name: bench.test, tenant: bench}
spec: {}
---
apiVersion: mailnode/v1
kind: Mailbox
metadata: {name: user@bench.test, tenant: bench}
spec: {}
"""


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def read_until(s, marker):
    data = b""
    while marker not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise EOFError(data)
        data += chunk
    return data


def open_conns(node, how, n):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conns = []
    for i in range(n):
        port = node.port(2143 if how == "clear" else 2993)
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        if how != "clear":
            s = ctx.wrap_socket(s)
        read_until(s, b"\r\n")
        if how != "clear":
            s.sendall(b"a LOGIN %s \"%s\"\r\n" % (USER.encode(), PW.encode()))
            read_until(s, b"a OK")
        if how == "selected":
            s.sendall(b"b SELECT INBOX\r\n")
            read_until(s, b"b OK")
        conns.append(s)
    return conns


def fill_inbox(node, n):
    """n messages by pipelined APPENDs (LITERAL+), then a few expunged."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", node.port(2993)), timeout=120))
    read_until(s, b"\r\n")
    s.sendall(b"a LOGIN %s \"%s\"\r\n" % (USER.encode(), PW.encode()))
    read_until(s, b"a OK")
    msg = b"Subject: bench\r\n\r\nhello\r\n"
    for start in range(0, n, 500):
        s.sendall(b"".join(b"p%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(msg), msg)
                           for i in range(start, min(n, start + 500))))
        read_until(s, b"p%d OK" % (min(n, start + 500) - 1))
    s.sendall(b"b SELECT INBOX\r\nc UID STORE 10,200,3000 +FLAGS (\\Deleted)\r\nd EXPUNGE\r\n")
    read_until(s, b"d OK")
    s.close()


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * N + 256)), hard))
    print("idle IMAP connections: %d each, a fresh node per state" % N)
    for how in ("clear", "tls", "selected"):
        with tempfile.TemporaryDirectory(prefix="mn-bench-") as d:
            node = Node(os.path.join(d, "var"), free_offset()).start()
            try:
                # A tenant without connection limits (the demo tenant has some).
                subprocess.run([MAILNODECTL, "--state-dir", node.state_dir, "apply", "-f", "-"],
                               input=TENANT, text=True, check=True, capture_output=True)
                subprocess.run([MAILNODECTL, "--state-dir", node.state_dir, "passwd", USER],
                               input=PW + "\n", text=True, check=True, capture_output=True)
                pid = node.proc.pid
                if how == "selected":
                    fill_inbox(node, 5000)
                # Warm up: one session of each kind so one-time allocations
                # (TLS, database workers) are not counted per connection.
                for s in open_conns(node, how, 1):
                    s.close()
                time.sleep(1)
                before = rss_kib(pid)
                conns = open_conns(node, how, N)
                time.sleep(2)
                after = rss_kib(pid)
                print("  %-9s %8.1f KiB per connection (RSS %d -> %d KiB)" % (
                    how, (after - before) / N, before, after))
                for s in conns:
                    s.close()
            finally:
                node.stop()

if __name__ == "__main__":
    main()
