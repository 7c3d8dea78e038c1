"""The route table: which backend a request reaches, from the Ingresses this controller
owns. Pure data (no I/O), so the precedence rules are unit-tested here and the nginx
config is rendered from exactly this.

Rules (networking.k8s.io/v1, as the Ingress spec and ingress-nginx apply them):
- host: a precise host matches the Host header exactly; `*.example.com` matches one
  extra label (`a.example.com`, not `example.com` nor `a.b.example.com`); precise hosts
  win over wildcards; rules without a host serve every other host. A request is routed
  only within the virtual host it selects.
- path: Exact matches the path exactly (case-sensitive); Prefix matches element by
  element, split on `/` (`/foo` matches `/foo`, `/foo/` and `/foo/bar`, not `/foobar`;
  a trailing `/` in the rule is ignored); ImplementationSpecific is Prefix here. The
  longest matching path wins; Exact wins over Prefix for the same path.
- conflicts (same host, path and type in several Ingresses): the oldest Ingress wins.
- nothing matches: the oldest Ingress's spec.defaultBackend, else 404.
"""
from __future__ import annotations

from dataclasses import dataclass, field

EXACT, PREFIX = "Exact", "Prefix"


@dataclass(frozen=True)
class Backend:
    """A Service port (spec.port.number or spec.port.name) in the Ingress's namespace."""
    namespace: str
    service: str
    port: int | str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.service}:{self.port}"


@dataclass(frozen=True)
class Route:
    path: str          # normalized: Prefix paths without a trailing "/" ("" for "/")
    kind: str          # EXACT or PREFIX
    backend: Backend
    source: str        # the Ingress, namespace/name


@dataclass
class VirtualHost:
    host: str                                   # "" for rules without a host
    routes: list[Route] = field(default_factory=list)
    tls: tuple[str, str] | None = None          # (namespace, secret name)
    tls_source: str = ""                        # the Ingress that named it

    def match(self, path: str) -> Route | None:
        """The route for a request path: longest path, Exact before Prefix."""
        best: Route | None = None
        for r in self.routes:
            if not path_matches(r, path):
                continue
            if best is None or _rank(r) > _rank(best):
                best = r
        return best


@dataclass
class RouteTable:
    hosts: dict[str, VirtualHost] = field(default_factory=dict)
    default_backend: Backend | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (Ingress, what and why)

    def virtual_host(self, host: str) -> VirtualHost | None:
        """The virtual host a Host header (port stripped, any case) selects."""
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        host = host.lower().rstrip(".")
        if host in self.hosts:
            return self.hosts[host]
        _, dot, rest = host.partition(".")
        if dot and f"*.{rest}" in self.hosts:
            return self.hosts[f"*.{rest}"]
        return self.hosts.get("")

    def lookup(self, host: str, path: str) -> Backend | None:
        """The backend for a request; None means 404."""
        vhost = self.virtual_host(host)
        route = vhost.match(path) if vhost else None
        return route.backend if route else self.default_backend

    def backends(self) -> list[Backend]:
        seen = {r.backend for v in self.hosts.values() for r in v.routes}
        if self.default_backend:
            seen.add(self.default_backend)
        return sorted(seen, key=lambda b: b.key)


def normalize(path: str, kind: str) -> str:
    return path.rstrip("/") if kind == PREFIX else path


def path_matches(route: Route, path: str) -> bool:
    if route.kind == EXACT:
        return path == route.path
    if not route.path:
        return True                      # Prefix "/" matches every path
    if not path.startswith(route.path):
        return False
    rest = path[len(route.path):]
    return rest == "" or rest.startswith("/")


def _rank(r: Route) -> tuple[int, int]:
    return len(r.path), 1 if r.kind == EXACT else 0


def host_matches(pattern: str, host: str) -> bool:
    """A TLS host (precise or `*.` wildcard) covers `host`."""
    if pattern == host:
        return True
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first) and bool(dot) and rest == pattern[2:] and not first.startswith("*")
    return False


def backend_of(ingress: dict, spec_backend: dict | None) -> Backend | None:
    svc = (spec_backend or {}).get("service")
    if not isinstance(svc, dict) or not svc.get("name"):
        return None                      # resource backends are not served
    port = svc.get("port") or {}
    ref = port.get("number") if port.get("number") is not None else port.get("name")
    if ref is None or ref == "":
        return None
    return Backend(ingress["metadata"].get("namespace") or "default", svc["name"], ref)


def age_order(ingresses: list[dict]) -> list[dict]:
    """Oldest first (creationTimestamp, then namespace/name): the oldest wins conflicts."""
    def key(i: dict) -> tuple[str, str, str]:
        md = i.get("metadata") or {}
        return md.get("creationTimestamp") or "", md.get("namespace") or "", md.get("name", "")
    return sorted(ingresses, key=key)


def build(ingresses: list[dict]) -> RouteTable:
    """The table for these Ingresses (already filtered to this controller's class)."""
    table = RouteTable()
    for ing in age_order(ingresses):
        _add_ingress(table, ing)
    _assign_tls(table, age_order(ingresses))
    return table


def _add_ingress(table: RouteTable, ing: dict) -> None:
    md, spec = ing.get("metadata") or {}, ing.get("spec") or {}
    source = f"{md.get('namespace', '')}/{md.get('name', '')}"
    if spec.get("defaultBackend") and table.default_backend is None:
        table.default_backend = backend_of(ing, spec["defaultBackend"])
    for rule in spec.get("rules") or []:
        host = (rule.get("host") or "").lower()
        vhost = table.hosts.setdefault(host, VirtualHost(host))
        for p in ((rule.get("http") or {}).get("paths") or []):
            kind = EXACT if p.get("pathType") == EXACT else PREFIX
            raw = p.get("path") or "/"
            if not raw.startswith("/"):
                table.problems.append((source, f"path {raw!r} is not absolute; skipped"))
                continue
            backend = backend_of(ing, p.get("backend"))
            if backend is None:
                table.problems.append((source, f"path {raw!r} has no Service backend; "
                                                       "skipped"))
                continue
            route = Route(normalize(raw, kind), kind, backend, source)
            if any(r.path == route.path and r.kind == kind for r in vhost.routes):
                table.problems.append((source, f"{host or '*'} {kind} {raw} is already "
                                               f"routed by an older Ingress; skipped"))
                continue
            vhost.routes.append(route)


def _assign_tls(table: RouteTable, ingresses: list[dict]) -> None:
    """Each virtual host gets the certificate of the oldest Ingress whose spec.tls covers
    it (a tls entry without hosts covers that Ingress's own rule hosts)."""
    for ing in ingresses:
        md, spec = ing.get("metadata") or {}, ing.get("spec") or {}
        own = [(r.get("host") or "").lower() for r in spec.get("rules") or []]
        for tls in spec.get("tls") or []:
            secret = tls.get("secretName")
            if not secret:
                continue
            patterns = [h.lower() for h in tls.get("hosts") or []] or [h for h in own if h]
            for host, vhost in table.hosts.items():
                if vhost.tls is None and host and any(host_matches(p, host) for p in patterns):
                    vhost.tls = (md.get("namespace") or "default", secret)
                    vhost.tls_source = f"{md.get('namespace', '')}/{md.get('name', '')}"
