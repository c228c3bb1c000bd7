#!/usr/bin/env python3
"""Benchmark: memory of idle IMAP connections. Opens N connections (default
1,000; BENCH_IMAP_CONNS) in three states and prints the growth of
mailnoded's resident memory per connection: greeted in clear (imap),
logged in over TLS (imaps), and logged in over TLS with INBOX selected.
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
from conftest import MAILNODECTL, TOP, Node, free_offset  # noqa: E402

N = int(os.environ.get("BENCH_IMAP_CONNS", "1000"))
PW = "bench-" + os.urandom(6).hex()


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
            s.sendall(b"a LOGIN alice@demo.test \"%s\"\r\n" % PW.encode())
            read_until(s, b"a OK")
        if how == "selected":
            s.sendall(b"b SELECT INBOX\r\n")
            read_until(s, b"b OK")
        conns.append(s)
    return conns


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * N + 256)), hard))
    print("idle IMAP connections: %d each, a fresh node per state" % N)
    for how in ("clear", "tls", "selected"):
        with tempfile.TemporaryDirectory(prefix="mn-bench-") as d:
            node = Node(os.path.join(d, "var"), free_offset()).start()
            try:
                node.ctl("apply", "-f", os.path.join(TOP, "docs", "examples", "demo.yaml"))
                subprocess.run([MAILNODECTL, "--state-dir", node.state_dir, "passwd", "alice@demo.test"],
                               input=PW + "\n", text=True, check=True, capture_output=True)
                pid = node.proc.pid
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
