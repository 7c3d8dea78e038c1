"""The whole control plane with fake nodes: scheduling, Deployments, rolling updates.

    python -m bench.cluster_bench [--quick] [--profile] [--nodes 100]

Starts one `pybernetes server` (SQLite) running the API server, controller manager,
scheduler and ONE fake kubelet process simulating N nodes (`--kubelet-arg
fake-nodes=N`), waits for every node to be Ready, then runs, each bounded in count
and time and each observed by a watch from this process:

- pods: P bare pods created 64 in flight; pods/s from the first create to the last
  pod bound (spec.nodeName set), and to the last pod Running (the fake kubelet);
- deployment: a D-replica Deployment, create -> status.availableReplicas == D;
- rollout: an R-replica Deployment (made available first, untimed), then an image
  change (default 25% surge / 25% unavailable) -> observedGeneration caught up and
  replicas == updatedReplicas == availableReplicas == R.

CPU seconds and peak RSS of each child of the server (apiserver, controller-manager,
scheduler, kubelet) are sampled from /proc during each scenario. Writes
bench/results/cluster.json and redraws bench/results/cluster.png and the results
table in docs/PERFORMANCE.md; --profile (py-spy on every process per scenario)
writes cluster-profile.json and --only cluster[-profile]-<scenarios>.json instead.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import orjson

from .apiserver_bench import Profiler, git_commit, machine_info
from .load import pod_manifest
from .procs import Server, children, cmdline, cpu_seconds, machine_share, machine_ticks, \
    run_recorded, start_server

RESULTS = Path(__file__).parent / "results"
COMPONENTS = ("apiserver", "controller-manager", "scheduler", "kubelet")
FULL = {"nodes": 100, "pods": 3000, "deployment": 1000, "rollout": 500}
QUICK = {"nodes": 20, "pods": 500, "deployment": 200, "rollout": 100}
GOALS = {"pods_bound_per_s": (">=", 300)}  # the only number the issue sets a goal for
CREATE_CONCURRENCY = 64
SAMPLE_EVERY_S = 0.25
SCENARIO_TIMEOUT_S = 300.0
IMAGE, NEW_IMAGE = "nginx:1.27", "nginx:1.28"

Log = Callable[[str], None]


# -- the processes ------------------------------------------------------------------------

def component_pids(server_pid: int) -> dict[str, int]:
    """The supervisor's children by component name (`... pybernetes.cli.main <name> ...`)."""
    out = {}
    for pid in children(server_pid):
        argv = cmdline(pid)
        if "pybernetes.cli.main" in argv:
            i = argv.index("pybernetes.cli.main") + 1
            if i < len(argv) and argv[i] in COMPONENTS:
                out[argv[i]] = pid
    return out


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Samples CPU seconds and RSS of each component every SAMPLE_EVERY_S; between
    begin() and end() it keeps the peak RSS and a CPU-per-interval series."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True, name="sampler")
        self.pids = pids
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.window: dict[str, Any] | None = None

    def _read(self) -> tuple[dict[str, float], dict[str, int]]:
        cpu, rss = {}, {}
        for name, pid in self.pids.items():
            try:
                cpu[name] = cpu_seconds(pid)
            except OSError:  # restarted or gone: the JSON says so through `restarted`
                cpu[name] = float("nan")
            rss[name] = rss_kib(pid)
        return cpu, rss

    def begin(self) -> None:
        cpu, rss = self._read()
        with self.lock:
            self.window = {"t0": time.monotonic(), "cpu0": cpu, "last": cpu, "peak": rss,
                           "ticks": machine_ticks(), "series": []}

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_EVERY_S):
            cpu, rss = self._read()
            with self.lock:
                w = self.window
                if w is None:
                    continue
                w["peak"] = {n: max(w["peak"].get(n, 0), v) for n, v in rss.items()}
                t = round(time.monotonic() - w["t0"], 2)
                w["series"].append([t] + [round(cpu[n] - w["last"][n], 2) for n in self.pids])
                w["last"] = cpu

    def end(self) -> dict:
        cpu, rss = self._read()
        with self.lock:
            w, self.window = self.window, None
        assert w is not None
        wall = time.monotonic() - w["t0"]
        peak = {n: max(w["peak"].get(n, 0), v) for n, v in rss.items()}
        secs = {n: round(cpu[n] - w["cpu0"][n], 2) for n in self.pids}
        return {"wall_s": round(wall, 2), "cpu_seconds": secs,
                "cpu_pct": {n: round(100 * s / wall, 1) for n, s in secs.items()},
                "peak_rss_mib": {n: round(v / 1024, 1) for n, v in peak.items()},
                "machine_cpu_pct": machine_share(w["ticks"], machine_ticks()),
                "cpu_series": {"columns": ["t", *self.pids], "rows": w["series"]}}


