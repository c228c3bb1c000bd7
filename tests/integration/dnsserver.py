"""A tiny authoritative DNS server on 127.0.0.1 (UDP) for the tests: answers
MX, A and AAAA from a table, NXDOMAIN for names it does not know, NOERROR
without data for a known name without records of the type asked; a name can
be told to get SERVFAIL or no answer at all. Standard library only."""
import socket
import struct
import threading
import time

TYPES = {1: "A", 15: "MX", 28: "AAAA"}
NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\x00"


def parse_question(msg):
    """(id, flags, qname lower case, qtype, question bytes) of a query."""
    qid, flags, qd = struct.unpack("!HHH", msg[:6])
    if qd != 1:
        raise ValueError("one question expected")
    pos, labels = 12, []
    while True:
        n = msg[pos]
        if n == 0 or n >= 0xC0:
            break
        labels.append(msg[pos + 1:pos + 1 + n].decode("ascii").lower())
        pos += 1 + n
    if msg[pos] != 0:
        raise ValueError("compressed question")
    pos += 1
    qtype, _qclass = struct.unpack("!HH", msg[pos:pos + 4])
    return qid, flags, ".".join(labels), qtype, msg[12:pos + 4]


class DnsServer:
    """records: {"name": {"MX": [(pref, host)], "A": ["ip"], "AAAA": ["ip6"]}}.
    servfail / drop: names answered with SERVFAIL / never answered."""

    def __init__(self, records, servfail=(), drop=()):
        self.records = {k.lower(): v for k, v in records.items()}
        self.servfail = {n.lower() for n in servfail}
        self.drop = {n.lower() for n in drop}
        self.queries = []               # (name, "MX"/"A"/..., time), in order
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def asked(self, name, qtype=None):
        with self.lock:
            return [q for q in self.queries if q[0] == name and (qtype is None or q[1] == qtype)]

    def serve(self):
        while True:
            try:
                msg, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                reply = self.answer(msg)
            except (ValueError, IndexError, struct.error, UnicodeDecodeError):
                continue                # not a query we understand: no answer
            if reply is not None:
                self.sock.sendto(reply, peer)

    def answer(self, msg):
        qid, flags, name, qtype, question = parse_question(msg)
        with self.lock:
            self.queries.append((name, TYPES.get(qtype, str(qtype)), time.time()))
        if name in self.drop:
            return None
        rcode, answers = NOERROR, []
        if name in self.servfail:
            rcode = SERVFAIL
        elif name not in self.records:
            rcode = NXDOMAIN
        else:
            for value in self.records[name].get(TYPES.get(qtype), []):
                if qtype == 15:
                    rdata = struct.pack("!H", value[0]) + encode_name(value[1])
                elif qtype == 1:
                    rdata = socket.inet_pton(socket.AF_INET, value)
                else:
                    rdata = socket.inet_pton(socket.AF_INET6, value)
                # The owner is the question's name (a pointer to offset 12).
                answers.append(struct.pack("!HHHIH", 0xC00C, qtype, 1, 60, len(rdata)) + rdata)
        # QR, the query's opcode and RD, AA and RA.
        out_flags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode
        head = struct.pack("!HHHHHH", qid, out_flags, 1, len(answers), 0, 0)
        return head + question + b"".join(answers)

    def close(self):
        self.sock.close()
