#!/usr/bin/env python3
"""Benchmark: SMTP acceptance and delivery, mailnode against Postfix in the
same run. Both take 5 KiB messages on loopback for one hosted domain and
deliver them into a mailbox: mailnode into its store (MariaDB rows + body
files), Postfix through virtual(8) into Maildirs. Both are durable before
the 250 (see docs/performance.md for exactly what each side syncs).

For 1, 20 and 100 parallel sessions, several rounds alternating the two:
  - accepted/s: Postfix's smtp-source sends the messages (one per session,
    like MX traffic); messages / its run time.
  - delivered/s: messages / time from the start of that run until the last
    one is in a mailbox (store rows; Maildir new/ files).
  - p99 acceptance latency: our smtpload.py (same sessions, one message per
    session), time from the end of the data to the 250; a separate phase,
    since smtp-source does not time messages.
Also the disk's fdatasync rate: the physical line to read the figures by.
Prints medians; the last line is the ratio mailnode/postfix. A measurement,
never a test assertion.

    ./run bench smtp      (BENCH_ROUNDS=3, BENCH_SCALE=1.0 to shorten or lengthen)
"""
import os
import subprocess
import tempfile
import threading
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import benchlib  # noqa: E402
import peers  # noqa: E402
import smtpload  # noqa: E402

from benchlib import ROUNDS, median, p99, say  # noqa: E402

SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))
SESSIONS = [int(s) for s in os.environ.get("BENCH_SMTP_SESSIONS", "1,20,100").split(",")]
# Messages per measured run, by parallel sessions (times BENCH_SCALE).
MESSAGES = {1: 200, 20: 2000, 100: 3000}
LATENCY_MESSAGES = {1: 100, 20: 1000, 100: 2000}
SIZE = 5120
SENDER = "bench@example.org"
DOMAIN = "bench.test"
DELIVERY_TIMEOUT = 300


def count(table, sessions):
    return max(sessions, int(table.get(sessions, 20 * sessions) * SCALE))


class Side:
    def __init__(self, name, port, server):
        self.name = name
        self.port = port
        self.server = server

    def delivered(self):
        return self.server.delivered()


class Watcher(threading.Thread):
    """Polls a side's delivered count until it reaches `target`; records
    when it did (perf_counter)."""

    def __init__(self, side, target, step=0.1):
        super().__init__(daemon=True)
        self.side, self.target, self.step = side, target, step
        self.done_at = None
        self.last = 0
        self.stop = threading.Event()

    def run(self):
        deadline = time.perf_counter() + DELIVERY_TIMEOUT
        while not self.stop.is_set() and time.perf_counter() < deadline:
            self.last = self.side.delivered()
            if self.last >= self.target:
                self.done_at = time.perf_counter()
                return
            time.sleep(self.step)


def smtp_source_run(side, sessions, messages, rcpt):
    """One smtp-source run: (accepted/s, delivered/s or nan)."""
    before = side.delivered()
    w = Watcher(side, before + messages)
    t0 = time.perf_counter()
    w.start()
    r = subprocess.run(["/usr/sbin/smtp-source", "-s", str(sessions), "-l", str(SIZE), "-m", str(messages),
                        "-f", SENDER, "-t", rcpt, "127.0.0.1:%d" % side.port],
                       capture_output=True, text=True, timeout=DELIVERY_TIMEOUT)
    accepted_at = time.perf_counter()
    if r.returncode != 0:
        w.stop.set()
        raise RuntimeError("smtp-source against %s failed (%d): %s" % (side.name, r.returncode, r.stderr[-2000:]))
    w.join()
    if w.done_at is None:
        say("  warning: %s delivered %d of %d in %ds" % (side.name, w.last - before, messages, DELIVERY_TIMEOUT))
        return messages / (accepted_at - t0), float("nan")
    return messages / (accepted_at - t0), messages / (w.done_at - t0)


def latency_run(side, sessions, messages, rcpts):
    """One smtpload run: p99 acceptance latency in ms; waits for delivery so
    that the next run starts on an idle server."""
    before = side.delivered()
    lat, errors, _ = smtpload.load("127.0.0.1", side.port, sessions, messages, rcpts, SIZE)
    if errors:
        raise RuntimeError("smtpload against %s: %d errors, first: %s" % (side.name, len(errors), errors[0]))
    w = Watcher(side, before + len(lat))
    w.run()
    return p99(lat) * 1e3


def main():
    benchlib.require_root()
    benchlib.ensure_packages(["postfix"], benchlib.POSTFIX_DEBCONF)
    top = tempfile.mkdtemp(prefix="mn-bench-smtp-", dir=benchlib.BENCH_TMP)
    os.chmod(top, 0o755)
    say("machine: " + benchlib.machine())
    fsync_rate = benchlib.fdatasync_rate(top)
    say("disk: %.0f fdatasync/s (4 KiB writes, %s): one sync per message could not beat this"
        % (fsync_rate, top))
    users = benchlib.make_users(10, DOMAIN)
    rcpts = sorted(users)
    mn_dir, pf_dir = os.path.join(top, "mailnode"), os.path.join(top, "postfix")
    os.makedirs(mn_dir)
    os.makedirs(pf_dir)
    mn = benchlib.Mailnode(mn_dir, users, DOMAIN)
    pf = peers.Postfix(pf_dir, 2525 + benchlib.free_port_base([2525]), DOMAIN, rcpts)
    try:
        mn.start()
        pf.configure().start()
        sides = [Side("mailnode", mn.port(2525), mn), Side("postfix", pf.port, pf)]
        table = benchlib.Table("postfix")
        headline = {}
        for sessions in SESSIONS:
            n, nl = count(MESSAGES, sessions), count(LATENCY_MESSAGES, sessions)
            res = {s.name: {"acc": [], "del": [], "p99": []} for s in sides}
            for rnd in range(ROUNDS):
                for side in (sides if rnd % 2 == 0 else sides[::-1]):
                    acc, dlv = smtp_source_run(side, sessions, n, rcpts[0])
                    lat = latency_run(side, sessions, nl, rcpts)
                    res[side.name]["acc"].append(acc)
                    res[side.name]["del"].append(dlv)
                    res[side.name]["p99"].append(lat)
                    say("  %2d sessions round %d %-8s accepted %6.0f/s  delivered %6.0f/s  p99 %7.2f ms"
                        % (sessions, rnd + 1, side.name, acc, dlv, lat))
            m, p = res["mailnode"], res["postfix"]
            table.add("accepted msg/s, %d sessions (smtp-source)" % sessions,
                      median(m["acc"]), median(p["acc"]), "/s")
            table.add("delivered msg/s, %d sessions" % sessions, median(m["del"]), median(p["del"]), "/s")
            table.add("p99 acceptance, %d sessions (smtpload)" % sessions,
                      median(m["p99"]), median(p["p99"]), "ms", lower_better=True)
            headline[sessions] = (median(m["acc"]), median(p["acc"]))
        table.print()
        say("(fdatasync line: %.0f/s; accepted/s above it means syncs are shared by several messages)"
            % fsync_rate)
        s = 20 if 20 in headline else SESSIONS[0]
        say("RATIO smtp mailnode/postfix: accepted msg/s at %d sessions %.0f / %.0f = %.2fx (target 2.5x)" % (
            s, headline[s][0], headline[s][1], benchlib.ratio(*headline[s])))
    finally:
        pf.stop()
        mn.stop()
        benchlib.rmtree(top)


if __name__ == "__main__":
    main()
