"""The process runtime: pods as plain host processes (no isolation), with the same
monitor, logs, exit records and restart behaviour as runc. Runs without root."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pybernetes.kubelet.runtime.base import ContainerRuntimeError, Security
from pybernetes.kubelet.runtime.process import ProcessRuntime

from .runtime_helpers import (
    container_config, log_entries, pid_running, processes_mentioning, sandbox_config,
    wait_log, wait_state,
)

pytestmark = pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")


@pytest.fixture
async def node(tmp_path):
    root = tmp_path / "kubelet"
    rt = ProcessRuntime(str(root))
    yield rt, root, tmp_path / "logs"
    rt = ProcessRuntime(str(root))
    for s in await rt.list_pod_sandboxes():
        await rt.remove_pod_sandbox(s.id)
    for c in await rt.list_containers():
        await rt.remove_container(c.id)


async def run_to_exit(rt, sid, cfg):
    cid = await rt.create_container(sid, cfg, [])
    await rt.start_container(cid)
    return cid, await wait_state(rt, cid, "exited")


async def test_logs_and_exit_codes(node):
    rt, _, logs = node
    assert (await rt.version()).startswith("process://")
    sid = await rt.run_pod_sandbox(sandbox_config("proc-0", logs))
    status = await rt.pod_sandbox_status(sid)
    assert (status.state, status.ip, status.netns_path) == ("ready", "", "")
    cfg = container_config("app", "echo out; echo err >&2; echo $GREETING; pwd; exit 5",
                           env=[("GREETING", "hi")], working_dir="/tmp")
    _, st = await run_to_exit(rt, sid, cfg)
    assert (st.exit_code, st.reason) == (5, "Error")
    entries = log_entries(st.log_path)
    assert ("stderr", "F", b"err") in entries
    assert [t for s, _, t in entries if s == "stdout"] == [b"out", b"hi", b"/tmp"]
    _, ok = await run_to_exit(rt, sid, container_config("ok", "exit 0"))
    assert (ok.exit_code, ok.reason) == (0, "Completed")


async def test_start_error(node):
    rt, _, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("broken", logs))
    cfg = container_config("bad", "")
    cfg.command = ["/no/such/binary"]
    cid = await rt.create_container(sid, cfg, [])
    with pytest.raises(ContainerRuntimeError) as err:
        await rt.start_container(cid)
    assert "/no/such/binary" in str(err.value)
    st = await rt.container_status(cid)
    assert (st.state, st.exit_code, st.reason) == ("exited", 128, "StartError")


@pytest.mark.skipif(os.geteuid() != 0, reason="runAsUser needs root")
async def test_run_as_user(node):
    rt, _, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("user", logs))
    cfg = container_config("u", "id -u; id -g", security=Security(run_as_user=1000,
                                                                   run_as_group=1000))
    _, st = await run_to_exit(rt, sid, cfg)
    assert [t for _, _, t in log_entries(st.log_path)] == [b"1000", b"1000"]


async def test_stop_sigterm_then_sigkill_and_exec(node):
    rt, _, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("stopper", logs))
    script = "trap 'echo got-TERM' TERM; echo ready; while true; do sleep 0.1; done"
    cid = await rt.create_container(sid, container_config("c", script,
                                                          env=[("MARK", "m1")]), [])
    await rt.start_container(cid)
    st = await rt.container_status(cid)
    assert b"ready" in await wait_log(st.log_path, b"ready")
    res = await rt.exec_sync(cid, ["sh", "-c", "echo $MARK; exit 2"], 10)
    assert (res.exit_code, res.stdout) == (2, b"m1\n")
    assert (await rt.exec_sync(cid, ["/no/such"], 10)).exit_code == 127
    with pytest.raises(TimeoutError):
        await rt.exec_sync(cid, ["sleep", "30"], 0.3)
    await rt.stop_container(cid, 1)
    st = await rt.container_status(cid)
    assert (st.state, st.exit_code) == ("exited", 137)
    assert ("stdout", "F", b"got-TERM") in log_entries(st.log_path)


async def test_restart_finds_running_and_remove_cleans(node, tmp_path):
    rt, root, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("survivor", logs))
    flag = tmp_path / "stop-now"
    script = f"echo started; while [ ! -f {flag} ]; do sleep 0.1; done; exit 7"
    cid = await rt.create_container(sid, container_config("c", script), [])
    await rt.start_container(cid)
    before = await wait_state(rt, cid, "running")
    del rt

    rt2 = ProcessRuntime(str(root))
    [found] = await rt2.list_containers(sid)
    assert (found.id, found.state, found.pid) == (cid, "running", before.pid)
    flag.touch()
    st = await wait_state(rt2, cid, "exited")
    assert st.exit_code == 7

    other = await rt2.create_container(sid, container_config("sleeper", "sleep 60"), [])
    await rt2.start_container(other)
    sleeper = await wait_state(rt2, other, "running")
    await rt2.remove_pod_sandbox(sid)
    assert await rt2.list_pod_sandboxes() == [] and await rt2.list_containers() == []
    assert not pid_running(sleeper.pid)
    assert not processes_mentioning(cid) and not processes_mentioning(other)
    assert not list(Path(root).glob("process/*/*"))


async def test_log_reopen_after_rotation(node, tmp_path):
    rt, _, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("rotating", logs))
    flag = tmp_path / "second"
    script = f"echo first; while [ ! -f {flag} ]; do sleep 0.1; done; echo second"
    cid = await rt.create_container(sid, container_config("c", script), [])
    await rt.start_container(cid)
    st = await rt.container_status(cid)
    await wait_log(st.log_path, b"first")
    os.rename(st.log_path, st.log_path + ".1")   # what the kubelet's log rotation does
    await rt.reopen_container_log(cid)
    flag.touch()
    st = await wait_state(rt, cid, "exited")
    assert [t for _, _, t in log_entries(st.log_path + ".1")] == [b"first"]
    assert [t for _, _, t in log_entries(st.log_path)] == [b"second"]
