"""A container's environment as upstream's kubelet builds it (makeEnvironmentVariables):
envFrom sources in order, then env in order (a later name wins), `$(VAR)` references
expanded against what came before and the service variables, valueFrom resolved from
ConfigMaps, Secrets, the pod's fields and the containers' resources; then the
service-link variables (FOO_SERVICE_HOST, ...) for names not already set.

Missing ConfigMaps, Secrets or keys that are not optional raise `ConfigError`, whose
reason (CreateContainerConfigError) and message go into the container's waiting state."""
from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Protocol

from pybernetes.kubelet.runtime.base import ContainerRuntimeError
from pybernetes.machinery.quantity import QuantityError, parse_quantity
from pybernetes.machinery.validation import is_env_var_name

MASTER_SERVICES_NAMESPACE, MASTER_SERVICES = "default", ("kubernetes",)


class ConfigError(ContainerRuntimeError):
    """Configuration the container needs is missing or wrong."""

    def __init__(self, message: str):
        super().__init__(message, reason="CreateContainerConfigError")


class ObjectLookup(Protocol):
    """Where ConfigMaps and Secrets come from (the kubelet's cache or the API).
    `kind` is "configmap" or "secret"; None when the object does not exist."""

    async def __call__(self, kind: str, namespace: str, name: str) -> dict | None: ...


def dict_lookup(objects: dict[tuple[str, str, str], dict]) -> ObjectLookup:
    """A lookup over a plain dict keyed (kind, namespace, name): for tests and caches."""
    async def get(kind: str, namespace: str, name: str) -> dict | None:
        return objects.get((kind, namespace, name))
    return get


@dataclass
class EnvEvent:
    type: str
    reason: str
    message: str


@dataclass
class PodContext:
    """What fieldRef and resourceFieldRef may read besides the pod object itself."""

    pod_ips: list[str] = field(default_factory=list)
    host_ips: list[str] = field(default_factory=list)
    node_allocatable: dict[str, str] = field(default_factory=dict)  # limits default to these


# ----- $(VAR) expansion -----------------------------------------------------------------
def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes' `$(VAR)` expansion: `$$` is a literal `$`, unknown or unterminated
    references stay as written."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end < 0:
                out.append("$(")
                i += 2
                continue
            name = text[i + 2:end]
            value = lookup(name)
            out.append(value if value is not None else f"$({name})")
            i = end + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def mapping(*sources: dict[str, str]) -> Callable[[str], str | None]:
    """Look a name up in each source in turn (upstream's MappingFuncFor)."""
    def get(name: str) -> str | None:
        for s in sources:
            if name in s:
                return s[name]
        return None
    return get


# ----- fieldRef / resourceFieldRef -------------------------------------------------------
def _subscript(path: str, prefix: str) -> str | None:
    """metadata.labels['key'] → key."""
    if path.startswith(prefix + "[") and path.endswith("]"):
        inner = path[len(prefix) + 1:-1]
        if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
            return inner[1:-1]
    return None


def format_map(m: dict[str, str]) -> str:
    """labels/annotations as a downward API file: key="value" lines, sorted."""
    return "\n".join(f"{k}={json.dumps(m[k], ensure_ascii=False)}" for k in sorted(m))


def field_ref_value(pod: dict, path: str, ctx: PodContext) -> str:
    md, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": md.get("name", ""), "metadata.namespace": md.get("namespace", ""),
        "metadata.uid": md.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": ctx.host_ips[0] if ctx.host_ips else "",
        "status.hostIPs": ",".join(ctx.host_ips),
        "status.podIP": ctx.pod_ips[0] if ctx.pod_ips else "",
        "status.podIPs": ",".join(ctx.pod_ips),
    }
    if path in simple:
        return simple[path]
    for key in ("labels", "annotations"):
        if path == f"metadata.{key}":
            return format_map(md.get(key) or {})
        sub = _subscript(path, f"metadata.{key}")
        if sub is not None:
            return (md.get(key) or {}).get(sub, "")
    raise ConfigError(f"unsupported fieldPath: {path}")


def _quantity(q: object, default: Fraction = Fraction(0)) -> Fraction:
    if q is None or q == "":
        return default
    try:
        return parse_quantity(q)
    except QuantityError:
        return default


def resource_field_value(pod: dict, ref: dict, default_container: str, ctx: PodContext) -> str:
    """requests.cpu / limits.memory / ... of a container, divided by the divisor and
    rounded up; unset limits default to the node's allocatable."""
    cname = ref.get("containerName") or default_container
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    c = next((x for x in containers if x.get("name") == cname), None)
    if c is None:
        raise ConfigError(f"container {cname} not found")
    resource = ref.get("resource") or ""
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not name:
        raise ConfigError(f"unsupported container resource : {resource}")
    res = c.get("resources") or {}
    value = (res.get(kind) or {}).get(name)
    if value is None and kind == "requests":
        value = (res.get("limits") or {}).get(name)   # requests default to limits
    if value is None and kind == "limits":
        value = ctx.node_allocatable.get(name)
    amount = _quantity(value)
    divisor = _quantity(ref.get("divisor"), Fraction(1)) or Fraction(1)
    if name == "cpu":   # upstream divides milli-values
        amount, divisor = Fraction(math.ceil(amount * 1000)), Fraction(math.ceil(divisor * 1000))
    return str(math.ceil(amount / divisor))


