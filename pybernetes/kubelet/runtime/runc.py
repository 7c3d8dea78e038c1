"""The runc runtime: pods as isolated OCI containers driven through runc.

A sandbox is a set of persistent namespaces bind-mounted on files (network at
`<root>/netns/<id>`, UTS with the pod's hostname and IPC under the sandbox dir), a
64Mi tmpfs for /dev/shm and the pod's /etc/hosts, /etc/resolv.conf and /etc/hostname.
Its containers join those namespaces and get their own pid and mount namespaces,
an overlayfs root over the image layers, and a cgroup
`/pybernetes/<cgroup_parent>/<container id>` (runc's cgroupfs driver, v1 or v2).

runc keeps its own state under `<root>/runc/state` (its `--root`), so our containers
never mix with anyone else's; everything else lives in files described in
monitored.py. A sandbox may ask for another OCI runtime by its handler (a RuntimeClass'):
"crun" runs its containers with crun (C; less CPU per container than runc) when it
is installed, with its state under `<root>/runc/state-crun` (the state formats differ).
Every OCI-runtime call for a container (conmon's `-r`, start, kill, delete, exec) uses
the binary and state root of the handler recorded with it; records from before
handlers existed have none, which means runc.

Each started container has Debian's `conmon` (CRI-O's monitor, a ~2 MiB C process) as
its parent, so the kubelet may restart at any time:

- `conmon -c <id> -b <bundle> -r runc ...` runs `runc create` with the container's
  stdio on its own pipes (or a terminal with `-t`), and reports the pid (or runc's
  error) as one JSON line on the sync pipe `_OCI_SYNCPIPE`; `runc start` follows.
- it writes stdout/stderr to the CRI log file (`-l k8s-file:<path>`; timestamps
  with a zone offset, long lines in P pieces of its read size) and reopens it on
  "2 0 0" written to the bundle's `ctl` fifo ("1 <rows> <cols>" resizes the TTY);
- the exit code goes to `<root>/runc/exits/<id>` (its mtime: the finish time) and an
  OOM event to `<container dir>/oom`; the runtime turns them into exit.json;
- `<bundle>/attach` is its attach socket (SOCK_SEQPACKET): kubectl attach.
"""
from __future__ import annotations

import asyncio
import ctypes
import errno
import functools
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

from pybernetes.kubelet.runtime import pod_cgroup, seccomp
from pybernetes.kubelet.runtime.base import (
    ContainerConfig, ContainerRuntimeError, ExecResult, SandboxConfig, handler_not_supported,
)
from pybernetes.kubelet.runtime.monitor import proc_start_time
from pybernetes.kubelet.runtime.monitored import (
    MONITOR_START_TIMEOUT, MonitoredRuntime, pid_alive, run_with_timeout,
    sandbox_config_from, write_json,
)

CGROUP_ROOT = "pybernetes"
DEFAULT_HANDLER = "runc"          # what a sandbox without a runtime handler runs with
OCI_RUNTIMES = ("runc", "crun")   # handlers this runtime knows, each an OCI runtime binary
RUNC_INIT_COMM = "runc:[2:INIT]"   # a created container's process, before `runc start`
SHM_SIZE = 64 * 1024 * 1024
OVERLAY_OPTS_MAX = 4000      # mount(2) data is one page

# containerd's default capability set for containers.
DEFAULT_CAPS = ["CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
                "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
                "AUDIT_WRITE"]
ALL_CAPS = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
            "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
            "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
            "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
            "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
            "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
            "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"]
# containerd's defaults for unprivileged containers.
DEFAULT_MASKED = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                  "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                  "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                  "/sys/devices/virtual/powercap"]
DEFAULT_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MANAGED_FILES = ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/dev/shm")

MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND = 2, 4, 8, 4096
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)

# What the sandbox helper runs inside the new namespaces before they are pinned
# (a shell, not a Python interpreter: a sandbox is made per pod, at burst rates).
_NS_INIT = ('if [ -n "$1" ]; then hostname "$1" || exit 1; fi; '
            'if [ "$2" = 1 ]; then ip link set lo up || exit 1; fi')


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags,
                   data.encode() if data else None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount {fstype} on {target}: {os.strerror(e)}")


def umount(target: str) -> None:
    """Unmount (lazily if busy); a path that is not a mount point is fine."""
    if _libc.umount2(target.encode(), 0) == 0:
        return
    e = ctypes.get_errno()
    if e == errno.EBUSY and _libc.umount2(target.encode(), MNT_DETACH) == 0:
        return
    if e not in (errno.EINVAL, errno.ENOENT):
        raise OSError(e, f"umount {target}: {os.strerror(e)}")


def is_mounted(path: str) -> bool:
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


