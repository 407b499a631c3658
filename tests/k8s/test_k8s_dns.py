"""The test cluster's DNS responder (tests/k8s/cluster_dns.py), packet in, packet out: what a
pod's resolver sends and must get back, checked with dnslib's own parser."""

from __future__ import annotations

from dnslib import QTYPE, RCODE, DNSRecord

from tests.k8s.cluster_dns import Resolver, answer

KNOWN = {"orders.shop.svc.cluster.local": ["10.96.0.5"],
         "orders-pods.shop.svc.cluster.local": ["172.17.0.4", "172.17.0.5"],
         "idle.shop.svc.cluster.local": []}


class _Services(Resolver):
    """The API server's answers, fixed: the lookup is what the responder asks."""

    def __init__(self) -> None:  # no API server here
        pass

    def lookup(self, name: str) -> list[str] | None:
        return KNOWN.get(name)


def _ask(name: str, qtype: str = "A") -> DNSRecord:
    query = DNSRecord.question(name, qtype)
    reply = DNSRecord.parse(answer(query.pack(), _Services()))
    assert reply.header.id == query.header.id and reply.header.qr == 1
    assert str(reply.q.qname) == str(query.q.qname)
    return reply


def test_a_records_for_a_service_and_every_ready_pod_of_a_headless_one() -> None:
    assert [str(r.rdata) for r in _ask("orders.shop.svc.cluster.local").rr] == ["10.96.0.5"]
    reply = _ask("Orders-Pods.shop.svc.cluster.local.")  # names are case-insensitive
    assert sorted(str(r.rdata) for r in reply.rr) == ["172.17.0.4", "172.17.0.5"]
    assert all(r.rtype == QTYPE.A for r in reply.rr)


def test_other_types_and_empty_services_are_noerror_without_answers() -> None:
    for reply in (_ask("orders.shop.svc.cluster.local", "AAAA"),
                  _ask("idle.shop.svc.cluster.local")):
        assert reply.header.rcode == RCODE.NOERROR and not reply.rr


def test_anything_else_is_nxdomain_and_garbage_is_formerr() -> None:
    assert _ask("example.com").header.rcode == RCODE.NXDOMAIN
    assert _ask("missing.shop.svc.cluster.local").header.rcode == RCODE.NXDOMAIN
    bad = DNSRecord.parse(answer(b"\x12\x34 not a dns packet", _Services()))
    assert bad.header.id == 0x1234 and bad.header.rcode == RCODE.FORMERR