# ----- service links ----------------------------------------------------------------------
def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def _ip_set(svc: dict) -> bool:
    ip = (svc.get("spec") or {}).get("clusterIP") or ""
    return ip not in ("", "None")


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _service_vars(svc: dict) -> list[tuple[str, str]]:
    spec = svc.get("spec") or {}
    ports, ip = spec.get("ports") or [], spec.get("clusterIP", "")
    if not ports:
        return []
    prefix = _env_name((svc.get("metadata") or {}).get("name", ""))
    out = [(f"{prefix}_SERVICE_HOST", ip), (f"{prefix}_SERVICE_PORT", str(ports[0].get("port")))]
    out += [(f"{prefix}_SERVICE_PORT_{_env_name(p['name'])}", str(p.get("port")))
            for p in ports if p.get("name")]
    for i, p in enumerate(ports):
        proto = p.get("protocol") or "TCP"
        url = f"{proto.lower()}://{_host_port(ip, p.get('port'))}"
        if i == 0:
            out.append((f"{prefix}_PORT", url))
        pp = f"{prefix}_PORT_{p.get('port')}_{proto.upper()}"
        out += [(pp, url), (f"{pp}_PROTO", proto.lower()), (f"{pp}_PORT", str(p.get("port"))),
                (f"{pp}_ADDR", ip)]
    return out


def service_env(services: list[dict], namespace: str, enable_service_links: bool = True
                ) -> dict[str, str]:
    """Docker-link style variables: the `kubernetes` Service of `default` always, the
    pod namespace's Services when enableServiceLinks (the default)."""
    chosen: dict[str, dict] = {}
    for svc in services:
        if not _ip_set(svc):
            continue
        md = svc.get("metadata") or {}
        name, ns = md.get("name", ""), md.get("namespace", "")
        if ns == MASTER_SERVICES_NAMESPACE and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    out: dict[str, str] = {}
    for name in sorted(chosen):
        out.update(_service_vars(chosen[name]))
    return out


# ----- ConfigMaps and Secrets ------------------------------------------------------------
def object_data(kind: str, obj: dict) -> dict[str, str]:
    """String values of a ConfigMap's data or a Secret's (base64) data."""
    if kind == "configmap":
        return {k: str(v) for k, v in (obj.get("data") or {}).items()}
    out = {}
    for k, v in (obj.get("data") or {}).items():
        try:
            out[k] = base64.b64decode(v or "").decode("utf-8", "replace")
        except (ValueError, TypeError):
            out[k] = ""
    for k, v in (obj.get("stringData") or {}).items():
        out[k] = str(v)
    return out


class _Objects:
    """Each ConfigMap/Secret fetched once per environment build."""

    def __init__(self, lookup: ObjectLookup, namespace: str):
        self.lookup, self.namespace = lookup, namespace
        self._seen: dict[tuple[str, str], dict | None] = {}

    async def get(self, kind: str, name: str) -> dict | None:
        if (kind, name) not in self._seen:
            self._seen[(kind, name)] = await self.lookup(kind, self.namespace, name)
        return self._seen[(kind, name)]


_TITLE = {"configmap": "ConfigMap", "secret": "Secret"}


async def _env_from(container: dict, objs: _Objects, ns: str, env: dict[str, str],
                    events: list[EnvEvent]) -> None:
    for src in container.get("envFrom") or []:
        kind, ref = ("configmap", src.get("configMapRef")) if src.get("configMapRef") \
            else ("secret", src.get("secretRef"))
        if not ref:
            continue
        name, optional = ref.get("name", ""), bool(ref.get("optional"))
        obj = await objs.get(kind, name)
        if obj is None:
            if optional:
                continue
            raise ConfigError(f'{kind} "{name}" not found')
        invalid = []
        for k, v in object_data(kind, obj).items():
            k = (src.get("prefix") or "") + k
            if is_env_var_name(k):
                invalid.append(k)
                continue
            env[k] = v
        if invalid:
            label = "configMap" if kind == "configmap" else "secret"
            events.append(EnvEvent("Warning", "InvalidEnvironmentVariableNames", (
                f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {label} {ns}/{name} "
                "were skipped since they are considered invalid environment variable names.")))


async def _key_ref(kind: str, ref: dict, objs: _Objects, ns: str) -> str | None:
    name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
    obj = await objs.get(kind, name)
    if obj is None:
        if optional:
            return None
        raise ConfigError(f'{kind} "{name}" not found')
    data = object_data(kind, obj)
    if key not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {key} in {_TITLE[kind]} {ns}/{name}")
    return data[key]


async def container_env(pod: dict, container: dict, lookup: ObjectLookup, *,
                        ctx: PodContext | None = None, services: list[dict] | None = None
                        ) -> tuple[list[tuple[str, str]], list[EnvEvent]]:
    """The container's environment (without the image's) and the events to record."""
    ctx = ctx or PodContext()
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    links = (pod.get("spec") or {}).get("enableServiceLinks")
    svc_env = service_env(services or [], ns, links is not False)
    objs = _Objects(lookup, ns)
    env: dict[str, str] = {}
    events: list[EnvEvent] = []
    await _env_from(container, objs, ns, env, events)
    for var in container.get("env") or []:
        name, value, vf = var.get("name", ""), var.get("value") or "", var.get("valueFrom")
        if value:
            value = expand(value, mapping(env, svc_env))
        elif vf:
            if vf.get("configMapKeyRef"):
                got = await _key_ref("configmap", vf["configMapKeyRef"], objs, ns)
            elif vf.get("secretKeyRef"):
                got = await _key_ref("secret", vf["secretKeyRef"], objs, ns)
            elif vf.get("fieldRef"):
                got = field_ref_value(pod, vf["fieldRef"].get("fieldPath", ""), ctx)
            elif vf.get("resourceFieldRef"):
                got = resource_field_value(pod, vf["resourceFieldRef"], container.get("name", ""),
                                           ctx)
            else:
                got = ""
            if got is None:
                continue   # optional and absent: the variable is not set at all
            value = got
        env[name] = value
    for k, v in svc_env.items():
        env.setdefault(k, v)
    return list(env.items()), events