def stop_tree(server: Server, pids: dict[str, int], log: Log) -> None:
    """SIGTERM the supervisor (it stops its children), then SIGKILL by pid whatever is
    left of the tree."""
    everyone = [server.proc.pid, *pids.values(), *component_pids(server.proc.pid).values()]
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(30)
        except subprocess.TimeoutExpired:
            log("server did not stop in 30 s after SIGTERM; SIGKILL")
    for pid in dict.fromkeys(everyone):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if server.proc.poll() is None:
        server.proc.wait(5)


# -- talking to the API -------------------------------------------------------------------

class Api:
    def __init__(self, server: Server) -> None:
        conn = aiohttp.TCPConnector(ssl=server.ssl_context(), limit=CREATE_CONCURRENCY + 8)
        self.session = aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=10, sock_read=120))
        self.url = server.url

    async def close(self) -> None:
        await self.session.close()

    async def request(self, method: str, path: str, body: Any = None,
                      ctype: str = "application/json") -> dict:
        data = None if body is None else orjson.dumps(body)
        async with self.session.request(method, self.url + path, data=data,
                                        headers={"Content-Type": ctype}) as r:
            raw = await r.read()
            if r.status >= 300:
                raise RuntimeError(f"{method} {path}: {r.status} {raw[:300]!r}")
            return orjson.loads(raw)

    async def watch(self, path: str, on_event: Callable[[str, dict], bool],
                    timeout: float) -> str:
        """LIST, hand every listed object to on_event as ADDED, then watch from the
        list's resourceVersion (re-watching from the last one seen if the stream ends)
        until on_event returns True or `timeout` passes. Returns "done" or "timeout"."""
        deadline = time.monotonic() + timeout
        listed = await self.request("GET", path)
        rv = listed["metadata"]["resourceVersion"]
        for obj in listed["items"]:
            if on_event("ADDED", obj):
                return "done"
        for _ in range(1000):  # each stream lasts until its timeoutSeconds at least
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            params = {"watch": "1", "resourceVersion": rv,
                      "timeoutSeconds": str(max(1, int(left)))}
            async with self.session.get(self.url + path, params=params) as r:
                if r.status != 200:
                    raise RuntimeError(f"watch {path}: {r.status} {await r.text()}")
                async for line in r.content:
                    ev = orjson.loads(line)
                    if ev["type"] == "ERROR":
                        raise RuntimeError(f"watch {path}: {ev['object']}")
                    obj = ev["object"]
                    rv = obj["metadata"].get("resourceVersion", rv)
                    if on_event(ev["type"], obj):
                        return "done"
        return "timeout"


