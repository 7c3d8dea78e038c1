"""Keep a set of child processes running: tee their output, restart them, stop them all.

Generic on purpose: `pybernetes server` hands it one Component per process it
wants (apiserver today; controller-manager, scheduler, kubelet... as they come).
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger("pybernetes.supervisor")

Echo = Callable[[str, str], None]  # (component name, one output line)
Report = Callable[[str], None]  # one line about what the supervisor did


@dataclass
class Component:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to the supervisor's environment


@dataclass
class _Child:
    component: Component
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0


def echo_to_stderr(name: str, line: str) -> None:
    sys.stderr.write(f"[{name}] {line}\n")  # looked up per call: rich may swap sys.stderr
    sys.stderr.flush()


class Supervisor:
    def __init__(self, components: list[Component], log_dir: str, echo: Echo = echo_to_stderr,
                 report: Report = log.info, grace: float = 10.0, backoff_initial: float = 1.0,
                 backoff_max: float = 30.0, stable_after: float = 60.0,
                 max_log_bytes: int = 50 << 20) -> None:
        self._children = {c.name: _Child(c) for c in components}
        self._log_dir = log_dir
        self._echo, self._report = echo, report
        self._grace = grace
        self._backoff = (backoff_initial, backoff_max)
        self._stable_after = stable_after  # a child that ran this long restarts without delay
        self._max_log_bytes = max_log_bytes  # checked when a child (re)starts
        self._stopping = False
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        os.makedirs(self._log_dir, exist_ok=True)
        for child in self._children.values():
            self._tasks.append(asyncio.create_task(self._keep_running(child)))

    def pids(self) -> dict[str, int]:
        """Live child pids by component name."""
        return {n: c.proc.pid for n, c in self._children.items()
                if c.proc is not None and c.proc.returncode is None}

    def restarts(self, name: str) -> int:
        return self._children[name].restarts

    async def stop(self) -> None:
        """SIGTERM every child, SIGKILL (their whole process group) what is left after grace."""
        self._stopping = True
        self._wake.set()
        for child in self._children.values():
            _signal(child.proc, signal.SIGTERM)
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=self._grace)
        for child in self._children.values():
            if child.proc is not None and child.proc.returncode is None:
                self._report(f"{child.component.name} did not stop within {self._grace:g}s; "
                             "killing it")
                _kill_group(child.proc)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _keep_running(self, child: _Child) -> None:
        name = child.component.name
        delay = self._backoff[0]
        loop = asyncio.get_running_loop()
        while not self._stopping:
            started = loop.time()
            code = await self._run_once(child)
            if self._stopping:
                break
            ran = loop.time() - started
            if ran >= self._stable_after:
                delay = self._backoff[0]
            child.restarts += 1
            self._report(f"{name} exited with code {code} after {ran:.1f}s; "
                         f"restarting in {delay:g}s (restart #{child.restarts})")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, self._backoff[1])

    async def _run_once(self, child: _Child) -> int | None:
        """Start the child, tee its output until it exits; its exit code (None: did not start)."""
        comp = child.component
        env = {**os.environ, **comp.env, "PYBERNETES_SUPERVISOR_PID": str(os.getpid()),
               "PYTHONUNBUFFERED": "1"}
        log_path = os.path.join(self._log_dir, f"{comp.name}.log")
        _rotate(log_path, self._max_log_bytes)
        with open(log_path, "ab", buffering=0) as log_file:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *comp.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True)
            except OSError as e:
                self._report(f"{comp.name} could not start: {e}")
                return None
            child.proc = proc
            if self._stopping:  # stop() ran while we were spawning
                _signal(proc, signal.SIGTERM)
            pump = asyncio.create_task(self._pump(comp.name, proc.stdout, log_file))
            code = await proc.wait()
            # a grandchild may hold the pipe open: do not wait for its EOF forever
            done, _ = await asyncio.wait([pump], timeout=2.0)
            if not done:
                pump.cancel()
            return code

    async def _pump(self, name: str, stream: asyncio.StreamReader | None, log_file) -> None:
        if stream is None:
            return
        partial = b""
        while chunk := await stream.read(65536):
            log_file.write(chunk)
            *lines, partial = (partial + chunk).split(b"\n")
            for line in lines:
                self._echo(name, line.decode(errors="replace"))
        if partial:
            self._echo(name, partial.decode(errors="replace"))


def _signal(proc: asyncio.subprocess.Process | None, sig: int) -> None:
    if proc is not None and proc.returncode is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """The child leads its own session (start_new_session), so its pid is its group id."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        _signal(proc, signal.SIGKILL)


def _rotate(path: str, max_bytes: int) -> None:
    """Keep one previous log (NAME.log.1) once NAME.log has grown past max_bytes."""
    try:
        if os.path.getsize(path) > max_bytes:
            os.replace(path, f"{path}.1")
    except FileNotFoundError:
        pass