@functools.cache
def cgroup_mounts() -> dict[str, str]:
    """Controller (or "" for the unified v2 hierarchy) → mount point. Read once: the
    hierarchies do not move while the kubelet runs, and mountinfo (a line per mount, a
    few more per pod) cost ~40 ms a read, several times per pod. Callers do not modify it."""
    out: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, opts = right.split()[:3]
            mnt = left.split()[4]
            if fstype == "cgroup2":
                out.setdefault("", mnt)
            elif fstype == "cgroup":
                for opt in opts.split(","):
                    if opt not in ("rw", "ro", "relatime", "nosuid", "nodev", "noexec"):
                        out.setdefault(opt, mnt)
    return out


def cgroup_v2_only() -> bool:
    """cgroup v2 unified mode: cgroup2 itself is mounted at /sys/fs/cgroup (what runc
    checks; a hybrid host has it at /sys/fs/cgroup/unified, beside the v1 controllers)."""
    return cgroup_mounts().get("") == "/sys/fs/cgroup"


def cgroup_dirs(path: str) -> list[str]:
    """Every hierarchy's directory for a cgroup path (v1 controllers and v2)."""
    return sorted({os.path.join(m, path.lstrip("/")) for m in cgroup_mounts().values()})


def crun_needs_v1_view() -> bool:
    """crun 1.x refuses to create a container on a hybrid host (v1 controllers, cgroup2
    at /sys/fs/cgroup/unified) whose cgroup2 hierarchy has any controller (here the
    hugetlb one, which no v1 hierarchy took). Such a host's limits are all v1 (runc's
    are too), so crun's `create` runs where that cgroup2 mount is not: see
    _crun_v1_wrapper. Its other commands do not look."""
    unified = cgroup_mounts().get("")
    if unified != "/sys/fs/cgroup/unified":
        return False   # cgroup v1 only, or v2 unified: crun runs as it is
    try:
        with open(os.path.join(unified, "cgroup.controllers")) as f:
            return bool(f.read().split())
    except OSError:
        return False


# `crun create` in a mount namespace of its own (private: nothing propagates back)
# without the cgroup2 mount, so crun sees a cgroup v1 host; exec keeps the pid conmon
# waits for. The container's own mount namespace is made from this one and drops it
# all at pivot_root, as always.
_CRUN_V1_WRAPPER = """#!/bin/sh
exec unshare --mount --propagation private -- /bin/sh -c \
    'umount -l /sys/fs/cgroup/unified && exec "$0" "$@"' {crun} "$@"
"""


def _cap_name(name: str) -> str:
    name = name.upper()
    return name.removeprefix("CAP_")


def current_caps() -> list[str]:
    """The capabilities we may hand out: our own bounding set (as containerd's "all"
    for privileged containers; a kubelet inside a container may lack some)."""
    mask = (1 << len(ALL_CAPS)) - 1
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
    return [c for i, c in enumerate(ALL_CAPS) if mask >> i & 1]


def capabilities(sec) -> list[str]:
    """containerd's rules: ALL in add/drop first, then the individual adds and drops."""
    if sec.privileged:
        return ["CAP_" + c for c in current_caps()]
    add = [_cap_name(c) for c in sec.capabilities_add]
    drop = [_cap_name(c) for c in sec.capabilities_drop]
    for c in add + drop:
        if c != "ALL" and c not in ALL_CAPS:
            raise ContainerRuntimeError(f"unknown capability {c!r}",
                                        reason="CreateContainerError")
    caps = list(DEFAULT_CAPS)
    if "ALL" in add:
        caps = current_caps()
    if "ALL" in drop:
        caps = []
    caps += [c for c in add if c != "ALL" and c not in caps]
    return ["CAP_" + c for c in caps if c not in drop]


def host_devices() -> list[dict]:
    """The host's device nodes, for privileged containers."""
    out = []
    for dirpath, dirnames, filenames in os.walk("/dev"):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d)
                       not in ("/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/fd")]
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if path == "/dev/console" or not (stat.S_ISCHR(st.st_mode)
                                              or stat.S_ISBLK(st.st_mode)):
                continue
            out.append({"path": path, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                        "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                        "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                        "gid": st.st_gid})
    return out


def lookup_user(rootfs: str, uid: int) -> tuple[int, list[int]]:
    """(primary gid, supplementary gids) of a uid per the image's /etc/passwd and
    /etc/group, as containerd does; (0, []) when the image does not know it."""
    gid, name = 0, None
    for fields in _colon_file(os.path.join(rootfs, "etc/passwd")):
        if len(fields) > 3 and fields[2] == str(uid):
            name, gid = fields[0], int(fields[3]) if fields[3].isdigit() else 0
            break
    groups = []
    if name:
        for fields in _colon_file(os.path.join(rootfs, "etc/group")):
            if len(fields) > 3 and fields[2].isdigit() and name in fields[3].split(","):
                groups.append(int(fields[2]))
    return gid, groups


