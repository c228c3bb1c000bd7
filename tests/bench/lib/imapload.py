#!/usr/bin/env python3
"""IMAP load generator of the benchmarks: the same command mix against any
IMAP4rev1 server, with N concurrent clients, timing every command.

A client's session is: LOGIN, SELECT INBOX, then ITERATIONS times
  UID FETCH 1:* (FLAGS)            (a client syncing flags)
  FETCH a:a+9 (ENVELOPE)           (a message list page)
  FETCH r (BODY.PEEK[])            (opening one message)
  STORE r +FLAGS.SILENT (\\Flagged) (and -FLAGS the next time)
  UID SEARCH FROM "sender-k"       (a header search)
  APPEND Bench (\\Seen) {2 KiB}     (saving a sent message)
then LOGOUT, and again (ITERATIONS: BENCH_IMAP_ITERATIONS, 25). Random choices come from a seeded generator per
client, so every server gets the same commands in the same order.

Also: login cycles (connect, LOGIN, LOGOUT) and idle logged-in
connections (LOGIN, SELECT INBOX, IDLE when offered) for memory.

    python3 imapload.py HOST:PORT USER:PASS[,USER:PASS...] CLIENTS SECONDS
"""
import asyncio
import os
import random
import re
import sys
import time

ITERATIONS = int(os.environ.get("BENCH_IMAP_ITERATIONS", "25"))
APPEND_SIZE = 2048
COMMANDS = ("login", "select", "fetch_flags", "fetch_envelope", "fetch_body", "store", "search", "append",
            "logout")

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_EXISTS = re.compile(rb"^\* (\d+) EXISTS", re.I)


