"""The runc streaming provider against real containers: what the kubelet's streaming
server asks of it for `kubectl logs/exec/attach/port-forward`. Needs root and runc."""
from __future__ import annotations

import asyncio
import os
import shutil
import time

import pytest

from pybernetes.kubelet.runtime.runc import RuncRuntime
from pybernetes.kubelet.runtime_streaming import RuncProvider, provider_for
from pybernetes.kubelet.streaming import ContainerNotFound

from .runtime_helpers import busybox_layer, container_config, remove_everything, \
    sandbox_config, wait_log

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the runc runtime needs root"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed"),
    pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="busybox-static missing"),
]

# a web server on port 7070 of the pod's network namespace
SERVER = "mkdir /www; echo from the pod > /www/index.html; exec httpd -f -p 7070 -h /www"


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> str:
    return busybox_layer(tmp_path_factory.mktemp("layer") / "fs")


@pytest.fixture
async def pod(tmp_path, layer):
    """A running pod `web` (its own netns, loopback only) with one container `c`."""
    root, logs = tmp_path / "kubelet", tmp_path / "logs"
    rt = RuncRuntime(str(root))
    sid = await rt.run_pod_sandbox(sandbox_config("web", logs))
    cid = await rt.create_container(sid, container_config(
        "c", "echo started; " + SERVER), [layer])
    await rt.start_container(cid)
    try:
        yield rt, cid
    finally:
        assert not await remove_everything(rt, root)


async def collect(proc, stdin: bytes | None = None) -> tuple[bytes, bytes, int]:
    if stdin is not None:
        await proc.write_stdin(stdin)
        await proc.close_stdin()

    async def drain(read) -> bytes:
        out = b""
        while chunk := await read():
            out += chunk
        return out
    out, err = await asyncio.wait_for(asyncio.gather(drain(proc.read_stdout),
                                                     drain(proc.read_stderr)), 20)
    return out, err, await asyncio.wait_for(proc.wait(), 20)


async def test_find_container_and_logs(pod):
    rt, cid = pod
    provider = provider_for(rt)
    assert isinstance(provider, RuncProvider)
    ref = await provider.find_container("default", "web", "c")
    assert ref.container_id == cid and ref.previous_log_path == ""
    await wait_log(ref.log_path, b"started")
    assert await provider.container_running(cid)
    for ns, name, c in (("default", "web", "nope"), ("other", "web", "c"),
                        ("default", "nope", "c")):
        with pytest.raises(ContainerNotFound):
            await provider.find_container(ns, name, c)


async def test_exec_runs_in_the_container_with_stdin_and_exit_code(pod):
    rt, cid = pod
    provider = provider_for(rt)
    out, err, code = await collect(await provider.exec_stream(
        cid, ["sh", "-c", "hostname; echo oops >&2; exit 7"], tty=False, stdin=False))
    assert (out, err, code) == (b"web\n", b"oops\n", 7)
    out, _, code = await collect(await provider.exec_stream(
        cid, ["sh", "-c", "tr a-z A-Z"], tty=False, stdin=True), stdin=b"from stdin\n")
    assert (out, code) == (b"FROM STDIN\n", 0)


async def test_exec_with_a_terminal_of_the_clients_size(pod):
    rt, cid = pod
    # input first: runc sizes the container's terminal just after the start, so a
    # command that asks at once may still see 0x0 (so it is upstream; clients resize)
    proc = await provider_for(rt).exec_stream(
        cid, ["sh", "-c", "read x; stty size; read y; stty size; echo got $x $y; exit 3"],
        tty=True, stdin=True, size=(100, 30))
    seen = bytearray()

    async def until(text: bytes) -> None:
        deadline = time.monotonic() + 15
        while text not in seen and time.monotonic() < deadline:
            chunk = await asyncio.wait_for(proc.read_stdout(), 15)
            if not chunk:
                break
            seen.extend(chunk)
        assert text in seen, bytes(seen)
    await asyncio.sleep(0.3)
    await proc.write_stdin(b"a\r")
    await until(b"30 100")
    await proc.resize(120, 40)
    await asyncio.sleep(0.3)   # runc passes the size on when it sees SIGWINCH
    await proc.write_stdin(b"b\r")
    await until(b"got a b")
    assert await asyncio.wait_for(proc.wait(), 15) == 3
    assert b"40 120" in seen, bytes(seen)


async def test_killing_an_exec_ends_the_process_in_the_container(pod):
    rt, cid = pod
    proc = await provider_for(rt).exec_stream(cid, ["sleep", "1000"], tty=False, stdin=False)
    await asyncio.sleep(0.5)
    await proc.kill()
    assert await asyncio.wait_for(proc.wait(), 10) != 0
    res = await rt.exec_sync(cid, ["ps", "-o", "stat,args"], 10)
    alive = [line for line in res.stdout.decode().splitlines()
             if "sleep 1000" in line and not line.startswith("Z")]
    assert not alive, res.stdout


async def test_port_forward_reaches_the_pods_loopback(pod):
    rt, _ = pod
    provider = provider_for(rt)
    deadline = time.monotonic() + 15
    while True:
        try:
            reader, writer = await provider.port_forward("default", "web", 7070)
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            if answer:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the pod's server did not answer"
        await asyncio.sleep(0.2)
    assert answer.startswith(b"HTTP/1.") and answer.endswith(b"\r\n\r\nfrom the pod\n")
    with pytest.raises(OSError):   # the node's port 7070 is not the pod's
        await asyncio.open_connection("127.0.0.1", 7070)


async def test_attach_follows_the_containers_output(pod, layer):
    rt, cid = pod
    sid = (await rt.container_status(cid)).sandbox_id
    talker = await rt.create_container(sid, container_config(
        "talker", "sleep 1; for i in 1 2 3; do echo line $i; sleep 0.2; done"), [layer])
    await rt.start_container(talker)
    provider = provider_for(rt)
    ref = await provider.find_container("default", "web", "talker")
    out, _, code = await collect(await provider.attach_stream(ref.container_id, False, False))
    assert out == b"line 1\nline 2\nline 3\n" and code == 0


async def test_process_runtime_execs_on_the_host_with_the_containers_env(tmp_path):
    from pybernetes.kubelet.runtime.process import ProcessRuntime
    from pybernetes.kubelet.runtime_streaming import ProcessProvider
    rt = ProcessRuntime(str(tmp_path / "kubelet"))
    sid = await rt.run_pod_sandbox(sandbox_config("hostpod", tmp_path / "logs"))
    try:
        cid = await rt.create_container(sid, container_config(
            "c", "sleep 100", env=[("GREETING", "hello from the container")]), [])
        await rt.start_container(cid)
        provider = provider_for(rt)
        assert isinstance(provider, ProcessProvider)
        assert (await provider.find_container("default", "hostpod", "c")).container_id == cid
        out, _, code = await collect(await provider.exec_stream(
            cid, ["sh", "-c", "echo $GREETING; exit 4"], tty=False, stdin=False))
        assert (out, code) == (b"hello from the container\n", 4)
    finally:
        await rt.remove_pod_sandbox(sid)
