"""networking.k8s.io/v1: ingresses, ingressclasses, networkpolicies."""
from __future__ import annotations

from typing import Any

from ..machinery import errors, validation
from ..machinery.errors import FieldError
from ..machinery.printing import age, get_path
from .apps import GoValue, format_selector, immutable, name_of, set_default, spec_of
from .strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy

PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]


# ----- Ingress ---------------------------------------------------------------------
def _validate_backend(backend: dict, path: str) -> list[FieldError]:
    svc, res = backend.get("service"), backend.get("resource")
    if svc is not None and res is not None:
        return [errors.invalid_value(path, GoValue("networking.IngressBackend{...}"),
                                     "cannot set both resource and service backends")]
    if svc is None and res is None:
        return [errors.invalid_value(path, GoValue("networking.IngressBackend{...}"),
                                     "resource or service backend is required")]
    if res is not None:
        out = []
        for key in ("kind", "name"):
            if not res.get(key):
                out.append(errors.required(f"{path}.resource.{key}", ""))
        return out
    out = []
    name = svc.get("name", "")
    if not name:
        out.append(errors.required(f"{path}.service.name", ""))
    else:
        out += [errors.invalid_value(f"{path}.service.name", name, m)
                for m in validation.is_dns1035_label(name)]
    port = svc.get("port") or {}
    has_name, has_num = bool(port.get("name")), port.get("number") is not None
    if has_name and has_num:
        out.append(errors.invalid_value(f"{path}.service.port", GoValue("networking.ServiceBackendPort{...}"),
                                        "cannot set both port name & port number"))
    elif has_name:
        out += [errors.invalid_value(f"{path}.service.port.name", port["name"], m)
                for m in validation.is_valid_port_name(port["name"])]
    elif has_num:
        out += [errors.invalid_value(f"{path}.service.port.number", port["number"], m)
                for m in validation.is_valid_port_num(port["number"])]
    else:
        out.append(errors.required(f"{path}.service.port", "port name or number is required"))
    return out


def _validate_http_path(p: dict, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    ptype = p.get("pathType")
    if ptype is None:
        out.append(errors.required(f"{path}.pathType", "pathType must be specified"))
    elif ptype not in PATH_TYPES:
        out.append(errors.not_supported(f"{path}.pathType", ptype, PATH_TYPES))
    value = p.get("path", "")
    if ptype in ("Exact", "Prefix"):
        if not value.startswith("/"):
            out.append(errors.invalid_value(f"{path}.path", value, "must be an absolute path"))
        else:
            for bad in ("//", "/./", "/../", "%2f", "%2F"):
                if bad in value:
                    out.append(errors.invalid_value(f"{path}.path", value,
                                                    f"must not contain '{bad}'"))
                    break
            for suffix in ("/..", "/."):
                if value.endswith(suffix):
                    out.append(errors.invalid_value(f"{path}.path", value,
                                                    f"cannot end with '{suffix}'"))
    elif ptype == "ImplementationSpecific" and value and not value.startswith("/"):
        out.append(errors.invalid_value(f"{path}.path", value, "must be an absolute path"))
    backend = p.get("backend")
    if not isinstance(backend, dict):
        out.append(errors.required(f"{path}.backend", ""))
    else:
        out += _validate_backend(backend, f"{path}.backend")
    return out


def _validate_host(host: str, path: str) -> list[FieldError]:
    if not host:
        return []
    if validation.parse_ip(host) is not None:
        return [errors.invalid_value(path, host, "must be a DNS name, not an IP address")]
    if host.startswith("*"):
        msgs = validation.is_wildcard_dns1123_subdomain(host)
    else:
        msgs = validation.is_dns1123_subdomain(host)
    return [errors.invalid_value(path, host, m) for m in msgs]


def _validate_ingress_spec(spec: dict) -> list[FieldError]:
    out: list[FieldError] = []
    rules, default_backend = spec.get("rules") or [], spec.get("defaultBackend")
    if not rules and default_backend is None:
        out.append(errors.invalid_value("spec", GoValue("networking.IngressSpec{...}"),
                                        "either `defaultBackend` or `rules` must be specified"))
    if isinstance(default_backend, dict):
        out += _validate_backend(default_backend, "spec.defaultBackend")
    for i, rule in enumerate(rules):
        rp = f"spec.rules[{i}]"
        out += _validate_host(rule.get("host", ""), f"{rp}.host")
        http = rule.get("http")
        if isinstance(http, dict):
            paths = http.get("paths") or []
            if not paths:
                out.append(errors.required(f"{rp}.http.paths", ""))
            for j, p in enumerate(paths):
                out += _validate_http_path(p, f"{rp}.http.paths[{j}]")
    for i, tls in enumerate(spec.get("tls") or []):
        for j, host in enumerate(tls.get("hosts") or []):
            msgs = (validation.is_wildcard_dns1123_subdomain(host) if host.startswith("*")
                    else validation.is_dns1123_subdomain(host))
            out += [errors.invalid_value(f"spec.tls[{i}].hosts[{j}]", host, m) for m in msgs]
    cls = spec.get("ingressClassName")
    if cls is not None:
        out += [errors.invalid_value("spec.ingressClassName", cls, m)
                for m in validation.is_dns1123_subdomain(cls)]
    return out


def format_ingress_hosts(rules: list[dict]) -> str:
    """At most three hosts, "*" when none is set."""
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == 3:
            more = True
        if not more and rule.get("host"):
            hosts.append(rule["host"])
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - 3} more..." if more else text


