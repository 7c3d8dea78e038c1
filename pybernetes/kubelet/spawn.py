"""Short host commands (CNI plugins, iptables, unshare, runc) run from the kubelet's
event loop without stalling it.

The kubelet runs on uvloop, whose subprocesses are made with fork() and waited for,
on the loop thread, until the child has exec'd. For a 60 MiB kubelet on a busy
2-core node that stopped every pod's progress for tens of milliseconds per command:
100 spawns of /bin/true took 7-9 s of wall time with loop stalls of 0.5 s, against
0.1-1 s and stalls under 0.1 s this way. Here `subprocess.Popen` (which uses vfork
since CPython 3.10 when there is no preexec_fn, uid or gid change) runs on a small
pool of threads of its own, the whole exchange (stdin, stdout, stderr, exit) happens
there, and the loop only awaits the result.

A dedicated pool, not asyncio.to_thread's default one: a command may take seconds
(a CNI plugin waiting on a lock) and must neither wait behind nor hold up the
default pool's file work."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

MAX_PARALLEL = 32   # commands running at once; more wait for a thread

_pool: ThreadPoolExecutor | None = None


@dataclass
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes


class CommandTimeout(TimeoutError):
    """The command ran past its timeout; it (and its group, with new_session) was
    killed."""


async def run(argv: list[str], *, timeout: float, input: bytes | None = None,
              env: dict[str, str] | None = None, cwd: str | None = None,
              new_session: bool = False) -> Completed:
    """Run argv to its end; OSError when it cannot be started (not found, not
    executable), CommandTimeout when it outlives `timeout` seconds."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), _run, list(argv), timeout, input, env, cwd,
                                      new_session)


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="spawn")
    return _pool


def _run(argv: list[str], timeout: float, input: bytes | None, env: dict[str, str] | None,
         cwd: str | None, new_session: bool) -> Completed:
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                            start_new_session=new_session, close_fds=True)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc, new_session)
        raise CommandTimeout(f"{argv[0]}: timed out after {timeout:g}s") from None
    return Completed(proc.returncode, out, err)


def _kill(proc: subprocess.Popen, group: bool) -> None:
    """Kill and reap it; its pipes are closed unread (a child it left behind may hold
    them open for ever)."""
    try:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except ProcessLookupError:
        pass
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
