"""What the runc and process runtimes share: state on disk and per-container monitors.

Layout under `<root>/<runtime name>/`:

    sandboxes/<id>/sandbox.json          config, state, IPs, namespace paths
    containers/<id>/container.json       config, sandbox, log path, start time
    containers/<id>/monitor.json         the monitor's and the process' pids, start time
    containers/<id>/exit.json            exit code, finish time, OOM kill

Every file is written atomically (rename), so a kubelet restarting at any moment
reads either the old or the new state; nothing is kept only in memory.

The runtime also keeps an index of those records in memory (loaded from disk when it
is made, updated by its own writes), so listing does not read every container's files:
a record only changes through this runtime, and a running container's state only
changes when its exit is recorded (or its monitor dies), which is all a listing checks.
The files stay the truth: a new runtime over the same root (the kubelet restarted)
finds everything again.
"""
from __future__ import annotations

import asyncio
import copy
import json
import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

from pybernetes.kubelet.runtime import monitor as monitor_mod
from pybernetes.kubelet.runtime.base import (
    ContainerConfig, ContainerRuntimeError, ContainerStatus, DNSConfig, Mount, PortMapping,
    Resources, Runtime, SandboxConfig, SandboxStatus, Security, handler_not_supported,
)

MONITOR_START_TIMEOUT = 60.0
POLL = 0.05
ALIVE_RECHECK = 2.0


def new_id() -> str:
    return secrets.token_hex(32)


def write_json(path: Path, data: dict) -> None:
    """Atomic but not fsynced: the records only have to outlive the kubelet process (a
    machine that loses power loses its containers too, and a record that did not reach
    the disk is a container found exited), and an fsync here blocked the event loop for
    every pod in a burst."""
    monitor_mod.write_json_atomic(str(path), data, durable=False)


def read_json(path: Path) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError:
        return None   # a torn write cannot happen (atomic), but a hand-edited file can


def sandbox_config_from(data: dict) -> SandboxConfig:
    data = dict(data)
    data["dns"] = DNSConfig(**data.get("dns") or {})
    data["ports"] = [PortMapping(**p) for p in data.get("ports") or []]
    data["extra_hosts"] = [(ip, list(names)) for ip, names in data.get("extra_hosts") or []]
    data["resources"] = Resources(**data["resources"]) if data.get("resources") else None
    return SandboxConfig(**data)


def container_config_from(data: dict) -> ContainerConfig:
    data = dict(data)
    data["mounts"] = [Mount(**m) for m in data.get("mounts") or []]
    data["resources"] = Resources(**data.get("resources") or {})
    data["security"] = Security(**data.get("security") or {})
    data["env"] = [(k, v) for k, v in data.get("env") or []]
    return ContainerConfig(**data)


