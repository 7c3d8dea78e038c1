"""The cluster zone (cluster.local) as CoreDNS's kubernetes plugin serves it, kept from
Services, EndpointSlices and Namespaces:

  <svc>.<ns>.svc.D                 A/AAAA: the ClusterIPs; headless: the ready endpoints
  <host>.<svc>.<ns>.svc.D          A/AAAA of one endpoint (hostname, else its dashed IP)
  _<port>._<proto>.<svc>.<ns>.svc.D  SRV for a named port (headless: one per endpoint)
  <svc>.<ns>.svc.D                 SRV for every port; ExternalName: CNAME
  <a-b-c-d>.<ns>.pod.D             A (`pods insecure`: any IP, in a namespace that exists)
  PTR                              a ClusterIP -> its service; an endpoint IP -> its names

Records are kept per service so an update touches only that service's names; every
change bumps `generation`, which keys the server's response cache."""
from __future__ import annotations

import functools
import ipaddress
import time
from dataclasses import dataclass, field
from typing import Iterable

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.reversename
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.IN.SRV import SRV

IN = dns.rdataclass.IN
T_A, T_AAAA, T_SRV = dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.SRV
T_CNAME, T_PTR, T_SOA = dns.rdatatype.CNAME, dns.rdatatype.PTR, dns.rdatatype.SOA
T_NS, T_TXT = dns.rdatatype.NS, dns.rdatatype.TXT

DEFAULT_TTL = 5               # the kubernetes plugin's default `ttl`
DNS_SCHEMA_VERSION = "1.1.0"  # answered for TXT dns-version.D, as CoreDNS
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

# name (lower case, absolute, "a.b.") -> rdtype -> rdatas
Records = dict[str, dict[int, list]]


@functools.lru_cache(maxsize=4096)
def address_rdata(ip: str) -> A | AAAA:
    """(Cached: pod names make one per query, and dnspython's rdata are not cheap.)"""
    return AAAA(IN, T_AAAA, ip) if ":" in ip else A(IN, T_A, ip)


def dashed(ip: str) -> str:
    """An endpoint's DNS label when it has no hostname: 10-42-0-5; IPv6 with dashes
    (a trailing dash gets a 0, as CoreDNS)."""
    if "." in ip:
        return ip.replace(".", "-")
    label = ip.replace(":", "-")
    return label + "0" if label.endswith("-") else label


def pod_label_ip(label: str) -> str | None:
    """The IP a pod label names (1-2-3-4, or IPv6 with dashes), None if none."""
    text = label.replace("-", ".") if label.count("-") == 3 and "--" not in label \
        else label.replace("-", ":")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


@dataclass(frozen=True)
class Endpoint:
    ip: str
    hostname: str
    ports: tuple[tuple[str, int, str], ...]  # (name, port, protocol)

    @property
    def label(self) -> str:
        return self.hostname or dashed(self.ip)


def ready_endpoints(svc: dict, slices: Iterable[dict]) -> list[Endpoint]:
    """The endpoints DNS publishes: ready ones (a missing condition counts as ready, as
    the API says), or all but terminating ones when the service publishes not-ready
    addresses. One per IP; FQDN slices are not for DNS."""
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    seen: dict[str, Endpoint] = {}
    for sl in sorted(slices, key=lambda s: s["metadata"].get("name", "")):
        if sl.get("addressType") not in ("IPv4", "IPv6"):
            continue
        ports = tuple((p.get("name") or "", p["port"], p.get("protocol") or "TCP")
                      for p in sl.get("ports") or [] if p.get("port") is not None)
        for ep in sl.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            ok = cond.get("ready") is not False or (publish and not cond.get("terminating"))
            if not ok:
                continue
            for ip in ep.get("addresses") or []:
                if ip not in seen:
                    seen[ip] = Endpoint(ip, ep.get("hostname") or "", ports)
    return list(seen.values())


