"""Pod IP addresses from a node's podCIDR, as CNI's host-local IPAM hands them out:
the first address is the bridge gateway, the rest go to pods, lowest free first
after the last one given (so a freed address is not reused at once)."""
from __future__ import annotations

import ipaddress


class PodIPPool:
    def __init__(self, cidr: str):
        self.network = ipaddress.ip_network(cidr, strict=False)
        self._first = int(self.network.network_address) + 2  # .0 network, .1 gateway
        last = int(self.network.broadcast_address)
        self._last = last - 1 if self.network.version == 4 else last
        self._used: set[int] = set()
        self._next = self._first

    @property
    def cidr(self) -> str:
        return str(self.network)

    def __contains__(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self.network
        except ValueError:
            return False

    def reserve(self, ip: str) -> bool:
        """Mark an address already in use (a pod seen after a restart)."""
        if ip not in self:
            return False
        self._used.add(int(ipaddress.ip_address(ip)))
        return True

    def allocate(self) -> str | None:
        size = self._last - self._first + 1
        if size <= 0:
            return None
        for i in range(size):
            n = self._first + (self._next - self._first + i) % size
            if n not in self._used:
                self._used.add(n)
                self._next = n + 1 if n < self._last else self._first
                return str(ipaddress.ip_address(n))
        return None

    def release(self, ip: str) -> None:
        try:
            self._used.discard(int(ipaddress.ip_address(ip)))
        except ValueError:
            pass

    def __len__(self) -> int:
        return len(self._used)
