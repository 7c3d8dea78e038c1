"""The per-container monitor of the process runtime (what conmon is to the runc runtime).

One small process per started container, detached from the kubelet (own session,
double fork), so that the kubelet can stop, crash or upgrade while containers keep
running. It:

- starts the container's command (the process runtime has no OCI runtime, so conmon,
  which drives one, does not fit it);
- owns the container's stdout/stderr pipes and copies them into the CRI log format
  (`<RFC3339Nano> stdout F <line>`; P for pieces of lines longer than 16 KiB);
- waits for the exit and writes the exit record (exit code, finish time) atomically
  as JSON next to the container's state, then exits;
- on SIGUSR1 reopens the log path (the kubelet rotated the file: ReopenContainerLog).

Run as `python monitor.py <spec.json>`; it only imports the standard library so it
starts fast and does not depend on the kubelet's environment. The spec (written by the
runtime) says what to start; the first line on stdout is the start result (JSON) for
the runtime waiting on it, after which stdout is /dev/null.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

MAX_LOG_LINE = 16 * 1024          # as containerd's CRI logger: longer lines become P pieces
PR_SET_CHILD_SUBREAPER = 36
DRAIN_SECONDS = 2.0               # how long to keep reading pipes after the exit


def write_json_atomic(path: str, data: dict, durable: bool = True) -> None:
    """Whole or not at all (rename), and with `durable` on disk before it is visible."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(json.dumps(data))   # dumps: the C encoder (dump runs a Python one)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def cri_timestamp(now: float | None = None) -> str:
    """RFC 3339 with nanoseconds in UTC, as the CRI log format wants."""
    ns = time.time_ns() if now is None else int(now * 1e9)
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(secs, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


def proc_start_time(pid: int) -> int:
    """The process' start time in clock ticks (field 22 of /proc/pid/stat): a pid plus
    this identifies a process across pid reuse. 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    return int(data[data.rindex(b")") + 2:].split()[19])


class CRILog:
    """Splits a stream into lines and appends them to the log file in CRI format."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.pending: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}

    def feed(self, stream: str, data: bytes) -> None:
        buf = self.pending[stream]
        buf += data
        while True:
            nl = buf.find(b"\n", 0, MAX_LOG_LINE + 1)
            if nl >= 0:
                self._write(stream, "F", bytes(buf[:nl]))
                del buf[:nl + 1]
            elif len(buf) > MAX_LOG_LINE:   # a line too long for one entry
                self._write(stream, "P", bytes(buf[:MAX_LOG_LINE]))
                del buf[:MAX_LOG_LINE]
            else:
                break

    def reopen(self) -> None:
        """The kubelet rotated the file away (CRI ReopenContainerLog): start a new one."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        os.close(self.fd)
        self.fd = fd

    def flush(self, stream: str) -> None:
        """At EOF a last line without newline is still a full line (as containerd)."""
        buf = self.pending[stream]
        if buf:
            self._write(stream, "F", bytes(buf))
            buf.clear()

    def _write(self, stream: str, tag: str, line: bytes) -> None:
        record = f"{cri_timestamp()} {stream} {tag} ".encode() + line + b"\n"
        try:
            os.write(self.fd, record)
        except OSError:
            pass   # a full disk must not kill the container's monitor


class Monitor:
    def __init__(self, spec: dict):
        self.spec = spec
        self.pid = 0
        self.log = CRILog(spec["log_path"])
        self.sel = selectors.DefaultSelector()
        self.open_streams = 0

    # ----- start -----------------------------------------------------------------
    def start(self) -> None:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            self.pid = self._start_process(out_w, err_w)
        finally:
            os.close(out_w)
            os.close(err_w)
        for fd, name in ((out_r, "stdout"), (err_r, "stderr")):
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, name)
            self.open_streams += 1

    def _start_process(self, out_w: int, err_w: int) -> int:
        p = self.spec["process"]
        kw: dict = {}
        if p.get("uid") is not None and os.geteuid() == 0:
            kw = {"user": p["uid"], "group": p.get("gid", 0),
                  "extra_groups": p.get("groups") or []}
        try:
            proc = subprocess.Popen(p["args"], stdin=subprocess.DEVNULL, stdout=out_w,
                                    stderr=err_w, cwd=p.get("cwd") or None, env=p["env"],
                                    start_new_session=True, **kw)
        except OSError as e:
            raise StartError(f"starting {p['args'][0]!r}: {e.strerror or e}") from e
        self.proc = proc   # kept: reaped by our waitpid(-1) loop, never by Popen
        with open(self.spec["pid_file"], "w") as f:
            f.write(str(proc.pid))
        return proc.pid

    # ----- run -------------------------------------------------------------------
    def run(self, wake_fd: int) -> dict:
        """Copy output until the container's main process exits; return the record."""
        self.sel.register(wake_fd, selectors.EVENT_READ, "wake")
        status = self._reap()
        while status is None:
            for key, _ in self.sel.select(timeout=5.0):   # timeout: a lost SIGCHLD
                if key.data == "wake":
                    if signal.SIGUSR1 in _drain_fd(wake_fd):
                        self._reopen_log()
                else:
                    self._read(key.fd, key.data)
            status = self._reap()
        finished_at = time.time()
        self._drain_after_exit()
        if os.WIFSIGNALED(status):
            code = 128 + os.WTERMSIG(status)
        else:
            code = os.WEXITSTATUS(status)
        return {"pid": self.pid, "exit_code": code, "finished_at": finished_at}

    def _reap(self) -> int | None:
        """Reap every exited child (we are a subreaper); the main one's status or None."""
        found = None
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return found if found is not None else self._lost_child()
            if pid == 0:
                return found
            if pid == self.pid:
                found = status

    def _lost_child(self) -> int | None:
        # No children at all: the main process was reaped elsewhere (should not happen).
        return None if proc_start_time(self.pid) else 255 << 8

    def _read(self, fd: int, stream: str) -> bool:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self.sel.unregister(fd)
            os.close(fd)
            self.log.flush(stream)
            self.open_streams -= 1
            return False
        self.log.feed(stream, data)
        return True

    def _drain_after_exit(self) -> None:
        """Read what the container wrote before exiting; stop at EOF (its pid namespace
        is gone) or when a left-behind descendant goes quiet."""
        deadline = time.monotonic() + DRAIN_SECONDS
        while self.open_streams and time.monotonic() < deadline:
            events = [k for k, _ in self.sel.select(timeout=0.2) if k.data != "wake"]
            if not events:
                break
            for key in events:
                self._read(key.fd, key.data)
        for key in list(self.sel.get_map().values()):
            if key.data != "wake":
                self.log.flush(key.data)

    def _reopen_log(self) -> None:
        try:
            self.log.reopen()
        except OSError as e:   # keep writing to the old file rather than die
            print(f"reopening {self.log.path}: {e}", file=sys.stderr)


class StartError(Exception):
    pass


def _drain_fd(fd: int) -> set[int]:
    """Empty the signal wakeup pipe; the signal numbers that arrived."""
    seen: set[int] = set()
    try:
        while data := os.read(fd, 4096):
            seen.update(data)
    except OSError:
        pass
    return seen


def daemonize() -> None:
    """Double fork: the launcher returns at once, the monitor lives in its own session."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")


def main(argv: list[str]) -> int:
    with open(argv[1]) as f:
        spec = json.load(f)
    daemonize()
    # stderr → the monitor's own log, so tracebacks land somewhere.
    log_fd = os.open(spec["monitor_log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # Only the container's exit ends us. Handlers, not SIG_IGN: an ignored signal
    # would stay ignored in the container's process (and a shell could not trap it).
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)
    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
        fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGUSR1, lambda *_: None)   # reopen the log (see run())

    mon = Monitor(spec)
    try:
        mon.start()
    except (StartError, OSError, subprocess.SubprocessError, ValueError) as e:
        _report(json.dumps({"ok": False, "error": str(e)}))
        return 1
    started_at = time.time()
    write_json_atomic(spec["monitor_file"], {
        "monitor_pid": os.getpid(), "pid": mon.pid, "started_at": started_at,
        "pid_start_time": proc_start_time(mon.pid)})
    _report(json.dumps({"ok": True, "pid": mon.pid, "started_at": started_at}))
    record = mon.run(wake_r)
    write_json_atomic(spec["exit_file"], record)
    return 0


def _report(line: str) -> None:
    """The one line the runtime waits for; then stdout goes to /dev/null."""
    try:
        os.write(1, line.encode() + b"\n")
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 0)
    os.close(null)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
