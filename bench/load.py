"""The load generator: asyncio + aiohttp clients speaking to the API server over
TLS with the admin client certificate. Each step is a plain function that runs
its own event loop, so the orchestrator can run it in a separate process
(the client costs CPU too, and must not share the server's interpreter)."""
from __future__ import annotations

import asyncio
import math
import random
import ssl
import time
from dataclasses import dataclass
from typing import Callable

import aiohttp
import orjson

try:  # the client's own CPU cost matters on 2 cores: use the faster loop if present
    import uvloop
    _run = uvloop.run
except ImportError:  # pragma: no cover
    _run = asyncio.run

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io"


@dataclass(frozen=True)
class Target:
    """Where the server is and how to authenticate; picklable for the worker."""

    url: str
    ca: str
    cert: str
    key: str
    resource: str = "pods"  # a key of RESOURCES

    def collection(self, namespace: str) -> str:
        prefix, _, namespaced = RESOURCES[self.resource]
        scope = f"/namespaces/{namespace}" if namespaced else ""
        return f"{self.url}{prefix}{scope}/{self.resource}"

    def manifest(self, name: str, namespace: str) -> dict:
        return RESOURCES[self.resource][1](name, namespace)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def session(self, connections: int) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=connections, ssl=self.ssl_context(),
                                         keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
        return aiohttp.ClientSession(connector=connector, timeout=timeout)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def latency_summary(latencies: list[float]) -> dict:
    """p50/p99/max in milliseconds."""
    ms = lambda v: None if v is None else round(v * 1000, 2)  # noqa: E731
    return {"p50_ms": ms(percentile(latencies, 50)), "p99_ms": ms(percentile(latencies, 99)),
            "max_ms": ms(max(latencies) if latencies else None)}


def pod_name(i: int) -> str:
    return f"bench-{i:05d}"


def pod_manifest(name: str, namespace: str) -> dict:
    """A small but realistic pod: labels, one container with ports, resources,
    env and a probe, like a Deployment's template would carry."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app": "bench", "tier": "web", "shard": name[-1]}},
        "spec": {
            "containers": [{
                "name": "web", "image": "nginx:1.27",
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "MODE", "value": "bench"}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                              "limits": {"memory": "64Mi"}},
                "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 10},
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 5,
        },
    }


def configmap_manifest(name: str, namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench"}},
            "data": {"mode": "bench", "config.yaml": "replicas: 3\nport: 80\n" * 4}}


def deployment_manifest(name: str, namespace: str) -> dict:
    pod = pod_manifest(name, namespace)
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod["spec"]}}}


def role_manifest(name: str, namespace: str) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench"}},
            "rules": [{"apiGroups": [""], "resources": ["pods", "configmaps"],
                       "verbs": ["get", "list", "watch"]}]}


def clusterrole_manifest(name: str, namespace: str) -> dict:
    role = role_manifest(name, namespace)
    del role["metadata"]["namespace"]
    return {**role, "kind": "ClusterRole"}


# The benchmark is about pods; the others let the harness run against a server
# that does not serve the core group yet.
RBAC = "/apis/rbac.authorization.k8s.io/v1"
RESOURCES = {  # plural -> (path prefix, manifest, namespaced)
    "pods": ("/api/v1", pod_manifest, True),
    "configmaps": ("/api/v1", configmap_manifest, True),
    "deployments": ("/apis/apps/v1", deployment_manifest, True),
    "roles": (RBAC, role_manifest, True),
    "clusterroles": (RBAC, clusterrole_manifest, False),
}


class Errors:
    """Counts failed requests and keeps the first few bodies for the report."""

    def __init__(self) -> None:
        self.count = 0
        self.samples: list[str] = []

    def add(self, status: int, body: bytes | str) -> None:
        self.count += 1
        if len(self.samples) < 3:
            text = body.decode(errors="replace") if isinstance(body, bytes) else body
            self.samples.append(f"{status}: {text[:300]}")

    def report(self) -> dict:
        return {"errors": self.count, "error_samples": self.samples}


# ---------------------------------------------------------------- setup

async def _ensure_namespace(session: aiohttp.ClientSession, url: str, name: str) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    async with session.post(f"{url}/api/v1/namespaces", json=body) as r:
        if r.status not in (200, 201, 409, 404):  # 404: namespaces not served
            raise RuntimeError(f"create namespace {name}: {r.status} {await r.text()}")


def client_pid(_: Target) -> int:
    """The load process's pid, so the orchestrator can meter it too."""
    import os
    return os.getpid()


