"""Scheduler throughput: a real `pybernetes server`, N Node objects (capacity set
through the status subresource), P pending pods created up front, then
`pybernetes scheduler` started as its own process. A watch counts pods as they
get a nodeName; the result is pods bound per second (goal: >= 300/s for 100 nodes
and 3,000 pods) and the scheduler's CPU, written to bench/results/scheduler.json.

    .venv/bin/python -m bench.scheduler_bench [--nodes 100] [--pods 3000]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from bench.load import pod_manifest
from bench.procs import cpu_seconds, machine_share, machine_ticks, start_server, stop_process

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
NS = "bench"
# Until pybernetes.client lands the scheduler runs on the controllers' stand-in client
# (install() does nothing once the real client exists).
_MAIN = ("import sys; from tests.unit.controllers.client_standin import install; install(); "
         "from pybernetes.cli.main import main; sys.exit(main(sys.argv[1:]))")


def node_manifest(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"node-{i:03d}",
                         "labels": {"kubernetes.io/hostname": f"node-{i:03d}",
                                    "topology.kubernetes.io/zone": f"zone-{i % 3}"}}}


NODE_STATUS = {"status": {"capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                          "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"}}}


async def _bounded(n: int, work, concurrency: int = 32) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await work(i)
    await asyncio.gather(*(one(i) for i in range(n)))


async def _post(s: aiohttp.ClientSession, url: str, body: dict, method: str = "POST",
                ctype: str = "application/json") -> None:
    async with s.request(method, url, data=orjson.dumps(body),
                         headers={"Content-Type": ctype}) as r:
        if r.status >= 300:
            raise RuntimeError(f"{method} {url}: {r.status} {await r.text()}")


async def populate(server, nodes: int, pods: int) -> float:
    conn = aiohttp.TCPConnector(ssl=server.ssl_context(), limit=32)
    async with aiohttp.ClientSession(connector=conn) as s:
        base = server.url
        await _post(s, f"{base}/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": NS}})

        async def node(i: int) -> None:
            await _post(s, f"{base}/api/v1/nodes", node_manifest(i))
            await _post(s, f"{base}/api/v1/nodes/node-{i:03d}/status", NODE_STATUS, "PATCH",
                        "application/merge-patch+json")
        await _bounded(nodes, node)
        t0 = time.monotonic()
        await _bounded(pods, lambda i: _post(s, f"{base}/api/v1/namespaces/{NS}/pods",
                                             pod_manifest(f"pod-{i:05d}", NS)))
        return pods / (time.monotonic() - t0)


async def count_bound(server, pods: int, timeout: float) -> tuple[list[float], int]:
    """Times at which each pod was first seen bound (a watch from the current RV)."""
    conn = aiohttp.TCPConnector(ssl=server.ssl_context())
    times: list[float] = []
    seen: set[str] = set()
    url = f"{server.url}/api/v1/namespaces/{NS}/pods"
    async with aiohttp.ClientSession(connector=conn) as s:
        async with s.get(url, params={"limit": "0"}) as r:
            listed = await r.json()
        rv = listed["metadata"]["resourceVersion"]
        for p in listed["items"]:
            if p["spec"].get("nodeName"):
                seen.add(p["metadata"]["name"])
        params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": str(int(timeout))}
        async with s.get(url, params=params, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            async for line in r.content:
                ev = orjson.loads(line)
                obj = ev["object"]
                name = obj.get("metadata", {}).get("name")
                if obj.get("spec", {}).get("nodeName") and name not in seen:
                    seen.add(name)
                    times.append(time.monotonic())
                    if len(seen) >= pods:
                        break
    return times, len(seen)


def start_scheduler(server, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _MAIN, "scheduler", "--kubeconfig",
                             str(server.data_dir / "admin.kubeconfig"), "--leader-elect=false",
                             "--log-level", "warning"],
                            cwd=REPO, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


async def measure(server, pods: int, timeout: float) -> dict:
    watcher = asyncio.ensure_future(count_bound(server, pods, timeout))
    await asyncio.sleep(0.5)  # the watch is open before the scheduler starts
    ticks = machine_ticks()
    started = time.monotonic()
    proc = start_scheduler(server, server.data_dir / "scheduler.log")
    try:
        times, bound = await watcher
        cpu = cpu_seconds(proc.pid)
    finally:
        stop_process(proc)
    out = {"bound": bound, "machine": machine_share(ticks, machine_ticks()),
           "scheduler_cpu_seconds": round(cpu, 2)}
    if len(times) >= 2:
        window = times[-1] - times[0]
        out["pods_per_second"] = round((len(times) - 1) / window, 1) if window > 0 else None
        out["first_bind_after_start_s"] = round(times[0] - started, 2)
        out["all_bound_after_start_s"] = round(times[-1] - started, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--pods", type=int, default=3000)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--output", default=str(RESULTS / "scheduler.json"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sched-bench-") as d:
        server = start_server(Path(d) / "data", "sqlite")
        try:
            create_rate = asyncio.run(populate(server, args.nodes, args.pods))
            result = asyncio.run(measure(server, args.pods, args.timeout))
        finally:
            server.stop()
    result.update({"nodes": args.nodes, "pods": args.pods, "storage": "sqlite",
                   "pod_create_per_second": round(create_rate, 1), "goal_pods_per_second": 300,
                   "date": time.strftime("%Y-%m-%d")})
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["bound"] == args.pods else 1


if __name__ == "__main__":
    sys.exit(main())
