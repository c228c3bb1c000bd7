#!/usr/bin/env python3
"""Benchmark: applying 1,000 and 10,000 mailboxes in one stream through the
control socket, and the idempotent re-apply of the same stream. Starts its
own node (embedded MariaDB) in a temporary directory; prints medians of
several rounds. A measurement, never a test assertion.

    ./run bench provisioning      (or: MAILNODE_BUILD=build python3 tests/bench/provisioning.py)
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from conftest import Node, free_offset  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def stream(tenant, n, with_passwords):
    parts = ["apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: %s}\nspec: {}\n" % tenant,
             "apiVersion: mailnode/v1\nkind: Domain\nmetadata: {name: %s.test, tenant: %s}\nspec: {}\n"
             % (tenant, tenant)]
    for i in range(n):
        spec = '{quota: 1GiB, password: "pw-%08d-long"}' % i if with_passwords else "{quota: 1GiB}"
        parts.append("apiVersion: mailnode/v1\nkind: Mailbox\nmetadata: {name: u%06d@%s.test, "
                     "tenant: %s}\nspec: %s\n" % (i, tenant, tenant, spec))
    return "---\n".join(parts)


def timed_apply(node, path):
    t0 = time.perf_counter()
    r = node.ctl("apply", "-f", path)
    dt = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    return dt, r.stdout.strip().splitlines()[-1]


def main():
    with tempfile.TemporaryDirectory(prefix="mn-bench-") as d:
        node = Node(os.path.join(d, "var"), free_offset()).start()
        try:
            for n, pw in ((1000, False), (10000, False), (1000, True)):
                first, again = [], []
                for rnd in range(ROUNDS):
                    tenant = "b%d%s%d" % (n, "p" if pw else "", rnd)
                    path = os.path.join(d, tenant + ".yaml")
                    with open(path, "w") as f:
                        f.write(stream(tenant, n, pw))
                    dt, summary = timed_apply(node, path)
                    first.append(dt)
                    dt2, summary2 = timed_apply(node, path)
                    assert "%d unchanged" % (n + 2) in summary2, summary2
                    again.append(dt2)
                label = "%d mailboxes%s" % (n, " with plain passwords" if pw else "")
                print("%-40s apply %.2fs (%.0f/s)   re-apply (unchanged) %.2fs (%.0f/s)" % (
                    label, statistics.median(first), n / statistics.median(first),
                    statistics.median(again), n / statistics.median(again)))
        finally:
            node.stop()


if __name__ == "__main__":
    main()
