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
- attach goes through conmon's attach socket (a SOCK_SEQPACKET socket in the
  container's bundle): each message from conmon is one byte naming the stream (2
  stdout, 3 stderr) and the data; what we send is the container's stdin (when the
  pod spec has `stdin: true`; conmon drops it otherwise), and a half-close ends its
  input (with `stdinOnce`; without it the container's stdin stays open for the next
  attach). A TTY container's terminal is resized through conmon's control fifo.
  Containers started before conmon (the Python monitor) are attached to their log.
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

from pybernetes.kubelet.runtime.base import ContainerRuntimeError, ContainerStatus, Runtime
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
    """exec through `runc exec` (or the container's handler's OCI runtime), port-forward
    inside the pod's network namespace (`runtime` is a RuncRuntime: its OCI runtime
    command, container dirs)."""

    async def exec_stream(self, container_id: str, cmd: list[str], tty: bool,
                          stdin: bool, size: tuple[int, int] | None = None) -> StreamProcess:
        await self._running(container_id)
        rt = self.runtime
        pid_file = Path(rt._cdir(container_id)) / f"exec-{os.urandom(6).hex()}.pid"
        argv = rt.oci_command(container_id) + ["exec", "--pid-file", str(pid_file)]
        if tty:
            proc: StreamProcess = await PtyProcess.start(
                argv + ["--tty", container_id, *cmd], size=size)
        else:
            proc = await PipeProcess.start(argv + [container_id, *cmd], stdin)
        return RuncExec(proc, pid_file)

    async def attach_stream(self, container_id: str, tty: bool, stdin: bool) -> StreamProcess:
        st = await self._running(container_id)
        path = self.runtime.attach_socket(container_id)
        if not os.path.exists(path):   # started under the old Python monitor
            return LogAttachProcess(st.log_path, self.container_running, container_id)
        try:
            sock = _connect_seqpacket(path)
        except OSError as e:   # conmon went away with the container just now
            raise ContainerNotFound(f"container {container_id} is not running ({e})") from e
        return ConmonAttach(sock, self.runtime, container_id)

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


ATTACH_STDOUT, ATTACH_STDERR = 2, 3   # conmon's stream bytes
ATTACH_CHUNK = 8192                   # conmon reads at most 32 KiB per message


def _connect_seqpacket(path: str) -> socket.socket:
    """Connect to a socket whose path may be longer than sun_path: through an O_PATH
    fd of its directory (as conmon binds it)."""
    dirfd = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.connect(f"/proc/self/fd/{dirfd}/{os.path.basename(path)}")
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(dirfd)
    return sock


class ConmonAttach:
    """One attach session on conmon's socket. Ends (wait() returns 0) when conmon closes
    it, i.e. when the container exits; kill() only detaches: the container runs on."""

    def __init__(self, sock: socket.socket, runtime, container_id: str):
        self.sock, self.runtime, self.container_id = sock, runtime, container_id
        self._queues: dict[int, asyncio.Queue[bytes]] = {
            ATTACH_STDOUT: asyncio.Queue(), ATTACH_STDERR: asyncio.Queue()}
        self._done = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await loop.sock_recv(self.sock, 65536):
                q = self._queues.get(data[0])
                if q is not None and len(data) > 1:
                    q.put_nowait(data[1:])
        except OSError:
            pass
        finally:
            for q in self._queues.values():
                q.put_nowait(b"")
            self._done.set()

    async def write_stdin(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            for i in range(0, len(data), ATTACH_CHUNK):
                await loop.sock_sendall(self.sock, data[i:i + ATTACH_CHUNK])
        except OSError:
            pass   # conmon is gone (the container exited): input is dropped

    async def close_stdin(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    async def read_stdout(self) -> bytes:
        return await self._queues[ATTACH_STDOUT].get()

    async def read_stderr(self) -> bytes:
        return await self._queues[ATTACH_STDERR].get()

    async def resize(self, width: int, height: int) -> None:
        try:
            self.runtime.resize_terminal(self.container_id, width, height)
        except ContainerRuntimeError:
            pass   # conmon is gone with the container; the session ends by itself

    async def wait(self) -> int:
        await self._done.wait()
        return 0

    async def kill(self) -> None:
        self._task.cancel()
        self.sock.close()


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
