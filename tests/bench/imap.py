#!/usr/bin/env python3
"""Benchmark: IMAP, mailnode against Dovecot in the same run. Both hold the
same users (same SHA512-CRYPT hashes) and the same messages in their INBOX,
and our imapload.py runs the same command mix against each:

  - ops/s and p99 latency per command of the mix (LOGIN, SELECT, FETCH
    flags / envelope / body, STORE, SEARCH, APPEND, LOGOUT) with N clients;
  - logins/s: connect, LOGIN, LOGOUT cycles with N clients;
  - memory per idle logged-in connection (LOGIN, SELECT INBOX, IDLE) with
    1,000 and 10,000 connections: the sum of the RSS of every process of
    the server (mailnoded and its MariaDB; every Dovecot process) and the
    whole machine's used memory, before and after, per connection. Dovecot
    is measured as configured by default (one imap process per connection)
    and with hibernation of IDLE connections (imap_hibernate_timeout).

Several rounds alternate the two servers; medians are printed and the last
line is the ratio mailnode/dovecot. A measurement, never a test assertion.

    ./run bench imap   (BENCH_ROUNDS, BENCH_SECONDS, BENCH_IMAP_CLIENTS=10,
                        BENCH_IMAP_IDLE=1000,10000, BENCH_IMAP_USERS, BENCH_IMAP_MESSAGES)
"""
import asyncio
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import benchlib  # noqa: E402
import imapload  # noqa: E402
import peers  # noqa: E402
import smtpload  # noqa: E402

from benchlib import ROUNDS, median, say  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
CLIENTS = [int(x) for x in os.environ.get("BENCH_IMAP_CLIENTS", "10").split(",")]
IDLE = [int(x) for x in os.environ.get("BENCH_IMAP_IDLE", "1000,10000").split(",") if x]
USERS = int(os.environ.get("BENCH_IMAP_USERS", "20"))
MESSAGES = int(os.environ.get("BENCH_IMAP_MESSAGES", "50"))
DOMAIN = "bench.test"
HIBERNATE_AFTER = 5   # s; Dovecot's imap_hibernate_timeout in the hibernating variant


class Side:
    def __init__(self, name, port, pids):
        self.name, self.port, self.pids = name, port, pids


def seed(users, mn, dv):
    """The same messages into both: Dovecot's Maildirs directly, mailnode
    through its MX (which adds its trace header)."""
    uid, gid = peers._ids(peers.MAIL_USER)
    items = []
    for i, addr in enumerate(sorted(users)):
        msgs = benchlib.corpus(i, MESSAGES)
        benchlib.seed_maildir(dv.maildir(addr), msgs, uid, gid)
        items += [(addr, m) for m in msgs]
    if mn is None:
        return
    before = mn.delivered()
    errors = smtpload.deliver("127.0.0.1", mn.port(2525), items, sessions=10)
    if errors:
        raise RuntimeError("seeding mailnode over SMTP: %d errors, first: %s" % (len(errors), errors[0]))
    deadline = time.time() + 600
    while mn.delivered() < before + len(items):
        if time.time() > deadline:
            raise RuntimeError("mailnode did not deliver the seed messages in 600s")
        time.sleep(0.5)


async def idle_memory(side, accounts, count, settle):
    """KiB per idle logged-in connection: (server RSS, machine) deltas."""
    pids0 = side.pids()
    rss0, mach0 = benchlib.rss_kib(pids0), benchlib.mem_used_kib()
    self0 = benchlib.rss_kib([os.getpid()])
    opened, errors = await imapload.open_idle("127.0.0.1", side.port, accounts, count)
    if errors:
        say("  %s: %d of %d idle connections failed, first: %s" % (side.name, len(errors), count, errors[0]))
    await asyncio.sleep(settle)
    rss1, mach1 = benchlib.rss_kib(side.pids()), benchlib.mem_used_kib()
    self1 = benchlib.rss_kib([os.getpid()])
    n = max(1, len(opened))
    await imapload.close_all(opened)
    # Let the server wind the sessions down before anything else is measured.
    deadline = time.time() + 120
    while time.time() < deadline and len(side.pids()) > len(pids0) + 2:
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)
    # The generator's own growth is on this machine too; it is not the server's.
    return (rss1 - rss0) / n, ((mach1 - mach0) - (self1 - self0)) / n, len(opened)