def ensure_namespaces(target: Target, names: list[str]) -> None:
    async def main() -> None:
        async with target.session(2) as s:
            for name in names:
                await _ensure_namespace(s, target.url, name)
    _run(main())


# ---------------------------------------------------------------- creates

async def _create(target: Target, namespace: str, first: int, last: int, concurrency: int,
                  deadline_s: float) -> dict:
    path = target.collection(namespace)
    latencies: list[float] = []
    errors = Errors()
    next_index = first
    created = 0
    deadline = time.monotonic() + deadline_s

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_index, created
        while next_index < last and time.monotonic() < deadline:
            i, next_index = next_index, next_index + 1
            data = orjson.dumps(target.manifest(pod_name(i), namespace))
            t0 = time.monotonic()
            async with session.post(path, data=data,
                                    headers={"Content-Type": "application/json"}) as r:
                body = await r.read()
                if r.status == 201:
                    latencies.append(time.monotonic() - t0)
                    created += 1
                else:
                    errors.add(r.status, body)

    async with target.session(concurrency) as session:
        start = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        wall = time.monotonic() - start
    return {"requested": last - first, "created": created, "wall_s": round(wall, 3),
            "per_s": round(created / wall, 1) if wall else None, "concurrency": concurrency,
            "timed_out": next_index < last, **latency_summary(latencies), **errors.report()}


def create_pods(target: Target, namespace: str, first: int, last: int, concurrency: int = 32,
                deadline_s: float = 180.0) -> dict:
    """POST pods first..last-1 with `concurrency` requests in flight."""
    return _run(_create(target, namespace, first, last, concurrency, deadline_s))


# ---------------------------------------------------------------- gets

async def _get(target: Target, urls: Callable[[random.Random], str], count: int,
               concurrency: int, deadline_s: float) -> dict:
    rng = random.Random(1)
    latencies: list[float] = []
    errors = Errors()
    issued = 0
    deadline = time.monotonic() + deadline_s

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal issued
        while issued < count and time.monotonic() < deadline:
            issued += 1
            t0 = time.monotonic()
            async with session.get(urls(rng)) as r:
                body = await r.read()
                if r.status == 200:
                    latencies.append(time.monotonic() - t0)
                else:
                    errors.add(r.status, body)

    async with target.session(concurrency) as session:
        start = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        wall = time.monotonic() - start
    return {"requested": count, "ok": len(latencies), "wall_s": round(wall, 3),
            "per_s": round(len(latencies) / wall, 1) if wall else None,
            "concurrency": concurrency, **latency_summary(latencies), **errors.report()}


def get_pods(target: Target, namespace: str, existing: int, count: int, concurrency: int = 32,
             deadline_s: float = 60.0) -> dict:
    """GET random pods among the first `existing` ones."""
    base = target.collection(namespace) + "/"
    result = _run(_get(target, lambda rng: base + pod_name(rng.randrange(existing)), count,
                       concurrency, deadline_s))
    return {**result, "pods_existing": existing}


def get_path(target: Target, path: str, count: int, concurrency: int = 32,
             deadline_s: float = 60.0) -> dict:
    """GET one fixed path: the ceiling of this client + TLS + HTTP stack."""
    url = target.url + path
    return {**_run(_get(target, lambda rng: url, count, concurrency, deadline_s)), "path": path}


# ---------------------------------------------------------------- list

async def _list_once(session: aiohttp.ClientSession, url: str, accept: str) -> dict:
    t0 = time.monotonic()
    async with session.get(url, headers={"Accept": accept}) as r:
        body = await r.read()
        t_body = time.monotonic() - t0
        if r.status != 200:
            return {"error": f"{r.status}: {body[:300].decode(errors='replace')}"}
    doc = orjson.loads(body)
    n = len(doc.get("rows" if doc.get("kind") == "Table" else "items") or [])
    return {"wall_s": t_body, "items": n, "bytes": len(body), "kind": doc.get("kind")}


