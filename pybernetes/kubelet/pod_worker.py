"""One pod's sync against the runtime (upstream's SyncPod / SyncTerminatingPod), for
the real kubelet (agent.py). Level-triggered: every call reads the sandboxes and
containers the runtime has for the pod's uid and does the next steps:

    admission → sandbox (+ network) → volumes → images (pull policy, pull secrets,
    back-off) → init containers one by one → containers → restarts with back-off
    → status (written through pods/status only when it changed)

Deletion: preStop hooks, SIGTERM, SIGKILL after the grace period, teardown of
containers, sandbox (network), volumes; then the final delete (gracePeriodSeconds 0,
uid precondition)."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pybernetes.api.podspec import pod_qos_class
from pybernetes.client.api import PODS, PVCS, PVS, SECRETS, SERVICEACCOUNTS, CONFIGMAPS
from pybernetes.kubelet import container_status as cst
from pybernetes.kubelet.admission import Rejection, admit
from pybernetes.kubelet.backoff import backoff_event, container_key, image_backoff_message
from pybernetes.kubelet.container_config import (LABEL_UID, build_container_config,
                                                 container_hash, read_termination_message)
from pybernetes.kubelet.dns import host_aliases, pod_dns, sandbox_hostname
from pybernetes.kubelet.env import PodContext, container_env
from pybernetes.kubelet.images import ImageError
from pybernetes.kubelet.pod_status import (KUBELET_CONDITIONS, pod_conditions,
                                           readiness_gates_unready, rfc3339, stamp_conditions,
                                           summary)
from pybernetes.kubelet.probes import (LIVENESS, STARTUP, FAILURE, ProbeChange, ProbeManager,
                                       ProbeTarget, kill_message)
from pybernetes.kubelet.pod_volumes import (docker_config, pod_dir, setup_volumes,
                                            teardown_volumes)
from pybernetes.kubelet.recent_objects import RecentObjects
from pybernetes.kubelet.runtime.base import (ContainerRuntimeError, ContainerStatus,
                                             PortMapping, SandboxConfig, SandboxStatus)
from pybernetes.kubelet.runtime_class import RuntimeClassLookup
from pybernetes.kubelet.token_manager import TokenKey, TokenManager
from pybernetes.kubelet.volumes.errors import VolumeError
from pybernetes.machinery.errors import StatusError

if TYPE_CHECKING:
    from pybernetes.kubelet.agent import Kubelet

log = logging.getLogger(__name__)

TERMINAL = ("Succeeded", "Failed")
RETRY = 2.0          # seconds before a failed sandbox/volume/config step is tried again
HOOK_TIMEOUT = 30.0
MIN_GRACE_AFTER_HOOK = 2.0   # upstream's minimum for the stop after a preStop hook


@dataclass
class PodWork:
    """What the kubelet keeps in memory about one pod (all of it can be lost: the
    runtime has the containers, the API the rest)."""

    uid: str
    key: str
    pod: dict | None = None
    adopted: bool = False            # found in the runtime when the kubelet started
    admitted: bool = False
    rejection: Rejection | None = None
    finished: bool = False           # terminal: nothing more will run
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    pull_failed_at: dict[str, float] = field(default_factory=dict)
    backoff_noted: dict[str, str] = field(default_factory=dict)   # name -> container id
    sent: tuple | None = None
    sent_rv: str = ""
    start_time: float = 0.0
    dns_noted: bool = False
    torn_down: bool = False          # nothing of it is left on the node
    probes: ProbeManager | None = None
    probed: dict[str, str] = field(default_factory=dict)          # name -> container id
    kill: dict[str, tuple[str, float, str]] = field(default_factory=dict)  # failed probes
    runtime_changed: bool = False    # this sync created or removed a container


def _older(rv: str, than: str) -> bool:
    try:
        return int(rv) < int(than)
    except ValueError:
        return rv != than


class PodWorker:
    def __init__(self, kubelet: "Kubelet"):
        self.k = kubelet
        self.rt = kubelet.runtime
        self._image_ids: dict[str, str] = {}
        self.tokens = TokenManager(self._request_token)
        self._objects = RecentObjects(self._fetch_object)
        self.runtime_classes = RuntimeClassLookup(kubelet.client)

    # -- sync ----------------------------------------------------------------------------

    async def sync(self, w: PodWork) -> float | None:
        """Bring the pod one step closer to its spec; returns seconds until the next
        sync is due (None: only on a change)."""
        pod = w.pod
        assert pod is not None
        status = pod.get("status") or {}
        if w.finished:
            return None
        if not w.admitted:
            if not await self._admit(w):
                return None
        if status.get("phase") in TERMINAL:
            w.finished = True    # a terminal pod never runs again (e.g. after a restart)
            await self._stop_sandboxes(w)
            return None
        host_net = bool((pod.get("spec") or {}).get("hostNetwork"))
        if not host_net and not self.k.network_ready():
            await self._write(w, self._status(w, None, []))
            return 1.0
        if any(s.state == "ready" for s in await self._sandboxes(w.uid)):
            return await self._sync_pod(w)
        async with self.k.start_gate.hold(w.uid):   # a start: CPU work, a few at a time
            return await self._sync_pod(w)

    async def _sync_pod(self, w: PodWork) -> float | None:
        """Sandbox, volumes, containers, probes and status of an admitted, live pod."""
        pod = w.pod
        sb = await self._sandbox(w)
        if sb is None:
            await self._write(w, self._status(w, None, await self._containers(w.uid)))
            return RETRY
        try:
            volumes = await self._volumes(w, sb)
        except VolumeError as e:
            self.k.event(pod, "Warning", e.reason, e.event_message)
            await self._write(w, self._status(w, sb, await self._containers(w.uid)))
            return RETRY
        await self._kill_unhealthy(w)
        # one listing of the runtime's containers per sync unless the sync changed them:
        # a listing reads every container's state files, so N pods resyncing each
        # period would otherwise cost O(N^2) file reads
        w.runtime_changed = False
        containers = await self._containers(w.uid)
        due = await self._sync_containers(w, sb, volumes, containers)
        if w.runtime_changed:
            containers = await self._containers(w.uid)
        self._sync_probes(w, sb, containers)
        st = self._status(w, sb, containers)
        await self._write(w, st)
        if st["phase"] in TERMINAL:
            await self.close_probes(w)
            w.finished = True
            await self._stop_sandboxes(w)
            log.info("pod %s: %s", w.key, st["phase"])
            return None
        periodic = self.k.opts.sync_period
        return periodic if due is None else min(due, periodic)

    async def _admit(self, w: PodWork) -> bool:
        pod = w.pod
        status = pod.get("status") or {}
        if w.adopted or status.get("startTime") or status.get("phase") in TERMINAL:
            w.admitted = True     # ours before a restart (or finished): not re-admitted
            return True
        node = self.k.agent.node
        if node is None:
            self.k.queue.add_after(w.key, 1.0)
            return False
        rejection = admit(pod, node, self.k.admitted_pods(w.uid))
        if rejection is None:
            w.admitted = True
            return True
        w.rejection, w.finished = rejection, True
        self.k.event(pod, "Warning", rejection.reason, rejection.message)
        log.info("pod %s rejected: %s", w.key, rejection.message)
        await self._write(w, {"phase": "Failed", "reason": rejection.reason,
                              "message": rejection.status_message})
        return False

    async def _containers(self, uid: str, orphans: bool = False) -> list[ContainerStatus]:
        """The pod's containers: those of its sandboxes (a status per container of the
        pod, not per container on the node: N pods syncing would be O(N^2)); with
        orphans, also any whose sandbox is gone (a full listing)."""
        if orphans:
            return [c for c in await self.rt.list_containers()
                    if c.labels.get(LABEL_UID) == uid]
        out: list[ContainerStatus] = []
        for sb in await self._sandboxes(uid):
            out += await self.rt.list_containers(sb.id)
        return [c for c in out if c.labels.get(LABEL_UID) == uid]

    async def _sandboxes(self, uid: str) -> list[SandboxStatus]:
        return [s for s in await self.rt.list_pod_sandboxes(pod_uid=uid)
                if s.config is not None and s.config.pod_uid == uid]

    # -- sandbox -------------------------------------------------------------------------

    async def _sandbox(self, w: PodWork) -> SandboxStatus | None:
        """The pod's ready sandbox; a new one when there is none (an old, not ready one is
        removed first, with its containers, as upstream recreates the sandbox)."""
        boxes = await self._sandboxes(w.uid)
        ready = sorted((s for s in boxes if s.state == "ready"), key=lambda s: s.created_at)
        if ready:
            return ready[-1]
        for old in boxes:
            await self.rt.remove_pod_sandbox(old.id)
        try:
            cfg = self._sandbox_config(w, len(boxes))
            cfg.runtime_handler = await self.runtime_classes.handler(
                (w.pod.get("spec") or {}).get("runtimeClassName"))
            sid = await self.rt.run_pod_sandbox(cfg)
        except Exception as e:  # noqa: BLE001 - CNI, namespaces, mounts: retried
            msg = f"Failed to create pod sandbox: {e}"
            self.k.event(w.pod, "Warning", "FailedCreatePodSandBox", msg)
            log.warning("pod %s: %s", w.key, msg)
            return None
        return await self.rt.pod_sandbox_status(sid)

    def _sandbox_config(self, w: PodWork, attempt: int) -> SandboxConfig:
        pod = w.pod
        md, spec = pod["metadata"], pod.get("spec") or {}
        opts = self.k.opts
        dns, warnings = pod_dns(pod, cluster_dns=opts.cluster_dns,
                                cluster_domain=opts.cluster_domain)
        if not w.dns_noted:
            for warn in warnings:
                self.k.event(pod, "Warning", warn.reason, warn.message)
            w.dns_noted = True
        ports = [PortMapping(container_port=int(p.get("containerPort", 0)),
                             host_port=int(p["hostPort"]), protocol=p.get("protocol") or "TCP",
                             host_ip=p.get("hostIP") or "")
                 for c in spec.get("containers") or [] for p in c.get("ports") or []
                 if p.get("hostPort")]
        psc = spec.get("securityContext") or {}
        from pybernetes.kubelet.container_config import cgroup_parent, pod_resources
        ns, name, uid = md.get("namespace") or "default", md["name"], md["uid"]
        return SandboxConfig(
            pod_uid=uid, name=name, namespace=ns,
            hostname=sandbox_hostname(pod, opts.cluster_domain), attempt=attempt,
            host_network=bool(spec.get("hostNetwork")), host_pid=bool(spec.get("hostPID")),
            host_ipc=bool(spec.get("hostIPC")), dns=dns, extra_hosts=host_aliases(pod),
            ports=ports, cgroup_parent=cgroup_parent(pod), resources=pod_resources(pod),
            log_directory=os.path.join(opts.pod_logs_dir, f"{ns}_{name}_{uid}"),
            labels={LABEL_UID: uid, "io.kubernetes.pod.name": name,
                    "io.kubernetes.pod.namespace": ns},
            sysctls={s.get("name", ""): str(s.get("value", ""))
                     for s in psc.get("sysctls") or []})

    async def _stop_sandboxes(self, w: PodWork) -> None:
        """A finished pod keeps its containers (logs, statuses) but frees its network."""
        for sb in await self._sandboxes(w.uid):
            if sb.state == "ready":
                await self.rt.stop_pod_sandbox(sb.id)

    # -- volumes, env, images --------------------------------------------------------------

    def _ctx(self, w: PodWork, sb: SandboxStatus | None) -> PodContext:
        node = self.k.agent.node or {}
        host_ip = self.k.agent.cfg.ip
        ips = list(sb.ips) if sb is not None and sb.ips else [host_ip]
        return PodContext(pod_ips=ips, host_ips=[host_ip],
                          node_allocatable=dict((node.get("status") or {}).get("allocatable")
                                                or {}))

    async def _volumes(self, w: PodWork, sb: SandboxStatus) -> dict:
        return await setup_volumes(
            w.pod, self.k.pods_dir, self._lookup, self._ctx(w, sb),
            tokens=self._token_provider(w.pod), claims=self._claims,
            node_memory=getattr(self.k.agent.cfg, "memory_bytes", 0),
            use_tmpfs=self.rt.name == "runc")

    async def _lookup(self, kind: str, namespace: str, name: str) -> dict | None:
        """A ConfigMap or Secret for volumes and env (shared by pods asking at once)."""
        return await self._objects.get(kind, namespace, name)

    async def _fetch_object(self, kind: str, namespace: str, name: str) -> dict | None:
        res = CONFIGMAPS if kind == "configmap" else SECRETS
        return await self._get(res, name, namespace)

    async def _get(self, res: Any, name: str, namespace: str | None) -> dict | None:
        try:
            return await self.k.client.get(res, name, namespace)
        except StatusError as e:
            if e.code == 404:
                return None
            raise

    async def _claims(self, namespace: str, claim: str) -> tuple[dict | None, dict | None]:
        pvc = await self._get(PVCS, claim, namespace)
        vol = ((pvc or {}).get("spec") or {}).get("volumeName")
        return pvc, (await self._get(PVS, vol, None) if vol else None)

    def _token_provider(self, pod: dict):
        """Projected serviceAccountToken sources: bound to the pod, cached and refreshed
        at 80% of their lifetime by the token manager."""
        md, spec = pod["metadata"], pod.get("spec") or {}
        sa = spec.get("serviceAccountName") or "default"

        async def token(audience: str, seconds: int) -> str:
            return await self.tokens.get(TokenKey(md.get("namespace") or "default", sa,
                                                  audience, seconds, md["name"], md["uid"]))
        return token

    async def _request_token(self, namespace: str, sa: str, body: dict) -> dict:
        return await self.k.client.post(SERVICEACCOUNTS, sa, "token", body, namespace=namespace)

    async def _pull_auth(self, pod: dict) -> list[dict]:
        ns = pod["metadata"].get("namespace")
        out = []
        for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
            secret = await self._get(SECRETS, ref.get("name", ""), ns)
            cfg = docker_config(secret) if secret else None
            if cfg:
                out.append(cfg)
        return out

    async def _image(self, w: PodWork, c: dict) -> Any:
        """The container's image record, pulled per its policy; a float (seconds to wait)
        when the pull failed or is backing off."""
        pod, image = w.pod, c.get("image", "")
        name, key = c.get("name", ""), f"{w.uid}/{c.get('image', '')}"
        left = self.k.pull_backoff.remaining(key, w.pull_failed_at.get(key, 0.0))
        if left > 0:
            if w.waiting.get(name, ("",))[0] != "ImagePullBackOff":
                self.k.event(pod, "Normal", "BackOff", image_backoff_message(image))
                self.k.event(pod, "Warning", "Failed", "Error: ImagePullBackOff")
            w.waiting[name] = ("ImagePullBackOff", image_backoff_message(image))
            return left
        policy = c.get("imagePullPolicy") or None
        store = self.k.images
        present = policy != "Always" and await asyncio.to_thread(store.get, image)
        if present:
            self.k.event(pod, "Normal", "Pulled",
                         f'Container image "{image}" already present on machine')
            return present
        self.k.event(pod, "Normal", "Pulling", f'Pulling image "{image}"')
        t0 = time.monotonic()
        try:
            async with self.k.start_gate.released(w.uid):
                rec = await store.pull(image, policy, auth=await self._pull_auth(pod))
        except ImageError as e:
            delay = self.k.pull_backoff.next(key)
            w.pull_failed_at[key] = time.time()
            self.k.event(pod, "Warning", "Failed", f'Failed to pull image "{image}": {e}')
            self.k.event(pod, "Warning", "Failed", f"Error: {e.reason}")
            w.waiting[name] = (e.reason, f'Failed to pull image "{image}": {e}')
            log.info("pod %s: pulling %s failed: %s", w.key, image, e)
            return delay
        self.k.pull_backoff.reset(key)
        took = f"{time.monotonic() - t0:.3f}s"
        self.k.event(pod, "Normal", "Pulled", f'Successfully pulled image "{image}" in {took} '
                     f"({took} including waiting). Image size: {rec.size} bytes.")
        return rec

    def image_id(self, image_ref: str) -> str:
        """What status.imageID shows: the repo digest (else the image id)."""
        if image_ref not in self._image_ids:
            rec = self.k.images.get(image_ref) if image_ref else None
            if rec is None:
                return image_ref
            self._image_ids[image_ref] = rec.repo_digests[0] if rec.repo_digests else rec.id
        return self._image_ids[image_ref]

    # -- containers --------------------------------------------------------------------------

    async def _sync_containers(self, w: PodWork, sb: SandboxStatus, volumes: dict,
                               containers: list[ContainerStatus]) -> float | None:
        """Start what should run (init containers first); `containers` is the pod's
        listing; w.runtime_changed says that it is stale now."""
        pod = w.pod
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy") or "Always"
        for c in spec.get("initContainers") or []:
            latest, _ = cst.latest_two(containers, c["name"])
            if latest is not None and latest.state == "exited" and latest.exit_code == 0:
                continue
            if latest is not None and latest.state in ("running", "unknown"):
                return None   # the relist requeues the pod when it exits
            attempt = 0
            if latest is not None and latest.state == "exited":
                if policy == "Never":
                    return None
                left = self._backoff(w, c, latest)
                if left > 0:
                    return left
                attempt = latest.attempt + 1
            elif latest is not None:   # created, never started (a crash in between)
                w.runtime_changed = True
                await self.rt.remove_container(latest.id)
                attempt = latest.attempt
            return await self._start(w, sb, c, attempt, volumes, containers)
        due: float | None = None
        for c in spec.get("containers") or []:
            latest, _ = cst.latest_two(containers, c["name"])
            attempt = 0
            if latest is not None:
                if latest.state in ("running", "unknown"):
                    w.waiting.pop(c["name"], None)
                    continue
                if latest.state == "exited":
                    if not cst.should_restart(policy, latest):
                        w.waiting.pop(c["name"], None)
                        continue
                    left = self._backoff(w, c, latest)
                    if left > 0:
                        due = left if due is None else min(due, left)
                        continue
                    attempt = latest.attempt + 1
                else:
                    w.runtime_changed = True
                    await self.rt.remove_container(latest.id)
                    attempt = latest.attempt
            left = await self._start(w, sb, c, attempt, volumes, containers)
            if left is not None:
                due = left if due is None else min(due, left)
        return due

    def _backoff(self, w: PodWork, c: dict, latest: ContainerStatus) -> float:
        """Seconds still to wait before restarting (CrashLoopBackOff meanwhile); 0 when
        the restart may go ahead now (and is counted)."""
        pod, name = w.pod, c["name"]
        key = container_key(pod, name, container_hash(c))
        left = self.k.restart_backoff.check(key, latest.finished_at or time.time())
        if left > 0:
            w.waiting[name] = ("CrashLoopBackOff",
                               self.k.restart_backoff.message(key, name, pod))
            if w.backoff_noted.get(name) != latest.id:
                w.backoff_noted[name] = latest.id
                self.k.event(pod, "Warning", "BackOff", backoff_event(name, pod))
            return left
        return 0.0

    async def _start(self, w: PodWork, sb: SandboxStatus, c: dict, attempt: int,
                     volumes: dict, existing: list[ContainerStatus]) -> float | None:
        """Pull, create and start one container instance; seconds to wait on failure."""
        pod, name = w.pod, c["name"]
        w.runtime_changed = True
        img = await self._image(w, c)
        if isinstance(img, float):
            return img
        try:
            env, env_events = await container_env(pod, c, self._lookup, ctx=self._ctx(w, sb),
                                                  services=self._services(pod))
            for ev in env_events:
                self.k.event(pod, ev.type, ev.reason, ev.message)
            cfg = build_container_config(
                pod, c, img.config, image_ref=img.id, attempt=attempt, env=env,
                volumes=volumes, pod_dir=pod_dir(self.k.pods_dir, w.uid),
                hostname=sb.config.hostname if sb.config else "",
                node_memory=getattr(self.k.agent.cfg, "memory_bytes", 0),
                read_image_file=_image_reader(img.layer_dirs))
            cid = await self.rt.create_container(sb.id, cfg, img.layer_dirs)
        except ContainerRuntimeError as e:
            w.waiting[name] = (e.reason, str(e))
            self.k.event(pod, "Warning", "Failed", f"Error: {e}")
            log.info("pod %s: container %s: %s", w.key, name, e)
            return RETRY
        self.k.event(pod, "Normal", "Created", f"Created container {name}")
        w.waiting.pop(name, None)
        try:
            await self.rt.start_container(cid)
        except ContainerRuntimeError as e:
            self.k.event(pod, "Warning", "Failed", f"Error: {e}")
            log.info("pod %s: container %s did not start: %s", w.key, name, e)
            return RETRY
        self.k.event(pod, "Normal", "Started", f"Started container {name}")
        await asyncio.to_thread(self.k.images.touch, img.id)
        await self._post_start(w, c, cid)
        self._gc_containers(existing, name)
        return None

    async def _post_start(self, w: PodWork, c: dict, cid: str) -> None:
        hook = (c.get("lifecycle") or {}).get("postStart")
        if not hook:
            return
        async with self.k.start_gate.released(w.uid):
            err = await self._run_hook(w, cid, hook, HOOK_TIMEOUT)
        if err:
            self.k.event(w.pod, "Warning", "FailedPostStartHook", err)
            self.k.event(w.pod, "Normal", "Killing", f"FailedPostStartHook: stopping "
                         f"container {c['name']}")
            await self.rt.stop_container(cid, _grace(w.pod))

    def _gc_containers(self, existing: list[ContainerStatus], name: str) -> None:
        """Keep the newest exited instance of a name (lastState); older ones go."""
        old = sorted((c for c in existing if c.name == name and c.state == "exited"),
                     key=lambda c: c.attempt)
        for c in old[:-1]:
            asyncio.ensure_future(self.rt.remove_container(c.id))

    def _services(self, pod: dict) -> list[dict]:
        """The services whose env vars a container gets: its namespace's (unless
        enableServiceLinks is false) and the API server's `kubernetes` service."""
        services = self.k.service_informer
        ns = pod["metadata"].get("namespace") or "default"
        ns_items = [] if (pod.get("spec") or {}).get("enableServiceLinks") is False \
            else services.list(ns)
        master = services.get("default", "kubernetes")
        return ns_items + ([master] if master else [])   # service_env keeps one of each

    async def _run_hook(self, w: PodWork, cid: str, hook: dict, timeout: float) -> str:
        """Run a lifecycle handler; "" when it succeeded, else the failure message."""
        try:
            if hook.get("exec"):
                res = await self.rt.exec_sync(cid, list(hook["exec"].get("command") or []),
                                              timeout)
                if res.exit_code != 0:
                    return (f"Exec lifecycle hook ({hook['exec'].get('command')}) for Container "
                            f"in Pod {w.pod['metadata']['name']} failed - error: command "
                            f"exited with {res.exit_code}, message: "
                            f"{(res.stdout + res.stderr).decode(errors='replace')!r}")
                return ""
            if hook.get("httpGet"):
                return await self._http_hook(w, hook["httpGet"], timeout)
            if hook.get("sleep"):
                await asyncio.sleep(min(float(hook["sleep"].get("seconds", 0)), timeout))
            return ""
        except (ContainerRuntimeError, TimeoutError, asyncio.TimeoutError, OSError) as e:
            return f"lifecycle hook failed: {e}"

    async def _http_hook(self, w: PodWork, get: dict, timeout: float) -> str:
        import aiohttp
        sb = next(iter(await self._sandboxes(w.uid)), None)
        host = get.get("host") or (sb.ip if sb and sb.ip else self.k.agent.cfg.ip)
        port = get.get("port")
        if isinstance(port, str) and not port.isdigit():
            port = next((p.get("containerPort") for c in w.pod["spec"].get("containers") or []
                         for p in c.get("ports") or [] if p.get("name") == port), 80)
        url = f"{(get.get('scheme') or 'HTTP').lower()}://{host}:{port}{get.get('path') or '/'}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
            async with s.get(url, ssl=False) as r:
                if r.status >= 400:
                    return f"HTTP lifecycle hook ({get.get('path')}) failed: {r.status}"
        return ""

    # -- probes ------------------------------------------------------------------------------

    def _sync_probes(self, w: PodWork, sb: SandboxStatus,
                     containers: list[ContainerStatus]) -> None:
        """Probes follow the running instance of each container (a new one after a
        restart starts its probes afresh)."""
        specs = (w.pod.get("spec") or {}).get("containers") or []
        if not any(c.get(k) for c in specs for k in ("livenessProbe", "readinessProbe",
                                                        "startupProbe")):
            return
        if w.probes is None:
            w.probes = ProbeManager(w.pod, on_change=lambda ch: self._probe_changed(w, ch),
                                    on_event=lambda _c, t, r, m: self.k.event(w.pod, t, r, m))
        pod_ip = sb.ip or self.k.agent.cfg.ip
        for c in specs:
            latest, _ = cst.latest_two(containers, c["name"])
            if latest is not None and latest.state == "running":
                if w.probed.get(c["name"]) != latest.id:
                    w.probes.add_container(c, ProbeTarget(pod_ip, latest.id,
                                                          c.get("ports") or [],
                                                          self.rt.exec_sync),
                                           started_at=latest.started_at or None)
                    w.probed[c["name"]] = latest.id
            elif c["name"] in w.probed:
                w.probes.remove_container(c["name"])
                del w.probed[c["name"]]

    def _probe_changed(self, w: PodWork, ch: ProbeChange) -> None:
        if ch.result == FAILURE and ch.kind in (LIVENESS, STARTUP):
            grace = ch.grace_period if ch.grace_period is not None else _grace(w.pod)
            w.kill[ch.container] = (ch.container_id, grace, ch.kind)
        self.k.queue.add(w.key)

    async def _kill_unhealthy(self, w: PodWork) -> None:
        """Containers whose liveness/startup probe failed are stopped; the restart
        policy (with back-off) takes it from there."""
        for name, (cid, grace, kind) in list(w.kill.items()):
            del w.kill[name]
            self.k.event(w.pod, "Normal", "Killing", kill_message(kind, name))
            if w.probes is not None:
                w.probes.remove_container(name)
            w.probed.pop(name, None)
            try:
                await self.rt.stop_container(cid, grace)
            except KeyError:
                pass

    async def close_probes(self, w: PodWork) -> None:
        if w.probes is not None:
            await w.probes.close()
            w.probes = None
            w.probed.clear()

    # -- status ------------------------------------------------------------------------------

    def _views(self, w: PodWork, specs: list[dict], containers: list[ContainerStatus],
               init: bool, initialized: bool) -> list[dict]:
        out = []
        pdir = pod_dir(self.k.pods_dir, w.uid)
        for c in specs:
            latest, prev = cst.latest_two(containers, c["name"])
            wait = w.waiting.get(c["name"])
            if wait is None and latest is None and not init and not initialized:
                wait = ("PodInitializing", "")
            view = cst.ContainerView(spec=c, latest=latest, previous=prev, waiting=wait,
                                     runtime=self.rt.name,
                                     image_id=self.image_id(latest.image_ref) if latest else "")
            if latest is not None and latest.state == "running":
                probes = w.probes if w.probed.get(c["name"]) == latest.id else None
                view.ready = not init and (probes is None or probes.ready(c["name"]))
                view.waiting = None
            if latest is not None and latest.state == "exited" and wait is None:
                view.termination_message = read_termination_message(os.path.join(
                    pdir, "containers", c["name"], f"termination-log-{latest.attempt}"))
            st = cst.api_container_status(view)
            if st["started"] and w.probes is not None and w.probed.get(c["name"]) == \
                    latest.id:
                st["started"] = w.probes.started(c["name"])
            if init and "terminated" in st.get("state", {}) and \
                    st["state"]["terminated"].get("exitCode") == 0:
                st["ready"] = True
            out.append(st)
        return out

    def _status(self, w: PodWork, sb: SandboxStatus | None,
                containers: list[ContainerStatus], terminating: bool = False) -> dict:
        pod = w.pod
        spec, old = pod.get("spec") or {}, pod.get("status") or {}
        init_specs = spec.get("initContainers") or []
        init = self._views(w, init_specs, containers, True, True)
        pending_init, _ = cst.init_progress(init)
        main = self._views(w, spec.get("containers") or [], containers, False,
                           not pending_init)
        phase = cst.pod_phase(spec, init, main)
        if terminating:
            phase = _terminated_phase(main) or phase
        completed = phase in TERMINAL
        unready = [s["name"] for s in main if not s.get("ready")]
        conds = pod_conditions(sandbox_ready=sb is not None and sb.state == "ready",
                               uninitialized=pending_init, unready=unready,
                               completed=completed, gates_unready=readiness_gates_unready(pod))
        now = rfc3339(time.time())
        conds = stamp_conditions(conds, old.get("conditions"), now)
        conds += [c for c in old.get("conditions") or [] if c.get("type")
                  not in KUBELET_CONDITIONS]
        host_ip = self.k.agent.cfg.ip
        ips = list(sb.ips) if sb is not None and sb.ips else []
        if not ips and (spec.get("hostNetwork") or self.rt.name == "process") and sb:
            ips = [host_ip]
        if not ips and old.get("podIP") and completed:
            ips = [p.get("ip") for p in old.get("podIPs") or [{"ip": old["podIP"]}]]
        if not w.start_time:
            w.start_time = _parse_time(old.get("startTime")) or time.time()
        status: dict = {"phase": phase, "conditions": conds, "hostIP": host_ip,
                        "hostIPs": [{"ip": host_ip}], "startTime": rfc3339(w.start_time),
                        "qosClass": pod_qos_class(spec), "containerStatuses": main}
        if ips:
            status["podIP"], status["podIPs"] = ips[0], [{"ip": ip} for ip in ips]
        if init:
            status["initContainerStatuses"] = init
        return status

    async def _write(self, w: PodWork, status: dict) -> None:
        pod = w.pod
        mine = summary(status)
        rv = pod["metadata"].get("resourceVersion", "")
        old = pod.get("status") or {}
        if summary(old) == mine and all(old.get(k) == status.get(k) for k in
                                        ("hostIP", "qosClass", "podIPs")):
            return
        if mine == w.sent and _older(rv, w.sent_rv):
            return   # our write is on its way to the informer cache
        md = pod["metadata"]
        try:
            out = await self.k.client.patch(PODS, md["name"], {"status": status},
                                            namespace=md.get("namespace"),
                                            subresource="status")
        except StatusError as e:
            if e.code == 404:
                return
            raise
        w.sent, w.sent_rv = mine, out["metadata"].get("resourceVersion", "")

    # -- termination ---------------------------------------------------------------------

    async def terminate(self, w: PodWork) -> None:
        """The pod is being deleted: stop it within its grace period, tear it down,
        report the final status and delete it for good."""
        pod = w.pod
        md = pod["metadata"]
        if w.torn_down:
            await self._final_delete(w.key, md)
            return
        grace = md.get("deletionGracePeriodSeconds")
        grace = _grace(pod) if grace is None else int(grace)
        containers = await self._containers(w.uid)
        by_name = {c["name"]: c for c in (pod.get("spec") or {}).get("containers") or []}
        by_name.update({c["name"]: c for c in (pod.get("spec") or {}).get("initContainers")
                        or []})
        running = [c for c in containers if c.state == "running"]
        await self.close_probes(w)
        await asyncio.gather(*(self._kill(w, c, by_name.get(c.name, {}), grace)
                               for c in running))
        if not w.finished and w.admitted and w.rejection is None:
            w.waiting.clear()
            sb = next((s for s in await self._sandboxes(w.uid) if s.state == "ready"), None)
            await self._write(w, self._status(w, sb, await self._containers(w.uid),
                                              terminating=True))
        await self.teardown(w, grace=0)
        await self._final_delete(w.key, md)

    async def _final_delete(self, key: str, md: dict) -> None:
        try:
            await self.k.client.delete(PODS, md["name"], namespace=md.get("namespace"),
                                       grace_period_seconds=0,
                                       preconditions={"uid": md["uid"]})
            log.info("pod %s: deleted", key)
        except StatusError as e:
            if e.code not in (404, 409):
                raise

    async def _kill(self, w: PodWork, c: ContainerStatus, spec: dict, grace: int) -> None:
        self.k.event(w.pod, "Normal", "Killing", f"Stopping container {c.name}")
        t0 = time.monotonic()
        hook = (spec.get("lifecycle") or {}).get("preStop")
        if hook and grace > 0:
            err = await self._run_hook(w, c.id, hook, grace)
            if err:
                self.k.event(w.pod, "Warning", "FailedPreStopHook", err)
        left = grace - (time.monotonic() - t0)
        if hook and grace > 0:
            left = max(left, MIN_GRACE_AFTER_HOOK)
        await self.rt.stop_container(c.id, max(left, 0.0))

    async def teardown(self, w: PodWork, grace: float) -> None:
        """Everything the pod had on this node goes: containers, sandbox (network,
        namespaces, cgroups), volumes. Idempotent."""
        await self.close_probes(w)
        for c in await self._containers(w.uid):
            if c.state == "running":
                await self.rt.stop_container(c.id, grace)
        for sb in await self._sandboxes(w.uid):
            await self.rt.remove_pod_sandbox(sb.id)
        for c in await self._containers(w.uid, orphans=True):   # any left without a sandbox
            await self.rt.remove_container(c.id)
        await asyncio.to_thread(teardown_volumes, self.k.pods_dir, w.uid)
        self.tokens.forget_pod(w.uid)
        if not w.torn_down:
            log.info("pod %s (%s): torn down", w.key, w.uid)
        w.torn_down = True


def _grace(pod: dict) -> int:
    g = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return 30 if g is None else int(g)


def _terminated_phase(statuses: list[dict]) -> str:
    """A deleted pod's final phase: Succeeded when every container exited 0."""
    codes = [(s.get("state") or {}).get("terminated", {}).get("exitCode") for s in statuses]
    if not codes or any(code is None for code in codes):
        return ""
    return "Succeeded" if all(code == 0 for code in codes) else "Failed"


def _parse_time(s: Any) -> float:
    from pybernetes.kubelet.pod_status import parse_rfc3339
    return parse_rfc3339(s) or 0.0


def _image_reader(layer_dirs: list[str]):
    """Read a file of the image's root filesystem (top layer first)."""
    def read(path: str) -> bytes | None:
        for d in reversed(layer_dirs):
            p = os.path.join(d, path.lstrip("/"))
            if os.path.isfile(p) and not os.path.islink(p):
                try:
                    with open(p, "rb") as f:
                        return f.read()
                except OSError:
                    return None
        return None
    return read