class IMAPError(Exception):
    pass


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def append_message(seq):
    head = ("From: <u@bench.test>\r\nTo: <someone@example.org>\r\nSubject: saved %d\r\n"
            "Date: Mon, 2 Jun 2025 10:00:00 +0000\r\nMessage-ID: <saved.%d@bench.test>\r\n\r\n" % (seq, seq))
    body = ("y" * 70 + "\r\n") * ((APPEND_SIZE - len(head)) // 72)
    return (head + body).encode()


class Client:
    def __init__(self):
        self.reader = self.writer = None
        self.n = 0
        self.exists = 0
        self.capabilities = b""

    async def connect(self, host, port):
        self.reader, self.writer = await asyncio.open_connection(host, port, limit=1 << 20)
        greeting = await self.reader.readline()
        if not greeting.startswith(b"* OK"):
            raise IMAPError("greeting: %r" % greeting[:200])
        self.capabilities = greeting.upper()

    async def _response_line(self):
        """One response line with any literals it carries, as bytes."""
        line = await self.reader.readline()
        if not line:
            raise IMAPError("connection closed")
        full = line
        while True:
            m = _LITERAL.search(line)
            if not m:
                return full
            full += await self.reader.readexactly(int(m.group(1)))
            line = await self.reader.readline()
            if not line:
                raise IMAPError("connection closed in a literal")
            full += line

    async def command(self, text, literal=None):
        """Sends one command (with one synchronizing literal at its end if
        given) and reads to its tagged reply; returns the untagged lines."""
        self.n += 1
        tag = b"a%d" % self.n
        untagged = []
        if literal is None:
            self.writer.write(tag + b" " + text + b"\r\n")
        else:
            self.writer.write(tag + b" " + text + b" {%d}\r\n" % len(literal))
            while True:
                line = await self._response_line()
                if line.startswith(b"+"):
                    break
                if line.startswith(tag + b" "):
                    raise IMAPError("%s refused before its literal: %r" % (text[:40], line[:200]))
                untagged.append(line)
            self.writer.write(literal + b"\r\n")
        while True:
            line = await self._response_line()
            if line.startswith(tag + b" "):
                status = line[len(tag) + 1:len(tag) + 4].upper()
                if status != b"OK ":
                    raise IMAPError("%s: %r" % (text.split(b" ")[0].decode(), line[:200]))
                return untagged
            if line.startswith(b"* "):
                m = _EXISTS.match(line)
                if m:
                    self.exists = int(m.group(1))
                elif line[2:].upper().startswith(b"CAPABILITY "):
                    self.capabilities = line.upper()
            untagged.append(line)

    async def login(self, user, password):
        await self.command(b"LOGIN " + quote(user).encode() + b" " + quote(password).encode())

    async def close(self):
        if self.writer:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass


class Stats:
    def __init__(self):
        self.lat = {c: [] for c in COMMANDS}
        self.errors = []

    def ops(self):
        return sum(len(v) for v in self.lat.values())


async def timed(stats, name, coro):
    t0 = time.perf_counter()
    r = await coro
    stats.lat[name].append(time.perf_counter() - t0)
    return r


async def mix_client(host, port, user, password, seed, deadline, stats):
    rnd = random.Random(seed)
    flag_on = {}
    seq = 0
    while time.perf_counter() < deadline:
        c = Client()
        try:
            await c.connect(host, port)
            await timed(stats, "login", c.login(user, password))
            await timed(stats, "select", c.command(b"SELECT INBOX"))
            n = c.exists
            if n == 0:
                raise IMAPError("INBOX of %s is empty" % user)
            for _ in range(ITERATIONS):
                if time.perf_counter() >= deadline:
                    break
                await timed(stats, "fetch_flags", c.command(b"UID FETCH 1:* (FLAGS)"))
                a = rnd.randint(1, max(1, n - 9))
                await timed(stats, "fetch_envelope",
                            c.command(b"FETCH %d:%d (ENVELOPE)" % (a, min(n, a + 9))))
                await timed(stats, "fetch_body", c.command(b"FETCH %d (BODY.PEEK[])" % rnd.randint(1, n)))
                r = rnd.randint(1, n)
                sign = b"-" if flag_on.get(r) else b"+"
                flag_on[r] = not flag_on.get(r)
                await timed(stats, "store", c.command(b"STORE %d %sFLAGS.SILENT (\\Flagged)" % (r, sign)))
                await timed(stats, "search",
                            c.command(b'UID SEARCH FROM "sender-%d"' % rnd.randint(0, 9)))
                seq += 1
                await timed(stats, "append", c.command(b"APPEND Bench (\\Seen)", append_message(seq)))
            if time.perf_counter() < deadline:
                await timed(stats, "logout", c.command(b"LOGOUT"))
        except (IMAPError, OSError, asyncio.IncompleteReadError) as e:
            stats.errors.append("%s: %s" % (user, e))
            await asyncio.sleep(0.1)
        finally:
            await c.close()


async def prepare(host, port, accounts):
    """Creates the Bench folder of every account (NO when it exists is fine)
    and opens every INBOX once, so that neither server pays its first-time
    indexing inside the measurement."""
    for user, password in accounts:
        c = Client()
        try:
            await c.connect(host, port)
            await c.login(user, password)
            try:
                await c.command(b"CREATE Bench")
            except IMAPError as e:
                if "CREATE" not in str(e):
                    raise
            await c.command(b"SELECT INBOX")
            await c.command(b"FETCH 1:* (FLAGS ENVELOPE)")
            await c.command(b"LOGOUT")
        finally:
            await c.close()


async def run_mix(host, port, accounts, clients, seconds, seed=1):
    stats = Stats()
    await prepare(host, port, accounts[:clients])
    deadline = time.perf_counter() + seconds
    t0 = time.perf_counter()
    await asyncio.gather(*(mix_client(host, port, *accounts[i % len(accounts)], seed * 1000 + i, deadline, stats)
                           for i in range(clients)))
    return stats, time.perf_counter() - t0


async def login_client(host, port, user, password, deadline, stats):
    while time.perf_counter() < deadline:
        c = Client()
        try:
            await c.connect(host, port)
            await timed(stats, "login", c.login(user, password))
            await timed(stats, "logout", c.command(b"LOGOUT"))
        except (IMAPError, OSError, asyncio.IncompleteReadError) as e:
            stats.errors.append("%s: %s" % (user, e))
            await asyncio.sleep(0.1)
        finally:
            await c.close()


async def run_logins(host, port, accounts, clients, seconds):
    """Login cycles: returns (stats, elapsed); logins/s = len(stats.lat['login']) / elapsed."""
    stats = Stats()
    deadline = time.perf_counter() + seconds
    t0 = time.perf_counter()
    await asyncio.gather(*(login_client(host, port, *accounts[i % len(accounts)], deadline, stats)
                           for i in range(clients)))
    return stats, time.perf_counter() - t0


async def open_idle(host, port, accounts, count, parallel=50):
    """Opens `count` logged-in connections with INBOX selected, in IDLE when
    the server offers it; returns the clients (close them with close_all)."""
    opened, errors = [], []
    sem = asyncio.Semaphore(parallel)

    async def one(i):
        user, password = accounts[i % len(accounts)]
        async with sem:
            c = Client()
            try:
                await c.connect(host, port)
                await c.login(user, password)
                await c.command(b"SELECT INBOX")
                if b" IDLE" in c.capabilities or b"IDLE" in (await c.command(b"CAPABILITY"))[0].upper():
                    c.n += 1
                    c.writer.write(b"i%d IDLE\r\n" % c.n)
                    line = await c._response_line()
                    while not line.startswith(b"+"):
                        if line.startswith(b"i%d " % c.n):
                            raise IMAPError("IDLE: %r" % line[:200])
                        line = await c._response_line()
                opened.append(c)
            except (IMAPError, OSError, asyncio.IncompleteReadError) as e:
                errors.append(str(e))
                await c.close()

    await asyncio.gather(*(one(i) for i in range(count)))
    return opened, errors


async def close_all(clients):
    for c in clients:
        c.writer.close()
    await asyncio.sleep(0)


def summary(stats, elapsed):
    out = "%d ops in %.1fs: %.0f ops/s" % (stats.ops(), elapsed, stats.ops() / elapsed)
    for c in COMMANDS:
        v = sorted(stats.lat[c])
        if v:
            out += "\n  %-15s %6d  p50 %7.2f ms  p99 %7.2f ms" % (c, len(v), v[len(v) // 2] * 1e3,
                                                              v[min(len(v) - 1, int(0.99 * len(v)))] * 1e3)
    if stats.errors:
        out += "\n  %d errors, first: %s" % (len(stats.errors), stats.errors[0])
    return out


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    accounts = [tuple(a.split(":", 1)) for a in sys.argv[2].split(",")]
    stats, dt = asyncio.run(run_mix(host, int(port), accounts, int(sys.argv[3]), float(sys.argv[4])))
    print(summary(stats, dt))


if __name__ == "__main__":
    main()
