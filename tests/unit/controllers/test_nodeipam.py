"""Node IPAM's CIDR set: subnets handed out once, rebuilt from what nodes hold."""
from __future__ import annotations

import pytest

from pybernetes.controllers.nodeipam import CIDRSet, CIDRSetError, parse_cluster_cidrs


def test_subnets_are_handed_out_in_order_and_never_twice():
    s = CIDRSet("10.42.0.0/16", 24)
    got = [s.allocate_next() for _ in range(3)]
    assert got == ["10.42.0.0/24", "10.42.1.0/24", "10.42.2.0/24"]
    s.release("10.42.1.0/24")
    assert s.allocate_next() == "10.42.3.0/24"  # after the last one, not the freed one


def test_rebuilt_from_existing_nodes_after_a_restart():
    before = CIDRSet("10.42.0.0/16", 24)
    held = [before.allocate_next() for _ in range(5)]
    after = CIDRSet("10.42.0.0/16", 24)
    for cidr in held:
        after.occupy(cidr)
    fresh = {after.allocate_next() for _ in range(251)}
    assert not fresh & set(held) and len(fresh) == 251
    with pytest.raises(CIDRSetError, match="no remaining CIDRs"):
        after.allocate_next()


def test_a_larger_cidr_occupies_every_subnet_it_covers():
    s = CIDRSet("10.42.0.0/22", 24)
    s.occupy("10.42.0.0/23")
    assert s.allocate_next() == "10.42.2.0/24"
    assert not s.contains("10.43.0.0/24")
    with pytest.raises(CIDRSetError):
        s.occupy("192.168.0.0/24")


def test_bad_sizes_and_dual_stack():
    with pytest.raises(CIDRSetError):
        CIDRSet("10.42.0.0/16", 8)
    with pytest.raises(CIDRSetError, match="too large"):
        CIDRSet("10.0.0.0/8", 30)
    v4, v6 = parse_cluster_cidrs("10.42.0.0/16,fd00:42::/56")
    assert (v4.mask, v6.mask) == (24, 64)
    assert v6.allocate_next() == "fd00:42::/64"
    with pytest.raises(CIDRSetError):
        parse_cluster_cidrs("10.42.0.0/16,10.43.0.0/16")
    with pytest.raises(CIDRSetError):
        parse_cluster_cidrs("not-a-cidr")
