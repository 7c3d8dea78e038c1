"""What the kubelet's streaming server (logs, exec, attach, port-forward) needs from a
runtime, and a host-process implementation of it.

The server (`kubelet/server.py`) speaks the wire protocols; a `StreamingProvider`
finds containers and starts processes in them. `HostProcessProvider` runs exec'd
commands on the host and forwards ports to 127.0.0.1: it is what the `process`
runtime offers (no isolation), and what the streaming tests drive. A runc runtime
provides its own (exec through `runc exec`, port-forward inside the pod's netns).
"""
from __future__ import annotations

import abc
import asyncio
import fcntl
import glob
import os
import re
import signal
import struct
import termios
from dataclasses import dataclass
from typing import Protocol

DEFAULT_LOG_ROOT = "/var/log/pods"


class ContainerNotFound(Exception):
    """No such pod or container on this node (the server answers 404)."""


@dataclass
class ContainerLogs:
    container_id: str
    log_path: str               # the running (or last) attempt's CRI log file
    previous_log_path: str = ""  # the attempt before it; "" when there was none


class StreamProcess(Protocol):
    """A started process with its stdio, as exec and attach hand it to the server."""

    async def write_stdin(self, data: bytes) -> None: ...
    async def close_stdin(self) -> None: ...
    async def read_stdout(self) -> bytes: ...   # b"" at EOF
    async def read_stderr(self) -> bytes: ...   # b"" at EOF (always, with a TTY)
    async def resize(self, width: int, height: int) -> None: ...
    async def wait(self) -> int: ...            # the exit code
    async def kill(self) -> None: ...


class StreamingProvider(abc.ABC):
    """The runtime side of the streaming server."""

    @abc.abstractmethod
    async def find_container(self, namespace: str, pod: str, container: str) -> ContainerLogs:
        """Raises ContainerNotFound."""

    async def container_running(self, container_id: str) -> bool:
        """Whether `logs -f` should keep waiting for more output."""
        return True

    @abc.abstractmethod
    async def exec_stream(self, container_id: str, cmd: list[str], tty: bool,
                          stdin: bool, size: tuple[int, int] | None = None) -> StreamProcess:
        """Start `cmd` in the container (on a terminal of `size` = (width, height) with
        tty). Raises FileNotFoundError/PermissionError when it cannot be started."""

    @abc.abstractmethod
    async def attach_stream(self, container_id: str, tty: bool, stdin: bool) -> StreamProcess:
        """The container's main process' output (and input, where the runtime keeps it)."""

    @abc.abstractmethod
    async def port_forward(self, namespace: str, pod: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to `port` of the pod's network."""


# --- processes ------------------------------------------------------------------------------

class PipeProcess:
    """A host process on pipes."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc

    @classmethod
    async def start(cls, cmd: list[str], stdin: bool, env: dict[str, str] | None = None,
                    cwd: str | None = None) -> "PipeProcess":
        p = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=cwd,
            start_new_session=True)
        return cls(p)

    async def write_stdin(self, data: bytes) -> None:
        if self.proc.stdin is None or self.proc.stdin.is_closing():
            return
        self.proc.stdin.write(data)
        try:
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the process stopped reading: as with a real pipe, input is dropped

    async def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()

    async def read_stdout(self) -> bytes:
        assert self.proc.stdout is not None
        return await self.proc.stdout.read(32768)

    async def read_stderr(self) -> bytes:
        assert self.proc.stderr is not None
        return await self.proc.stderr.read(32768)

    async def resize(self, width: int, height: int) -> None:
        pass  # no terminal

    async def wait(self) -> int:
        return _exit_code(await self.proc.wait())

    async def kill(self) -> None:
        if self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class PtyProcess:
    """A host process on a pseudo-terminal (exec -t): stdout and stderr are one stream."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int):
        self.proc, self.master = proc, master
        self._out: asyncio.Queue[bytes] = asyncio.Queue()
        asyncio.get_running_loop().add_reader(master, self._readable)

    @classmethod
    async def start(cls, cmd: list[str], env: dict[str, str] | None = None,
                    cwd: str | None = None, size: tuple[int, int] | None = None
                    ) -> "PtyProcess":
        master, slave = os.openpty()
        os.set_blocking(master, False)
        if size:  # before the start: the process sees its terminal's size from the outset
            _set_size(master, *size)
        try:
            p = await asyncio.create_subprocess_exec(
                *cmd, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                start_new_session=True, preexec_fn=_controlling_tty)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return cls(p, master)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 32768)
        except BlockingIOError:
            return
        except OSError:  # EIO: every slave fd closed (the process is gone)
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
        self._out.put_nowait(data)

    async def write_stdin(self, data: bytes) -> None:
        view = memoryview(data)
        for _ in range(10_000):  # bounded: a terminal that never drains is given up on
            if not view:
                return
            try:
                view = view[os.write(self.master, view):]
            except BlockingIOError:
                await asyncio.sleep(0.01)
            except OSError:
                return

    async def close_stdin(self) -> None:
        await self.write_stdin(b"\x04")  # end of input on a terminal is ^D

    async def read_stdout(self) -> bytes:
        data = await self._out.get()
        if not data:
            self._out.put_nowait(b"")  # stay at EOF for later readers
        return data

    async def read_stderr(self) -> bytes:
        return b""

    async def resize(self, width: int, height: int) -> None:
        _set_size(self.master, width, height)

    async def wait(self) -> int:
        code = _exit_code(await self.proc.wait())
        await asyncio.sleep(0)  # let the reader see EIO
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def __del__(self) -> None:
        try:
            asyncio.get_running_loop().remove_reader(self.master)
        except (RuntimeError, ValueError):
            pass
        try:
            os.close(self.master)
        except OSError:
            pass


