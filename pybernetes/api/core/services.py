"""core/v1 Service. ClusterIP / NodePort allocation is the REST layer's job; this
module defaults, validates user-given values syntactically and prints."""
from __future__ import annotations

import ipaddress
from typing import Any

from ...machinery import errors
from ...machinery import validation as v
from ...machinery.errors import FieldError
from ...machinery.printing import age, get_path
from ..strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from .cells import format_labels, invalid_all, meta, set_default, spec

SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
AFFINITIES = ["ClientIP", "None"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
TRAFFIC_POLICIES = ["Cluster", "Local"]
IP_FAMILY_POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"]
CLIENT_IP_TIMEOUT = 10800  # DefaultClientIPServiceAffinitySeconds
MAX_CLIENT_IP_TIMEOUT = 86400


def externally_accessible(s: dict) -> bool:
    t = s.get("type")
    return t in ("LoadBalancer", "NodePort") or (t == "ClusterIP" and bool(s.get("externalIPs")))


def _ip_family(ip: str) -> str | None:
    try:
        return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    except ValueError:
        return None


def default_service_spec(s: dict) -> None:
    set_default(s, "sessionAffinity", "None")
    if s["sessionAffinity"] == "None":
        s.pop("sessionAffinityConfig", None)
    elif s["sessionAffinity"] == "ClientIP" and get_path(
            s, "sessionAffinityConfig", "clientIP", "timeoutSeconds") is None:
        s["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": CLIENT_IP_TIMEOUT}}
    set_default(s, "type", "ClusterIP")
    for p in s.get("ports") or []:
        if isinstance(p, dict):
            set_default(p, "protocol", "TCP")
            if p.get("targetPort") in (None, 0, ""):
                p["targetPort"] = p.get("port")
    if externally_accessible(s):
        set_default(s, "externalTrafficPolicy", "Cluster")
    if s["type"] in ("ClusterIP", "NodePort", "LoadBalancer"):
        set_default(s, "internalTrafficPolicy", "Cluster")
    if s["type"] == "LoadBalancer" and s.get("allocateLoadBalancerNodePorts") is None:
        s["allocateLoadBalancerNodePorts"] = True
    _default_ip_families(s)


def _default_ip_families(s: dict) -> None:
    """What the REST layer's IP-family logic leaves on a single-stack cluster."""
    if s["type"] == "ExternalName":
        return
    if s.get("clusterIP") and not s.get("clusterIPs"):
        s["clusterIPs"] = [s["clusterIP"]]
    set_default(s, "ipFamilyPolicy", "SingleStack")
    if not s.get("ipFamilies"):
        fams = [f for f in (_ip_family(ip) for ip in s.get("clusterIPs") or []) if f]
        s["ipFamilies"] = fams or ["IPv4"]


def _validate_port(p: dict, pp: str, s: dict, names: set[str], many: bool) -> list[FieldError]:
    out: list[FieldError] = []
    name = p.get("name", "")
    if many and not name:
        out.append(errors.required(f"{pp}.name", ""))
    elif name:
        out += invalid_all(f"{pp}.name", name, v.is_dns1123_label(name))
        if name in names:
            out.append(errors.duplicate(f"{pp}.name", name))
        names.add(name)
    out += invalid_all(f"{pp}.port", p.get("port", 0), v.is_valid_port_num(p.get("port") or 0))
    proto = p.get("protocol", "")
    if not proto:
        out.append(errors.required(f"{pp}.protocol", ""))
    elif proto not in PROTOCOLS:
        out.append(errors.not_supported(f"{pp}.protocol", proto, PROTOCOLS))
    target = p.get("targetPort")
    if isinstance(target, int):
        out += invalid_all(f"{pp}.targetPort", target, v.is_valid_port_num(target))
    elif isinstance(target, str):
        out += invalid_all(f"{pp}.targetPort", target, v.is_valid_port_name(target))
    node_port = p.get("nodePort")
    if node_port:
        if s.get("type") == "ClusterIP":
            out.append(errors.forbidden(f"{pp}.nodePort",
                                        "may not be used when `type` is 'ClusterIP'"))
        out += invalid_all(f"{pp}.nodePort", node_port, v.is_valid_port_num(node_port))
    return out