def load_balancer_text(ingress: list[dict]) -> str:
    return ",".join(i.get("ip") or i.get("hostname") or "" for i in ingress
                    if i.get("ip") or i.get("hostname"))


class IngressStrategy(Strategy):
    group, version = "networking.k8s.io", "v1"
    kind, plural = "Ingress", "ingresses"
    short_names = ("ing",)
    subresources = ("status",)
    tracks_generation = True
    columns = (NAME_COLUMN,
               Column("Class", "string", "", "The name of the IngressClass resource that should "
                      "be used for ingress"),
               Column("Hosts", "string", "", "Hosts that incoming requests are matched against "
                      "before the ingress rule"),
               Column("Address", "string", "", "Address is a list containing ingress points for "
                      "the load-balancer"),
               Column("Ports", "string", "", "Ports of TLS configurations that open"),
               AGE_COLUMN)

    def initial_status(self, obj: dict) -> dict | None:
        return {"loadBalancer": {}}

    def validate(self, obj: dict) -> list[FieldError]:
        return _validate_ingress_spec(obj.get("spec") or {})

    def table_row(self, obj: dict) -> list[Any]:
        spec = obj.get("spec") or {}
        lb = get_path(obj, "status", "loadBalancer", "ingress", default=[]) or []
        return [name_of(obj), spec.get("ingressClassName") or "<none>",
                format_ingress_hosts(spec.get("rules") or []), load_balancer_text(lb),
                "80, 443" if spec.get("tls") else "80", age(obj)]


# ----- IngressClass ----------------------------------------------------------------
class IngressClassStrategy(Strategy):
    group, version = "networking.k8s.io", "v1"
    kind, plural = "IngressClass", "ingressclasses"
    namespaced = False
    tracks_generation = True
    columns = (NAME_COLUMN,
               Column("Controller", "string", "", "Controller that is responsible for handling "
                      "this class"),
               Column("Parameters", "string", "", "A reference to a resource with additional "
                      "parameters"),
               AGE_COLUMN)

    def default(self, obj: dict) -> None:
        params = get_path(obj, "spec", "parameters")
        if isinstance(params, dict):
            set_default(params, "scope", "Cluster")

    def validate(self, obj: dict) -> list[FieldError]:
        spec = obj.get("spec") or {}
        out: list[FieldError] = []
        controller = spec.get("controller", "")
        if not controller:
            out.append(errors.required("spec.controller", ""))
        elif len(controller) > 250:
            out.append(FieldError("FieldValueTooLong", "spec.controller",
                                  "may not be more than 250 bytes"))
        params = spec.get("parameters")
        if isinstance(params, dict):
            out += self._validate_params(params, "spec.parameters")
        return out

    @staticmethod
    def _validate_params(params: dict, path: str) -> list[FieldError]:
        out = [errors.required(f"{path}.{k}", "") for k in ("kind", "name") if not params.get(k)]
        scope = params.get("scope")
        if scope not in ("Cluster", "Namespace"):
            out.append(errors.not_supported(f"{path}.scope", scope, ["Cluster", "Namespace"]))
        elif scope == "Namespace" and not params.get("namespace"):
            out.append(errors.required(f"{path}.namespace",
                                       "`parameters.scope` is set to 'Namespace'"))
        elif scope == "Cluster" and params.get("namespace"):
            out.append(errors.forbidden(f"{path}.namespace",
                                        "`parameters.scope` is set to 'Cluster'"))
        return out

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        out = self.validate(obj)
        new_c, old_c = get_path(obj, "spec", "controller"), get_path(old, "spec", "controller")
        if new_c != old_c:
            out.append(immutable("spec.controller", new_c))
        return out

    def table_row(self, obj: dict) -> list[Any]:
        spec = obj.get("spec") or {}
        params = spec.get("parameters")
        text = "<none>"
        if isinstance(params, dict):
            kind = params.get("kind", "")
            if params.get("apiGroup"):
                kind = f"{kind}.{params['apiGroup']}"
            text = f"{kind}/{params.get('name', '')}"
        return [name_of(obj), spec.get("controller", ""), text, age(obj)]


