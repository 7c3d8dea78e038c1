"""The process runtime: a pod's containers as plain host processes, for machines
where the kubelet has no root (or no runc).

What it does: runs each container's command (the kubelet's final argv) through the
same monitor as runc (own session, CRI-format logs, exit code and finish time
recorded on disk, found again after a kubelet restart), with the container's env,
working directory (resolved on the host) and, when the kubelet runs as root, its
runAsUser/runAsGroup/supplementalGroups. Stop sends SIGTERM then SIGKILL to the
container's whole process group; exec runs the command on the host with the
container's env, cwd and user.

What it does NOT isolate (say so to users; a pod here is trusted code):
- no namespaces: the pod shares the host's network (pod IP = node IP: the sandbox
  reports no IP, as with hostNetwork), pids, IPC, hostname and filesystem; its
  /etc/hosts and /etc/resolv.conf are the host's;
- no image root filesystem: image layers are ignored, the command runs against the
  host's files (so it must exist on the host);
- no mounts: volumes are not bind-mounted (container paths are not remapped);
- no cgroups: cpu, memory and pid limits are not enforced, so there is no OOMKilled;
- no security context beyond the user: capabilities, readOnlyRootFilesystem,
  privileged and allowPrivilegeEscalation are ignored;
- ports: hostPort mappings are not set up; a process simply listens on the host.
- lifetime: stop signals the container's process group only; a process that starts
  its own session, or outlives the main process, is not tracked or killed.
"""
from __future__ import annotations

import os
import platform

from pybernetes.kubelet.runtime.base import ContainerConfig, ExecResult, SandboxConfig
from pybernetes.kubelet.runtime.monitored import MonitoredRuntime, pid_alive, read_json, \
    run_with_timeout

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ProcessRuntime(MonitoredRuntime):
    name = "process"

    async def version(self) -> str:
        return f"process://{platform.release()}"

    # ----- sandboxes: only a directory ----------------------------------------------
    async def _setup_sandbox(self, sid: str, cfg: SandboxConfig, rec: dict) -> None:
        rec["network_down"] = False

    async def _teardown_sandbox_network(self, rec: dict) -> None:
        pass

    async def _release_sandbox(self, rec: dict) -> None:
        pass

    # ----- containers ---------------------------------------------------------------
    async def _prepare_container(self, cid: str, sandbox: dict, cfg: ContainerConfig,
                                 layers: list[str], rec: dict) -> None:
        rec["process"] = self._process(sandbox, cfg)

    def _process(self, sandbox: dict, cfg: ContainerConfig) -> dict:
        env = {"PATH": os.environ.get("PATH", DEFAULT_PATH)}
        env["HOSTNAME"] = platform.node()
        env.update(dict(cfg.env))
        sec = cfg.security
        proc = {"args": list(cfg.command), "env": env,
                "cwd": cfg.working_dir if cfg.working_dir and os.path.isdir(cfg.working_dir)
                else ""}
        if os.geteuid() == 0 and sec.run_as_user is not None:
            proc.update(uid=sec.run_as_user,
                        gid=sec.run_as_group if sec.run_as_group is not None else 0,
                        groups=list(sec.supplemental_groups))
        return proc

    def _monitor_spec(self, rec: dict) -> dict:
        return {"mode": "process", "process": rec["process"]}

    async def _signal(self, rec: dict, sig: int, all_processes: bool = False) -> None:
        mon = read_json(self._cdir(rec["id"]) / "monitor.json")
        if not mon or not pid_alive(mon["pid"], mon.get("pid_start_time", 0)):
            return
        try:   # the monitor started it in its own session: pgid == pid
            os.killpg(mon["pid"], sig)
        except ProcessLookupError:
            pass

    async def _release_container(self, rec: dict) -> None:
        pass

    async def exec_sync(self, container_id: str, cmd: list[str],
                        timeout: float) -> ExecResult:
        """Runs cmd on the host with the container's env, cwd and user; on timeout its
        process group is killed and TimeoutError raised."""
        rec = self._running_record(container_id)
        proc = rec["process"]
        kw = {}
        if "uid" in proc:
            kw = {"user": proc["uid"], "group": proc["gid"], "extra_groups": proc["groups"]}
        try:
            code, out, err = await run_with_timeout(list(cmd), timeout, env=proc["env"],
                                                    cwd=proc["cwd"] or None, **kw)
        except TimeoutError:   # an OSError too: not "command not found"
            raise
        except OSError as e:   # not found / not executable, as a shell would say
            code = 126 if isinstance(e, PermissionError) else 127
            return ExecResult(exit_code=code, stdout=b"", stderr=f"{e}\n".encode())
        return ExecResult(exit_code=code, stdout=out, stderr=err)
