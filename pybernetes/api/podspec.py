"""Pod spec / pod template defaulting and validation shared by every workload kind.

Mirrors upstream pkg/apis/core/v1/defaults.go (SetDefaults_PodSpec, _Container,
_Probe, _Volume ...) and the PodSpec parts of pkg/apis/core/validation. Pods get
a few extra defaults (SetDefaults_Pod: requests from limits, enableServiceLinks,
host-network ports) that templates do not: see default_pod_only().
"""
from __future__ import annotations

import copy
import functools
import math
from fractions import Fraction
from typing import Any, Iterable

from ..machinery import errors
from ..machinery import validation as v
from ..machinery.errors import FieldError
from ..machinery.quantity import (ERR_FORMAT, Quantity, QuantityError, format_quantity,
                                  parse_quantity)

RESTART_POLICIES = ["Always", "Never", "OnFailure"]
DNS_POLICIES = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
TERMINATION_MESSAGE_POLICIES = ["File", "FallbackToLogsOnError"]
TOLERATION_OPERATORS = ["Equal", "Exists"]
TAINT_EFFECTS = ["NoExecute", "NoSchedule", "PreferNoSchedule"]
# Volume sources (exactly one per volume; emptyDir when none)
VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret",
    "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder",
    "cephfs", "flocker", "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume",
    "quobyte", "azureDisk", "photonPersistentDisk", "projected", "portworxVolume", "scaleIO",
    "storageos", "csi", "ephemeral", "image")
DEFAULT_MODE = 0o644  # secret/configMap/downwardAPI/projected volumes


def _set(obj: dict, key: str, value: Any) -> None:
    if obj.get(key) in (None, ""):
        obj[key] = copy.deepcopy(value) if isinstance(value, (dict, list)) else value


# ----- defaulting ---------------------------------------------------------------------
def image_tag(image: str) -> str:
    """The tag of an image reference ("latest" when none and no digest), as
    upstream's parsers.ParseImageName decides pull policy."""
    if "@" in image:
        image = image.split("@", 1)[0]
        last = image.rsplit("/", 1)[-1]
        return last.split(":", 1)[1] if ":" in last else ""
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def default_pull_policy(image: str) -> str:
    return "Always" if image_tag(image or "") == "latest" else "IfNotPresent"


def _default_http_get(handler: Any) -> None:
    if isinstance(handler, dict) and isinstance(handler.get("httpGet"), dict):
        _set(handler["httpGet"], "path", "/")
        _set(handler["httpGet"], "scheme", "HTTP")


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for key, val in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                     ("failureThreshold", 3)):
        if not probe.get(key):
            probe[key] = val
    _default_http_get(probe)
    if isinstance(probe.get("grpc"), dict):
        probe["grpc"].setdefault("service", "")


def _default_field_refs(items: Iterable[Any]) -> None:
    for item in items or []:
        ref = item.get("fieldRef") if isinstance(item, dict) else None
        if isinstance(ref, dict):
            _set(ref, "apiVersion", "v1")


def default_container(c: dict) -> None:
    """SetDefaults_Container plus the nested defaults of its fields."""
    _set(c, "imagePullPolicy", default_pull_policy(c.get("image", "")))
    _set(c, "terminationMessagePath", "/dev/termination-log")
    _set(c, "terminationMessagePolicy", "File")
    if c.get("resources") is None:
        c["resources"] = {}
    elif isinstance(c["resources"], dict):
        default_resource_list(c["resources"].get("limits"))
        default_resource_list(c["resources"].get("requests"))
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            _set(p, "protocol", "TCP")
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(c.get(key))
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            _default_http_get(lifecycle.get(hook))
    for env in c.get("env") or []:
        vf = env.get("valueFrom") if isinstance(env, dict) else None
        if isinstance(vf, dict) and isinstance(vf.get("fieldRef"), dict):
            _set(vf["fieldRef"], "apiVersion", "v1")


