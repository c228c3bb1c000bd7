#!/usr/bin/env python3
"""SMTP load generator of the benchmarks, for what smtp-source does not
report: the acceptance latency of each message, from the end of its data
(the "." line sent) to the server's 250. Like smtp-source without -d, each
message gets its own session (EHLO, MAIL, RCPT, DATA, QUIT); `sessions` of
them run at once. Plain SMTP, no pipelining, the same for every server.

    python3 smtpload.py HOST:PORT SESSIONS MESSAGES RCPT[,RCPT...] [SIZE]
"""
import asyncio
import sys
import time


def make_body(size, seq):
    head = ("From: <bench@example.org>\r\nTo: <rcpt@bench.test>\r\n"
            "Subject: bench %d\r\nMessage-ID: <%d.%f@bench.example.org>\r\n\r\n" % (seq, seq, time.time()))
    line = "X" * 76 + "\r\n"
    body = line * max(1, size // len(line))
    return (head + body).encode()


class SMTPError(Exception):
    pass


async def reply(reader):
    """One (possibly multiline) reply: its code."""
    while True:
        line = await reader.readline()
        if not line:
            raise SMTPError("connection closed")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3])


async def expect(reader, want):
    code = await reply(reader)
    if code // 100 != want:
        raise SMTPError("reply %d, expected %dxx" % (code, want))


async def one_message(host, port, rcpt, body, latencies):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        await expect(reader, 2)
        writer.write(b"EHLO load.bench.example.org\r\n")
        await expect(reader, 2)
        writer.write(b"MAIL FROM:<bench@example.org>\r\n")
        await expect(reader, 2)
        writer.write(b"RCPT TO:<%s>\r\n" % rcpt.encode())
        await expect(reader, 2)
        writer.write(b"DATA\r\n")
        await expect(reader, 3)
        writer.write(body)
        writer.write(b".\r\n")
        t0 = time.perf_counter()
        await writer.drain()
        await expect(reader, 2)
        latencies.append(time.perf_counter() - t0)
        writer.write(b"QUIT\r\n")
        await reply(reader)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def run_load(host, port, sessions, messages, rcpts, size=5120):
    """Returns (latencies in seconds of the accepted messages, errors, elapsed)."""
    latencies, errors = [], []
    bodies = [make_body(size, i) for i in range(min(messages, 64))]
    next_seq = [0]

    async def worker():
        while next_seq[0] < messages:
            i = next_seq[0]
            next_seq[0] += 1
            try:
                await one_message(host, port, rcpts[i % len(rcpts)], bodies[i % len(bodies)], latencies)
            except (SMTPError, OSError) as e:
                errors.append(str(e))

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(sessions)))
    return latencies, errors, time.perf_counter() - t0


async def run_deliver(host, port, items, sessions):
    """Sends each (recipient, message bytes) once; returns the errors."""
    errors, todo = [], list(items)

    async def worker():
        while todo:
            rcpt, msg = todo.pop()
            # Data lines starting with "." are doubled (RFC 5321 4.5.2).
            data = msg.replace(b"\r\n.", b"\r\n..")
            if data.startswith(b"."):
                data = b"." + data
            if not data.endswith(b"\r\n"):
                data += b"\r\n"
            try:
                await one_message(host, port, rcpt, data, [])
            except (SMTPError, OSError) as e:
                errors.append(str(e))

    await asyncio.gather(*(worker() for _ in range(sessions)))
    return errors


def deliver(host, port, items, sessions=10):
    return asyncio.run(run_deliver(host, port, items, sessions))


def load(host, port, sessions, messages, rcpts, size=5120):
    return asyncio.run(run_load(host, port, sessions, messages, rcpts, size))


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    lat, errs, dt = load(host, int(port), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(","),
                         int(sys.argv[5]) if len(sys.argv) > 5 else 5120)
    lat.sort()
    print("%d accepted, %d errors in %.2fs (%.0f/s); latency p50 %.2f ms p99 %.2f ms" % (
        len(lat), len(errs), dt, len(lat) / dt, lat[len(lat) // 2] * 1e3 if lat else 0,
        lat[int(0.99 * len(lat))] * 1e3 if lat else 0))
    if errs:
        print("first error:", errs[0])


if __name__ == "__main__":
    main()