def _colon_file(path: str) -> list[list[str]]:
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if not line.startswith("#")]
    except OSError:
        return []


def hosts_file(cfg: SandboxConfig, ip: str) -> str:
    """/etc/hosts as the kubelet writes it for a pod (hostNetwork: the node's file)."""
    if cfg.host_network:
        try:
            base = Path("/etc/hosts").read_text()
        except OSError:
            base = ""
        lines = ["# Kubernetes-managed hosts file (host network).", base.rstrip("\n")]
    else:
        lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost",
                 "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::0\tip6-localnet",
                 "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes",
                 "fe00::2\tip6-allrouters"]
        if ip:
            short = cfg.hostname.split(".")[0]
            names = [cfg.hostname, short] if short != cfg.hostname else [cfg.hostname]
            lines.append(ip + "\t" + "\t".join(names))
    if cfg.extra_hosts:
        lines += ["", "# Entries added by HostAliases."]
        lines += [ip_ + "\t" + "\t".join(names) for ip_, names in cfg.extra_hosts]
    return "\n".join(lines) + "\n"


def resolv_conf(cfg: SandboxConfig) -> str:
    dns = cfg.dns
    if not (dns.servers or dns.searches or dns.options):
        try:
            return Path("/etc/resolv.conf").read_text()
        except OSError:
            return ""
    lines = []
    if dns.searches:
        lines.append("search " + " ".join(dns.searches))
    lines += ["nameserver " + s for s in dns.servers]
    if dns.options:
        lines.append("options " + " ".join(dns.options))
    return "\n".join(lines) + "\n"


