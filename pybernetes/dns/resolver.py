"""Answering one DNS message: the cluster zone authoritatively, reverse names we know,
everything else forwarded.

Answers follow CoreDNS's kubernetes plugin: a name that exists with no record of the
asked type is NODATA (NOERROR, SOA in authority), a name that does not exist NXDOMAIN
(SOA too), an ExternalName is a CNAME whose target is looked up (in the zone, or
upstream) for A/AAAA, SRV answers carry their targets' addresses as additional records,
zone transfers are refused.

Speed: a zone answer depends only on the question (name folded to lower case, type,
class), the header flags that are echoed, the client's EDNS record and the transport,
so it is cached as wire bytes until the zone next changes; a hit copies the client's
ID and question (its letter case) in and is sent without parsing the message."""
from __future__ import annotations

import logging
import struct
from typing import Callable

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from pybernetes.dns import wire
from pybernetes.dns.forward import Forwarder, UpstreamError, question_end, servfail
from pybernetes.dns.zone import (T_A, T_AAAA, T_CNAME, T_NS, T_PTR, T_SOA, T_SRV, T_TXT, Zone,
                                 reverse_ip)

log = logging.getLogger(__name__)

OUR_UDP_PAYLOAD = 1232      # EDNS buffer size we advertise (the DNS flag day value)
DNS_VERSION_TTL = 28800     # CoreDNS's TTL for TXT dns-version.D
MAX_CNAME_CHAIN = 10
CACHE_ENTRIES = 20000
MAX_ROTATIONS = 8
REVERSE_ZONES = (dns.name.from_text("in-addr.arpa"), dns.name.from_text("ip6.arpa"))
REVERSE_SUFFIXES = (".in-addr.arpa.", ".ip6.arpa.")
ECHOED_FLAGS = 0x7910       # opcode, RD, CD: the bits of a query a reply repeats


class Answer:
    """The sections of a zone answer, before they become a message: lists of
    wire.Records (or dnspython RRsets, from upstream)."""

    def __init__(self, rcode: int = dns.rcode.NOERROR):
        self.rcode = rcode
        self.answer: list = []
        self.authority: list = []
        self.additional: list = []
        self.cacheable = True


class Stats:
    """Counters for the metrics endpoint (plain ints: the hot path stays cheap)."""

    def __init__(self) -> None:
        self.requests = {"udp": 0, "tcp": 0}
        self.cache_hits = 0
        self.forwarded = 0
        self.by_rcode = [0] * 16

    def rcode(self, wire: bytes) -> None:
        if len(wire) > 3:
            self.by_rcode[wire[3] & 0x0F] += 1

    @property
    def rcodes(self) -> dict[str, int]:
        return {dns.rcode.to_text(code): n for code, n in enumerate(self.by_rcode) if n}