async def bounded(n: int, work: Callable[[int], Awaitable[None]], concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await work(i)
    await asyncio.gather(*(one(i) for i in range(n)))


def deployment(name: str, namespace: str, replicas: int) -> dict:
    spec = pod_manifest(name, namespace)["spec"]
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": spec}}}


def curve(times: list[float], step: float = 0.5) -> list[list[float]]:
    """Cumulative count against time (seconds since the scenario's start), one point
    per `step`: small enough for the JSON, fine enough for the plot."""
    if not times:
        return []
    ordered = sorted(times)
    out, i, t = [], 0, 0.0
    while True:
        while i < len(ordered) and ordered[i] <= t:
            i += 1
        out.append([round(t, 2), i])
        if i == len(ordered):
            return out
        t += step


def rate(n: int, seconds: float | None) -> float | None:
    return round(n / seconds, 1) if seconds else None


# -- scenarios ------------------------------------------------------------------------------

async def wait_nodes(api: Api, nodes: int, log: Log, timeout: float = 180.0) -> float:
    t0 = time.monotonic()
    ready: set[str] = set()

    def seen(_type: str, node: dict) -> bool:
        conds = (node.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
            ready.add(node["metadata"]["name"])
        return len(ready) >= nodes
    if await api.watch("/api/v1/nodes", seen, timeout) != "done":
        raise RuntimeError(f"only {len(ready)} of {nodes} nodes Ready after {timeout:g} s")
    log(f"{nodes} nodes Ready after {time.monotonic() - t0:.1f} s")
    return round(time.monotonic() - t0, 2)


async def namespace(api: Api, name: str) -> None:
    """A new namespace, once its default ServiceAccount exists (pods need it)."""
    await api.request("POST", "/api/v1/namespaces",
                      {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    for _ in range(100):   # the serviceaccount controller's work: bounded at 10 s
        try:
            await api.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")
            return
        except RuntimeError:
            await asyncio.sleep(0.1)


async def scenario_pods(api: Api, count: int, log: Log) -> dict:
    ns = "bench-pods"
    await namespace(api, ns)
    bound: dict[str, float] = {}
    running: dict[str, float] = {}

    def seen(_type: str, pod: dict) -> bool:
        name, now = pod["metadata"]["name"], time.monotonic()
        if pod["spec"].get("nodeName") and name not in bound:
            bound[name] = now
        if (pod.get("status") or {}).get("phase") == "Running" and name not in running:
            running[name] = now
        return len(running) >= count and len(bound) >= count
    watcher = asyncio.create_task(api.watch(f"/api/v1/namespaces/{ns}/pods", seen,
                                            SCENARIO_TIMEOUT_S))
    await asyncio.sleep(0.5)  # the watch is open before the first create
    errors: list[str] = []

    async def create(i: int) -> None:
        try:
            await api.request("POST", f"/api/v1/namespaces/{ns}/pods",
                              pod_manifest(f"pod-{i:05d}", ns))
        except Exception as e:  # noqa: BLE001 - counted, the first few kept
            errors.append(str(e)[:300])
    t0 = time.monotonic()
    progress = asyncio.create_task(_progress(log, t0, lambda: (
        f"{count - len(errors)} to create: {len(bound)} bound, {len(running)} Running")))
    await bounded(count, create, CREATE_CONCURRENCY)
    created_s = time.monotonic() - t0
    log(f"pods: {count - len(errors)} created in {created_s:.1f} s ({len(errors)} errors)")
    outcome = await watcher
    progress.cancel()
    await asyncio.sleep(1)  # events are sent after the fact
    events = await api.request("GET", f"/api/v1/namespaces/{ns}/events")
    reasons = Counter(e.get("reason") for e in events["items"])
    last_bound = max(bound.values(), default=t0) - t0
    last_running = max(running.values(), default=t0) - t0
    return {"pods": count, "created": count - len(errors), "errors": len(errors),
            "error_samples": errors[:3], "outcome": outcome,
            "create_s": round(created_s, 2), "create_per_s": rate(count, created_s),
            "bound": len(bound), "running": len(running), "events": dict(reasons),
            "all_bound_s": round(last_bound, 2), "all_running_s": round(last_running, 2),
            "pods_bound_per_s": rate(len(bound), last_bound) if len(bound) == count else None,
            "pods_running_per_s": rate(len(running), last_running)
            if len(running) == count else None,
            "curves": {"bound": curve([t - t0 for t in bound.values()]),
                       "running": curve([t - t0 for t in running.values()])}}


async def _progress(log: Log, t0: float, what: Callable[[], str], every: float = 5.0) -> None:
    for _ in range(int(SCENARIO_TIMEOUT_S * 2 / every)):
        await asyncio.sleep(every)
        log(f"  {time.monotonic() - t0:5.1f} s: {what()}")


class DeploymentWatch:
    """Follows one Deployment's status; done when `until(status, generation)` holds."""

    def __init__(self, name: str, until: Callable[[dict, int], bool]) -> None:
        self.name, self.until = name, until
        self.t0 = time.monotonic()
        self.rows: list[list[float]] = []  # t, replicas, updated, ready, available
        self.status: dict = {}
        self.generation = 0
        self.min_generation: int | None = None  # set once the change is made


    def seen(self, _type: str, obj: dict) -> bool:
        if obj["metadata"]["name"] != self.name:
            return False
        st = obj.get("status") or {}
        self.status, self.generation = st, obj["metadata"].get("generation", 0)
        self.rows.append([round(time.monotonic() - self.t0, 2)] + [
            st.get(k, 0) for k in ("replicas", "updatedReplicas", "readyReplicas",
                                   "availableReplicas")])
        return self.min_generation is not None and self.generation >= self.min_generation \
            and self.until(st, self.generation)

    def describe(self) -> str:
        st = self.status
        return (f"replicas {st.get('replicas', 0)}, updated {st.get('updatedReplicas', 0)}, "
                f"available {st.get('availableReplicas', 0)}")


def available(replicas: int) -> Callable[[dict, int], bool]:
    return lambda st, gen: st.get("observedGeneration", 0) >= gen and \
        st.get("availableReplicas", 0) >= replicas


def rolled_out(replicas: int) -> Callable[[dict, int], bool]:
    return lambda st, gen: st.get("observedGeneration", 0) >= gen and \
        st.get("replicas") == st.get("updatedReplicas") == st.get("availableReplicas") == replicas


async def follow(api: Api, ns: str, name: str, until: Callable[[dict, int], bool],
                 change: Callable[[], Awaitable[dict]], log: Log, label: str) -> dict:
    """Open a watch on the namespace's Deployments, make `change`, time until `until`."""
    dw = DeploymentWatch(name, until)
    watcher = asyncio.create_task(api.watch(f"/apis/apps/v1/namespaces/{ns}/deployments",
                                            dw.seen, SCENARIO_TIMEOUT_S))
    await asyncio.sleep(0.5)  # the watch is open before the change
    if watcher.done():
        raise RuntimeError(f"{label}: the watch ended early: {watcher.result()}")
    dw.t0 = t0 = time.monotonic()
    dw.rows.clear()
    progress = asyncio.create_task(_progress(log, t0, lambda: f"{label}: {dw.describe()}"))
    changed = await change()
    # Only a status that has seen this change counts (its event may come before the
    # response: generation is compared, not arrival order).
    dw.min_generation = changed["metadata"].get("generation", 1)
    outcome = await watcher
    progress.cancel()
    took = dw.rows[-1][0] if dw.rows and outcome == "done" else None
    return {"outcome": outcome, "seconds": took, "status": dw.status,
            "max_replicas": max((r[1] for r in dw.rows), default=0), "series": dw.rows}


async def scenario_deployment(api: Api, replicas: int, log: Log) -> dict:
    ns, name = "bench-deploy", "web"
    await namespace(api, ns)
    out = await follow(api, ns, name, available(replicas), lambda: api.request(
        "POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment(name, ns, replicas)),
        log, "deployment")
    out["replicas"] = replicas
    out["pods_available_per_s"] = rate(replicas, out["seconds"])
    return out


ROLLOUT_NS, ROLLOUT_NAME = "bench-rollout", "web"


async def setup_rollout(api: Api, replicas: int, log: Log) -> dict:
    """The Deployment the rollout changes, made available first (not measured)."""
    await namespace(api, ROLLOUT_NS)
    path = f"/apis/apps/v1/namespaces/{ROLLOUT_NS}/deployments"
    setup = await follow(api, ROLLOUT_NS, ROLLOUT_NAME, available(replicas), lambda: api.request(
        "POST", path, deployment(ROLLOUT_NAME, ROLLOUT_NS, replicas)), log, "rollout setup")
    if setup["outcome"] != "done":
        raise RuntimeError(f"rollout setup: {replicas} replicas not available after "
                           f"{SCENARIO_TIMEOUT_S:g} s ({setup['status']})")
    log(f"rollout: {replicas} replicas available after {setup['seconds']} s; changing image")
    return setup


async def scenario_rollout(api: Api, replicas: int, log: Log, setup: dict) -> dict:
    path = f"/apis/apps/v1/namespaces/{ROLLOUT_NS}/deployments/{ROLLOUT_NAME}"
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web",
                                                            "image": NEW_IMAGE}]}}}}
    out = await follow(api, ROLLOUT_NS, ROLLOUT_NAME, rolled_out(replicas), lambda: api.request(
        "PATCH", path, patch, "application/strategic-merge-patch+json"), log, "rollout")
    out["replicas"] = replicas
    out["max_surge_allowed"] = replicas + -(-replicas * 25 // 100)
    out["setup_s"] = setup["seconds"]
    out["pods_replaced_per_s"] = rate(replicas, out["seconds"])
    return out


# -- the run ------------------------------------------------------------------------------

# name -> (measured part, size key, untimed setup whose result the measured part gets)
SCENARIOS: dict[str, tuple[Callable, str, Callable | None]] = {
    "pods": (scenario_pods, "pods", None),
    "deployment": (scenario_deployment, "deployment", None),
    "rollout": (scenario_rollout, "rollout", setup_rollout),
}


async def run_scenarios(server: Server, sampler: Sampler, sizes: dict, profile_dir: Path | None,
                        only: list[str], out: dict, log: Log) -> None:
    api = Api(server)
    try:
        out["nodes_ready_s"] = await wait_nodes(api, sizes["nodes"], log)
        log("idle: 10 s with every node heartbeating, nothing else")
        sampler.begin()
        await asyncio.sleep(10)
        out["scenarios"]["idle"] = {"processes": sampler.end()}
        for name, (fn, size, setup) in SCENARIOS.items():
            if name not in only:
                continue
            log(f"{name}: {sizes[size]}")
            args = (await setup(api, sizes[size], log),) if setup else ()
            await asyncio.sleep(2 if setup else 0)  # the setup's stragglers settle
            profilers = _profilers(sampler.pids, profile_dir, name)
            sampler.begin()
            try:
                result = await fn(api, sizes[size], log, *args)
            finally:
                result_procs = sampler.end()
                prof = {c: p.stop() for c, p in profilers.items()}
            result["processes"] = result_procs
            if prof:
                result["profile"] = prof
            out["scenarios"][name] = result
            log(f"{name}: {_headline(name, result)}; CPU s "
                f"{result_procs['cpu_seconds']}, wall {result_procs['wall_s']} s")
            await asyncio.sleep(3)  # let the stragglers (events, status writes) settle
    finally:
        await api.close()


def _profilers(pids: dict[str, int], directory: Path | None, scenario: str) -> dict:
    if directory is None:
        return {}
    return {c: Profiler(pid, directory / f"{scenario}-{c}.txt") for c, pid in pids.items()
            if c in COMPONENTS}


def _headline(name: str, r: dict) -> str:
    if name == "pods":
        return (f"{r['bound']}/{r['pods']} bound in {r['all_bound_s']} s "
                f"({r['pods_bound_per_s']}/s), Running in {r['all_running_s']} s "
                f"({r['pods_running_per_s']}/s)")
    return f"{r.get('outcome')} in {r.get('seconds')} s"


def judge(scenarios: dict) -> dict:
    value = scenarios.get("pods", {}).get("pods_bound_per_s")
    op, target = GOALS["pods_bound_per_s"]
    return {"pods_bound_per_s": {"value": value, "goal": f"{op} {target}",
                                 "met": None if value is None else value >= target}}


def run(args: argparse.Namespace, sizes: dict, tmp: Path, result: dict, log: Log) -> None:
    extra = ["--node-name", "bench", "--kubelet-runtime", "fake",
             "--kubelet-arg", f"fake-nodes={sizes['nodes']}",
             "--log-level", args.log_level]
    for flag in args.scheduler_arg:
        extra += ["--kube-scheduler-arg", flag]
    server = start_server(tmp / "server", "sqlite", extra=extra, timeout=90)
    pids: dict[str, int] = {}
    sampler: Sampler | None = None
    try:
        for _ in range(100):  # the children appear once the supervisor has spawned them
            pids = component_pids(server.proc.pid)
            if len(pids) == len(COMPONENTS):
                break
            time.sleep(0.1)
        result["pids"] = pids
        log(f"server at {server.url}; pids {pids}; data {tmp}")
        # this process too: the load generator and the watches share the machine
        sampler = Sampler({**pids, "client": os.getpid()})
        sampler.start()
        profile_dir = tmp if args.profile else None
        started = time.monotonic()
        try:
            asyncio.run(run_scenarios(server, sampler, sizes, profile_dir, args.only, result,
                                      log))
        finally:
            result["duration_s"] = round(time.monotonic() - started, 1)
            result["restarted"] = sorted(c for c, pid in component_pids(server.proc.pid).items()
                                         if pids.get(c) != pid)
    finally:
        if sampler:
            sampler.stopped.set()
        stop_tree(server, pids, log)
        _keep_logs(tmp / "server", result)


def _keep_logs(data_dir: Path, result: dict) -> None:
    """The last warnings of each component, for the JSON (the data dir is removed)."""
    tails = {}
    for c in COMPONENTS:
        try:
            lines = (data_dir / "logs" / f"{c}.log").read_text(errors="replace").splitlines()
        except OSError:
            continue
        tails[c] = [ln[:300] for ln in lines if "WARNING" in ln or "ERROR" in ln][-5:]
    result["log_warnings"] = tails


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.cluster_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy on every process during each scenario (into the JSON)")
    ap.add_argument("--nodes", type=int, help="fake nodes (default 100, 20 with --quick)")
    ap.add_argument("--scheduler-arg", action="append", default=[], metavar="FLAG=VALUE",
                    help="passed as --kube-scheduler-arg (e.g. bind-concurrency=64)")
    ap.add_argument("--only", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS),
                    help="run only these scenarios (the JSON is then partial)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    ap.add_argument("--keep", action="store_true", help="keep the temp data dir")
    ap.add_argument("--log-level", default="warning", help="of every component (info: per pod)")
    args = ap.parse_args(argv)
    log = lambda msg: print(f"[cluster] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    sizes = dict(QUICK if args.quick else FULL)
    if args.nodes:
        sizes["nodes"] = args.nodes
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so `finally` stops the server

    tmp = Path(tempfile.mkdtemp(prefix="pyb-bench-cluster-"))
    result: dict[str, Any] = {"storage": "sqlite", "quick": args.quick, "sizes": sizes,
                              "only": args.only,
                              "profile": args.profile, "scheduler_args": args.scheduler_arg,
                              "date": datetime.datetime.now(datetime.UTC).isoformat(
                                  timespec="seconds"),
                              **git_commit(), "machine": machine_info(), "scenarios": {}}
    run_recorded(lambda: run(args, sizes, tmp, result, log), result, tmp, args.keep, log)
    result["goals"] = judge(result["scenarios"])

    args.out.mkdir(parents=True, exist_ok=True)
    partial = set(args.only) != set(SCENARIOS)
    name = "cluster" + ("-profile" if args.profile else "") + \
        ("-" + "-".join(n for n in SCENARIOS if n in args.only) if partial else "")
    path = args.out / f"{name}.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    log(f"wrote {path}")
    if name == "cluster":  # a full, unprofiled run: the plot and the doc's table follow
        from . import cluster_report
        cluster_report.main(["--results", str(args.out)])
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
