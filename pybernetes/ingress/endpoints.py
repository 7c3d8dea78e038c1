"""A backend Service port → the ready pod addresses behind it (ip, port), straight from
its EndpointSlices (like ingress-nginx: no hop through the cluster IP). The target
port comes from each slice, so a named targetPort that differs per pod is right."""
from __future__ import annotations

from pybernetes.ingress.routes import Backend
from pybernetes.proxy.model import SERVICE_NAME_LABEL

Address = tuple[str, int]


def service_port(service: dict, ref: int | str) -> dict | None:
    """spec.ports[i] referred to by number (its `port`) or by name."""
    for p in (service.get("spec") or {}).get("ports") or []:
        if isinstance(ref, int) and p.get("port") == ref:
            return p
        if isinstance(ref, str) and p.get("name") == ref:
            return p
    return None


def ready_addresses(backend: Backend, service: dict | None,
                    slices: list[dict]) -> list[Address]:
    """Ready endpoints of the backend, sorted; [] when the Service, its port or any
    ready endpoint is missing (the caller answers 503)."""
    if service is None:
        return []
    sp = service_port(service, backend.port)
    if sp is None or (sp.get("protocol") or "TCP") != "TCP":
        return []
    name = sp.get("name") or ""
    out: set[Address] = set()
    for sl in slices:
        labels = (sl.get("metadata") or {}).get("labels") or {}
        if labels.get(SERVICE_NAME_LABEL) != backend.service or \
                sl.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            continue
        port = next((p.get("port") for p in sl.get("ports") or []
                     if (p.get("name") or "") == name and p.get("protocol", "TCP") == "TCP"),
                    None)
        if not isinstance(port, int):
            continue
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            for ip in (ep.get("addresses") or [])[:1]:
                out.add((ip, port))
    return sorted(out)