class Resolver:
    def __init__(self, zone: Zone, forwarder: Forwarder,
                 synced: Callable[[], bool] = lambda: True):
        self.zone = zone
        self.forwarder = forwarder
        self.synced = synced  # before the informers have listed, "no such name" is a guess
        self.stats = Stats()
        self._cache: dict[tuple, tuple[bytes, ...]] = {}  # key -> rotations of one answer
        self._turn = 0
        self._cache_generation = zone.generation
        self._zone_wire = zone.origin.to_wire().lower()
        self.renderer = wire.Renderer()

    # -- wire level -------------------------------------------------------------------------

    def cached(self, query: bytes, tcp: bool) -> bytes | None:
        """The answer from the cache, or None (then call `handle`)."""
        if self._cache_generation != self.zone.generation:
            return None
        qend = question_end(query)
        if qend is None:
            return None
        key = (tcp, query[2:4], query[12:qend].lower(), query[qend:])
        variants = self._cache.get(key)
        if variants is None:
            return None
        self.stats.cache_hits += 1
        self._turn += 1
        hit = variants[self._turn % len(variants)]
        return query[:2] + hit[2:12] + query[12:qend] + hit[qend:]

    def ours(self, query: bytes, qend: int) -> bool:
        """Whether the question's name is in the cluster zone (by its wire form)."""
        z = self._zone_wire
        start = qend - 4 - len(z)
        if start < 12 or query[start:qend - 4].lower() != z:
            return False
        i = 12
        while i < start:  # the suffix must begin on a label boundary
            i += query[i] + 1
        return i == start

    async def handle(self, query: bytes, tcp: bool = False) -> bytes:
        """The reply to one message (b"" when there is nothing to reply to)."""
        self.stats.requests["tcp" if tcp else "udp"] += 1
        hit = self.cached(query, tcp)
        if hit is not None:
            self.stats.rcode(hit)
            return hit
        qend = question_end(query)
        reply = b""
        if qend is not None and not self.ours(query, qend) \
                and not self._reverse_known(query, qend):
            reply = await self._forward(query, tcp)
        else:
            reply = await self._answer(query, tcp)
        self.stats.rcode(reply)
        return reply

    def _reverse_known(self, query: bytes, qend: int) -> bool:
        """A PTR question for an address of ours (others fall through to upstream)."""
        if query[qend - 4:qend - 2] != b"\x00\x0c":
            return False
        try:
            name = dns.name.from_wire(query, 12)[0]
        except dns.exception.DNSException:
            return False
        if not any(name.is_subdomain(z) for z in REVERSE_ZONES):
            return False
        ip = reverse_ip(name)
        return bool(ip and self.zone.reverse(ip))

    async def _forward(self, query: bytes, tcp: bool) -> bytes:
        self.stats.forwarded += 1
        try:
            return await self.forwarder.forward(query, tcp)
        except UpstreamError as e:
            log.info("no upstream answered %s: %s", _describe(query), e)
            return servfail(query)

    async def _answer(self, query: bytes, tcp: bool) -> bytes:
        q = wire.parse(query)
        if q is None:
            return await self._answer_message(query, tcp)
        generation = self.zone.generation
        ans = await self._resolve_synced(q.name, q.qtype, q.qclass, q.text)
        flags = 0 if ans.rcode in (dns.rcode.REFUSED, dns.rcode.SERVFAIL) else wire.AA
        limit = 65535 if tcp else max(512, q.payload)
        variants = [self.renderer.render(query, q, ans.rcode, flags, answer, ans.authority,
                                         ans.additional, limit, OUR_UDP_PAYLOAD)
                    for answer in _rotations(ans.answer)]
        if ans.cacheable and generation == self.zone.generation:
            self._remember((tcp, query[2:4], query[12:q.qend].lower(), query[q.qend:]),
                           tuple(variants))
        return variants[0]

    async def _resolve_synced(self, qname: dns.name.Name, qtype: int, qclass: int,
                              text: str = "") -> Answer:
        ans = await self.resolve(qname, qtype, qclass, text)
        if ans.rcode == dns.rcode.NXDOMAIN and not self.synced():
            ans = Answer(dns.rcode.SERVFAIL)  # as CoreDNS before its first sync
            ans.cacheable = False
        return ans

    async def _answer_message(self, query: bytes, tcp: bool) -> bytes:
        """Any other message, read and written by dnspython."""
        generation = self.zone.generation
        try:
            msg = dns.message.from_wire(query)
        except dns.exception.DNSException:
            return _formerr(query)
        reply = dns.message.make_response(msg, recursion_available=True,
                                          our_payload=OUR_UDP_PAYLOAD)
        if msg.opcode() != dns.opcode.QUERY:
            reply.set_rcode(dns.rcode.NOTIMP)
            return reply.to_wire()
        if len(msg.question) != 1:
            reply.set_rcode(dns.rcode.FORMERR)
            return reply.to_wire()
        q = msg.question[0]
        ans = await self._resolve_synced(q.name, q.rdtype, q.rdclass)
        reply.set_rcode(ans.rcode)
        if ans.rcode not in (dns.rcode.REFUSED, dns.rcode.SERVFAIL):
            reply.flags |= dns.flags.AA
        reply.answer, reply.authority, reply.additional = (
            [wire.as_rrset(r) for r in rrs] for rrs in (ans.answer, ans.authority,
                                                         ans.additional))
        wire = _to_wire(reply, msg, tcp)
        if ans.cacheable and generation == self.zone.generation:
            self._remember((tcp, query[2:4], query[12:question_end(query)].lower(),
                            query[question_end(query):]), (wire,))
        return wire

    def _remember(self, key: tuple, wire: tuple[bytes, ...]) -> None:
        if self._cache_generation != self.zone.generation:
            self._cache.clear()
            self._cache_generation = self.zone.generation
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache.clear()
        self._cache[key] = wire

    # -- the zone ---------------------------------------------------------------------------

    async def resolve(self, qname: dns.name.Name, qtype: int,
                      qclass: int = dns.rdataclass.IN, text: str = "") -> Answer:
        """The answer for one question within the zone (or a known reverse name);
        `text` is qname in lower case when the caller has it."""
        if qtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            return Answer(dns.rcode.REFUSED)
        name = text or qname.to_text().lower()
        if name.endswith(REVERSE_SUFFIXES):
            return self._reverse(qname, qtype)
        ans = Answer()
        recs = self.zone.records(name) if qclass in (dns.rdataclass.IN, dns.rdataclass.ANY) \
            else None
        if recs is None:
            return self._negative(ans, dns.rcode.NXDOMAIN)
        if qtype in recs:
            ans.answer.append(self._rrset(qname, qtype, recs[qtype]))
            if qtype == T_SRV:
                self._targets(ans, recs[T_SRV])
            elif qtype == T_NS:
                self._targets(ans, recs[T_NS])
            return ans
        if T_CNAME in recs and qtype in (T_A, T_AAAA):
            await self._chase(ans, qname, recs[T_CNAME][0].target, qtype)
            if ans.answer:
                return ans
        return self._negative(ans, dns.rcode.NOERROR)

    def _rrset(self, owner: dns.name.Name, rdtype: int, rdatas: list) -> wire.Records:
        ttl = DNS_VERSION_TTL if rdtype == T_TXT else \
            self.zone.soa_ttl() if rdtype == T_SOA else self.zone.ttl
        return wire.Records(owner, rdtype, ttl, rdatas)

    def _negative(self, ans: Answer, rcode: int) -> Answer:
        ans.rcode = rcode
        ans.answer = []
        ans.authority = [self._rrset(self.zone.origin, T_SOA, [self.zone.soa()])]
        return ans

    def _targets(self, ans: Answer, rdatas: list) -> None:
        """Addresses of in-zone SRV/NS targets as additional records."""
        seen = set()
        for rd in rdatas:
            target = rd.target
            if target in seen:
                continue
            seen.add(target)
            recs = self.zone.records(target.to_text().lower()) or {}
            for t in (T_A, T_AAAA):
                if recs.get(t):
                    ans.additional.append(self._rrset(target, t, recs[t]))

    async def _chase(self, ans: Answer, owner: dns.name.Name, target: dns.name.Name,
                     qtype: int) -> None:
        """CNAME, then the target's records: from the zone, or from upstream."""
        chain = [self._rrset(owner, T_CNAME, [_cname(target)])]
        for _ in range(MAX_CNAME_CHAIN):
            recs = self.zone.records(target.to_text().lower())
            if not self.zone.in_zone(target.to_text().lower()):
                ans.answer = chain + await self._upstream_answers(target, qtype)
                ans.cacheable = False
                return
            if recs and qtype in recs:
                ans.answer = chain + [self._rrset(target, qtype, recs[qtype])]
                return
            if not recs or T_CNAME not in recs:
                return  # a dead end in the zone: no answer (CoreDNS drops the CNAME too)
            nxt = recs[T_CNAME][0].target
            chain.append(self._rrset(target, T_CNAME, [_cname(nxt)]))
            target = nxt

    async def _upstream_answers(self, target: dns.name.Name, qtype: int) -> list:
        query = dns.message.make_query(target, qtype)
        try:
            wire = await self.forwarder.resolve(query.to_wire())
            return list(dns.message.from_wire(wire).answer)
        except (UpstreamError, dns.exception.DNSException) as e:
            log.info("looking up %s upstream: %s", target, e)
            return []

    def _reverse(self, qname: dns.name.Name, qtype: int) -> Answer:
        ip = reverse_ip(qname)
        ans = Answer()
        targets = self.zone.ptr_records(ip) if ip else []
        if qtype == T_PTR and targets:
            ans.answer.append(wire.Records(qname, T_PTR, self.zone.ttl, targets))
            return ans
        return self._negative(ans, dns.rcode.NOERROR if targets else dns.rcode.NXDOMAIN)


