#!/usr/bin/env python3
"""POP3 load generator of the benchmarks: N clients each repeating the cycle
a POP3 mail client runs: connect, USER/PASS, STAT, RETR of every message,
QUIT (nothing deleted, so every cycle finds the same mailbox).

    python3 pop3load.py HOST:PORT USER:PASS[,USER:PASS...] CLIENTS SECONDS
"""
import asyncio
import sys
import time


class POP3Error(Exception):
    pass


class Client:
    def __init__(self):
        self.reader = self.writer = None

    async def connect(self, host, port):
        self.reader, self.writer = await asyncio.open_connection(host, port, limit=1 << 20)
        await self.status()

    async def status(self):
        line = await self.reader.readline()
        if not line.startswith(b"+OK"):
            raise POP3Error(line[:200].decode(errors="replace").strip() or "connection closed")
        return line

    async def command(self, text):
        self.writer.write(text + b"\r\n")
        return await self.status()

    async def multiline(self, text):
        """A command with a multi-line reply; returns the bytes it carried."""
        await self.command(text)
        n = 0
        while True:
            line = await self.reader.readline()
            if not line:
                raise POP3Error("connection closed in a multi-line reply")
            if line == b".\r\n":
                return n
            n += len(line)

    async def close(self):
        if self.writer:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass


async def cycle(host, port, user, password, lat):
    """One cycle; returns the bytes retrieved."""
    c = Client()
    t0 = time.perf_counter()
    try:
        await c.connect(host, port)
        await c.command(b"USER " + user.encode())
        await c.command(b"PASS " + password.encode())
        stat = await c.command(b"STAT")
        count = int(stat.split()[1])
        if count == 0:
            raise POP3Error("mailbox of %s is empty" % user)
        got = 0
        for i in range(1, count + 1):
            got += await c.multiline(b"RETR %d" % i)
        await c.command(b"QUIT")
        lat.append(time.perf_counter() - t0)
        return got
    finally:
        await c.close()


async def run_cycles(host, port, accounts, clients, seconds):
    """Returns (cycle latencies, bytes, errors, elapsed)."""
    lat, errors, total = [], [], [0]
    deadline = time.perf_counter() + seconds

    async def client(user, password):
        while time.perf_counter() < deadline:
            try:
                total[0] += await cycle(host, port, user, password, lat)
            except (POP3Error, OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
                errors.append("%s: %s" % (user, e))
                await asyncio.sleep(0.1)

    t0 = time.perf_counter()
    await asyncio.gather(*(client(*accounts[i % len(accounts)]) for i in range(clients)))
    return lat, total[0], errors, time.perf_counter() - t0


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    accounts = [tuple(a.split(":", 1)) for a in sys.argv[2].split(",")]
    lat, nbytes, errors, dt = asyncio.run(run_cycles(host, int(port), accounts, int(sys.argv[3]),
                                                     float(sys.argv[4])))
    lat.sort()
    print("%d cycles in %.1fs: %.1f cycles/s, %.1f MiB/s; cycle p50 %.1f ms p99 %.1f ms; %d errors" % (
        len(lat), dt, len(lat) / dt, nbytes / dt / 1048576, lat[len(lat) // 2] * 1e3 if lat else 0,
        lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3 if lat else 0, len(errors)))
    if errors:
        print("first error:", errors[0])


if __name__ == "__main__":
    main()
