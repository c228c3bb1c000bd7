#!/usr/bin/env python3
"""Benchmark: POP3, mailnode against Dovecot in the same run. Both hold the
same users (same SHA512-CRYPT hashes) and the same messages; our
pop3load.py runs login + STAT + RETR of every message + QUIT cycles with N
clients against each, several rounds alternating the two. Prints medians of
cycles/s and p99 cycle time; the last line is the ratio mailnode/dovecot.
A measurement, never a test assertion.

    ./run bench pop3   (BENCH_ROUNDS, BENCH_SECONDS, BENCH_POP3_CLIENTS=10,
                        BENCH_POP3_USERS=20, BENCH_POP3_MESSAGES=20)
"""
import asyncio
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import benchlib  # noqa: E402
import peers  # noqa: E402
import pop3load  # noqa: E402

from benchlib import ROUNDS, median, say  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
CLIENTS = [int(x) for x in os.environ.get("BENCH_POP3_CLIENTS", "10").split(",")]
USERS = int(os.environ.get("BENCH_POP3_USERS", "20"))
MESSAGES = int(os.environ.get("BENCH_POP3_MESSAGES", "20"))
DOMAIN = "bench.test"


def main():
    import imap  # the seeding is the IMAP benchmark's
    imap.MESSAGES = MESSAGES
    benchlib.require_root()
    benchlib.ensure_packages(["dovecot-imapd", "dovecot-pop3d"])
    top = tempfile.mkdtemp(prefix="mn-bench-pop3-", dir=benchlib.BENCH_TMP)
    os.chmod(top, 0o755)
    say("machine: " + benchlib.machine())
    users = benchlib.make_users(USERS, DOMAIN)
    accounts = [(a, users[a][0]) for a in sorted(users)]
    mn_dir, dv_dir = os.path.join(top, "mailnode"), os.path.join(top, "dovecot")
    os.makedirs(mn_dir)
    os.makedirs(dv_dir)
    off = benchlib.free_port_base([2143, 2110])
    mn = benchlib.Mailnode(mn_dir, users, DOMAIN)
    dv = peers.Dovecot(dv_dir, 2143 + off, 2110 + off, {a: h for a, (_, h) in users.items()})
    try:
        mn.start()
        mn_port = mn.service_port("pop3")
        dv.configure().start()
        say("seeding %d mailboxes x %d messages" % (USERS, MESSAGES))
        imap.seed(users, mn if mn_port else None, dv)
        sides = [("dovecot", dv.pop3_port)]
        if mn_port:
            sides.insert(0, ("mailnode", mn_port))
        else:
            say("mailnode has no pop3 service in this build: measuring dovecot only")
        # One untimed pass: first-time indexing is not what is measured.
        for _, port in sides:
            asyncio.run(pop3load.run_cycles("127.0.0.1", port, accounts, len(accounts), 0.01))
        res = {}
        for clients in CLIENTS:
            for rnd in range(ROUNDS):
                for name, port in (sides if rnd % 2 == 0 else sides[::-1]):
                    lat, nbytes, errors, dt = asyncio.run(pop3load.run_cycles("127.0.0.1", port, accounts,
                                                                              clients, SECONDS))
                    res.setdefault((name, clients), []).append((len(lat) / dt, benchlib.p99(lat) * 1e3))
                    say("  %2d clients round %d %-8s %6.1f cycles/s  %6.1f MiB/s  p99 %7.1f ms%s" % (
                        clients, rnd + 1, name, len(lat) / dt, nbytes / dt / 1048576, benchlib.p99(lat) * 1e3,
                        "  (%d errors, first: %s)" % (len(errors), errors[0]) if errors else ""))

        def med(name, clients, i):
            return median([r[i] for r in res.get((name, clients), [])])

        table = benchlib.Table("dovecot")
        for clients in CLIENTS:
            table.add("POP3 cycles/s, %d clients (%d msgs each)" % (clients, MESSAGES),
                      med("mailnode", clients, 0), med("dovecot", clients, 0), "/s")
            table.add("  p99 cycle, %d clients" % clients, med("mailnode", clients, 1),
                      med("dovecot", clients, 1), "ms", lower_better=True)
        table.print()
        c = 10 if 10 in CLIENTS else CLIENTS[0]
        if mn_port:
            say("RATIO pop3 mailnode/dovecot: cycles/s at %d clients %.0f / %.0f = %.2fx (target 1.5x)" % (
                c, med("mailnode", c, 0), med("dovecot", c, 0),
                benchlib.ratio(med("mailnode", c, 0), med("dovecot", c, 0))))
        else:
            say("RATIO pop3 mailnode/dovecot: n/a (no pop3 service in this mailnode build); dovecot %.1f cycles/s "
                "at %d clients" % (med("dovecot", c, 0), c))
    finally:
        dv.stop()
        mn.stop()
        benchlib.rmtree(top)


if __name__ == "__main__":
    main()
