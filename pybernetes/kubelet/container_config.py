"""Pod spec + container + image config → the runtime's ContainerConfig, as upstream's
kubelet and containerd together decide it:

- argv: `command` replaces the image ENTRYPOINT and drops its CMD; `args` replace CMD
  (both `$(VAR)`-expanded against the container's environment);
- env: PATH default, HOSTNAME, the image's ENV, then the kubelet's (a later name wins
  in place);
- user: securityContext runAsUser/runAsGroup (container over pod), else the image's
  USER (numeric, or a name resolved through the image's /etc/passwd and /etc/group);
- resources: cpu shares from requests, CFS quota from limits, memory limit, OOM score;
- security: capabilities, privileged, readOnlyRootFilesystem, no_new_privs,
  fsGroup + supplementalGroups;
- mounts: volumes, the /etc/hosts file and the terminationMessagePath file.

Problems a user must fix raise `ConfigError` (CreateContainerConfigError)."""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from typing import Callable

from pybernetes.api.podspec import pod_qos_class
from pybernetes.kubelet.backoff import pod_ref
from pybernetes.kubelet.env import ConfigError, expand, mapping
from pybernetes.kubelet.runtime.base import (ContainerConfig, ContainerRuntimeError, Mount,
                                             Resources, Security)
from pybernetes.machinery.quantity import QuantityError, parse_quantity

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MIN_SHARES, MAX_SHARES, SHARES_PER_CPU = 2, 262_144, 1024
QUOTA_PERIOD, MIN_QUOTA = 100_000, 1_000
GUARANTEED_OOM, BESTEFFORT_OOM = -997, 1000
PROPAGATION = {None: "private", "None": "private", "HostToContainer": "rslave",
               "Bidirectional": "rshared"}

# CRI labels/annotations the kubelet puts on containers (it finds them again by these)
LABEL_NAME, LABEL_POD, LABEL_NS, LABEL_UID = ("io.kubernetes.container.name",
                                              "io.kubernetes.pod.name",
                                              "io.kubernetes.pod.namespace",
                                              "io.kubernetes.pod.uid")
ANN_HASH = "io.kubernetes.container.hash"
ANN_RESTARTS = "io.kubernetes.container.restartCount"
ANN_TERM_PATH = "io.kubernetes.container.terminationMessagePath"
ANN_TERM_POLICY = "io.kubernetes.container.terminationMessagePolicy"
ANN_GRACE = "io.kubernetes.pod.terminationGracePeriod"
ANN_PRESTOP = "io.kubernetes.container.preStopHandler"
ANN_PORTS = "io.kubernetes.container.ports"


@dataclass
class VolumePath:
    """Where a pod volume is on the host (from the volume manager)."""

    host_path: str
    readonly: bool = False      # the volume itself is read-only (e.g. a read-only PVC)


# ----- quantities -------------------------------------------------------------------
def _value(q: object) -> float:
    if q is None or q == "":
        return 0
    try:
        return float(parse_quantity(q))
    except QuantityError:
        return 0


def milli(q: object) -> int:
    return math.ceil(_value(q) * 1000)


