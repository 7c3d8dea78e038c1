"""The plain-query reader and the reply writer, checked against dnspython."""
from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rdatatype

from pybernetes.dns import wire
from pybernetes.dns.zone import address_rdata


def test_plain_query_with_and_without_edns():
    q = wire.parse(dns.message.make_query("Web.Default.svc.cluster.local", "SRV").to_wire())
    assert q.text == "web.default.svc.cluster.local." and q.qtype == dns.rdatatype.SRV
    assert q.name == dns.name.from_text("web.default.svc.cluster.local")
    edns = dns.message.make_query("a.b", "A", use_edns=0, payload=4096).to_wire()
    assert wire.parse(edns).payload == 4096


def test_other_shapes_are_left_to_dnspython():
    assert wire.parse(b"\x00" * 11) is None
    escaped = dns.message.make_query(dns.name.from_text(r"a\.b.example"), "A").to_wire()
    assert wire.parse(escaped) is None
    two = dns.message.make_query("a.example", "A")
    two.question.append(two.question[0])
    assert wire.parse(two.to_wire()) is None
    reply = dns.message.make_response(dns.message.make_query("a.example", "A")).to_wire()
    assert wire.parse(reply) is None          # a response is not a question for us
    notify = dns.message.make_query("a.example", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert wire.parse(notify.to_wire()) is None


def test_rendered_reply_reads_back_and_truncates():
    query = dns.message.make_query("Big.Example", "A", use_edns=0, payload=1232)
    raw = query.to_wire()
    q = wire.parse(raw)
    rrs = [wire.Records(q.name, dns.rdatatype.A, 5,
                        [address_rdata(f"10.0.{i // 250}.{i % 250}") for i in range(100)])]
    out = wire.Renderer().render(raw, q, 0, wire.AA, rrs, [], [], 4096, 1232)
    msg = dns.message.from_wire(out)
    assert msg.id == query.id and msg.question[0].name.to_text() == "Big.Example."
    assert len(msg.answer[0]) == 100 and msg.answer[0].ttl == 5 and msg.edns == 0
    small = dns.message.from_wire(wire.Renderer().render(raw, q, 0, wire.AA, rrs, [], [],
                                                         512, 1232))
    assert small.flags & dns.flags.TC and not small.answer and small.edns == 0