def validate_service_spec(s: dict) -> list[FieldError]:
    out: list[FieldError] = []
    stype = s.get("type", "")
    if stype not in SERVICE_TYPES:
        out.append(errors.not_supported("spec.type", stype, SERVICE_TYPES))
    ports = s.get("ports") or []
    headless = s.get("clusterIP") == "None"
    if stype == "ExternalName":
        name = s.get("externalName", "")
        if not name:
            out.append(errors.required("spec.externalName", ""))
        else:
            out += invalid_all("spec.externalName", name, v.is_dns1123_subdomain(name.rstrip(".")))
    elif not ports and not headless:
        out.append(errors.required("spec.ports", ""))
    names: set[str] = set()
    for i, p in enumerate(ports):
        out += _validate_port(p, f"spec.ports[{i}]", s, names, len(ports) > 1)
    out += _validate_ips(s)
    affinity = s.get("sessionAffinity", "")
    if affinity not in AFFINITIES:
        out.append(errors.not_supported("spec.sessionAffinity", affinity, AFFINITIES))
    timeout = get_path(s, "sessionAffinityConfig", "clientIP", "timeoutSeconds")
    if affinity == "ClientIP" and timeout is not None and not 0 < timeout <= MAX_CLIENT_IP_TIMEOUT:
        out.append(errors.invalid_value(
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
            f"must be greater than 0 and less than {MAX_CLIENT_IP_TIMEOUT}"))
    out += v.validate_labels(s.get("selector") or {}, "spec.selector")
    out += _validate_policies(s, stype)
    return out


def _validate_ips(s: dict) -> list[FieldError]:
    out: list[FieldError] = []
    for i, ip in enumerate(s.get("clusterIPs") or ([s["clusterIP"]] if s.get("clusterIP") else [])):
        if ip == "None" and i == 0:
            continue
        out += invalid_all(f"spec.clusterIPs[{i}]", ip, v.is_valid_ip(ip))
    if s.get("clusterIP") and s.get("clusterIPs") and s["clusterIP"] != s["clusterIPs"][0]:
        out.append(errors.invalid_value("spec.clusterIPs", s["clusterIPs"],
                                        "first value must match `clusterIP`"))
    for i, ip in enumerate(s.get("externalIPs") or []):
        out += invalid_all(f"spec.externalIPs[{i}]", ip, v.is_valid_ip(ip))
    if s.get("loadBalancerIP"):
        out += invalid_all("spec.loadBalancerIP", s["loadBalancerIP"],
                           v.is_valid_ip(s["loadBalancerIP"]))
    for i, cidr in enumerate(s.get("loadBalancerSourceRanges") or []):
        out += invalid_all(f"spec.loadBalancerSourceRanges[{i}]", cidr, v.is_valid_cidr(cidr))
    policy = s.get("ipFamilyPolicy")
    if policy and policy not in IP_FAMILY_POLICIES:
        out.append(errors.not_supported("spec.ipFamilyPolicy", policy, IP_FAMILY_POLICIES))
    for i, fam in enumerate(s.get("ipFamilies") or []):
        if fam not in ("IPv4", "IPv6"):
            out.append(errors.not_supported(f"spec.ipFamilies[{i}]", fam, ["IPv4", "IPv6"]))
    return out