def pid_alive(pid: int, start_time: int = 0) -> bool:
    """Alive (not a zombie) and, when start_time is known, still the same process, not
    a reused pid. One read of /proc/<pid>/stat."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] == b"Z":
        return False
    return not start_time or int(fields[19]) == start_time


class MonitoredRuntime(Runtime):
    """Sandboxes and containers as directories; one monitor process per started container.
    Subclasses provide isolation (or not): sandbox setup/teardown, container
    preparation, the monitor spec, signalling, exec."""

    def __init__(self, root: str):
        self.root = Path(root)
        self.dir = self.root / self.name
        self.sandboxes_dir = self.dir / "sandboxes"
        self.containers_dir = self.dir / "containers"
        for d in (self.sandboxes_dir, self.containers_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._sandboxes: dict[str, dict] = {}             # id -> sandbox.json
        self._sandbox_statuses: dict[str, SandboxStatus] = {}
        self._containers: dict[str, dict] = {}            # id -> container.json
        self._monitors: dict[str, dict] = {}              # id -> monitor.json (never changes)
        self._exits: dict[str, dict] = {}                 # id -> exit record (final)
        self._alive_at: dict[str, float] = {}             # id -> when /proc said it runs
        self._starting: set[str] = set()                  # starts under way in this process
        self._cdirs: dict[str, Path] = {}
        self._load_index()

    def _load_index(self) -> None:
        for d in sorted(self.sandboxes_dir.iterdir()):
            rec = read_json(d / "sandbox.json")
            if rec is not None and rec.get("id") == d.name:
                self._sandboxes[d.name] = rec
        for d in sorted(self.containers_dir.iterdir()):
            rec = read_json(d / "container.json")
            if rec is not None and rec.get("id") == d.name:
                self._containers[d.name] = rec

    # ----- hooks -------------------------------------------------------------------
    def handler_problem(self, handler: str) -> str:
        """Why a sandbox cannot have this runtime handler ("" when it can)."""
        return "" if handler in self.runtime_handlers() else handler_not_supported(handler)

    async def _setup_sandbox(self, sid: str, cfg: SandboxConfig, rec: dict) -> None:
        raise NotImplementedError

    async def _teardown_sandbox_network(self, rec: dict) -> None:
        raise NotImplementedError

    async def _release_sandbox(self, rec: dict) -> None:
        raise NotImplementedError

    async def _prepare_container(self, cid: str, sandbox: dict, cfg: ContainerConfig,
                                 layers: list[str], rec: dict) -> None:
        raise NotImplementedError

    def _monitor_spec(self, rec: dict) -> dict:
        raise NotImplementedError

    def _collect_exit(self, rec: dict) -> dict | None:
        """The container's exit record once there is one (exit.json by default; a
        runtime whose monitor records exits elsewhere turns that into exit.json)."""
        return read_json(self._cdir(rec["id"]) / "exit.json")

    async def _signal(self, rec: dict, sig: int, all_processes: bool = False) -> None:
        raise NotImplementedError

    async def _release_container(self, rec: dict) -> None:
        raise NotImplementedError

    # ----- paths and records -------------------------------------------------------
    def _sdir(self, sid: str) -> Path:
        return self.sandboxes_dir / _safe_id(sid)

    def _cdir(self, cid: str) -> Path:
        path = self._cdirs.get(cid)
        if path is None:
            path = self._cdirs[cid] = self.containers_dir / _safe_id(cid)
        return path

    def _load_sandbox(self, sid: str) -> dict:
        """The indexed record (KeyError when unknown); change it only through _save."""
        return self._sandboxes[_safe_id(sid)]

    def _save_sandbox(self, rec: dict) -> None:
        write_json(self._sdir(rec["id"]) / "sandbox.json", rec)
        self._sandboxes[rec["id"]] = rec
        self._sandbox_statuses.pop(rec["id"], None)

    def _load_container(self, cid: str) -> dict:
        """The indexed record (KeyError when unknown); change it only through _save."""
        return self._containers[_safe_id(cid)]

    def _save_container(self, rec: dict) -> None:
        write_json(self._cdir(rec["id"]) / "container.json", rec)
        self._containers[rec["id"]] = rec

    def _forget_container(self, cid: str) -> None:
        for index in (self._containers, self._monitors, self._exits, self._alive_at,
                      self._cdirs):
            index.pop(cid, None)

    # ----- sandboxes ---------------------------------------------------------------
    async def run_pod_sandbox(self, cfg: SandboxConfig) -> str:
        problem = self.handler_problem(cfg.runtime_handler)
        if problem:
            raise ContainerRuntimeError(problem, reason="CreatePodSandboxError")
        sid = new_id()
        sdir = self._sdir(sid)
        sdir.mkdir(parents=True)
        rec = {"id": sid, "config": asdict(cfg), "created_at": time.time(),
               "state": "creating", "ips": [], "netns_path": ""}
        self._save_sandbox(rec)   # first, so a crash half-way is still found and removed
        try:
            await self._setup_sandbox(sid, cfg, rec)
        except BaseException as e:
            await self._remove_sandbox_files(rec)
            if isinstance(e, ContainerRuntimeError):
                raise
            if isinstance(e, Exception):
                raise ContainerRuntimeError(f"creating pod sandbox: {e}",
                                            reason="CreatePodSandboxError") from e
            raise
        rec["state"] = "ready"
        self._save_sandbox(rec)
        return sid

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        try:
            rec = self._load_sandbox(sandbox_id)
        except KeyError:
            return
        for c in await self.list_containers(sandbox_id):
            if c.state == "running":
                await self.stop_container(c.id, 0)
        if not rec.get("network_down"):
            await self._teardown_sandbox_network(rec)
            rec["network_down"] = True
        rec["state"] = "notready"
        self._save_sandbox(rec)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        try:
            self._load_sandbox(sandbox_id)
        except KeyError:
            return
        await self.stop_pod_sandbox(sandbox_id)
        for c in await self.list_containers(sandbox_id):
            await self.remove_container(c.id)
        await self._remove_sandbox_files(self._load_sandbox(sandbox_id))

    async def _remove_sandbox_files(self, rec: dict) -> None:
        await self._release_sandbox(rec)
        await _rmtree(self._sdir(rec["id"]))
        self._sandboxes.pop(rec["id"], None)
        self._sandbox_statuses.pop(rec["id"], None)

    async def pod_sandbox_status(self, sandbox_id: str) -> SandboxStatus:
        return self._sandbox_status(self._load_sandbox(sandbox_id))

    def _sandbox_status(self, rec: dict) -> SandboxStatus:
        """A copy of the status (built once per saved record): callers may change its
        fields (the config is shared: read it only)."""
        st = self._sandbox_statuses.get(rec["id"])
        if st is None:
            ips = rec.get("ips") or []
            st = SandboxStatus(
                id=rec["id"], state="ready" if rec.get("state") == "ready" else "notready",
                created_at=rec["created_at"], ip=ips[0] if ips else "", ips=list(ips),
                netns_path=rec.get("netns_path", ""),
                config=sandbox_config_from(rec["config"]))
            self._sandbox_statuses[rec["id"]] = st
        return copy.copy(st)

    async def list_pod_sandboxes(self, pod_uid: str | None = None) -> list[SandboxStatus]:
        return [self._sandbox_status(rec) for sid, rec in sorted(self._sandboxes.items())
                if pod_uid is None or rec["config"].get("pod_uid") == pod_uid]

    # ----- containers --------------------------------------------------------------
    async def create_container(self, sandbox_id: str, cfg: ContainerConfig,
                               rootfs_layers: list[str]) -> str:
        try:
            sandbox = self._load_sandbox(sandbox_id)
        except KeyError:
            raise ContainerRuntimeError(f"pod sandbox {sandbox_id} not found",
                                        reason="CreateContainerError") from None
        if sandbox.get("state") != "ready":
            raise ContainerRuntimeError(f"pod sandbox {sandbox_id} is not ready",
                                        reason="CreateContainerError")
        cid = new_id()
        cdir = self._cdir(cid)
        cdir.mkdir(parents=True)
        log_dir = sandbox["config"].get("log_directory") or ""
        log_path = os.path.join(log_dir, cfg.log_path) if log_dir and cfg.log_path \
            else str(cdir / "container.log")
        rec = {"id": cid, "sandbox_id": sandbox_id, "config": asdict(cfg),
               "created_at": time.time(), "started_at": 0.0, "log_path": log_path}
        try:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            await self._prepare_container(cid, sandbox, cfg, rootfs_layers, rec)
            self._save_container(rec)
        except BaseException as e:
            await self._release_container(rec)
            shutil.rmtree(cdir, ignore_errors=True)
            self._forget_container(cid)
            if isinstance(e, ContainerRuntimeError) or not isinstance(e, Exception):
                raise
            raise ContainerRuntimeError(f"creating container {cfg.name}: {e}",
                                        reason="CreateContainerError") from e
        return cid

    async def start_container(self, container_id: str) -> None:
        try:
            rec = self._load_container(container_id)
        except KeyError:
            raise ContainerRuntimeError(f"container {container_id} not found") from None
        if rec.get("started_at"):
            raise ContainerRuntimeError(f"container {container_id} was already started")
        cdir = self._cdir(container_id)
        rec["started_at"] = time.time()   # "start was attempted": never started twice
        self._save_container(rec)
        self._starting.add(container_id)
        try:
            mon = await self._start_monitor(rec)
        except ContainerRuntimeError as e:
            write_json(cdir / "exit.json", {"exit_code": 128, "finished_at": time.time(),
                                            "reason": "StartError", "message": str(e)})
            raise
        finally:
            self._starting.discard(container_id)
        write_json(cdir / "monitor.json", mon)
        self._monitors[container_id] = mon
        rec["started_at"] = mon["started_at"]
        self._save_container(rec)

    async def _start_monitor(self, rec: dict) -> dict:
        """Start the container under its monitor; what monitor.json says (monitor_pid,
        pid, started_at, pid_start_time). ContainerRuntimeError when it did not start.
        Default: the Python monitor (monitor.py), which writes monitor.json itself."""
        cdir = self._cdir(rec["id"])
        spec = self._monitor_spec(rec)
        spec.update(id=rec["id"], log_path=rec["log_path"],
                    monitor_file=str(cdir / "monitor.json"), exit_file=str(cdir / "exit.json"),
                    monitor_log=str(cdir / "monitor.log"), pid_file=str(cdir / "pid"))
        write_json(cdir / "monitor-spec.json", spec)
        result = await self._launch_monitor(cdir / "monitor-spec.json")
        if not result.get("ok"):
            raise ContainerRuntimeError(
                result.get("error") or "the container's monitor did not start",
                reason="RunContainerError")
        mon = read_json(cdir / "monitor.json")
        if mon is None:
            raise ContainerRuntimeError("the container's monitor did not record its start")
        return mon

    async def _launch_monitor(self, spec_path: Path) -> dict:
        """Start the monitor (it double-forks) and read its one-line start result."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", monitor_mod.__file__, str(spec_path),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), MONITOR_START_TIMEOUT)
        except TimeoutError:
            line = b""
        await proc.wait()
        if not line:
            err = await proc.stderr.read()
            return {"ok": False, "error": "monitor failed: "
                    + err.decode(errors="replace").strip()[-2000:]}
        return json.loads(line)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        rec = self._load_container(container_id)
        if self._state(rec)[0] != "running":
            return
        await self._signal(rec, signal.SIGTERM)
        if await self._wait_exit(container_id, max(timeout, 0)):
            return
        await self._signal(rec, signal.SIGKILL, all_processes=True)
        if not await self._wait_exit(container_id, 10.0):
            raise ContainerRuntimeError(f"container {container_id} did not exit after SIGKILL")

    async def _wait_exit(self, container_id: str, timeout: float) -> bool:
        """True once the exit is recorded (or the container is otherwise not running)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                rec = self._load_container(container_id)
            except KeyError:
                return True
            if self._state(rec)[0] != "running":
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL)

    async def remove_container(self, container_id: str) -> None:
        try:
            rec = self._load_container(container_id)
        except KeyError:
            return
        if self._state(rec)[0] == "running":
            await self.stop_container(container_id, 0)
        await self._release_container(rec)
        await _rmtree(self._cdir(container_id))
        self._forget_container(container_id)

    def _state(self, rec: dict) -> tuple[str, dict]:
        """(state, exit record or monitor record). An exit is final, so it is looked
        for on disk only until it is found; a running container costs a look for its
        exit and one read of /proc."""
        cid = rec["id"]
        if cid in self._exits:
            return "exited", self._exits[cid]
        exit_rec = self._collect_exit(rec)
        if exit_rec is not None:
            self._exits[cid] = exit_rec
            return "exited", exit_rec
        mon = self._monitor_record(rec)
        if mon is None:
            if not rec.get("started_at"):
                return "created", {}
            if cid in self._starting:
                return "running", {}
            return self._interrupted_start(rec)
        if self._alive(cid, mon):
            return "running", mon
        exit_rec = self._collect_exit(rec)   # it may have exited just now
        if exit_rec is None:
            exit_rec = {"exit_code": 255, "finished_at": 0.0, "reason": "Error",
                        "message": "the container's monitor died; exit status lost"}
        self._exits[cid] = exit_rec
        return "exited", exit_rec

    def _alive(self, cid: str, mon: dict) -> bool:
        """The process or its monitor runs. A monitor records the exit before it goes,
        so a death without a record is rare (a kill -9): /proc is asked at most once
        per ALIVE_RECHECK seconds per container, and a listing costs no /proc reads."""
        now = time.monotonic()
        if now - self._alive_at.get(cid, -ALIVE_RECHECK) < ALIVE_RECHECK:
            return True
        if pid_alive(mon["pid"], mon.get("pid_start_time", 0)) \
                or pid_alive(mon["monitor_pid"], mon.get("monitor_start_time", 0)):
            self._alive_at[cid] = now
            return True
        return False

    def _interrupted_start(self, rec: dict) -> tuple[str, dict]:
        """A start an earlier kubelet began and did not see through (it was stopped
        half-way). The Python monitor records its start itself: give it time."""
        if time.time() - rec["started_at"] < MONITOR_START_TIMEOUT:
            return "running", {}
        return "unknown", {}

    def _monitor_record(self, rec: dict) -> dict | None:
        mon = self._monitors.get(rec["id"])
        if mon is None and rec.get("started_at"):
            mon = read_json(self._cdir(rec["id"]) / "monitor.json")
            if mon is not None:
                self._monitors[rec["id"]] = mon
        return mon

    async def container_status(self, container_id: str) -> ContainerStatus:
        return self._container_status(self._load_container(container_id))

    def _container_status(self, rec: dict) -> ContainerStatus:
        cfg = rec["config"]
        state, info = self._state(rec)
        st = ContainerStatus(
            id=rec["id"], name=cfg["name"], attempt=cfg["attempt"], state=state,
            created_at=rec["created_at"], started_at=rec.get("started_at") or 0.0,
            image=cfg["image"], image_ref=cfg["image_ref"], log_path=rec["log_path"],
            sandbox_id=rec["sandbox_id"], labels=dict(cfg.get("labels") or {}),
            annotations=dict(cfg.get("annotations") or {}))
        if state == "running":
            st.pid = info.get("pid", 0)
            st.started_at = info.get("started_at", st.started_at)
        elif state == "exited":
            st.exit_code = info.get("exit_code", 0)
            st.finished_at = info.get("finished_at", 0.0)
            st.message = info.get("message", "")
            st.reason = info.get("reason") or _exit_reason(info)
            if st.reason == "StartError":
                st.started_at = 0.0
        return st

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        return [self._container_status(rec) for _, rec in sorted(self._containers.items())
                if sandbox_id is None or rec["sandbox_id"] == sandbox_id]

    async def reopen_container_log(self, container_id: str) -> None:
        """Ask the container's monitor to reopen its log; wait (bounded) until the
        new file exists so the kubelet's rotation can carry on at once."""
        rec = self._running_record(container_id)
        mon = self._monitor_record(rec) or {}
        if not pid_alive(mon.get("monitor_pid", 0)):
            raise ContainerRuntimeError(f"container {container_id} has no running monitor")
        self._ask_reopen(rec, mon)
        deadline = time.monotonic() + 5.0
        while not os.path.exists(rec["log_path"]) and time.monotonic() < deadline:
            await asyncio.sleep(POLL)
        if not os.path.exists(rec["log_path"]):
            raise ContainerRuntimeError(f"container {container_id}: log was not reopened")

    def _ask_reopen(self, rec: dict, mon: dict) -> None:
        os.kill(mon["monitor_pid"], signal.SIGUSR1)

    def _running_record(self, container_id: str) -> dict:
        try:
            rec = self._load_container(container_id)
        except KeyError:
            raise ContainerRuntimeError(f"container {container_id} not found") from None
        if self._state(rec)[0] != "running":
            raise ContainerRuntimeError(f"container {container_id} is not running")
        return rec