async def _list(target: Target, namespace: str, repeat: int) -> dict:
    url = target.collection(namespace)
    out: dict = {}
    async with target.session(1) as session:
        for form, accept in (("json", "application/json"), ("table", TABLE_ACCEPT)):
            runs = [await _list_once(session, url, accept) for _ in range(repeat)]
            failed = [r for r in runs if "error" in r]
            if failed:
                out[form] = {"error": failed[0]["error"]}
                continue
            walls = sorted(r["wall_s"] for r in runs)
            out[form] = {"wall_s_min": round(walls[0], 3),
                         "wall_s_median": round(walls[len(walls) // 2], 3),
                         "items": runs[0]["items"], "bytes": runs[0]["bytes"],
                         "kind": runs[0]["kind"], "repeat": repeat}
    return out


def list_pods(target: Target, namespace: str, repeat: int = 3) -> dict:
    """Wall time of one full LIST as JSON and as a Table, `repeat` times each."""
    return _run(_list(target, namespace, repeat))


# ---------------------------------------------------------------- watch

async def _watch(target: Target, namespace: str, watchers: int, updates: int, spacing_s: float,
                 pods: int, deadline_s: float) -> dict:
    base = target.collection(namespace)
    errors = Errors()
    deadline = time.monotonic() + deadline_s
    write_done: dict[str, float] = {}            # resourceVersion -> time the write answered
    received: list[dict[str, float]] = [{} for _ in range(watchers)]
    connected = [asyncio.Event() for _ in range(watchers)]
    all_written = asyncio.Event()

    async with target.session(4) as writer, target.session(watchers) as watch_session:
        async with writer.get(base) as r:
            rv = (await r.json())["metadata"]["resourceVersion"]

        async def watcher(k: int) -> None:
            url = f"{base}?watch=1&resourceVersion={rv}&timeoutSeconds={int(deadline_s) + 10}"
            async with watch_session.get(url) as r:
                connected[k].set()
                if r.status != 200:
                    errors.add(r.status, await r.read())
                    return
                seen = received[k]
                async for line in r.content:
                    t = time.monotonic()
                    event = orjson.loads(line)
                    if event.get("type") == "MODIFIED":
                        seen[event["object"]["metadata"]["resourceVersion"]] = t
                    if all_written.is_set() and len(seen) >= updates:
                        return

        tasks = [asyncio.create_task(watcher(k)) for k in range(watchers)]
        await asyncio.wait([asyncio.create_task(e.wait()) for e in connected], timeout=15)
        await asyncio.sleep(0.5)  # let the server register every watcher
        ready = sum(e.is_set() for e in connected)

        start = time.monotonic()
        for i in range(updates):
            await asyncio.sleep(max(0.0, start + i * spacing_s - time.monotonic()))
            patch = {"metadata": {"labels": {"seq": str(i)}}}
            async with writer.patch(f"{base}/{pod_name(i % pods)}", data=orjson.dumps(patch),
                                    headers={"Content-Type": "application/merge-patch+json"}) as r:
                body = await r.read()
                t = time.monotonic()
                if r.status == 200:
                    write_done[orjson.loads(body)["metadata"]["resourceVersion"]] = t
                else:
                    errors.add(r.status, body)
        all_written.set()
        _, pending = await asyncio.wait(tasks, timeout=max(1.0, deadline - time.monotonic()))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    latencies = [max(0.0, seen[rv] - t) for seen in received
                 for rv, t in write_done.items() if rv in seen]
    early = sum(1 for seen in received for rv, t in write_done.items()
                if rv in seen and seen[rv] < t)
    expected = watchers * len(write_done)
    return {"watchers": watchers, "watchers_connected": ready, "updates": updates,
            "updates_ok": len(write_done), "spacing_ms": spacing_s * 1000,
            "events_expected": expected, "events_received": len(latencies),
            "events_missing": expected - len(latencies), "events_before_write_response": early,
            **latency_summary(latencies), **errors.report()}


def watch_fanout(target: Target, namespace: str, watchers: int = 100, updates: int = 200,
                 spacing_s: float = 0.02, pods: int = 10, deadline_s: float = 60.0) -> dict:
    """`watchers` watches from one list's resourceVersion; `updates` patches
    spaced `spacing_s` apart; latency from each write's response to receipt."""
    return _run(_watch(target, namespace, watchers, updates, spacing_s, pods, deadline_s))