# ----- NetworkPolicy ---------------------------------------------------------------
class NetworkPolicyStrategy(Strategy):
    group, version = "networking.k8s.io", "v1"
    kind, plural = "NetworkPolicy", "networkpolicies"
    short_names = ("netpol",)
    tracks_generation = True
    columns = (NAME_COLUMN,
               Column("Pod-Selector", "string", "", "Selects the pods to which this NetworkPolicy "
                      "object applies. The array of ingress rules is applied to any pods selected "
                      "by this field. Multiple network policies can select the same set of pods. In "
                      "this case, the ingress rules for each are combined additively. This field is "
                      "NOT optional and follows standard label selector semantics. An empty "
                      "podSelector matches all pods in this namespace."),
               AGE_COLUMN)

    def default(self, obj: dict) -> None:
        spec = spec_of(obj)
        for direction in ("ingress", "egress"):
            for rule in spec.get(direction) or []:
                for port in rule.get("ports") or []:
                    set_default(port, "protocol", "TCP")
        if not spec.get("policyTypes"):
            spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])

    def validate(self, obj: dict) -> list[FieldError]:
        from ..machinery.selectors import validate_label_selector
        spec = obj.get("spec") or {}
        out = validate_label_selector(spec.get("podSelector") or {}, "spec.podSelector")
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(spec.get(direction) or []):
                rp = f"spec.{direction}[{i}]"
                for j, port in enumerate(rule.get("ports") or []):
                    out += self._validate_port(port, f"{rp}.ports[{j}]")
                for j, peer in enumerate(rule.get(peers_key) or []):
                    out += self._validate_peer(peer, f"{rp}.{peers_key}[{j}]")
        types = spec.get("policyTypes") or []
        for i, t in enumerate(types):
            if t not in ("Ingress", "Egress"):
                out.append(errors.not_supported(f"spec.policyTypes[{i}]", t, ["Ingress", "Egress"]))
        if len(types) > 2:
            out.append(errors.invalid_value("spec.policyTypes", GoValue(str(types)),
                                            "may not specify more than two policyTypes"))
        return out

    @staticmethod
    def _validate_port(port: dict, path: str) -> list[FieldError]:
        out: list[FieldError] = []
        proto = port.get("protocol")
        if proto is not None and proto not in PROTOCOLS:
            out.append(errors.not_supported(f"{path}.protocol", proto, PROTOCOLS))
        value, end = port.get("port"), port.get("endPort")
        if isinstance(value, int):
            out += [errors.invalid_value(f"{path}.port", value, m)
                    for m in validation.is_valid_port_num(value)]
        elif isinstance(value, str):
            out += [errors.invalid_value(f"{path}.port", value, m)
                    for m in validation.is_valid_port_name(value)]
        if end is not None:
            if not isinstance(value, int):
                out.append(errors.required(f"{path}.endPort",
                                           "may not be specified when `port` is non-numeric"
                                           if value is not None else
                                           "may not be specified when `port` is not specified"))
            elif end < value:
                out.append(errors.invalid_value(f"{path}.endPort", end,
                                                "must be greater than or equal to `port`"))
        return out

    @staticmethod
    def _validate_peer(peer: dict, path: str) -> list[FieldError]:
        from ..machinery.selectors import validate_label_selector
        set_count = sum(1 for k in ("podSelector", "namespaceSelector", "ipBlock") if k in peer)
        out: list[FieldError] = []
        if set_count == 0:
            return [errors.required(path, "must specify a peer")]
        if "ipBlock" in peer and set_count > 1:
            out.append(errors.forbidden(path, "may not specify both ipBlock and another peer"))
        for key in ("podSelector", "namespaceSelector"):
            if isinstance(peer.get(key), dict):
                out += validate_label_selector(peer[key], f"{path}.{key}")
        block = peer.get("ipBlock")
        if isinstance(block, dict):
            cidr = block.get("cidr", "")
            if not cidr:
                out.append(errors.required(f"{path}.ipBlock.cidr", ""))
            else:
                out += [errors.invalid_value(f"{path}.ipBlock.cidr", cidr, m)
                        for m in validation.is_valid_cidr(cidr)]
            out += _validate_excepts(cidr, block.get("except") or [], f"{path}.ipBlock.except")
        return out

    def table_row(self, obj: dict) -> list[Any]:
        return [name_of(obj), format_selector(get_path(obj, "spec", "podSelector")), age(obj)]


def _validate_excepts(cidr: str, excepts: list[str], path: str) -> list[FieldError]:
    import ipaddress
    out: list[FieldError] = []
    try:
        outer = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        outer = None
    for i, e in enumerate(excepts):
        msgs = validation.is_valid_cidr(e)
        if msgs:
            out += [errors.invalid_value(f"{path}[{i}]", e, m) for m in msgs]
            continue
        inner = ipaddress.ip_network(e, strict=False)
        if outer is not None and (inner.version != outer.version or not inner.subnet_of(outer)  # type: ignore[arg-type]
                                  or inner.prefixlen <= outer.prefixlen):
            out.append(errors.invalid_value(f"{path}[{i}]", e, "must be a strict subset of `cidr`"))
    return out


STRATEGIES = [IngressClassStrategy(), IngressStrategy(), NetworkPolicyStrategy()]