def _exit_reason(info: dict) -> str:
    if info.get("oom_killed"):
        return "OOMKilled"
    return "Completed" if info.get("exit_code", 0) == 0 else "Error"


def _safe_id(some_id: str) -> str:
    """Ids come from us, but a caller's typo must not name a path outside our dirs."""
    if not some_id or "/" in some_id or some_id in (".", ".."):
        raise KeyError(some_id)
    return some_id


async def _rmtree(path: Path | str) -> None:
    """A pod's or container's directory goes on a thread: a rootfs can be big, and the
    event loop serves every other pod meanwhile."""
    await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)


async def run_with_timeout(cmd: list[str], timeout: float, env: dict | None = None,
                           cwd: str | None = None, **kw) -> tuple[int, bytes, bytes]:
    """Run cmd, kill its process group after `timeout`; TimeoutError then. Without a
    user switch (`kw`) it goes through spawn.run: off the event loop, by vfork (every runc
    call of a pod's start and stop comes here)."""
    if not kw:
        from pybernetes.kubelet import spawn
        done = await spawn.run(cmd, timeout=timeout, env=env, cwd=cwd, new_session=True)
        return done.returncode, done.stdout, done.stderr
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env, cwd=cwd, start_new_session=True, **kw)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        raise TimeoutError(f"command timed out after {timeout:g}s") from None
    return proc.returncode, out, err


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
