"""The common DNS message read and written without building message objects: one
question with plain labels, at most an EDNS OPT record, nothing else. Profiling the
server showed dnspython's from_wire/to_wire at over half the time of an uncached
answer; messages outside this shape still go through dnspython."""
from __future__ import annotations

import struct
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdataclass
import dns.rrset

QR, AA, TC, RA = 0x8000, 0x0400, 0x0200, 0x0080
ECHOED = 0x7910          # opcode, RD, CD
OPT = 41
QNAME_POINTER = b"\xc0\x0c"
_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


@dataclass(slots=True)
class Records:
    """An RRset as the resolver builds it (dnspython's RRset hashes every rdata on
    insert, a cost the zone, which holds no duplicates, does not need)."""

    name: dns.name.Name
    rdtype: int
    ttl: int
    rdatas: list
    rdclass: int = dns.rdataclass.IN

    def __iter__(self):
        return iter(self.rdatas)


def as_rrset(r) -> dns.rrset.RRset:
    if isinstance(r, Records):
        return dns.rrset.from_rdata_list(r.name, r.ttl, r.rdatas)
    return r


@dataclass(slots=True)
class Question:
    qend: int           # offset just past the question section
    name: dns.name.Name
    text: str           # lower case, absolute ("web.default.svc.cluster.local.")
    qtype: int
    qclass: int
    payload: int        # the client's EDNS UDP size, -1 without EDNS


def parse(msg: bytes) -> Question | None:
    """The question of a plain query, or None when dnspython should read it."""
    if len(msg) < 17 or msg[2] & 0xF8 or msg[4:10] != b"\x00\x01\x00\x00\x00\x00":
        return None  # a response, another opcode, not exactly one question, or records
    arcount = (msg[10] << 8) | msg[11]
    labels: list[bytes] = []
    i, n = 12, len(msg)
    while True:
        if i >= n:
            return None
        ln = msg[i]
        if ln == 0:
            break
        if ln > 63 or i + 1 + ln > n:
            return None
        label = msg[i + 1:i + 1 + ln]
        if not _SAFE.issuperset(label):
            return None  # escapes, dots in labels: let dnspython spell them
        labels.append(label)
        i += 1 + ln
    qend = i + 5
    if qend > n:
        return None
    qtype, qclass = struct.unpack_from("!HH", msg, i + 1)
    payload = -1
    if arcount:
        # one OPT at the root: type, UDP size, extended rcode/version/flags, options
        if arcount != 1 or n < qend + 11 or msg[qend] != 0 or \
                struct.unpack_from("!H", msg, qend + 1)[0] != OPT:
            return None
        payload = struct.unpack_from("!H", msg, qend + 3)[0]
    labels.append(b"")
    text = b".".join(labels).decode().lower() if len(labels) > 1 else "."
    try:
        name = dns.name.Name(labels)
    except dns.exception.DNSException:
        return None  # too long: dnspython's reader will say FORMERR
    return Question(qend, name, text, qtype, qclass, payload)


class Renderer:
    """Writes a reply; remembers the wire form of owner names it has seen."""

    def __init__(self) -> None:
        self._names: dict[dns.name.Name, bytes] = {}
        self._rdatas: dict[int, tuple[object, bytes]] = {}  # id -> (rdata kept alive, wire)

    def _rdata(self, rd) -> bytes:
        hit = self._rdatas.get(id(rd))
        if hit is not None and hit[0] is rd:
            return hit[1]
        if len(self._rdatas) > 100000:
            self._rdatas.clear()
        data = rd.to_wire()
        self._rdatas[id(rd)] = (rd, data)
        return data

    def _name(self, name: dns.name.Name) -> bytes:
        wire = self._names.get(name)
        if wire is None:
            if len(self._names) > 50000:
                self._names.clear()
            wire = self._names[name] = name.to_wire()
        return wire

    def _rrsets(self, rrsets: list[dns.rrset.RRset], qname: dns.name.Name,
                out: list[bytes]) -> int:
        count = 0
        for rrset in rrsets:
            owner = QNAME_POINTER if rrset.name is qname else self._name(rrset.name)
            head = struct.pack("!HHI", rrset.rdtype, rrset.rdclass, rrset.ttl)
            for rd in rrset:
                data = self._rdata(rd)
                out.append(owner + head + struct.pack("!H", len(data)) + data)
                count += 1
        return count

    def render(self, query: bytes, q: Question, rcode: int, flags: int,
               answer: list, authority: list, additional: list, limit: int,
               our_payload: int) -> bytes:
        """The reply to `query`; over the size `limit`, an empty one with TC set."""
        base = QR | RA | flags | (struct.unpack_from("!H", query, 2)[0] & ECHOED) | rcode
        body: list[bytes] = []
        an = self._rrsets(answer, q.name, body)
        ns = self._rrsets(authority, q.name, body)
        ar = self._rrsets(additional, q.name, body)
        opt = b""
        if q.payload >= 0:
            opt = b"\x00" + struct.pack("!HHIH", OPT, our_payload, 0, 0)
        question = query[12:q.qend]
        out = query[:2] + struct.pack("!HHHHH", base, 1, an, ns, ar + bool(opt)) + question \
            + b"".join(body) + opt
        if len(out) > limit:
            out = query[:2] + struct.pack("!HHHHH", base | TC, 1, 0, 0, int(bool(opt))) \
                + question + opt
        return out
