#!/usr/bin/env python3
"""Benchmark: the access-control engine. (1) Admission decisions per second
with 10,000 rules (tests/bench/bench_access.c, in process). (2) Under a
connection flood from one address over its per-minute limit, the time from
connect() to the 421 answer, and refusals per second, on a real node.
Prints figures; a measurement, never a test assertion.

    ./run bench access      (or: MAILNODE_BUILD=build python3 tests/bench/access.py)
"""
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from conftest import BUILD, Node, free_offset  # noqa: E402

FLOOD_SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
FLOOD_CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))


def flood(port, src, stop, lat, counts):
    while not stop.is_set():
        t0 = time.perf_counter()
        s = socket.socket()
        s.settimeout(5)
        try:
            s.bind((src, 0))
            s.connect(("127.0.0.1", port))
            line = s.recv(128)
            dt = time.perf_counter() - t0
            if line.startswith(b"421"):
                lat.append(dt)
                counts["refused"] += 1
            elif line.startswith(b"220"):
                counts["admitted"] += 1
        except OSError:
            counts["errors"] += 1
        finally:
            s.close()


def main():
    prog = os.path.join(BUILD, "tests", "bench_access")
    print(subprocess.run([prog], check=True, capture_output=True, text=True).stdout, end="")
    with tempfile.TemporaryDirectory(prefix="mn-bench-") as d:
        node = Node(os.path.join(d, "var"), free_offset()).start()
        try:
            path = os.path.join(d, "svc.yaml")
            with open(path, "w") as f:
                f.write("apiVersion: mailnode/v1\nkind: Service\nmetadata: {name: smtp}\n"
                        "spec: {connections: {perIpPerMinute: 10}}\n")
            node.ctl("apply", "-f", path)
            stop = threading.Event()
            lat, counts = [], {"refused": 0, "admitted": 0, "errors": 0}
            threads = [threading.Thread(target=flood, args=(node.port(2525), "127.0.0.77", stop, lat, counts))
                       for _ in range(FLOOD_CLIENTS)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            time.sleep(FLOOD_SECONDS)
            stop.set()
            for t in threads:
                t.join()
            dt = time.perf_counter() - t0
            # Meanwhile, another address is still served.
            s = socket.create_connection(("127.0.0.1", node.port(2525)), timeout=5,
                                         source_address=("127.0.0.78", 0))
            other = s.recv(128)[:3].decode()
            s.close()
            lat.sort()
            print("flood from one address, %d clients, %.0fs: %d refused (%.0f/s), %d admitted, %d errors; "
                  "another address got %s" % (FLOOD_CLIENTS, dt, counts["refused"], counts["refused"] / dt,
                                              counts["admitted"], counts["errors"], other))
            if lat:
                print("connect to 421: median %.3f ms, p99 %.3f ms" % (
                    statistics.median(lat) * 1e3, lat[int(len(lat) * 0.99) - 1] * 1e3))
        finally:
            node.stop()


if __name__ == "__main__":
    main()