def cpu_shares(milli_cpu: int) -> int:
    if milli_cpu == 0:
        return MIN_SHARES
    return max(MIN_SHARES, min(MAX_SHARES, milli_cpu * SHARES_PER_CPU // 1000))


def cpu_quota(milli_cpu: int, period: int = QUOTA_PERIOD) -> int:
    if milli_cpu == 0:
        return 0
    return max(MIN_QUOTA, milli_cpu * period // 1000)


def oom_score_adj(pod: dict, container: dict, node_memory: int) -> int:
    """upstream's GetContainerOOMScoreAdjust by QoS class."""
    qos = pod_qos_class(pod.get("spec") or {})
    if qos == "Guaranteed":
        return GUARANTEED_OOM
    if qos == "BestEffort":
        return BESTEFFORT_OOM
    res = container.get("resources") or {}
    request = _value((res.get("requests") or {}).get("memory")
                     or (res.get("limits") or {}).get("memory"))
    if node_memory <= 0:
        return BESTEFFORT_OOM - 1
    adj = int(1000 - (1000 * request) // node_memory)
    return min(max(adj, 1000 + GUARANTEED_OOM), BESTEFFORT_OOM - 1)


def container_resources(pod: dict, container: dict, node_memory: int = 0) -> Resources:
    res = container.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    cpu_req, cpu_lim = milli(req.get("cpu")), milli(lim.get("cpu"))
    return Resources(cpu_shares=cpu_shares(cpu_req or cpu_lim), cpu_quota=cpu_quota(cpu_lim),
                     cpu_period=QUOTA_PERIOD, memory_limit=int(_value(lim.get("memory"))),
                     oom_score_adj=oom_score_adj(pod, container, node_memory))


def cgroup_parent(pod: dict) -> str:
    """The pod's cgroup under the QoS hierarchy (cgroupfs driver names)."""
    uid = (pod.get("metadata") or {}).get("uid", "")
    qos = pod_qos_class(pod.get("spec") or {})
    if qos == "Guaranteed":
        return f"kubepods/pod{uid}"
    return f"kubepods/{qos.lower()}/pod{uid}"


def pod_resources(pod: dict) -> Resources:
    """The pod cgroup's limits (upstream's ResourceConfigForPod): cpu shares from the pod's
    requests; a CPU quota and a memory limit only when every container has that limit;
    init containers count with the largest of them against the sum of the others (they
    run one at a time, before); the RuntimeClass overhead (spec.overhead) on top."""
    spec = pod.get("spec") or {}
    if pod_qos_class(spec) == "BestEffort":
        return Resources(cpu_shares=MIN_SHARES, cpu_period=QUOTA_PERIOD)
    overhead = spec.get("overhead") or {}
    cpu_req = _pod_total(spec, "requests", "cpu", milli)
    cpu_lim = _pod_total(spec, "limits", "cpu", milli)
    mem_lim = _pod_total(spec, "limits", "memory", lambda q: int(_value(q)))
    cpu_over, mem_over = milli(overhead.get("cpu")), int(_value(overhead.get("memory")))
    return Resources(cpu_shares=cpu_shares(cpu_req + cpu_over),
                     cpu_quota=cpu_quota(cpu_lim + cpu_over) if cpu_lim else 0,
                     cpu_period=QUOTA_PERIOD,
                     memory_limit=mem_lim + mem_over if mem_lim else 0)


def _pod_total(spec: dict, kind: str, name: str, amount: Callable[[object], int]) -> int:
    """max(sum over containers, largest init container); 0 for a limit some container
    lacks (then the pod has no such limit)."""
    def of(c: dict) -> int | None:
        v = ((c.get("resources") or {}).get(kind) or {}).get(name)
        if v is None and kind == "requests":   # a request defaults to the limit
            v = ((c.get("resources") or {}).get("limits") or {}).get(name)
        return None if v is None else amount(v)
    apps = [of(c) for c in spec.get("containers") or []]
    inits = [of(c) for c in spec.get("initContainers") or []]
    if kind == "limits" and None in apps + inits:
        return 0
    return max(sum(a or 0 for a in apps), max((i or 0 for i in inits), default=0))


# ----- argv ----------------------------------------------------------------------------
def container_argv(container: dict, image_config: dict, env: dict[str, str]) -> list[str]:
    get = mapping(env)
    command = [expand(str(a), get) for a in container.get("command") or []]
    args = [expand(str(a), get) for a in container.get("args") or []]
    entrypoint = list(image_config.get("Entrypoint") or [])
    cmd = list(image_config.get("Cmd") or [])
    if command:
        argv = command + args
    else:
        argv = entrypoint + (args if args else cmd)
    if not argv:
        raise ContainerRuntimeError("no command specified", reason="CreateContainerError")
    return argv


def merge_env(*layers: list[tuple[str, str]] | list[str]) -> list[tuple[str, str]]:
    """Later layers replace earlier values in place; new names are appended."""
    out: dict[str, str] = {}
    for layer in layers:
        for item in layer:
            k, v = item.split("=", 1) if isinstance(item, str) else item
            out[k] = v
    return list(out.items())


# ----- user and security ----------------------------------------------------------------
FileReader = Callable[[str], "bytes | None"]   # reads a file of the image's rootfs


def _passwd(reader: FileReader | None, path: str) -> list[list[str]]:
    data = reader(path) if reader else None
    if not data:
        return []
    return [line.split(":") for line in data.decode("utf-8", "replace").splitlines()
            if line and not line.startswith("#")]


def _resolve_user(spec: str, reader: FileReader | None) -> tuple[int, int | None]:
    """An image USER ("1000", "1000:50", "nginx", "nginx:www") → (uid, gid or None)."""
    user, _, group = spec.partition(":")
    if user.isdigit():
        uid = int(user)
        entry = next((e for e in _passwd(reader, "/etc/passwd")
                      if len(e) > 3 and e[2] == user), None)
        gid = int(entry[3]) if entry and entry[3].isdigit() else None
    else:
        entry = next((e for e in _passwd(reader, "/etc/passwd") if e[0] == user and len(e) > 3),
                     None)
        if entry is None:
            raise ConfigError(f"unable to find user {user}: no matching entries in passwd file")
        uid, gid = int(entry[2]), int(entry[3])
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            entry = next((e for e in _passwd(reader, "/etc/group") if e[0] == group
                          and len(e) > 2), None)
            if entry is None:
                raise ConfigError(f"unable to find group {group}: no matching entries in "
                                  "group file")
            gid = int(entry[2])
    return uid, gid


def _merged_security(pod: dict, container: dict) -> dict:
    """Pod-level fields that a container-level securityContext may override."""
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    csc = container.get("securityContext") or {}
    keys = ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile")
    return {**{k: psc[k] for k in keys if psc.get(k) is not None},
            **{k: v for k, v in csc.items() if v is not None}}


def _caps(names: list[str] | None) -> list[str]:
    return [n.upper().removeprefix("CAP_") for n in names or []]


def container_security(pod: dict, container: dict, image_config: dict,
                       read_image_file: FileReader | None = None) -> Security:
    sc = _merged_security(pod, container)
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    image_user = str(image_config.get("User") or "")
    uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
    name = container.get("name", "")
    if sc.get("runAsNonRoot"):
        _verify_non_root(pod, name, uid, image_user)
    if uid is None:
        if image_user:
            uid, image_gid = _resolve_user(image_user, read_image_file)
            gid = gid if gid is not None else image_gid
        else:
            uid = 0
    groups = ([psc["fsGroup"]] if psc.get("fsGroup") is not None else []) + \
        list(psc.get("supplementalGroups") or [])
    caps = sc.get("capabilities") or {}
    ape = sc.get("allowPrivilegeEscalation")
    privileged = bool(sc.get("privileged"))
    seccomp = sc.get("seccompProfile") or {}   # the container's, else the pod's
    return Security(run_as_user=int(uid), run_as_group=int(gid) if gid is not None else None,
                    supplemental_groups=[int(g) for g in groups],
                    readonly_rootfs=bool(sc.get("readOnlyRootFilesystem")),
                    privileged=privileged, capabilities_add=_caps(caps.get("add")),
                    capabilities_drop=_caps(caps.get("drop")),
                    no_new_privs=ape is False and not privileged,
                    masked_paths=[] if privileged or sc.get("procMount") == "Unmasked" else None,
                    readonly_paths=[] if privileged or sc.get("procMount") == "Unmasked"
                    else None,
                    seccomp_profile_type=str(seccomp.get("type") or ""),
                    seccomp_localhost_profile=str(seccomp.get("localhostProfile") or ""))


def _verify_non_root(pod: dict, name: str, uid: int | None, image_user: str) -> None:
    """upstream's verifyRunAsNonRoot, with its messages."""
    ref = pod_ref(pod)
    if uid is not None:
        if int(uid) == 0:
            raise ConfigError(f'container\'s runAsUser breaks non-root policy (pod: "{ref}", '
                              f"container: {name})")
        return
    user = image_user.partition(":")[0]
    if user and not user.isdigit():
        raise ConfigError(f"container has runAsNonRoot and image has non-numeric user ({user}), "
                          f'cannot verify user is non-root (pod: "{ref}", container: {name})')
    if not user or int(user) == 0:
        raise ConfigError(f'container has runAsNonRoot and image will run as root (pod: "{ref}", '
                          f"container: {name})")


# ----- mounts -----------------------------------------------------------------------------
def _sub_path(mount: dict, env: dict[str, str]) -> str:
    sub = mount.get("subPath") or ""
    if mount.get("subPathExpr"):
        sub = expand(mount["subPathExpr"], mapping(env))
    if sub.startswith("/") or ".." in sub.split("/"):
        raise ConfigError(f"subPath {sub!r} must be a relative path that does not contain "
                          "'..'")
    return sub


def volume_mounts(container: dict, volumes: dict[str, VolumePath],
                  env: dict[str, str]) -> list[Mount]:
    out = []
    for m in container.get("volumeMounts") or []:
        vol = volumes.get(m.get("name", ""))
        if vol is None:
            raise ConfigError(f"cannot find volume \"{m.get('name')}\" to mount into container "
                              f"\"{container.get('name')}\"")
        host = vol.host_path
        sub = _sub_path(m, env)
        if sub:
            host = os.path.join(host, sub)
            if not os.path.lexists(host):
                os.makedirs(host, mode=0o755, exist_ok=True)   # upstream creates it as a dir
        out.append(Mount(host_path=host, container_path=m.get("mountPath", ""),
                         readonly=bool(m.get("readOnly")) or vol.readonly,
                         propagation=PROPAGATION.get(m.get("mountPropagation"), "private")))
    return out


def termination_log(pod_dir: str, container: dict, attempt: int) -> Mount | None:
    """An empty file per container instance, mounted at terminationMessagePath."""
    target = container.get("terminationMessagePath", "/dev/termination-log")
    if not target:
        return None
    d = os.path.join(pod_dir, "containers", container.get("name", ""))
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"termination-log-{attempt}")
    with open(path, "a"):
        pass
    os.chmod(path, 0o666)   # any container user may write its last words
    return Mount(host_path=path, container_path=target)


def read_termination_message(path: str, limit: int = 4096) -> str:
    """What the container wrote there (upstream keeps at most 4096 bytes, the tail)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# ----- the whole thing ----------------------------------------------------------------------
def container_hash(container: dict) -> str:
    """A short digest of the container spec: a changed spec means a new container."""
    raw = json.dumps(container, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:8]


def _labels(pod: dict, container: dict, attempt: int) -> tuple[dict, dict]:
    md, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    labels = {LABEL_NAME: container.get("name", ""), LABEL_POD: md.get("name", ""),
              LABEL_NS: md.get("namespace", ""), LABEL_UID: md.get("uid", "")}
    ann = {ANN_HASH: container_hash(container), ANN_RESTARTS: str(attempt),
           ANN_TERM_PATH: container.get("terminationMessagePath", "/dev/termination-log"),
           ANN_TERM_POLICY: container.get("terminationMessagePolicy", "File"),
           ANN_GRACE: str(spec.get("terminationGracePeriodSeconds", 30))}
    pre_stop = (container.get("lifecycle") or {}).get("preStop")
    if pre_stop:
        ann[ANN_PRESTOP] = json.dumps(pre_stop, sort_keys=True)
    if container.get("ports"):
        ann[ANN_PORTS] = json.dumps(container["ports"], sort_keys=True)
    return labels, ann


def build_container_config(pod: dict, container: dict, image_config: dict, *,
                           image_ref: str, attempt: int = 0,
                           env: list[tuple[str, str]] | None = None,
                           volumes: dict[str, VolumePath] | None = None,
                           pod_dir: str = "", etc_hosts: str = "", hostname: str = "",
                           node_memory: int = 0,
                           read_image_file: FileReader | None = None) -> ContainerConfig:
    """`image_config` is the OCI image config's "config" object (Entrypoint, Cmd, Env, User,
    WorkingDir); `env` comes from env.container_env; `volumes` from the volume manager;
    `etc_hosts` is the pod's hosts file on the host ("" = none, e.g. hostNetwork);
    `pod_dir` is where the termination-log files go ("" = none)."""
    kube_env = list(env or [])
    env_map = dict(kube_env)
    argv = container_argv(container, image_config, env_map)
    final_env = merge_env([DEFAULT_PATH], [("HOSTNAME", hostname)] if hostname else [],
                          list(image_config.get("Env") or []), kube_env)
    mounts = volume_mounts(container, volumes or {}, env_map)
    taken = {m.container_path for m in mounts}
    if etc_hosts and "/etc/hosts" not in taken:
        mounts.append(Mount(host_path=etc_hosts, container_path="/etc/hosts"))
    if pod_dir:
        term = termination_log(pod_dir, container, attempt)
        if term is not None and term.container_path not in taken:
            mounts.append(term)
    labels, annotations = _labels(pod, container, attempt)
    name = container.get("name", "")
    return ContainerConfig(
        name=name, attempt=attempt, image=container.get("image", ""), image_ref=image_ref,
        command=argv, env=final_env,
        working_dir=container.get("workingDir") or image_config.get("WorkingDir") or "",
        mounts=mounts, resources=container_resources(pod, container, node_memory),
        security=container_security(pod, container, image_config, read_image_file),
        tty=bool(container.get("tty")), stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")), log_path=f"{name}/{attempt}.log",
        labels=labels, annotations=annotations)
