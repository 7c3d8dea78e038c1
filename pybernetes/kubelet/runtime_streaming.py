"""The streaming server's providers for the real kubelet's runtimes (see streaming.py).

Containers are found through the runtime (its records carry the pod's namespace, name
and the container's name and attempt), so logs, exec and `logs -f` follow the
container the kubelet runs, and `--previous` is the attempt before it.

runc:
- exec is `runc exec` with runc's `--root`: the command runs in the container's
  namespaces, cgroup, user, env and capabilities. Without a TTY its stdio are our
  pipes. With one, runc is started on a pseudo-terminal of ours (its controlling
  terminal): runc makes the container's terminal, copies between the two, and on
  SIGWINCH (sent by the kernel when we resize ours) resizes the container's. This
  keeps runc in the foreground, so its exit status is the command's, which the
  `--console-socket` route (runc detached, the process orphaned) would lose.
- attach is the container's output as its monitor logs it; the monitor keeps no
  stdin, so input sent to attach is dropped (containers here never have stdin open).
- port-forward connects to 127.0.0.1:port inside the pod's network namespace, as
  upstream's runtimes do (a pod on the node's network: the node's 127.0.0.1).

process: containers are host processes, so exec runs on the host with the
container's env and cwd, and port-forward reaches the host's 127.0.0.1.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from pathlib import Path

from pybernetes.kubelet.runtime.base import ContainerStatus, Runtime
from pybernetes.kubelet.streaming import (
    ContainerLogs, ContainerNotFound, LogAttachProcess, PipeProcess, PtyProcess,
    StreamingProvider, StreamProcess,
)

PID_FILE_WAIT = 2.0   # seconds a kill waits for runc to write the exec'd process' pid


class RuntimeProvider(StreamingProvider):
    """What both runtimes share: finding containers, whether they run, attach."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def _attempts(self, namespace: str, pod: str, container: str
                        ) -> list[ContainerStatus]:
        # by the sandbox's pod: containers the kubelet made also carry it in labels,
        # but the sandbox is what every container of the runtime has
        pods = {s.id for s in await self.runtime.list_pod_sandboxes()
                if s.config is not None and s.config.namespace == namespace
                and s.config.name == pod}
        found = [c for c in await self.runtime.list_containers()
                 if c.sandbox_id in pods and c.name == container]
        return sorted(found, key=lambda c: (c.attempt, c.created_at))

    async def find_container(self, namespace: str, pod: str, container: str) -> ContainerLogs:
        attempts = await self._attempts(namespace, pod, container)
        if not attempts:
            raise ContainerNotFound(f"container {container!r} of pod {namespace}/{pod} "
                                    "not found")
        current = attempts[-1]
        previous = attempts[-2].log_path if len(attempts) > 1 else \
            _previous_log_file(current.log_path)
        return ContainerLogs(current.id, current.log_path,
                             previous if previous and os.path.exists(previous) else "")

    async def container_running(self, container_id: str) -> bool:
        try:
            return (await self.runtime.container_status(container_id)).state in (
                "running", "created")
        except (KeyError, OSError):
            return False

    async def _running(self, container_id: str) -> ContainerStatus:
        try:
            st = await self.runtime.container_status(container_id)
        except KeyError:
            raise ContainerNotFound(f"container {container_id} not found") from None
        if st.state != "running":
            raise ContainerNotFound(f"container {container_id} is not running")
        return st

    async def attach_stream(self, container_id: str, tty: bool, stdin: bool) -> StreamProcess:
        st = await self._running(container_id)
        return LogAttachProcess(st.log_path, self.container_running, container_id)


def _previous_log_file(log_path: str) -> str:
    """`<n-1>.log` beside `<n>.log`: the last attempt's log outlives its container."""
    m = re.fullmatch(r"(\d+)\.log", os.path.basename(log_path))
    if not m or int(m.group(1)) == 0:
        return ""
    return os.path.join(os.path.dirname(log_path), f"{int(m.group(1)) - 1}.log")


