"""The runc runtime on cgroup v2 (unified mode), as the kubelet drives it: what a
container sees of its own cgroup, the limits it gets from requests and limits, and an
OOM kill read from memory.events. Runs where /sys/fs/cgroup is cgroup2: a v2 host, or
the VM that tests/e2e/test_cgroup_v2.py boots from a v1 (or hybrid) host."""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from pybernetes.kubelet.runtime.base import Resources
from pybernetes.kubelet.runtime.runc import RuncRuntime, cgroup_v2_only

from .runtime_helpers import busybox_layer, container_config, sandbox_config, wait_state

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the runc runtime needs root"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed"),
    pytest.mark.skipif(shutil.which("conmon") is None, reason="conmon is not installed"),
    pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="busybox-static missing"),
    pytest.mark.skipif(not cgroup_v2_only(), reason="needs cgroup v2 unified mode (on a v1 "
                       "host, tests/e2e/test_cgroup_v2.py runs these in a VM)"),
]

MiB = 1024 * 1024


def runc_weight(shares: int) -> int:
    """runc 1.1's cpu.shares → cpu.weight ([2, 262144] onto [1, 10000], linearly)."""
    return 1 + ((shares - 2) * 9999) // 262142


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> str:
    return busybox_layer(tmp_path_factory.mktemp("layer") / "fs")


@pytest.fixture
async def node(tmp_path):
    """A runtime on a fresh root; afterwards every sandbox and container it made is
    removed by id."""
    rt = RuncRuntime(str(tmp_path / "kubelet"))
    yield rt, tmp_path / "logs"
    for s in await rt.list_pod_sandboxes():
        await rt.remove_pod_sandbox(s.id)
    for c in await rt.list_containers():
        await rt.remove_container(c.id)


def host_cgroup(parent: str, cid: str = "") -> Path:
    return Path("/sys/fs/cgroup/pybernetes", parent, cid)


async def cat(rt, cid: str, path: str) -> str:
    got = await rt.exec_sync(cid, ["cat", path], timeout=30)
    assert got.exit_code == 0, (path, got.stderr)
    return got.stdout.decode().strip()


async def test_container_sees_its_own_cgroup2_with_its_limits(node, layer):
    rt, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("limited", logs))
    parent = (await rt.pod_sandbox_status(sid)).config.cgroup_parent
    res = Resources(cpu_shares=512, cpu_quota=50_000, cpu_period=100_000,
                    memory_limit=64 * MiB, pids_limit=100)
    cid = await rt.create_container(sid, container_config("c", "sleep 600", resources=res),
                                    [layer])
    await rt.start_container(cid)
    assert (await wait_state(rt, cid, "running")).state == "running"

    # its own cgroup namespace: /sys/fs/cgroup is cgroup2, and its cgroup is the root
    mounts = await cat(rt, cid, "/proc/self/mountinfo")
    assert [m for m in mounts.splitlines() if m.split()[4] == "/sys/fs/cgroup"
            and " - cgroup2 " in m], mounts
    assert await cat(rt, cid, "/proc/self/cgroup") == "0::/"
    want = {"memory.max": str(64 * MiB), "memory.swap.max": "0",
            "cpu.max": "50000 100000", "cpu.weight": str(runc_weight(512)),
            "pids.max": "100", "memory.oom.group": "1"}
    inside = {name: await cat(rt, cid, f"/sys/fs/cgroup/{name}") for name in want}
    assert inside == want
    # the same files on the host, under the pod's cgroup parent
    host = host_cgroup(parent, cid)
    assert {name: (host / name).read_text().strip() for name in want} == want
    controllers = (host_cgroup(parent) / "cgroup.subtree_control").read_text().split()
    assert {"cpu", "memory", "pids"} <= set(controllers)


async def test_oom_kill_takes_the_whole_container_and_is_counted(node, layer):
    """memory.oom.group: the kernel kills every process of the container, so a
    background sleep does not keep it alive; memory.events counts the kill (what the
    runtime reads when conmon's own OOM event loses the race with the exit)."""
    rt, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("hungry", logs))
    parent = (await rt.pod_sandbox_status(sid)).config.cgroup_parent
    cfg = container_config("eat", "sleep 600 & head -c 64m /dev/zero | tail; wait",
                           resources=Resources(memory_limit=16 * MiB))
    cid = await rt.create_container(sid, cfg, [layer])
    await rt.start_container(cid)
    st = await wait_state(rt, cid, "exited", timeout=120)
    assert (st.state, st.exit_code, st.reason) == ("exited", 137, "OOMKilled")
    events = dict(line.split() for line in
                  (host_cgroup(parent, cid) / "memory.events").read_text().splitlines())
    assert int(events["oom_kill"]) >= 1 and int(events.get("oom_group_kill", 1)) >= 1


async def test_pod_cgroup_has_the_pods_limits_and_goes_with_the_sandbox(node, layer):
    """Upstream's pod-level cgroup on v2: the containers' parent has the pod's totals
    (weight from the summed requests, cpu.max and memory.max from the summed limits
    plus overhead) and delegates cpu/memory/pids to the containers below it."""
    rt, logs = node
    pod_limits = Resources(cpu_shares=614, cpu_quota=60_000, cpu_period=100_000,
                           memory_limit=96 * MiB)
    sid = await rt.run_pod_sandbox(sandbox_config("podcg", logs, resources=pod_limits))
    parent = (await rt.pod_sandbox_status(sid)).config.cgroup_parent
    cid = await rt.create_container(sid, container_config(
        "c", "sleep 600", resources=Resources(cpu_shares=256, cpu_quota=25_000,
                                              memory_limit=32 * MiB)), [layer])
    await rt.start_container(cid)
    pod = host_cgroup(parent)
    want = {"cpu.weight": str(runc_weight(614)), "cpu.max": "60000 100000",
            "memory.max": str(96 * MiB)}
    assert {name: (pod / name).read_text().strip() for name in want} == want
    assert {"cpu", "memory", "pids"} <= set((pod / "cgroup.subtree_control").read_text().split())
    assert (host_cgroup(parent, cid) / "cpu.max").read_text().strip() == "25000 100000"
    await rt.remove_pod_sandbox(sid)
    assert not pod.exists()
    # a BestEffort pod: its QoS cgroup weighs as little as the kernel allows
    be = sandbox_config("besteffort", logs, resources=Resources(cpu_shares=2))
    be = dataclasses.replace(be, cgroup_parent=f"kubepods/besteffort/pod{be.pod_uid}")
    sid = await rt.run_pod_sandbox(be)
    assert (host_cgroup("kubepods/besteffort") / "cpu.weight").read_text().strip() == "1"
    await rt.remove_pod_sandbox(sid)


async def test_a_container_without_a_memory_limit_gets_no_swap(node, layer):
    """Upstream's NoSwap on cgroup v2: memory.swap.max 0 also without a memory limit
    (with one, runc's swap = limit already gives 0)."""
    rt, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("noswap", logs))
    cid = await rt.create_container(sid, container_config("c", "sleep 600"), [layer])
    await rt.start_container(cid)
    assert await cat(rt, cid, "/sys/fs/cgroup/memory.max") == "max"
    assert await cat(rt, cid, "/sys/fs/cgroup/memory.swap.max") == "0"