def _validate_policies(s: dict, stype: str) -> list[FieldError]:
    out: list[FieldError] = []
    etp = s.get("externalTrafficPolicy")
    if etp:
        if not externally_accessible(s):
            out.append(errors.invalid_value("spec.externalTrafficPolicy", etp,
                                            "may only be set for externally-accessible services"))
        elif etp not in TRAFFIC_POLICIES:
            out.append(errors.not_supported("spec.externalTrafficPolicy", etp, TRAFFIC_POLICIES))
    itp = s.get("internalTrafficPolicy")
    if itp and itp not in TRAFFIC_POLICIES:
        out.append(errors.not_supported("spec.internalTrafficPolicy", itp, TRAFFIC_POLICIES))
    if s.get("healthCheckNodePort") and not (stype == "LoadBalancer" and etp == "Local"):
        out.append(errors.invalid_value(
            "spec.healthCheckNodePort", s["healthCheckNodePort"],
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    return out


def _go_strings(items: list[str]) -> Any:
    from ..apps import GoValue
    return GoValue("[]string{" + ", ".join(f'"{i}"' for i in items) + "}")


def external_ip_cell(svc: dict) -> str:
    s = svc.get("spec") or {}
    stype = s.get("type", "ClusterIP")
    external = list(s.get("externalIPs") or [])
    if stype in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if stype == "ExternalName":
        return s.get("externalName", "")
    if stype == "LoadBalancer":
        ingress = get_path(svc, "status", "loadBalancer", "ingress", default=[]) or []
        # a sorted set of ingress IPs (hostname when no IP), then the external IPs
        ips = sorted({i.get("ip") or i.get("hostname") for i in ingress
                      if i.get("ip") or i.get("hostname")}) + external
        return ",".join(ips) if ips else "<pending>"
    return "<unknown>"


def ports_cell(ports: list[dict] | None) -> str:
    cells = []
    for p in ports or []:
        proto = p.get("protocol", "TCP")
        if p.get("nodePort"):
            cells.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            cells.append(f"{p.get('port')}/{proto}")
    return ",".join(cells)  # upstream leaves the cell empty for a port-less service


class ServiceStrategy(Strategy):
    return_deleted_object = True
    kind, plural = "Service", "services"
    short_names = ("svc",)
    categories = ("all",)
    subresources = ("status", "proxy")
    columns = (
        NAME_COLUMN,
        Column("Type", "string", "", "type determines how the Service is exposed."),
        Column("Cluster-IP", "string", "", "clusterIP is the IP address of the service and is "
               "usually assigned randomly."),
        Column("External-IP", "string", "", "List of IP addresses for which nodes in the cluster "
               "will also accept traffic for this service."),
        Column("Port(s)", "string", "", "The list of ports that are exposed by this service."),
        AGE_COLUMN,
        Column("Selector", "string", "", "Route service traffic to pods with label keys and "
               "values matching this selector.", 1),
    )

    @staticmethod
    def name_validator(name: str) -> list[str]:
        return v.is_dns1035_label(name)

    def default(self, obj: dict) -> None:
        default_service_spec(spec(obj))

    def initial_status(self, obj: dict) -> dict:
        return {"loadBalancer": {}}

    def validate(self, obj: dict) -> list[FieldError]:
        return validate_service_spec(obj.get("spec") or {})

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        out = self.validate(obj)
        new_s, old_s = obj.get("spec") or {}, old.get("spec") or {}
        if "ExternalName" in (new_s.get("type"), old_s.get("type")):
            return out
        old_ips, new_ips = old_s.get("clusterIPs") or [], new_s.get("clusterIPs") or []
        for i, ip in enumerate(old_ips):
            # a secondary IP may be dropped (downgrade); none may be changed
            if i < len(new_ips) and new_ips[i] != ip or (i == 0 and not new_ips):
                out.append(errors.invalid_value(f"spec.clusterIPs[{i}]", _go_strings(new_ips),
                                                "may not change once set"))
                break
        return out

    def prepare_for_update(self, obj: dict, old: dict) -> None:
        super().prepare_for_update(obj, old)
        # an update that omits the allocated IPs keeps them (as upstream's REST does)
        new_s, old_s = spec(obj), old.get("spec") or {}
        if new_s.get("type") != "ExternalName" and old_s.get("clusterIP") \
                and not new_s.get("clusterIP"):
            new_s["clusterIP"] = old_s["clusterIP"]
            new_s["clusterIPs"] = list(old_s.get("clusterIPs") or [old_s["clusterIP"]])

    def table_row(self, obj: dict) -> list[Any]:
        s = obj.get("spec") or {}
        return [meta(obj).get("name", ""), s.get("type", ""), s.get("clusterIP") or "<none>",
                external_ip_cell(obj), ports_cell(s.get("ports")), age(obj),
                format_labels(s.get("selector"))]

    def field_labels(self, obj: dict) -> dict[str, str]:
        labels = super().field_labels(obj)
        s = obj.get("spec") or {}
        labels["spec.clusterIP"] = s.get("clusterIP", "")
        labels["spec.type"] = s.get("type", "")
        return labels
