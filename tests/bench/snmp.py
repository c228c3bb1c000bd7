#!/usr/bin/env python3
"""Benchmark: walking the tenant table of MAILNODE-MIB with 1,000 tenants
through the real snmpd (SNMPv3 authPriv) and the mailnode-snmp subagent,
with snmpbulkwalk (GETBULK, 50 repetitions) and snmpwalk (one GETNEXT per
object). Starts its own node; prints medians of several rounds. Target: a
full bulk walk of 1,000 tenants in under a second. A measurement, never a
test assertion.

    ./run bench snmp      (or: MAILNODE_BUILD=build python3 tests/bench/snmp.py)
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from conftest import Node, free_offset  # noqa: E402
from snmp_harness import MN, Snmp, parse  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
TENANTS = int(os.environ.get("BENCH_TENANTS", "1000"))


def tenants_stream(n):
    return "---\n".join(
        "apiVersion: mailnode/v1\nkind: Tenant\nmetadata: {name: t%05d}\n"
        "spec: {limits: {mailboxes: 100, storage: 10GiB}, access: {mode: deny-listed, "
        "addresses: [192.0.2.%d]}}\n" % (i, i % 250 + 1) for i in range(n))


def timed(snmp, tool, args):
    t0 = time.perf_counter()
    r = snmp.tool(tool, args, timeout=600)
    return time.perf_counter() - t0, parse(r.stdout)


def main():
    with tempfile.TemporaryDirectory(prefix="mn-bench-") as d:
        node = Node(os.path.join(d, "var"), free_offset()).start()
        snmp = Snmp(node, os.path.join(d, "snmp"), traps=False)
        try:
            path = os.path.join(d, "tenants.yaml")
            with open(path, "w") as f:
                f.write(tenants_stream(TENANTS))
            r = node.ctl("apply", "-f", path)
            assert r.returncode == 0, r.stderr
            snmp.start()
            table = MN + ".3"
            for label, tool, args in (
                    ("snmpbulkwalk -Cr50 mnTenantTable", "snmpbulkwalk", ["-Cr50", table]),
                    ("snmpwalk (GETNEXT) mnTenantTable", "snmpwalk", [table]),
                    ("snmpbulkwalk -Cr50 MAILNODE-MIB", "snmpbulkwalk", ["-Cr50", MN])):
                times, n = [], 0
                for _ in range(ROUNDS if tool == "snmpbulkwalk" else max(1, ROUNDS // 2)):
                    dt, vals = timed(snmp, tool, args)
                    rows = sum(1 for k in vals if k.startswith(MN + ".3.1.2."))
                    assert rows == TENANTS, rows
                    times.append(dt)
                    n = len(vals)
                med = statistics.median(times)
                print("%-36s %d tenants, %6d objects: %.3fs median of %d (%.0f objects/s)" % (
                    label, TENANTS, n, med, len(times), n / med))
            rss = open("/proc/%d/status" % snmp.agent.pid).read()
            rss = [line.split()[1] for line in rss.splitlines() if line.startswith("VmRSS")][0]
            print("mailnode-snmp resident memory after the walks: %s KiB" % rss)
        finally:
            snmp.stop()
            node.stop()


if __name__ == "__main__":
    main()