class RuncProvider(RuntimeProvider):
    """exec through `runc exec`, port-forward inside the pod's network namespace
    (`runtime` is a RuncRuntime: its runc binary, state root and container dirs)."""

    async def exec_stream(self, container_id: str, cmd: list[str], tty: bool,
                          stdin: bool, size: tuple[int, int] | None = None) -> StreamProcess:
        await self._running(container_id)
        rt = self.runtime
        pid_file = Path(rt._cdir(container_id)) / f"exec-{os.urandom(6).hex()}.pid"
        argv = [rt.runc, "--root", str(rt.state_root), "exec", "--pid-file", str(pid_file)]
        if tty:
            proc: StreamProcess = await PtyProcess.start(
                argv + ["--tty", container_id, *cmd], size=size)
        else:
            proc = await PipeProcess.start(argv + [container_id, *cmd], stdin)
        return RuncExec(proc, pid_file)

    async def port_forward(self, namespace: str, pod: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        netns_path = await self._netns(namespace, pod)
        if not netns_path:   # hostNetwork: the node's own loopback
            return await asyncio.open_connection("127.0.0.1", port)
        from pybernetes.kubelet.network.netns import entered
        with entered(netns_path):   # the socket belongs to the netns it is made in
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(
                sock, ("127.0.0.1", port)), 10)
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock)

    async def _netns(self, namespace: str, pod: str) -> str:
        """The pod's (newest ready) sandbox's netns path; "" for hostNetwork."""
        sandboxes = [s for s in await self.runtime.list_pod_sandboxes()
                     if s.config is not None and s.config.namespace == namespace
                     and s.config.name == pod and s.state == "ready"]
        if not sandboxes:
            raise ContainerNotFound(f"pod {namespace}/{pod} has no running sandbox")
        sb = max(sandboxes, key=lambda s: s.created_at)
        return "" if sb.config.host_network else sb.netns_path


class RuncExec:
    """A `runc exec` session; killing it kills the exec'd process too (runc's own
    death does not end a process already inside the container)."""

    def __init__(self, proc: StreamProcess, pid_file: Path):
        self.proc, self.pid_file = proc, pid_file

    async def write_stdin(self, data: bytes) -> None:
        await self.proc.write_stdin(data)

    async def close_stdin(self) -> None:
        await self.proc.close_stdin()

    async def read_stdout(self) -> bytes:
        return await self.proc.read_stdout()

    async def read_stderr(self) -> bytes:
        return await self.proc.read_stderr()

    async def resize(self, width: int, height: int) -> None:
        await self.proc.resize(width, height)

    async def wait(self) -> int:
        try:
            return await self.proc.wait()
        finally:
            self.pid_file.unlink(missing_ok=True)

    async def kill(self) -> None:
        for _ in range(int(PID_FILE_WAIT / 0.05)):   # bounded: runc may not have written it
            try:
                pid = int(self.pid_file.read_text().strip())
            except (OSError, ValueError):
                await asyncio.sleep(0.05)
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        await self.proc.kill()


class ProcessProvider(RuntimeProvider):
    """For the process runtime: exec on the host with the container's env and cwd."""

    async def exec_stream(self, container_id: str, cmd: list[str], tty: bool,
                          stdin: bool, size: tuple[int, int] | None = None) -> StreamProcess:
        await self._running(container_id)
        proc = self.runtime._load_container(container_id).get("process") or {}
        env, cwd = proc.get("env"), proc.get("cwd") or None
        if tty:
            return await PtyProcess.start(cmd, env=env, cwd=cwd, size=size)
        return await PipeProcess.start(cmd, stdin, env=env, cwd=cwd)

    async def port_forward(self, namespace: str, pod: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", port)


def provider_for(runtime: Runtime) -> StreamingProvider:
    if getattr(runtime, "name", "") == "runc":
        return RuncProvider(runtime)
    return ProcessProvider(runtime)