class RuncRuntime(MonitoredRuntime):
    name = "runc"

    def __init__(self, root: str, network=None, runc: str | None = None,
                 conmon: str | None = None):
        """`network` (optional) sets up and tears down the pod network inside the
        sandbox's netns: `setup(netns_path, cfg) -> list[str]` (IPs), `teardown(...)`;
        either may be a coroutine function. Without it a pod only has loopback."""
        super().__init__(root)
        self.runc = runc or shutil.which("runc") or "/usr/sbin/runc"
        self.conmon = conmon or shutil.which("conmon") or "/usr/bin/conmon"
        self.state_root = self.dir / "state"
        self.exits_dir = self.dir / "exits"
        self.netns_dir = self.root / "netns"
        # handler -> OCI runtime binary: runc always, the others when installed and
        # able to run here (else handler -> why not)
        self.oci_runtimes = {DEFAULT_HANDLER: self.runc}
        self.unusable: dict[str, str] = {}
        for name in OCI_RUNTIMES:
            found = shutil.which(name)
            if name in self.oci_runtimes:
                continue
            if found:
                self.oci_runtimes[name] = found
            else:
                self.unusable[name] = f"{name} is not installed"
        for d in (self.state_root, self.exits_dir, self.netns_dir):
            d.mkdir(parents=True, exist_ok=True)
        # handler -> what conmon runs for `create` when it is not the binary itself
        self.create_binaries: dict[str, str] = {}
        if "crun" in self.oci_runtimes and crun_needs_v1_view():
            self.create_binaries["crun"] = self._crun_v1_wrapper(self.oci_runtimes["crun"])
        self.network = network
        self._version = ""

    async def version(self) -> str:
        if not self._version:
            _, out, _ = await run_with_timeout([self.runc, "--version"], 30)
            m = re.search(r"runc version (\d+\.\d+\.\d+)", out.decode())
            self._version = m.group(1) if m else "unknown"
        return f"runc://{self._version}"

    def runtime_handlers(self) -> list[str]:
        return ["", *sorted(self.oci_runtimes)]

    def _crun_v1_wrapper(self, crun: str) -> str:
        path = self.dir / "crun-v1-create"
        text = _CRUN_V1_WRAPPER.format(crun=crun)
        if not path.exists() or path.read_text() != text:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.chmod(0o755)
            tmp.replace(path)
        return str(path)

    def handler_problem(self, handler: str) -> str:
        why = self.unusable.get(handler)
        if why:   # upstream's wording, and why, for a handler this node knows of
            return f"{handler_not_supported(handler)}: {why}"
        return super().handler_problem(handler)

    def _oci(self, rec: dict) -> tuple[str, str]:
        """(OCI runtime binary, its state root) for a container's handler."""
        handler = rec.get("handler") or DEFAULT_HANDLER
        binary = self.oci_runtimes.get(handler)
        if binary is None:   # uninstalled since the container was made
            raise ContainerRuntimeError(f"OCI runtime {handler!r} is not installed")
        if handler == DEFAULT_HANDLER:
            return binary, str(self.state_root)
        return binary, str(self.dir / f"state-{handler}")

    def oci_command(self, container_id: str) -> list[str]:
        """The start of an OCI runtime command line for this container (streaming exec)."""
        binary, state = self._oci(self._load_container(container_id))
        return [binary, "--root", state]

    async def _runc(self, rec: dict, *args: str, timeout: float = 60) -> tuple[int, str]:
        """The container's OCI runtime (runc or another handler's) with `args`."""
        binary, state = self._oci(rec)
        code, out, err = await run_with_timeout([binary, "--root", state, *args], timeout)
        return code, (err or out).decode(errors="replace").strip()

    # ----- sandboxes ---------------------------------------------------------------
    async def _setup_sandbox(self, sid: str, cfg: SandboxConfig, rec: dict) -> None:
        sdir = self._sdir(sid)
        ns: dict[str, str] = {}
        if not cfg.host_network:
            ns["net"] = str(self.netns_dir / sid)
            ns["uts"] = str(sdir / "uts")
            rec["netns_path"] = ns["net"]
        if not cfg.host_ipc:
            ns["ipc"] = str(sdir / "ipc")
        rec["ns"] = ns
        self._save_sandbox(rec)
        self._pod_cgroup(cfg)
        if ns:
            await self._pin_namespaces(ns, cfg.hostname if "uts" in ns else "")
        if not cfg.host_ipc:
            shm = sdir / "shm"
            shm.mkdir()
            rec["shm"] = str(shm)
            self._save_sandbox(rec)
            mount("shm", str(shm), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  f"mode=1777,size={SHM_SIZE}")
        if self.network is not None and not cfg.host_network:
            # the sandbox id names the CNI attachment: unique, so two attempts of one
            # pod (or a retried setup) never share a cache entry or an IP lease
            rec["cni_id"] = sid
            self._save_sandbox(rec)
            ips = self.network.setup(ns["net"], cfg, sandbox_id=sid)
            if asyncio.iscoroutine(ips):
                ips = await ips
            rec["ips"] = list(ips or [])
        rec["network_down"] = False
        (sdir / "hosts").write_text(hosts_file(cfg, rec["ips"][0] if rec["ips"] else ""))
        (sdir / "resolv.conf").write_text(resolv_conf(cfg))
        (sdir / "hostname").write_text(cfg.hostname + "\n")

    def _pod_cgroup(self, cfg: SandboxConfig) -> None:
        """The pod's cgroup with its limits (removed with the sandbox, once empty)."""
        parent = cfg.cgroup_parent.strip("/")
        if cfg.resources is None or not parent:
            return
        try:
            pod_cgroup.apply(cgroup_mounts(), f"{CGROUP_ROOT}/{parent}", cfg.resources,
                             cgroup_v2_only())
        except OSError as e:
            raise ContainerRuntimeError(f"creating the pod cgroup: {e}",
                                        reason="CreatePodSandboxError") from None

    async def _pin_namespaces(self, ns: dict[str, str], hostname: str) -> None:
        """New namespaces kept alive by bind mounts on files (`unshare --net=FILE`)."""
        for path in ns.values():
            Path(path).touch()
        cmd = ["unshare"] + [f"--{kind}={path}" for kind, path in ns.items()] + ["--"]
        if "net" in ns and self.network is None:   # else CNI's loopback plugin sets lo up
            cmd += ["sh", "-c", _NS_INIT, "sh", hostname, "1"]
        else:   # one process fewer per pod than the shell
            cmd += ["hostname", hostname] if hostname else ["true"]
        code, _, err = await run_with_timeout(cmd, 30)
        if code != 0:
            raise ContainerRuntimeError(f"creating namespaces: {err.decode().strip()}",
                                        reason="CreatePodSandboxError")

    async def _teardown_sandbox_network(self, rec: dict) -> None:
        """Also when the netns file is gone (a crash, a reboot): the teardown then
        still releases the IP lease and the NAT rules the plugins left."""
        netns = rec.get("netns_path")
        if self.network is None or not netns:
            return
        cfg = rec["config"]
        # records from before cni_id existed were attached under the default id
        res = self.network.teardown(netns, sandbox_config_from(cfg),
                                    sandbox_id=rec.get("cni_id") or None)
        if asyncio.iscoroutine(res):
            await res

    async def _release_sandbox(self, rec: dict) -> None:
        if rec.get("state") == "creating" or not rec.get("network_down", True):
            await self._teardown_sandbox_network(rec)
        for path in [rec.get("shm"), *(rec.get("ns") or {}).values()]:
            if path and os.path.exists(path):
                umount(path)
        netns = (rec.get("ns") or {}).get("net")
        if netns:
            try:
                os.unlink(netns)
            except FileNotFoundError:
                pass
        parent = rec["config"].get("cgroup_parent") or ""
        if parent.strip("/"):
            self._remove_cgroup_parents(parent)

    def _remove_cgroup_parents(self, parent: str) -> None:
        """The pod's cgroup parent dirs under /pybernetes, once empty (rmdir fails
        harmlessly while another pod's containers still use one)."""
        parts = parent.strip("/").split("/")
        for n in range(len(parts), 0, -1):
            for d in cgroup_dirs(os.path.join(CGROUP_ROOT, *parts[:n])):
                try:
                    os.rmdir(d)
                except OSError:
                    pass

    # ----- containers --------------------------------------------------------------
    async def _prepare_container(self, cid: str, sandbox: dict, cfg: ContainerConfig,
                                 layers: list[str], rec: dict) -> None:
        cdir = self._cdir(cid)
        bundle, rootfs = cdir / "bundle", cdir / "bundle" / "rootfs"
        upper, work = cdir / "overlay" / "upper", cdir / "overlay" / "work"
        for d in (rootfs, upper, work):
            d.mkdir(parents=True)
        lowers = list(reversed(layers)) or [str(_empty_dir(cdir / "overlay" / "empty"))]
        for layer in lowers:
            if not os.path.isdir(layer):
                raise ContainerRuntimeError(f"image layer {layer} is missing",
                                            reason="CreateContainerError")
        opts = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
        if len(opts) > OVERLAY_OPTS_MAX:
            raise ContainerRuntimeError("too many image layers for one overlay mount",
                                        reason="CreateContainerError")
        rec["rootfs"] = str(rootfs)
        rec["handler"] = sandbox["config"].get("runtime_handler") or DEFAULT_HANDLER
        self._save_container(rec)   # so a failure below still unmounts it
        mount("overlay", str(rootfs), "overlay", 0, opts)
        parent = (sandbox["config"].get("cgroup_parent") or "").strip("/")
        rec["cgroups_path"] = "/" + "/".join(p for p in (CGROUP_ROOT, parent, cid) if p)
        spec = self._oci_spec(sandbox, cfg, str(rootfs), rec["cgroups_path"])
        (bundle / "config.json").write_text(json.dumps(spec, indent=1))

    def _oci_spec(self, sandbox: dict, cfg: ContainerConfig, rootfs: str,
                  cgroups_path: str) -> dict:
        scfg = sandbox["config"]
        sec, res = cfg.security, cfg.resources
        uid = sec.run_as_user if sec.run_as_user is not None else 0
        gid, groups = lookup_user(rootfs, uid)
        if sec.run_as_group is not None:
            gid = sec.run_as_group
        groups = sorted(set(groups) | set(sec.supplemental_groups))
        env = dict(cfg.env)
        env.setdefault("PATH", DEFAULT_PATH)
        if not scfg.get("host_network"):
            env.setdefault("HOSTNAME", scfg["hostname"])
        caps = capabilities(sec)
        process = {
            "terminal": bool(cfg.tty), "args": list(cfg.command),
            "env": [f"{k}={v}" for k, v in env.items()], "cwd": cfg.working_dir or "/",
            "user": {"uid": uid, "gid": gid, "additionalGids": groups},
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": bool(sec.no_new_privs and not sec.privileged),
            "oomScoreAdj": res.oom_score_adj,
        }
        linux = {
            "namespaces": self._namespaces(sandbox),
            "cgroupsPath": cgroups_path,
            "resources": self._resources(cfg),
            "sysctl": dict(scfg.get("sysctls") or {}),
            "maskedPaths": [] if sec.privileged else (
                DEFAULT_MASKED if sec.masked_paths is None else list(sec.masked_paths)),
            "readonlyPaths": [] if sec.privileged else (
                DEFAULT_READONLY if sec.readonly_paths is None else list(sec.readonly_paths)),
        }
        if sec.privileged:
            linux["devices"] = host_devices()
        profile = seccomp.profile_for(sec, caps, str(self.root / "seccomp"))
        if profile is not None:
            linux["seccomp"] = profile
        propagations = {m.propagation for m in cfg.mounts}
        if "rshared" in propagations:
            linux["rootfsPropagation"] = "rshared"
        elif "rslave" in propagations:
            linux["rootfsPropagation"] = "rslave"
        return {"ociVersion": "1.0.2", "process": process,
                "root": {"path": rootfs, "readonly": sec.readonly_rootfs},
                "mounts": self._mounts(sandbox, cfg), "linux": linux,
                "annotations": {"io.kubernetes.cri.sandbox-id": sandbox["id"],
                                "io.kubernetes.cri.container-name": cfg.name}}

    def _namespaces(self, sandbox: dict) -> list[dict]:
        scfg, ns = sandbox["config"], sandbox.get("ns") or {}
        out = [{"type": "mount"}]
        if not scfg.get("host_pid"):
            out.append({"type": "pid"})
        if cgroup_v2_only():
            # the container sees its own cgroup as the root (containerd, on cgroup v2)
            out.append({"type": "cgroup"})
        for kind, oci in (("net", "network"), ("uts", "uts"), ("ipc", "ipc")):
            if kind in ns:
                out.append({"type": oci, "path": ns[kind]})
        return out

    def _resources(self, cfg: ContainerConfig) -> dict:
        res = cfg.resources
        devices = [{"allow": True, "access": "rwm"}] if cfg.security.privileged \
            else [{"allow": False, "access": "rwm"}]
        cpu: dict = {"shares": max(res.cpu_shares, 2)}
        if res.cpu_quota > 0:
            cpu.update(quota=res.cpu_quota, period=res.cpu_period or 100_000)
        out: dict = {"devices": devices, "cpu": cpu}
        if res.memory_limit > 0:
            # swap = limit: no swap beyond the limit (cgroup v1 memsw is memory+swap).
            out["memory"] = {"limit": res.memory_limit, "swap": res.memory_limit}
        if res.pids_limit > 0:
            out["pids"] = {"limit": res.pids_limit}
        if cgroup_v2_only():
            # As upstream's kubelet on cgroup v2 (singleProcessOOMKill false): an OOM kill
            # takes the whole container, not just its largest process.
            out["unified"] = {"memory.oom.group": "1"}
            if res.memory_limit <= 0:   # NoSwap, as upstream's kubelet: no limit, no swap
                out["unified"]["memory.swap.max"] = "0"
        return out

    def _mounts(self, sandbox: dict, cfg: ContainerConfig) -> list[dict]:
        priv, ro = cfg.security.privileged, cfg.security.readonly_rootfs
        sdir = self._sdir(sandbox["id"])
        user_dests = {os.path.normpath(m.container_path) for m in cfg.mounts}
        mounts = [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "rw" if priv else "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "rw" if priv else "ro"]},
        ]
        managed = {"/etc/hosts": sdir / "hosts", "/etc/resolv.conf": sdir / "resolv.conf",
                   "/etc/hostname": sdir / "hostname",
                   "/dev/shm": sandbox.get("shm") or "/dev/shm"}
        for dest, src in managed.items():
            if dest in user_dests:
                continue   # the kubelet passed its own (as it does upstream)
            opts = ["rbind", "rprivate", "ro" if ro and dest != "/dev/shm" else "rw"]
            if dest == "/dev/shm":
                opts += ["nosuid", "nodev", "noexec"]
            mounts.append({"destination": dest, "type": "bind", "source": str(src),
                           "options": opts})
        for m in sorted(cfg.mounts, key=lambda m: os.path.normpath(m.container_path)
                        .count("/")):
            prop = {"rshared": "rshared", "rslave": "rslave"}.get(m.propagation, "rprivate")
            mounts.append({"destination": m.container_path, "type": "bind",
                           "source": m.host_path,
                           "options": ["rbind", prop, "ro" if m.readonly else "rw"]})
        return mounts

    # ----- the monitor: conmon -------------------------------------------------------
    async def _start_monitor(self, rec: dict) -> dict:
        """conmon runs `runc create` (holding the container's stdio), reports the pid on
        its sync pipe and stays as the container's parent; then `runc start`."""
        cid, cdir = rec["id"], self._cdir(rec["id"])
        pid, message = await self._launch_conmon(rec)
        if pid <= 0:
            await self._runc(rec, "delete", "--force", cid)
            raise ContainerRuntimeError(
                last_runc_error(str(cdir / "runc.log")) or message
                or "conmon did not start the container", reason="RunContainerError")
        # the process runs from inside `runc start`: a stamp taken after it could be later
        # than the exit of a container that ends at once (finishedAt before startedAt)
        started_at = time.time()
        code, msg = await self._runc(rec, "start", cid)
        if code != 0:
            await self._runc(rec, "delete", "--force", cid)   # conmon then records an exit
            raise ContainerRuntimeError(last_runc_error(str(cdir / "runc.log")) or msg
                                        or "runc start failed", reason="RunContainerError")
        conmon_pid = _read_pid(cdir / "conmon.pid")
        return {"monitor": "conmon", "monitor_pid": conmon_pid,
                "monitor_start_time": proc_start_time(conmon_pid), "pid": pid,
                "pid_start_time": proc_start_time(pid), "started_at": started_at}

    async def _launch_conmon(self, rec: dict) -> tuple[int, str]:
        """(the created container's pid, or -1 with conmon's message)."""
        cdir = self._cdir(rec["id"])
        sync_r, sync_w = os.pipe()
        # subprocess, not the event loop's: uvloop's subprocesses ignore pass_fds
        try:
            with open(cdir / "conmon.log", "ab") as errors:
                proc = subprocess.Popen(
                    self._conmon_args(rec), pass_fds=(sync_w,), cwd=str(cdir),
                    env={"_OCI_SYNCPIPE": str(sync_w), "TZ": "UTC",
                         "PATH": os.environ.get("PATH", DEFAULT_PATH)},
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                    start_new_session=True)
        except OSError as e:
            os.close(sync_r)
            raise ContainerRuntimeError(f"starting conmon: {e}") from e
        finally:
            os.close(sync_w)
        reply = await _read_sync_reply(sync_r, MONITOR_START_TIMEOUT)
        await _reap(proc)   # the first conmon exits as soon as it has forked
        pid = reply.get("data")
        if isinstance(pid, int) and pid > 0:
            return pid, ""
        return -1, str(reply.get("message") or "").strip() or _tail(cdir / "conmon.log")

    def _conmon_args(self, rec: dict) -> list[str]:
        cid, cdir, cfg = rec["id"], self._cdir(rec["id"]), rec["config"]
        binary, state = self._oci(rec)
        binary = self.create_binaries.get(rec.get("handler") or DEFAULT_HANDLER, binary)
        args = [self.conmon, "--api-version", "1", "-c", cid, "-u", cid, "-r", binary,
                "-b", str(cdir / "bundle"), "-p", str(cdir / "pid"),
                "-P", str(cdir / "conmon.pid"), "-l", "k8s-file:" + rec["log_path"],
                "--exit-dir", str(self.exits_dir), "--persist-dir", str(cdir),
                # the attach socket in the bundle, reached through a directory fd
                "--full-attach",
                "--runtime-arg", f"--root={state}",
                "--runtime-arg", f"--log={cdir / 'runc.log'}",
                "--runtime-arg", "--log-format=json", "--log-level", "error"]
        if cfg.get("tty"):
            args.append("-t")
        elif cfg.get("stdin"):
            args.append("-i")
        if cfg.get("stdin") and not cfg.get("stdin_once"):
            args.append("--leave-stdin-open")
        return args

    def _collect_exit(self, rec: dict) -> dict | None:
        """conmon's exit file (`<exits>/<id>`: the code; its mtime is the finish time)
        becomes exit.json, with whether the memory cgroup OOM-killed anything."""
        found = super()._collect_exit(rec)
        if found is not None:
            return found
        path = self.exits_dir / rec["id"]
        try:
            finished_at = path.stat().st_mtime
            code = int(path.read_text().strip() or "255")
        except FileNotFoundError:
            return None
        except ValueError:
            code = 255
        if code < 0:   # conmon's "no status" (e.g. the runtime failed)
            code = 255
        cdir = self._cdir(rec["id"])
        oom = (cdir / "oom").exists() or self._oom_counted(rec)
        exit_rec = {"exit_code": code, "finished_at": finished_at, "oom_killed": oom}
        write_json(cdir / "exit.json", exit_rec)
        path.unlink(missing_ok=True)
        return exit_rec

    def _interrupted_start(self, rec: dict) -> tuple[str, dict]:
        """The kubelet stopped between launching conmon and recording the start. A
        container that runs (past `runc start`) under a live conmon is adopted; anything
        else is a failed start: a container left created (or running without conmon)
        is killed, and the kubelet starts a new one."""
        cid, cdir = rec["id"], self._cdir(rec["id"])
        conmon_pid, pid = _read_pid(cdir / "conmon.pid"), _read_pid(cdir / "pid")
        ours = pid > 0 and _in_cgroup_of(pid, cid) and pid_alive(pid)
        if ours and pid_alive(conmon_pid) and _comm(pid) != RUNC_INIT_COMM:
            mon = {"monitor": "conmon", "monitor_pid": conmon_pid,
                   "monitor_start_time": proc_start_time(conmon_pid), "pid": pid,
                   "pid_start_time": proc_start_time(pid), "started_at": rec["started_at"]}
            write_json(cdir / "monitor.json", mon)
            self._monitors[cid] = mon
            return "running", mon
        if ours:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        exit_rec = {"exit_code": 128, "finished_at": time.time(), "reason": "StartError",
                    "message": "the kubelet stopped while starting the container"}
        write_json(cdir / "exit.json", exit_rec)
        self._exits[cid] = exit_rec
        return "exited", exit_rec

    def _oom_counted(self, rec: dict) -> bool:
        """The memory cgroup's oom_kill counter (v1 memory.oom_control, v2 memory.events):
        conmon's own OOM event can lose the race with the exit."""
        if not rec.get("cgroups_path"):
            return False
        mounts = cgroup_mounts()
        rel = rec["cgroups_path"].lstrip("/")
        if "memory" in mounts:
            path = os.path.join(mounts["memory"], rel, "memory.oom_control")
        elif "" in mounts:
            path = os.path.join(mounts[""], rel, "memory.events")
        else:
            return False
        try:
            with open(path) as f:
                return any(line.split()[0] == "oom_kill" and int(line.split()[1]) > 0
                           for line in f if len(line.split()) == 2)
        except (OSError, ValueError):
            return False

    def _ask_reopen(self, rec: dict, mon: dict) -> None:
        if mon.get("monitor") != "conmon":
            return super()._ask_reopen(rec, mon)
        # conmon's control fifo: "<type> <height> <width>"; type 2 reopens the log
        _write_ctl(self._cdir(rec["id"]) / "bundle" / "ctl", "2 0 0\n")

    def attach_socket(self, container_id: str) -> str:
        """The container's conmon attach socket (SOCK_SEQPACKET; reach it through a
        directory fd: the path may be longer than a socket address allows)."""
        return str(self._cdir(container_id) / "bundle" / "attach")

    def resize_terminal(self, container_id: str, width: int, height: int) -> None:
        _write_ctl(self._cdir(container_id) / "bundle" / "ctl", f"1 {height} {width}\n")

    async def _signal(self, rec: dict, sig: int, all_processes: bool = False) -> None:
        sandbox = self._load_sandbox_or_empty(rec["sandbox_id"])
        args = ["kill"]
        # Without a pid namespace the init's death does not take its children along.
        if all_processes and sandbox.get("config", {}).get("host_pid"):
            args.append("--all")
        await self._runc(rec, *args, rec["id"], str(int(sig)))

    def _load_sandbox_or_empty(self, sid: str) -> dict:
        try:
            return self._load_sandbox(sid)
        except KeyError:
            return {}

    async def _release_container(self, rec: dict) -> None:
        cid = rec["id"]
        code, msg = await self._runc(rec, "delete", "--force", cid)
        if code != 0 and "does not exist" not in msg and "not exist" not in msg:
            raise ContainerRuntimeError(f"runc delete {cid}: {msg}")
        rootfs = rec.get("rootfs")
        if rootfs and os.path.exists(rootfs):
            umount(rootfs)
        (self.exits_dir / cid).unlink(missing_ok=True)
        if rec.get("cgroups_path"):   # runc removed it; a left-over empty dir is ours too
            for d in cgroup_dirs(rec["cgroups_path"]):
                try:
                    os.rmdir(d)
                except OSError:
                    pass

    async def exec_sync(self, container_id: str, cmd: list[str],
                        timeout: float) -> ExecResult:
        """`runc exec` (the container's env, user, cwd and capabilities); on timeout the
        exec'd process is killed and TimeoutError raised."""
        binary, state = self._oci(self._running_record(container_id))
        pid_file = self._cdir(container_id) / f"exec-{os.getpid()}-{id(cmd)}.pid"
        try:
            code, out, err = await run_with_timeout(
                [binary, "--root", state, "exec", "--pid-file",
                 str(pid_file), container_id, *cmd], timeout)
        except TimeoutError:
            _kill_pid_file(pid_file)
            raise
        finally:
            pid_file.unlink(missing_ok=True)
        return ExecResult(exit_code=code, stdout=out, stderr=err)