def srv_weight(count: int) -> int:
    """CoreDNS gives each of `count` equal-priority targets 100/count (at least 1)."""
    return max(1, 100 // max(count, 1))


@dataclass
class ServiceRecords:
    """What one service contributes: its names and the reverse entries of its IPs."""

    names: Records = field(default_factory=dict)
    service_ptrs: dict[str, str] = field(default_factory=dict)      # ClusterIP -> name
    endpoint_ptrs: dict[str, list[str]] = field(default_factory=dict)  # pod IP -> names

    def add(self, name: str, rdata) -> None:
        rds = self.names.setdefault(name, {}).setdefault(rdata.rdtype, [])
        if rdata not in rds:
            rds.append(rdata)


def _srv_name(port_name: str, proto: str, base: str) -> str:
    return f"_{port_name.lower()}._{proto.lower()}.{base}"


def service_records(svc: dict, slices: Iterable[dict], domain: str) -> ServiceRecords:
    """Every record one service puts in the zone (see the module docstring)."""
    md, spec = svc["metadata"], svc.get("spec") or {}
    base = f"{md['name']}.{md['namespace']}.svc.{domain}.".lower()
    out = ServiceRecords()
    if spec.get("type") == "ExternalName":
        target = spec.get("externalName") or ""
        try:
            out.add(base, CNAME(IN, T_CNAME, dns.name.from_text(target)))
        except dns.exception.DNSException:
            pass  # an unusable name publishes nothing (the API validates it anyway)
        return out
    endpoints = ready_endpoints(svc, slices)
    for ep in endpoints:  # endpoint names exist for every service kind, as in CoreDNS
        name = f"{ep.label}.{base}".lower()
        out.add(name, address_rdata(ep.ip))
        out.endpoint_ptrs.setdefault(ep.ip, []).append(name)
        for _pname, port, _proto in ep.ports:
            out.add(name, SRV(IN, T_SRV, 0, srv_weight(len(ep.ports)), port,
                              dns.name.from_text(name)))
    if spec.get("clusterIP") == "None":
        _headless(out, base, endpoints)
    else:
        _cluster_ip(out, base, spec)
    return out


def _headless(out: ServiceRecords, base: str, endpoints: list[Endpoint]) -> None:
    """The service name lists its ready endpoints; SRV points at each endpoint's name."""
    all_ports = sum(len(ep.ports) for ep in endpoints)
    by_port: dict[str, list[tuple[Endpoint, int]]] = {}
    for ep in endpoints:
        out.add(base, address_rdata(ep.ip))
        target = dns.name.from_text(f"{ep.label}.{base}")
        for pname, port, proto in ep.ports:
            out.add(base, SRV(IN, T_SRV, 0, srv_weight(all_ports), port, target))
            if pname:
                by_port.setdefault(_srv_name(pname, proto, base), []).append((ep, port))
    for name, targets in by_port.items():
        for ep, port in targets:
            out.add(name, SRV(IN, T_SRV, 0, srv_weight(len(targets)), port,
                              dns.name.from_text(f"{ep.label}.{base}")))


def _cluster_ip(out: ServiceRecords, base: str, spec: dict) -> None:
    ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip]
    if not ips or ips == ["None"]:
        return  # no address allocated (yet): the name does not exist
    ports = spec.get("ports") or []
    target = dns.name.from_text(base)
    for ip in ips:
        out.add(base, address_rdata(ip))
        out.service_ptrs[ip] = base
    for p in ports:
        out.add(base, SRV(IN, T_SRV, 0, srv_weight(len(ports) * len(ips)), p["port"], target))
        if p.get("name"):
            out.add(_srv_name(p["name"], p.get("protocol") or "TCP", base),
                    SRV(IN, T_SRV, 0, srv_weight(len(ips)), p["port"], target))