INOTIFY = "/proc/sys/fs/inotify/max_user_instances"
_inotify_saved = []


def inotify_limit(count):
    """Dovecot hibernates an IDLE connection only with an inotify instance of
    its own, and the kernel's per-user limit is usually 128. A system-wide
    setting: raised for the run (and restored) only when BENCH_RAISE_INOTIFY=1."""
    with open(INOTIFY) as f:
        limit = int(f.read())
    if limit >= count + 200:
        return
    if os.environ.get("BENCH_RAISE_INOTIFY") == "1":
        with open(INOTIFY, "w") as f:
            f.write(str(count + 1000))
        _inotify_saved.append(limit)
        say("fs.inotify.max_user_instances raised from %d to %d for the run" % (limit, count + 1000))
    else:
        say("note: fs.inotify.max_user_instances=%d: Dovecot can hibernate only about that many connections "
            "(BENCH_RAISE_INOTIFY=1 raises it for the run and restores it)" % limit)


def inotify_restore():
    while _inotify_saved:
        with open(INOTIFY, "w") as f:
            f.write(str(_inotify_saved.pop()))


def main():
    benchlib.require_root()
    benchlib.ensure_packages(["dovecot-imapd", "dovecot-pop3d"])
    top = tempfile.mkdtemp(prefix="mn-bench-imap-", dir=benchlib.BENCH_TMP)
    os.chmod(top, 0o755)
    say("machine: " + benchlib.machine())
    users = benchlib.make_users(USERS, DOMAIN)
    accounts = [(a, users[a][0]) for a in sorted(users)]
    mn_dir, dv_dir = os.path.join(top, "mailnode"), os.path.join(top, "dovecot")
    os.makedirs(mn_dir)
    os.makedirs(dv_dir)
    max_conns = max(IDLE + [100]) + 500
    off = benchlib.free_port_base([2143, 2110, 2144, 2111])
    mn = benchlib.Mailnode(mn_dir, users, DOMAIN, max_clients=max_conns)
    dv = peers.Dovecot(dv_dir, 2143 + off, 2110 + off, {a: h for a, (_, h) in users.items()})
    dvh = None
    try:
        mn.start()
        mn_port = mn.service_port("imap")
        dv.configure(max_conns).start()
        say("seeding %d mailboxes x %d messages" % (USERS, MESSAGES))
        seed(users, mn if mn_port else None, dv)
        sides = [Side("dovecot", dv.imap_port, dv.pids)]
        if mn_port:
            sides.insert(0, Side("mailnode", mn_port, mn.pids))
        else:
            say("mailnode has no imap service in this build: measuring dovecot only")
        res = {s.name: {} for s in sides}

        def put(side, key, value):
            res[side.name].setdefault(key, []).append(value)

        for clients in CLIENTS:
            for rnd in range(ROUNDS):
                for side in (sides if rnd % 2 == 0 else sides[::-1]):
                    stats, dt = asyncio.run(imapload.run_mix("127.0.0.1", side.port, accounts, clients, SECONDS,
                                                             seed=rnd + 1))
                    put(side, ("ops", clients), stats.ops() / dt)
                    for c in imapload.COMMANDS:
                        put(side, ("p99", clients, c), benchlib.p99(stats.lat[c]) * 1e3)
                    lstats, ldt = asyncio.run(imapload.run_logins("127.0.0.1", side.port, accounts, clients,
                                                                  SECONDS / 2))
                    put(side, ("logins", clients), len(lstats.lat["login"]) / ldt)
                    errs = stats.errors + lstats.errors
                    say("  %2d clients round %d %-8s %6.0f ops/s  %5.0f logins/s%s" % (
                        clients, rnd + 1, side.name, stats.ops() / dt, len(lstats.lat["login"]) / ldt,
                        "  (%d errors, first: %s)" % (len(errs), errs[0]) if errs else ""))

        for count in IDLE:
            for side in sides:
                r, m, n = asyncio.run(idle_memory(side, accounts, count, settle=3))
                put(side, ("idle_rss", count), r)
                put(side, ("idle_machine", count), m)
                say("  %5d idle connections %-8s %7.1f KiB/conn server RSS  %7.1f KiB/conn machine  (%d open)"
                    % (count, side.name, r, m, n))
        # Dovecot at its leanest: IDLE connections hibernated out of their
        # imap processes. A second instance over the same Maildirs.
        if IDLE:
            inotify_limit(max(IDLE))
            dv.stop()
            dvh = peers.Dovecot(os.path.join(top, "dovecot-hib"), dv.imap_port + 1, dv.pop3_port + 1,
                                dv.users, hibernate=True, mail=dv.mail)
            os.makedirs(dvh.top)
            dvh.configure(max_conns).start()
            hside = Side("dovecot-hibernate", dvh.imap_port, dvh.pids)
            for count in IDLE:
                r, m, n = asyncio.run(idle_memory(hside, accounts, count, settle=HIBERNATE_AFTER + 5))
                res.setdefault("dovecot-hib", {})[count] = (r, m)
                say("  %5d idle connections %-8s %7.1f KiB/conn server RSS  %7.1f KiB/conn machine  (%d open)"
                    % (count, hside.name, r, m, n))

        def med(name, key):
            return median(res.get(name, {}).get(key, []))

        table = benchlib.Table("dovecot")
        for clients in CLIENTS:
            table.add("IMAP ops/s, %d clients (mix)" % clients, med("mailnode", ("ops", clients)),
                      med("dovecot", ("ops", clients)), "/s")
            for c in imapload.COMMANDS:
                table.add("  p99 %s, %d clients" % (c, clients), med("mailnode", ("p99", clients, c)),
                          med("dovecot", ("p99", clients, c)), "ms", lower_better=True)
            table.add("IMAP logins/s, %d clients" % clients, med("mailnode", ("logins", clients)),
                      med("dovecot", ("logins", clients)), "/s")
        for count in IDLE:
            table.add("idle conn, %d: server RSS KiB/conn" % count, med("mailnode", ("idle_rss", count)),
                      med("dovecot", ("idle_rss", count)), "KiB", lower_better=True)
            table.add("idle conn, %d: machine KiB/conn" % count, med("mailnode", ("idle_machine", count)),
                      med("dovecot", ("idle_machine", count)), "KiB", lower_better=True)
            if count in res.get("dovecot-hib", {}):
                r, m = res["dovecot-hib"][count]
                table.add("idle conn, %d: RSS vs dovecot hibernating" % count,
                          med("mailnode", ("idle_rss", count)), r, "KiB", lower_better=True)
                table.add("idle conn, %d: machine vs dovecot hibern." % count,
                          med("mailnode", ("idle_machine", count)), m, "KiB", lower_better=True)
        table.print()
        c = 10 if 10 in CLIENTS else CLIENTS[0]
        if mn_port:
            big = max(IDLE) if IDLE else None
            say("RATIO imap mailnode/dovecot: ops/s at %d clients %.2fx (target 1.5x), logins/s %.2fx (target 2x)%s"
                % (c, benchlib.ratio(med("mailnode", ("ops", c)), med("dovecot", ("ops", c))),
                   benchlib.ratio(med("mailnode", ("logins", c)), med("dovecot", ("logins", c))),
                   ", idle %.1f KiB/conn machine at %d (target < 8)" % (med("mailnode", ("idle_machine", big)), big)
                   if big else ""))
        else:
            say("RATIO imap mailnode/dovecot: n/a (no imap service in this mailnode build); dovecot %.0f ops/s, "
                "%.0f logins/s at %d clients" % (med("dovecot", ("ops", c)), med("dovecot", ("logins", c)), c))
    finally:
        inotify_restore()
        if dvh:
            dvh.stop()
        dv.stop()
        mn.stop()
        benchlib.rmtree(top)


if __name__ == "__main__":
    main()
