"""The kubelet's runc runtime on cgroup v2, from a machine that is not: boot a VM whose
only hierarchy is cgroup2 at /sys/fs/cgroup (tests/vm/vm.py) and run the runtime's
cgroup tests there, against this very checkout, .venv, runc and conmon.

VM_TESTS: the v2-only tests (a container's own cgroup2 with its limits, cpu.weight from
requests, memory.oom.group, the OOM kill in memory.events) and the existing runc tests
that exercise cgroups (OOMKilled, limits in the cgroup files, no cgroup left after a
pod's removal, finding a container by its cgroup after a kubelet restart), and a pod
under the crun handler (its limits in cgroup v2 files).
With hardware KVM the VM also runs KVM_TESTS, the whole-kubelet runc e2e module (real
kubectl: OOMKilled and restart, teardown leaving no cgroup); under qemu's emulator
(TCG, ~20x slower: this machine's /dev/kvm is PVM) a cluster does not start within its
timeouts (it passes with every timeout x10, in ~20 min). PYB_VM_TESTS overrides the
selection."""
from __future__ import annotations

import os
import shlex
import shutil

import pytest

from tests.vm import vm

RUNC = "tests/integration/test_runtime_runc.py"
VM_TESTS = [
    "tests/integration/test_runtime_runc_cgroup_v2.py",
    f"{RUNC}::test_memory_limit_oom_killed",
    f"{RUNC}::test_cpu_and_memory_limits_in_cgroup",
    f"{RUNC}::test_remove_leaves_nothing_behind",
    f"{RUNC}::test_kubelet_restart_finds_running_containers",
    # crun as it runs on a v2 host (on a hybrid one its create needs a v1-only view)
    "tests/integration/test_runtime_crun.py::test_crun_sandbox_runs_its_containers_with_crun",
]
KVM_TESTS = ["tests/e2e/test_kubelet_runc.py"]
VM_TIMEOUT = 840

pytestmark = [
    pytest.mark.skipif(bool(os.environ.get("PYB_IN_VM")), reason="already in the VM"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the cgroup v2 VM needs root"),
    pytest.mark.skipif(shutil.which(vm.QEMU) is None,
                       reason="qemu-system-x86 is not installed (make system-deps)"),
    pytest.mark.skipif(shutil.which("runc") is None or shutil.which("conmon") is None,
                       reason="runc or conmon is not installed"),
]


@pytest.mark.timeout(VM_TIMEOUT + 120)
def test_runc_runtime_on_cgroup_v2_in_a_vm() -> None:
    reason = vm.unavailable()
    if reason:
        pytest.skip(reason)
    tests = shlex.split(os.environ.get("PYB_VM_TESTS", "")) or (
        VM_TESTS + (KVM_TESTS if vm.accelerator()[0] == "kvm" else []))
    # -p no:cacheprovider: nothing to write back into the (read-only shared) checkout;
    # -rs: a test skipped in the VM shows why.
    command = shlex.join([".venv/bin/python", "-m", "pytest", "-q", "-rs", "-p",
                          "no:cacheprovider", "-p", "no:xdist", *tests])
    # the guard: everything the VM ran is in the output, and cgroup v2 tests were not
    # skipped there (they would be if the VM had not come up in unified mode)
    result = vm.run_in_vm(command, timeout=VM_TIMEOUT)
    tail = "\n".join(result.output.splitlines()[-60:])
    assert result.returncode == 0, f"in the VM: exit code {result.returncode}\n{tail}"
    assert "needs cgroup v2 unified mode" not in result.output, tail
    assert " passed" in tail, tail