def default_volume(vol: dict) -> None:
    if not any(k in vol for k in VOLUME_SOURCES):
        vol["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        src = vol.get(key)
        if isinstance(src, dict) and src.get("defaultMode") is None:
            src["defaultMode"] = DEFAULT_MODE
    if isinstance(vol.get("downwardAPI"), dict):
        _default_field_refs(vol["downwardAPI"].get("items"))
    if isinstance(vol.get("projected"), dict):
        for src in vol["projected"].get("sources") or []:
            if isinstance(src.get("downwardAPI"), dict):
                _default_field_refs(src["downwardAPI"].get("items"))
            sat = src.get("serviceAccountToken")
            if isinstance(sat, dict) and sat.get("expirationSeconds") is None:
                sat["expirationSeconds"] = 3600
    if isinstance(vol.get("hostPath"), dict):
        vol["hostPath"].setdefault("type", "")
    if isinstance(vol.get("iscsi"), dict):
        _set(vol["iscsi"], "iscsiInterface", "default")
    if isinstance(vol.get("image"), dict):
        _set(vol["image"], "pullPolicy", default_pull_policy(vol["image"].get("reference", "")))
    claim = (vol.get("ephemeral") or {}).get("volumeClaimTemplate") if isinstance(
        vol.get("ephemeral"), dict) else None
    if isinstance(claim, dict) and isinstance(claim.get("spec"), dict):
        _set(claim["spec"], "volumeMode", "Filesystem")


def default_pod_spec(spec: dict) -> None:
    """SetDefaults_PodSpec and everything nested in a PodSpec (pods and templates)."""
    _set(spec, "dnsPolicy", "ClusterFirst")
    _set(spec, "restartPolicy", "Always")
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    _set(spec, "schedulerName", "default-scheduler")
    # v1 conversion: deprecated serviceAccount mirrors serviceAccountName (either may be sent)
    if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    if spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                default_container(c)
    for vol in spec.get("volumes") or []:
        if isinstance(vol, dict):
            default_volume(vol)
    default_resource_list(spec.get("overhead"))


def default_pod_template(tpl: dict) -> None:
    """A PodTemplateSpec: spec defaults only (metadata untouched)."""
    if not isinstance(tpl, dict):
        return
    if not isinstance(tpl.get("spec"), dict):
        tpl["spec"] = {}
    default_pod_spec(tpl["spec"])


def default_pod_only(spec: dict) -> None:
    """SetDefaults_Pod: defaults that only materialise on Pods, never in templates."""
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            res = c.get("resources") if isinstance(c, dict) else None
            if isinstance(res, dict) and res.get("limits"):
                reqs = res.setdefault("requests", {})
                for name, q in res["limits"].items():
                    reqs.setdefault(name, q)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork"):
        for key in ("containers", "initContainers"):
            for c in spec.get(key) or []:
                for p in c.get("ports") or []:
                    if not p.get("hostPort"):
                        p["hostPort"] = p.get("containerPort", 0)


# ----- quantities ----------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)  # pods repeat the same few quantities; parsing is not cheap
def _quantity_value(q: str | int | float) -> Fraction | None:
    try:
        return parse_quantity(q)
    except QuantityError:
        return None


def quantity_value(q: Any) -> Fraction | None:
    """The exact value of a resource.Quantity (None when malformed)."""
    if isinstance(q, (str, int, float)) and not isinstance(q, bool):
        return _quantity_value(q)
    return None


@functools.lru_cache(maxsize=4096)
def _milli_canonical(q: str | int | float) -> str | None:
    try:
        parsed = Quantity.parse(q)
    except QuantityError:
        return None
    return format_quantity(Fraction(math.ceil(parsed.value * 1000), 1000), parsed.format)


def default_resource_list(resources: Any) -> None:
    """SetDefaults_ResourceList: round every value up to milli precision and store the
    canonical string (what a v1.33 server returns: "0.5" -> "500m", "1024Mi" -> "1Gi")."""
    if not isinstance(resources, dict):
        return
    for name, q in list(resources.items()):
        if not isinstance(q, (str, int, float)) or isinstance(q, bool):
            continue  # left for validation to report
        canonical = _milli_canonical(q)
        if canonical is not None:  # a malformed one is left for validation to report
            resources[name] = canonical


# ----- validation ---------------------------------------------------------------------
def _invalid_all(path: str, value: Any, msgs: list[str]) -> list[FieldError]:
    return [errors.invalid_value(path, value, m) for m in msgs]


def _validate_ports(ports: Any, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    names: set[str] = set()
    for i, p in enumerate(ports or []):
        pp = f"{path}[{i}]"
        name = p.get("name", "")
        if name:
            msgs = v.is_valid_port_name(name)
            if msgs:
                out += _invalid_all(f"{pp}.name", name, msgs)
            elif name in names:
                out.append(errors.duplicate(f"{pp}.name", name))
            names.add(name)
        cport = p.get("containerPort") or 0
        if not cport:
            out.append(errors.required(f"{pp}.containerPort", ""))
        else:
            out += _invalid_all(f"{pp}.containerPort", cport, v.is_valid_port_num(cport))
        if p.get("hostPort"):
            out += _invalid_all(f"{pp}.hostPort", p["hostPort"], v.is_valid_port_num(p["hostPort"]))
        proto = p.get("protocol", "")
        if not proto:
            out.append(errors.required(f"{pp}.protocol", ""))
        elif proto not in PROTOCOLS:
            out.append(errors.not_supported(f"{pp}.protocol", proto, PROTOCOLS))
    return out


def _validate_env(env: Any, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    for i, e in enumerate(env or []):
        ep = f"{path}[{i}]"
        name = e.get("name", "")
        if not name:
            out.append(errors.required(f"{ep}.name", ""))
        else:
            out += _invalid_all(f"{ep}.name", name, v.is_env_var_name(name))
        vf = e.get("valueFrom")
        if vf is not None:
            if e.get("value"):
                out.append(errors.invalid_value(
                    f"{ep}.valueFrom", "",
                    "may not be specified when `value` is not empty"))
            kinds = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef",
                                 "secretKeyRef") if vf.get(k) is not None]
            if not kinds:
                out.append(errors.invalid_value(
                    f"{ep}.valueFrom", "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                    "`configMapKeyRef` or `secretKeyRef`"))
            elif len(kinds) > 1:
                out.append(errors.invalid_value(
                    f"{ep}.valueFrom", "", "may not have more than one field specified at a time"))
    return out


def _validate_resources(res: Any, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    if not isinstance(res, dict):
        return out
    limits = res.get("limits") or {}
    for kind in ("limits", "requests"):
        for name, q in (res.get(kind) or {}).items():
            val = quantity_value(q)
            qp = f"{path}.{kind}[{name}]"
            if val is None:
                out.append(errors.invalid_value(qp, q, ERR_FORMAT))
            elif val < 0:
                out.append(errors.invalid_value(qp, str(q), v.IS_NEGATIVE))
            elif kind == "requests" and name in limits:
                lim = quantity_value(limits[name])
                if lim is not None and val > lim:
                    out.append(errors.invalid_value(
                        qp, str(q), f"must be less than or equal to {name} limit of {limits[name]}"))
    return out


def _handler_kinds(h: dict, kinds: tuple[str, ...]) -> list[str]:
    return [k for k in kinds if h.get(k) is not None]


def _validate_probe(probe: Any, path: str, liveness_like: bool) -> list[FieldError]:
    if probe is None:
        return []
    out: list[FieldError] = []
    kinds = _handler_kinds(probe, ("exec", "httpGet", "tcpSocket", "grpc"))
    if not kinds:
        out.append(errors.required(path, "must specify a handler type"))
    for k in kinds[1:]:
        out.append(errors.forbidden(f"{path}.{k}", "may not specify more than 1 handler type"))
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                "failureThreshold"):
        val = probe.get(key)
        if isinstance(val, int) and val < 0:
            out.append(errors.invalid_value(f"{path}.{key}", val, v.IS_NEGATIVE))
    if liveness_like and probe.get("successThreshold", 1) != 1:
        out.append(errors.invalid_value(f"{path}.successThreshold", probe["successThreshold"],
                                        "must be 1"))
    http = probe.get("httpGet")
    if isinstance(http, dict):
        out += _validate_named_port(http.get("port"), f"{path}.httpGet.port")
        if http.get("scheme") not in (None, "HTTP", "HTTPS"):
            out.append(errors.not_supported(f"{path}.httpGet.scheme", http["scheme"],
                                            ["HTTP", "HTTPS"]))
    tcp = probe.get("tcpSocket")
    if isinstance(tcp, dict):
        out += _validate_named_port(tcp.get("port"), f"{path}.tcpSocket.port")
    grpc = probe.get("grpc")
    if isinstance(grpc, dict):
        out += _validate_named_port(grpc.get("port"), f"{path}.grpc.port")
    return out


def _validate_named_port(port: Any, path: str) -> list[FieldError]:
    """An IntOrString port: a valid number or an IANA_SVC_NAME."""
    if isinstance(port, int):
        return _invalid_all(path, port, v.is_valid_port_num(port))
    if isinstance(port, str) and port:
        return _invalid_all(path, port, v.is_valid_port_name(port))
    return [errors.required(path, "")]


def _validate_container(c: dict, path: str, volumes: set[str], names: set[str]
                        ) -> list[FieldError]:
    out: list[FieldError] = []
    name = c.get("name", "")
    if not name:
        out.append(errors.required(f"{path}.name", ""))
    else:
        out += _invalid_all(f"{path}.name", name, v.is_dns1123_label(name))
        if name in names:
            out.append(errors.duplicate(f"{path}.name", name))
        names.add(name)
    if not c.get("image"):
        out.append(errors.required(f"{path}.image", ""))
    tmp = c.get("terminationMessagePolicy", "")
    if not tmp:
        out.append(errors.required(f"{path}.terminationMessagePolicy", ""))
    elif tmp not in TERMINATION_MESSAGE_POLICIES:
        out.append(errors.not_supported(f"{path}.terminationMessagePolicy", tmp,
                                        TERMINATION_MESSAGE_POLICIES))
    out += _validate_ports(c.get("ports"), f"{path}.ports")
    out += _validate_env(c.get("env"), f"{path}.env")
    pull = c.get("imagePullPolicy", "")
    if not pull:
        out.append(errors.required(f"{path}.imagePullPolicy", ""))
    elif pull not in PULL_POLICIES:
        out.append(errors.not_supported(f"{path}.imagePullPolicy", pull, PULL_POLICIES))
    out += _validate_resources(c.get("resources"), f"{path}.resources")
    out += _validate_mounts(c.get("volumeMounts"), f"{path}.volumeMounts", volumes)
    return out


def _validate_mounts(mounts: Any, path: str, volumes: set[str]) -> list[FieldError]:
    out: list[FieldError] = []
    seen: set[str] = set()
    for i, m in enumerate(mounts or []):
        mp = f"{path}[{i}]"
        name = m.get("name", "")
        if not name:
            out.append(errors.required(f"{mp}.name", ""))
        elif name not in volumes:
            out.append(FieldError("FieldValueNotFound", f"{mp}.name", "", name))
        mount_path = m.get("mountPath", "")
        if not mount_path:
            out.append(errors.required(f"{mp}.mountPath", ""))
        elif mount_path in seen:
            out.append(errors.invalid_value(f"{mp}.mountPath", mount_path, "must be unique"))
        seen.add(mount_path)
    return out


def _validate_volumes(vols: Any, path: str) -> tuple[list[FieldError], set[str]]:
    out: list[FieldError] = []
    names: set[str] = set()
    for i, vol in enumerate(vols or []):
        vp = f"{path}[{i}]"
        name = vol.get("name", "")
        if not name:
            out.append(errors.required(f"{vp}.name", ""))
        else:
            out += _invalid_all(f"{vp}.name", name, v.is_dns1123_label(name))
            if name in names:
                out.append(errors.duplicate(f"{vp}.name", name))
            names.add(name)
        sources = [k for k in VOLUME_SOURCES if vol.get(k) is not None]
        if not sources:
            out.append(errors.required(vp, "must specify a volume type"))
        for k in sources[1:]:
            out.append(errors.forbidden(f"{vp}.{k}", "may not specify more than 1 volume type"))
        out += _validate_volume_source(vol, vp)
    return out, names


def _validate_volume_source(vol: dict, vp: str) -> list[FieldError]:
    out: list[FieldError] = []
    if isinstance(vol.get("hostPath"), dict) and not vol["hostPath"].get("path"):
        out.append(errors.required(f"{vp}.hostPath.path", ""))
    if isinstance(vol.get("configMap"), dict) and not vol["configMap"].get("name"):
        out.append(errors.required(f"{vp}.configMap.name", ""))
    if isinstance(vol.get("secret"), dict) and not vol["secret"].get("secretName"):
        out.append(errors.required(f"{vp}.secret.secretName", ""))
    pvc = vol.get("persistentVolumeClaim")
    if isinstance(pvc, dict) and not pvc.get("claimName"):
        out.append(errors.required(f"{vp}.persistentVolumeClaim.claimName", ""))
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        mode = (vol.get(key) or {}).get("defaultMode") if isinstance(vol.get(key), dict) else None
        if isinstance(mode, int) and not 0 <= mode <= 0o777:
            out.append(errors.invalid_value(
                f"{vp}.{key}.defaultMode", mode,
                "must be a number between 0 and 0777 (octal), both inclusive"))
    return out


def _validate_tolerations(tols: Any, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    for i, t in enumerate(tols or []):
        tp = f"{path}[{i}]"
        key, op = t.get("key", ""), t.get("operator", "")
        if key:
            out += _invalid_all(f"{tp}.key", key, v.is_qualified_name(key))
        elif op != "Exists":
            out.append(errors.invalid_value(
                f"{tp}.operator", op,
                'operator must be Exists when `key` is empty, which means "match all values '
                'and all keys"'))
        if t.get("tolerationSeconds") is not None and t.get("effect") != "NoExecute":
            out.append(errors.invalid_value(
                f"{tp}.effect", t.get("effect", ""),
                "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if op in ("", "Equal"):
            out += _invalid_all(f"{tp}.value", t.get("value", ""),
                                v.is_valid_label_value(t.get("value", "")))
        elif op == "Exists":
            if t.get("value"):
                out.append(errors.invalid_value(
                    f"{tp}.operator", t["value"], "value must be empty when `operator` is 'Exists'"))
        else:
            out.append(errors.not_supported(f"{tp}.operator", op, TOLERATION_OPERATORS))
        effect = t.get("effect", "")
        if effect and effect not in TAINT_EFFECTS:
            out.append(errors.not_supported(f"{tp}.effect", effect, TAINT_EFFECTS))
    return out


def validate_pod_spec(spec: dict, path: str) -> list[FieldError]:
    """The important parts of upstream ValidatePodSpec; `path` is e.g. "spec"."""
    if not isinstance(spec, dict):
        return [errors.required(path, "")]
    out, volumes = _validate_volumes(spec.get("volumes"), f"{path}.volumes")
    names: set[str] = set()
    containers = spec.get("containers") or []
    if not containers:
        out.append(errors.required(f"{path}.containers", ""))
    for i, c in enumerate(containers):
        cp = f"{path}.containers[{i}]"
        out += _validate_container(c, cp, volumes, names)
        out += _validate_probe(c.get("livenessProbe"), f"{cp}.livenessProbe", True)
        out += _validate_probe(c.get("startupProbe"), f"{cp}.startupProbe", True)
        out += _validate_probe(c.get("readinessProbe"), f"{cp}.readinessProbe", False)
    for i, c in enumerate(spec.get("initContainers") or []):
        cp = f"{path}.initContainers[{i}]"
        out += _validate_container(c, cp, volumes, names)
        if c.get("restartPolicy") not in (None, "Always"):
            out.append(errors.not_supported(f"{cp}.restartPolicy", c["restartPolicy"], ["Always"]))
        elif c.get("restartPolicy") is None:  # sidecars (restartPolicy Always) may have these
            for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if c.get(key) is not None:
                    out.append(errors.forbidden(f"{cp}.{key}", "may not be set for init containers "
                                                "without restartPolicy=Always"))
    for i, c in enumerate(spec.get("ephemeralContainers") or []):
        out += _validate_container(c, f"{path}.ephemeralContainers[{i}]", volumes, names)
    out += _validate_spec_scalars(spec, path)
    out += _validate_tolerations(spec.get("tolerations"), f"{path}.tolerations")
    out += v.validate_labels(spec.get("nodeSelector") or {}, f"{path}.nodeSelector")
    return out


def _validate_spec_scalars(spec: dict, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    policy = spec.get("restartPolicy", "")
    if not policy:
        out.append(errors.required(f"{path}.restartPolicy", ""))
    elif policy not in RESTART_POLICIES:
        out.append(errors.not_supported(f"{path}.restartPolicy", policy, RESTART_POLICIES))
    dns = spec.get("dnsPolicy", "")
    if not dns:
        out.append(errors.required(f"{path}.dnsPolicy", ""))
    elif dns not in DNS_POLICIES:
        out.append(errors.not_supported(f"{path}.dnsPolicy", dns, DNS_POLICIES))
    if dns == "None":
        if spec.get("dnsConfig") is None:
            out.append(errors.required(f"{path}.dnsConfig",
                                       "must provide `dnsConfig` when `dnsPolicy` is None"))
        elif not spec["dnsConfig"].get("nameservers"):
            out.append(errors.required(f"{path}.dnsConfig.nameservers",
                                       "must provide at least one DNS nameserver when `dnsPolicy` "
                                       "is None"))
    ads = spec.get("activeDeadlineSeconds")
    if ads is not None and (not isinstance(ads, int) or ads <= 0):
        out.append(errors.invalid_value(f"{path}.activeDeadlineSeconds", ads,
                                        "must be between 1 and 2147483647, inclusive"))
    for key, fn in (("serviceAccountName", v.is_dns1123_subdomain),
                    ("hostname", v.is_dns1123_label), ("subdomain", v.is_dns1123_label),
                    ("nodeName", v.is_dns1123_subdomain)):
        if spec.get(key):
            out += _invalid_all(f"{path}.{key}", spec[key], fn(spec[key]))
    if spec.get("hostNetwork"):
        for i, c in enumerate(spec.get("containers") or []):
            for j, p in enumerate(c.get("ports") or []):
                if p.get("hostPort") and p.get("hostPort") != p.get("containerPort"):
                    out.append(errors.invalid_value(
                        f"{path}.containers[{i}].ports[{j}].containerPort", p.get("containerPort"),
                        "must match `hostPort` when `hostNetwork` is true"))
    return out


def validate_pod_template(tpl: dict, path: str) -> list[FieldError]:
    """A PodTemplateSpec: labels + pod spec (upstream ValidatePodTemplateSpec)."""
    if not isinstance(tpl, dict):
        return [errors.required(path, "")]
    meta = tpl.get("metadata") or {}
    out = list(v.validate_labels(meta.get("labels") or {}, f"{path}.labels"))
    out += v.validate_annotations(meta.get("annotations") or {}, f"{path}.annotations")
    out += validate_pod_spec(tpl.get("spec") or {}, f"{path}.spec")
    if (tpl.get("spec") or {}).get("ephemeralContainers"):
        out.append(errors.forbidden(f"{path}.spec.ephemeralContainers",
                                    "ephemeral containers not allowed in pod template"))
    return out


# apps/batch look this name up (validate_pod_template_spec(template, path))
validate_pod_template_spec = validate_pod_template


# ----- QoS ------------------------------------------------------------------------------
def pod_qos_class(spec: dict) -> str:
    """Guaranteed / Burstable / BestEffort from cpu+memory requests and limits (qos.GetPodQOS)."""
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    for c in containers:
        res = dict(c.get("resources") or {})
        # a pod's missing requests default to its limits (SetDefaults_Pod) before QoS is set
        res["requests"] = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        for kind, acc in (("requests", requests), ("limits", limits)):
            for name in ("cpu", "memory"):
                q = quantity_value((res.get(kind) or {}).get(name, 0)) or Fraction(0)
                if q > 0:
                    acc[name] = acc.get(name, Fraction(0)) + q
        lims = res.get("limits") or {}
        if not all((quantity_value(lims.get(n, 0)) or 0) > 0 for n in ("cpu", "memory")):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"
