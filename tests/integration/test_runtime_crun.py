"""The runc runtime's handlers: a sandbox created with runtime handler "crun" runs its
containers with crun (state under its own root, conmon driving crun), exec and stop
go through crun too, removal leaves nothing; an unknown handler is refused before
anything is made; a record from before handlers existed still means runc. Needs root,
runc, crun and conmon."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pybernetes.kubelet.runtime.base import ContainerRuntimeError, Resources
from pybernetes.kubelet.runtime.monitored import write_json
from pybernetes.kubelet.runtime.runc import RuncRuntime, cgroup_dirs, crun_needs_v1_view

from .runtime_helpers import busybox_layer, container_config, remove_everything, \
    sandbox_config, wait_log, wait_state

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the runc runtime needs root"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed"),
    pytest.mark.skipif(shutil.which("crun") is None, reason="crun is not installed"),
    pytest.mark.skipif(shutil.which("conmon") is None, reason="conmon is not installed"),
    pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="busybox-static missing"),
]

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> str:
    return busybox_layer(tmp_path_factory.mktemp("layer") / "fs")


@pytest.fixture
async def node(tmp_path):
    root = tmp_path / "kubelet"
    rt = RuncRuntime(str(root))
    yield rt, root, tmp_path / "logs"
    assert not await remove_everything(RuncRuntime(str(root)), root)


def crun_list(state: Path) -> list[dict]:
    out = subprocess.run(["crun", "--root", str(state), "list", "--format", "json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout or "[]") or []


async def test_handlers_listed(node) -> None:
    rt, _, _ = node
    assert rt.runtime_handlers() == ["", "crun", "runc"]


async def test_crun_sandbox_runs_its_containers_with_crun(node, layer) -> None:
    rt, root, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("crun-pod", logs, runtime_handler="crun"))
    cfg = container_config("app", "echo hello; sleep 300",
                           resources=Resources(memory_limit=64 * MiB, cpu_shares=512))
    cid = await rt.create_container(sid, cfg, [layer])
    await rt.start_container(cid)
    st = await wait_state(rt, cid, "running")
    # crun applied the limits (v1 files here; the v2 ones where cgroup2 is all there is)
    rec = json.loads((root / "runc" / "containers" / cid / "container.json").read_text())
    mem = [d for d in cgroup_dirs(rec["cgroups_path"]) if "/memory/" in d]
    if mem:
        assert Path(mem[0], "memory.limit_in_bytes").read_text().strip() == str(64 * MiB)
    else:
        assert Path("/sys/fs/cgroup", rec["cgroups_path"].lstrip("/"),
                    "memory.max").read_text().strip() == str(64 * MiB)
    assert st.state == "running"
    log = await wait_log(st.log_path, b"hello")
    assert b"hello" in log
    state = root / "runc" / "state-crun"
    assert [c["id"] for c in crun_list(state)] == [cid]
    assert not (root / "runc" / "state" / cid).exists()   # runc does not know it
    rt = RuncRuntime(str(root))   # a restarted kubelet drives it with crun still
    res = await rt.exec_sync(cid, ["sh", "-c", "echo from-exec; exit 3"], 10)
    assert (res.exit_code, res.stdout) == (3, b"from-exec\n")
    # conmon, the container's parent, drives crun
    with open(f"/proc/{st.pid}/stat") as f:
        conmon_pid = int(f.read().rsplit(")", 1)[1].split()[1])
    with open(f"/proc/{conmon_pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    runtime = argv[argv.index(b"-r") + 1].decode()
    if crun_needs_v1_view():   # a hybrid host: crun creates where cgroup2 is not mounted
        assert runtime == str(root / "runc" / "crun-v1-create")
        assert shutil.which("crun") in Path(runtime).read_text()
    else:
        assert runtime == shutil.which("crun")
    await rt.stop_container(cid, 5)
    assert (await rt.container_status(cid)).state == "exited"
    cgroups = (await rt.container_status(cid)).id
    await rt.remove_pod_sandbox(sid)
    assert crun_list(state) == []
    assert not any(os.path.exists(d) for d in cgroup_dirs(f"pybernetes/{cgroups}"))


async def test_unknown_handler_is_refused(node) -> None:
    rt, root, logs = node
    with pytest.raises(ContainerRuntimeError) as e:
        await rt.run_pod_sandbox(sandbox_config("odd", logs, runtime_handler="kata"))
    assert str(e.value) == 'RuntimeHandler "kata" not supported'
    assert e.value.reason == "CreatePodSandboxError"
    assert await rt.list_pod_sandboxes() == []
    assert list((root / "runc" / "sandboxes").iterdir()) == []


async def test_records_without_a_handler_mean_runc(node, layer) -> None:
    """A container made before handlers existed (no "handler" in its record) is still
    driven with runc after the kubelet restarts."""
    rt, root, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("old", logs))
    cid = await rt.create_container(sid, container_config("app", "sleep 300"), [layer])
    await rt.start_container(cid)
    assert (await wait_state(rt, cid, "running")).state == "running"
    rec = json.loads((root / "runc" / "containers" / cid / "container.json").read_text())
    assert rec["handler"] == "runc"
    del rec["handler"]
    write_json(root / "runc" / "containers" / cid / "container.json", rec)
    rt = RuncRuntime(str(root))   # "restarted"
    assert (root / "runc" / "state" / cid).is_dir()
    res = await rt.exec_sync(cid, ["echo", "ok"], 10)
    assert res.stdout == b"ok\n"
    await rt.remove_pod_sandbox(sid)
    assert not (root / "runc" / "state" / cid).exists()
