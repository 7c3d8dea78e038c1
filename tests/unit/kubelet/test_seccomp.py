"""seccomp profiles for runc containers: which profile a Security gets, what our
RuntimeDefault refuses (and which capability lifts what), Localhost files."""
from __future__ import annotations

import json

import pytest

from pybernetes.kubelet.runtime.base import ContainerRuntimeError, Security
from pybernetes.kubelet.runtime.seccomp import (
    ENOSYS, EPERM, localhost, profile_for, runtime_default,
)


def refused(profile: dict) -> set[str]:
    return {n for rule in profile["syscalls"] if "args" not in rule
            and rule["action"] == "SCMP_ACT_ERRNO" for n in rule["names"]}


def test_unconfined_and_privileged_have_no_filter(tmp_path):
    assert profile_for(Security(), [], str(tmp_path)) is None
    assert profile_for(Security(seccomp_profile_type="Unconfined"), [], str(tmp_path)) is None
    assert profile_for(Security(seccomp_profile_type="RuntimeDefault", privileged=True),
                       [], str(tmp_path)) is None


def test_runtime_default_refuses_what_reaches_outside_the_container():
    p = runtime_default(["CAP_CHOWN", "CAP_NET_BIND_SERVICE"])
    assert p["defaultAction"] == "SCMP_ACT_ALLOW"
    blocked = refused(p)
    for name in ("mount", "unshare", "setns", "init_module", "kexec_load", "reboot",
                 "keyctl", "bpf", "perf_event_open", "settimeofday", "io_uring_setup"):
        assert name in blocked, name
    for name in ("read", "write", "clone", "execve", "socket", "chown", "sethostname"):
        assert name not in blocked, name
    clone_rules = [r for r in p["syscalls"] if r["names"] == ["clone"]]
    assert len(clone_rules) == 7 and all(r["errnoRet"] == EPERM for r in clone_rules)
    assert {r["names"][0]: r["errnoRet"] for r in p["syscalls"]}["clone3"] == ENOSYS


def test_a_granted_capability_lifts_its_ban():
    blocked = refused(runtime_default(["CAP_SYS_ADMIN", "CAP_SYS_TIME"]))
    assert "mount" not in blocked and "unshare" not in blocked
    assert "settimeofday" not in blocked and "reboot" in blocked and "keyctl" in blocked
    names = {n for r in runtime_default(["CAP_SYS_ADMIN"])["syscalls"] for n in r["names"]}
    assert "clone" not in names and "clone3" not in names


def test_localhost_profiles(tmp_path):
    (tmp_path / "docker.json").write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                     "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW",
                      "comment": "dropped", "includes": {}}]}))
    p = localhost(str(tmp_path), "docker.json")
    assert p["defaultAction"] == "SCMP_ACT_ERRNO" and p["defaultErrnoRet"] == 1
    assert p["syscalls"] == [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]
    assert len(p.get("architectures", [])) in (0, 2, 3)   # this machine's family only
    sec = Security(seccomp_profile_type="Localhost", seccomp_localhost_profile="docker.json")
    assert profile_for(sec, [], str(tmp_path)) == p


@pytest.mark.parametrize("name, text", [
    ("missing.json", None), ("../escape.json", "{}"), ("/abs.json", "{}"), ("", None),
    ("bad.json", "not json"), ("noaction.json", '{"syscalls": []}'),
    ("rule.json", '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "x"}]}'),
])
def test_bad_localhost_profiles_fail_the_create(tmp_path, name, text):
    root = tmp_path / "seccomp"
    root.mkdir()
    if text is not None and name and not name.startswith(("/", "..")):
        (root / name).write_text(text)
    with pytest.raises(ContainerRuntimeError) as err:
        localhost(str(root), name)
    assert err.value.reason == "CreateContainerError"


def test_unknown_profile_type_fails_the_create(tmp_path):
    with pytest.raises(ContainerRuntimeError):
        profile_for(Security(seccomp_profile_type="Strict"), [], str(tmp_path))