def _set_size(fd: int, width: int, height: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def _controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _exit_code(returncode: int) -> int:
    """As a shell reports it: 128+N for a process killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


class LogAttachProcess:
    """Attach without the container's stdin: its output as it is logged from now on."""

    def __init__(self, log_path: str, running, container_id: str):
        self.log_path, self._running, self.container_id = log_path, running, container_id
        self._queues: dict[str, asyncio.Queue[bytes]] = {
            "stdout": asyncio.Queue(), "stderr": asyncio.Queue()}
        self._task = asyncio.create_task(self._follow())
        self._done = asyncio.Event()

    async def _follow(self) -> None:
        from .container_logs import LogOptions, follow_entries
        try:
            opts = LogOptions(follow=True, from_end=True)
            async for entry in follow_entries(self.log_path, opts,
                                              lambda: self._running(self.container_id)):
                self._queues[entry.stream].put_nowait(entry.content)
        finally:
            for q in self._queues.values():
                q.put_nowait(b"")
            self._done.set()

    async def write_stdin(self, data: bytes) -> None:
        pass

    async def close_stdin(self) -> None:
        pass

    async def read_stdout(self) -> bytes:
        return await self._queues["stdout"].get()

    async def read_stderr(self) -> bytes:
        return await self._queues["stderr"].get()

    async def resize(self, width: int, height: int) -> None:
        pass

    async def wait(self) -> int:
        await self._done.wait()
        return 0

    async def kill(self) -> None:
        self._task.cancel()


# --- the host-process provider --------------------------------------------------------------

class HostProcessProvider(StreamingProvider):
    """Containers are found by their CRI log directories under `log_root`
    (`<ns>_<pod>_<uid>/<container>/<attempt>.log`); exec runs on the host, port-forward
    connects to `host`:port. `running(container_id)` says whether a container still runs
    (default: its log directory exists)."""

    def __init__(self, log_root: str = DEFAULT_LOG_ROOT, host: str = "127.0.0.1",
                 env: dict[str, str] | None = None, running=None):
        self.log_root, self.host, self.env = log_root, host, env
        self._running = running

    async def find_container(self, namespace: str, pod: str, container: str) -> ContainerLogs:
        pattern = os.path.join(glob.escape(self.log_root),
                               glob.escape(f"{namespace}_{pod}_") + "*", glob.escape(container))
        dirs = sorted(glob.glob(pattern), key=os.path.getmtime)
        if not dirs:
            raise ContainerNotFound(f"container {container!r} of pod {namespace}/{pod} not found")
        attempts = _attempts(dirs[-1])
        if not attempts:
            raise ContainerNotFound(f"container {container!r} of pod {namespace}/{pod} "
                                    "has no log yet")
        current = os.path.join(dirs[-1], f"{attempts[-1]}.log")
        previous = os.path.join(dirs[-1], f"{attempts[-2]}.log") if len(attempts) > 1 else ""
        return ContainerLogs(current, current, previous)

    async def container_running(self, container_id: str) -> bool:
        if self._running is not None:
            return bool(self._running(container_id))
        return os.path.exists(container_id)

    async def exec_stream(self, container_id: str, cmd: list[str], tty: bool,
                          stdin: bool, size: tuple[int, int] | None = None) -> StreamProcess:
        if tty:
            return await PtyProcess.start(cmd, env=self.env, size=size)
        return await PipeProcess.start(cmd, stdin, env=self.env)

    async def attach_stream(self, container_id: str, tty: bool, stdin: bool) -> StreamProcess:
        return LogAttachProcess(container_id, self.container_running, container_id)

    async def port_forward(self, namespace: str, pod: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, port)


def _attempts(container_dir: str) -> list[int]:
    """Attempt numbers of the `<n>.log` files (rotated `<n>.log.<stamp>` ignored), sorted."""
    found = []
    for name in os.listdir(container_dir):
        m = re.fullmatch(r"(\d+)\.log", name)
        if m:
            found.append(int(m.group(1)))
    return sorted(found)