async def _read_sync_reply(fd: int, timeout: float) -> dict:
    """conmon's first line on the sync pipe: {"data": <pid or -1>, "message": ...};
    {} when it closed the pipe without one (it failed) or took too long. Takes fd."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    buf = bytearray()

    def readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        buf.extend(chunk)
        if (not chunk or b"\n" in buf) and not done.done():
            done.set_result(bytes(buf))

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    try:
        line = await asyncio.wait_for(done, timeout)
    except TimeoutError:
        line = b""
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    try:
        reply = json.loads(line.split(b"\n")[0]) if line.strip() else {}
    except ValueError:
        reply = {}
    return reply if isinstance(reply, dict) else {}


async def _reap(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):   # bounded; it exits right after its fork
        if proc.poll() is not None:
            return
        await asyncio.sleep(0.01)
    proc.kill()
    proc.wait()


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace").strip()[-limit:]
    except OSError:
        return ""


def last_runc_error(path: str) -> str:
    """The last error-level message of runc's JSON log."""
    msg = ""
    try:
        with open(path) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") in ("error", "fatal"):
                    msg = entry.get("msg", "")
    except OSError:
        pass
    return msg


def _in_cgroup_of(pid: int, cid: str) -> bool:
    """The process is in the container's cgroup (its path ends in the container id):
    a pid from a file is not some other process that reused it."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return cid in f.read()
    except OSError:
        return False


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def _write_ctl(path: Path, message: str) -> None:
    """One message to conmon's control fifo (ENXIO: conmon is gone, nobody reads it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise ContainerRuntimeError(f"the container's monitor is gone: {e}") from e
    try:
        os.write(fd, message.encode())
    finally:
        os.close(fd)


def _kill_pid_file(path: Path) -> None:
    try:
        os.kill(int(path.read_text().strip()), signal.SIGKILL)
    except (OSError, ValueError):
        pass


def _empty_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