class Zone:
    """The zone's records, updated one service (or namespace) at a time."""

    def __init__(self, domain: str = "cluster.local", ttl: int = DEFAULT_TTL,
                 dns_ips: Iterable[str] = ()):
        self.domain = domain.strip(".").lower()
        self.origin = dns.name.from_text(self.domain)
        self.ttl = ttl
        self.dns_ips = list(dns_ips)
        self.namespaces: set[str] = set()
        self.serial = int(time.time())
        self.generation = 0
        self._services: dict[str, ServiceRecords] = {}
        self._names: dict[str, dict[str, dict[int, list]]] = {}   # name -> svc key -> records
        self._service_ptrs: dict[str, dict[str, str]] = {}        # ip -> svc key -> name
        self._endpoint_ptrs: dict[str, dict[str, list[str]]] = {}  # ip -> svc key -> names
        self._fixed = self._fixed_names()

    # -- changes ----------------------------------------------------------------------------

    def _changed(self) -> None:
        self.generation += 1
        self.serial = max(self.serial + 1, int(time.time()))

    def set_dns_ips(self, ips: Iterable[str]) -> None:
        self.dns_ips = list(ips)
        self._fixed = self._fixed_names()
        self._changed()

    def set_namespaces(self, names: Iterable[str]) -> None:
        new = set(names)
        if new != self.namespaces:
            self.namespaces = new
            self._changed()

    def set_service(self, key: str, svc: dict | None, slices: Iterable[dict] = ()) -> None:
        """Replace what service `key` (ns/name) contributes; svc None removes it."""
        new = service_records(svc, slices, self.domain) if svc else ServiceRecords()
        old = self._services.pop(key, ServiceRecords())
        if new.names == old.names and new.service_ptrs == old.service_ptrs \
                and new.endpoint_ptrs == old.endpoint_ptrs:
            if svc:
                self._services[key] = new
            return
        for name in old.names:
            per = self._names.get(name)
            if per is not None:
                per.pop(key, None)
                if not per:
                    del self._names[name]
        for name, recs in new.names.items():
            self._names.setdefault(name, {})[key] = recs
        _replace(self._service_ptrs, key, old.service_ptrs, new.service_ptrs)
        _replace(self._endpoint_ptrs, key, old.endpoint_ptrs, new.endpoint_ptrs)
        if svc:
            self._services[key] = new
        self._changed()

    # -- reads ------------------------------------------------------------------------------

    def in_zone(self, name: str) -> bool:
        return name == self.domain + "." or name.endswith("." + self.domain + ".")

    def records(self, name: str) -> dict[int, list] | None:
        """The records at `name` (lower case, absolute); {} for a name that exists with
        none (an empty non-terminal such as <ns>.svc.D); None when it does not exist."""
        per = self._names.get(name)
        if per is not None:
            if len(per) == 1:
                return next(iter(per.values()))
            merged: dict[int, list] = {}
            for recs in per.values():
                for t, rds in recs.items():
                    merged.setdefault(t, []).extend(r for r in rds if r not in merged.get(t, ()))
            return merged
        fixed = self._fixed.get(name)
        if fixed is not None:
            if name == self.domain + ".":
                return {**fixed, T_SOA: [self.soa()]}  # the serial moves with changes
            return fixed
        return self._structural(name)

    def _structural(self, name: str) -> dict[int, list] | None:
        """svc.D, pod.D, <ns>.svc.D, <ns>.pod.D and pod names."""
        if not self.in_zone(name) or name == self.domain + ".":
            return None
        labels = name[: -len(self.domain) - 2].split(".")
        if labels[-1] not in ("svc", "pod"):
            return None
        if len(labels) == 1:
            return {}
        if labels[-2] not in self.namespaces:
            return None
        if len(labels) == 2:
            return {}
        if labels[-1] == "pod" and len(labels) == 3:
            ip = pod_label_ip(labels[0])
            if ip is None:
                return None
            rd = address_rdata(ip)
            return {rd.rdtype: [rd]}
        return None

    def _fixed_names(self) -> Records:
        apex = self.domain + "."
        ns_name = f"ns.dns.{apex}"
        fixed: Records = {
            apex: {T_NS: [NS(IN, T_NS, dns.name.from_text(ns_name))]},
            f"dns-version.{apex}": {T_TXT: [TXT(IN, T_TXT, [DNS_SCHEMA_VERSION])]},
            ns_name: {}}
        for ip in self.dns_ips:
            rd = address_rdata(ip)
            fixed[ns_name].setdefault(rd.rdtype, []).append(rd)
        return fixed

    def soa(self) -> SOA:
        """CoreDNS's SOA: ns.dns.D hostmaster.D, serial = last change, minimum = ttl."""
        return SOA(IN, T_SOA, dns.name.from_text(f"ns.dns.{self.domain}"),
                   dns.name.from_text(f"hostmaster.{self.domain}"), self.serial,
                   7200, 1800, 86400, self.ttl)

    def soa_ttl(self) -> int:
        return min(self.ttl, 300)

    def reverse(self, ip: str) -> list[str]:
        """PTR targets for `ip`: the service owning the ClusterIP (one, as CoreDNS), else
        every endpoint name with that address."""
        svc = self._service_ptrs.get(ip)
        if svc:
            return [svc[min(svc)]]
        eps = self._endpoint_ptrs.get(ip) or {}
        return sorted({n for key in sorted(eps) for n in eps[key]})

    def ptr_records(self, ip: str) -> list[PTR]:
        return [PTR(IN, T_PTR, dns.name.from_text(n)) for n in self.reverse(ip)]


def _replace(index: dict[str, dict], key: str, old: dict, new: dict) -> None:
    for ip in old:
        per = index.get(ip)
        if per is not None:
            per.pop(key, None)
            if not per:
                del index[ip]
    for ip, value in new.items():
        index.setdefault(ip, {})[key] = value


def reverse_ip(name: dns.name.Name) -> str | None:
    """The address an in-addr.arpa / ip6.arpa name stands for (None if partial)."""
    try:
        return str(ipaddress.ip_address(dns.reversename.to_address(name)))
    except (dns.exception.DNSException, ValueError):
        return None
