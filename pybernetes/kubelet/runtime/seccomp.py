"""seccomp profiles for runc containers (securityContext.seccompProfile).

- Unconfined (the kubelet's default, as upstream without --seccomp-default) and any
  privileged container: no filter, as containerd does.
- RuntimeDefault: our own profile, modelled on what containerd's default does (not a
  copy of it): every syscall is allowed except those that reach outside the container
  or the kernel's shared state (mounts, namespaces, modules, kexec, the keyring, clock
  setting, reboot, swap, bpf/perf, io_uring, ...), which fail with EPERM. As in
  containerd's profile, a capability the container was granted lifts the ban on its
  syscalls (CAP_SYS_ADMIN may mount and unshare, CAP_SYS_TIME set the clock, ...).
  clone(2) with namespace flags is refused like unshare(2); clone3(2), whose flags a
  filter cannot see, says ENOSYS so libc falls back to clone(2).
- Localhost: an OCI/Docker-format JSON profile from `<kubelet root>/seccomp/<name>`.
"""
from __future__ import annotations

import json
import os
import platform

from pybernetes.kubelet.runtime.base import ContainerRuntimeError, Security

EPERM, ENOSYS = 1, 38

# Refused unless the container holds the capability (key "" : always refused).
BLOCKED: dict[str, list[str]] = {
    "": ["add_key", "keyctl", "request_key", "kexec_load", "kexec_file_load",
         "create_module", "get_kernel_syms", "query_module", "nfsservctl", "uselib",
         "userfaultfd", "ustat", "sysfs", "_sysctl", "vm86", "vm86old", "swapon", "swapoff",
         "io_uring_setup", "io_uring_enter", "io_uring_register"],
    "CAP_SYS_ADMIN": ["mount", "umount", "umount2", "mount_setattr", "move_mount", "open_tree",
                      "fsopen", "fsconfig", "fsmount", "fspick", "pivot_root", "unshare",
                      "setns", "quotactl", "quotactl_fd", "lookup_dcookie", "fanotify_init",
                      "name_to_handle_at"],
    "CAP_SYS_TTY_CONFIG": ["vhangup"],
    "CAP_SYS_MODULE": ["init_module", "finit_module", "delete_module"],
    "CAP_SYS_BOOT": ["reboot"],
    "CAP_SYS_TIME": ["settimeofday", "stime", "clock_settime", "clock_settime64",
                     "clock_adjtime", "clock_adjtime64", "adjtimex"],
    "CAP_SYS_PACCT": ["acct"],
    "CAP_SYS_RAWIO": ["iopl", "ioperm"],
    "CAP_SYS_PTRACE": ["process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"],
    "CAP_SYS_NICE": ["mbind", "set_mempolicy", "move_pages", "migrate_pages"],
    "CAP_SYSLOG": ["syslog"],
    "CAP_DAC_READ_SEARCH": ["open_by_handle_at"],
    "CAP_BPF": ["bpf"],
    "CAP_PERFMON": ["perf_event_open"],
}
# clone(2) flags that make namespaces (CLONE_NEWNS ... CLONE_NEWNET, CLONE_NEWCGROUP).
CLONE_NS_FLAGS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                  0x40000000]
ARCHES = {"x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
          "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}
PROFILE_TYPES = ("", "Unconfined", "RuntimeDefault", "Localhost")


def architectures() -> list[str]:
    return ARCHES.get(platform.machine(), [])


def runtime_default(caps: list[str]) -> dict:
    """Our RuntimeDefault for a container holding `caps` ("CAP_..." names)."""
    held = set(caps)
    names = sorted(n for cap, group in BLOCKED.items() if cap not in held for n in group)
    rules: list[dict] = [{"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}]
    if "CAP_SYS_ADMIN" not in held:
        rules += [{"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
                   "args": [{"index": 0, "value": flag, "valueTwo": flag,
                             "op": "SCMP_CMP_MASKED_EQ"}]} for flag in CLONE_NS_FLAGS]
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": architectures(),
            "syscalls": rules}


def localhost(root: str, name: str) -> dict:
    """A profile file under `root` (the kubelet's seccomp dir); CreateContainerError
    when the name leaves it, or the file is missing or not a seccomp profile."""
    path = os.path.normpath(os.path.join(root, name))
    if not name or os.path.isabs(name) or not path.startswith(os.path.normpath(root) + os.sep):
        raise _error(f"localhost profile {name!r} is not a path under {root}")
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise _error(f"cannot load seccomp profile {path!r}: {e.strerror or e}") from e
    except ValueError as e:
        raise _error(f"seccomp profile {path!r} is not JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("defaultAction"), str):
        raise _error(f"seccomp profile {path!r} has no defaultAction")
    return _oci_profile(data)


def _oci_profile(data: dict) -> dict:
    """The OCI fields of a (possibly Docker-format) profile: archMap becomes the
    architectures of this machine, syscall rules keep names/action/errnoRet/args."""
    out: dict = {"defaultAction": data["defaultAction"]}
    if isinstance(data.get("defaultErrnoRet"), int):
        out["defaultErrnoRet"] = data["defaultErrnoRet"]
    arches = data.get("architectures")
    if not arches and isinstance(data.get("archMap"), list):
        ours = set(architectures()[:1])
        arches = [a for m in data["archMap"] if m.get("architecture") in ours
                  for a in [m["architecture"], *(m.get("subArchitectures") or [])]]
    if arches:
        out["architectures"] = list(arches)
    if isinstance(data.get("flags"), list):
        out["flags"] = list(data["flags"])
    rules = []
    for rule in data.get("syscalls") or []:
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        if not names or not isinstance(rule.get("action"), str):
            raise _error(f"seccomp rule {rule!r} has no names or no action")
        kept = {"names": list(names), "action": rule["action"]}
        for key in ("errnoRet", "args"):
            if rule.get(key) is not None:
                kept[key] = rule[key]
        rules.append(kept)
    out["syscalls"] = rules
    return out


def profile_for(sec: Security, caps: list[str], seccomp_root: str) -> dict | None:
    """linux.seccomp of the OCI spec, or None for no filter."""
    kind = sec.seccomp_profile_type or ""
    if kind not in PROFILE_TYPES:
        raise _error(f"unknown seccomp profile type {kind!r}")
    if sec.privileged or kind in ("", "Unconfined"):
        return None
    if kind == "RuntimeDefault":
        return runtime_default(caps)
    return localhost(seccomp_root, sec.seccomp_localhost_profile)


def _error(message: str) -> ContainerRuntimeError:
    return ContainerRuntimeError(message, reason="CreateContainerError")