def _rotations(answer: list) -> list[list]:
    """The answer with its address records in each of up to MAX_ROTATIONS orders, as
    CoreDNS's `loadbalance` shuffles them (k3s turns it on), so clients of a headless
    Service do not all pick the same first address; cached answers take turns."""
    if len(answer) != 1 or not isinstance(answer[0], wire.Records) or \
            answer[0].rdtype not in (T_A, T_AAAA) or len(answer[0].rdatas) < 2:
        return [answer]
    r = answer[0]
    n = len(r.rdatas)
    return [[wire.Records(r.name, r.rdtype, r.ttl, r.rdatas[i:] + r.rdatas[:i])]
            for i in range(0, n, max(1, n // MAX_ROTATIONS))][:MAX_ROTATIONS]


def _cname(target: dns.name.Name):
    from dns.rdtypes.ANY.CNAME import CNAME
    return CNAME(dns.rdataclass.IN, T_CNAME, target)


def _to_wire(reply: dns.message.Message, query: dns.message.Message, tcp: bool) -> bytes:
    """The reply, or over UDP when it does not fit the client's buffer, an empty one
    with TC set so the client asks again over TCP."""
    limit = 65535 if tcp else max(512, query.payload if query.edns >= 0 else 512)
    try:
        return reply.to_wire(max_size=limit)
    except dns.exception.TooBig:
        reply.answer, reply.authority, reply.additional = [], [], []
        reply.flags |= dns.flags.TC
        return reply.to_wire(max_size=limit)


def _formerr(query: bytes) -> bytes:
    """FORMERR with the client's ID, when the header at least is readable."""
    if len(query) < 12:
        return b""
    flags = struct.unpack("!H", query[2:4])[0]
    return query[:2] + struct.pack("!HHHHH", 0x8000 | (flags & 0x7900) | 0x80 | 1, 0, 0, 0, 0)


def _describe(query: bytes) -> str:
    try:
        q = dns.message.from_wire(query).question[0]
        return f"{q.name} {dns.rdatatype.to_text(q.rdtype)}"
    except (dns.exception.DNSException, IndexError):
        return "a query"
