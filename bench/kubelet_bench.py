"""The real kubelet (runc): pod startup latency and the kubelet's memory.

    python -m bench.kubelet_bench [--pods 100] [--rates 2 5 10 0] [--profile] [--quick]
                                  [--runtime-class NAME]
    python -m bench.kubelet_bench --report      # redraw plot + table from kubelet.json

Needs root, runc, Debian's docker-registry and busybox-static, and the CNI plugins
(says so and exits 0 without them). Starts a registry on 127.0.0.1 with the test
busybox image, a `pybernetes server` (SQLite; API server, controller manager,
scheduler, no kubelet) and `pybernetes kubelet --runtime runc` as its own process
with a root dir, CNI bridge and pod CIDR of its own. One pod first pulls the image
(untimed: the image is cached for what follows). Then, observed by a watch from this
process:

- startup: P pods (`sleep`, one container each) bound directly to the node
  (spec.nodeName), created at each of --rates pods/s (0: all at once, 16 in
  flight). A pod's startup latency is from just before its create request to the watch event that
  shows every container `running` (upstream's pod startup SLI, image cached); the
  pod's own timestamps (creationTimestamp, startedAt) have whole seconds only, so
  the client's clock is used. Half-way (P/2 pods running) and at P the kubelet's
  VmRSS is read from /proc/<pid>/status;
- idle: VmRSS of the registered kubelet with no pod, before the startup run.

--runtime-class NAME: every bench pod names this RuntimeClass (e.g. crun, which the
server ships; another NAME is created with handler NAME when missing), so the same
runs measure that handler's OCI runtime instead of runc.

The monitors (conmon, one per container; the Python monitor for the process
runtime) are not part of the
kubelet's RSS; their total is reported separately. Writes bench/results/kubelet.json,
bench/results/kubelet.png and the table in docs/PERFORMANCE.md ("Kubelet (runc)");
--profile [kubelet|apiserver] runs py-spy on that process during the startup run
(kubelet-<process>-profile.json, the doc is left alone)."""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .apiserver_bench import Profiler, git_commit, machine_info
from .cluster_bench import Api, rss_kib
from .procs import (CLOCK_TICKS, Server, children, cpu_seconds, machine_share, machine_ticks,
                    start_server, stop_process)
from .report import write_between_markers

RESULTS = Path(__file__).parent / "results"
DOC = Path(__file__).resolve().parents[1] / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- BEGIN kubelet results -->", "<!-- END kubelet results -->"
REPO = Path(__file__).resolve().parents[1]
NODE = "bench-node"
BRIDGE = f"pyb{os.getpid() % 100000}"
SUBNET = 150 + os.getpid() % 50
GOALS = {"startup_p99_s": 1.0, "kubelet_rss_mib_50_pods": 100.0}
SLO_P99_S = 5.0
STARTUP_TIMEOUT_S = 300.0
CREATE_CONCURRENCY = 16
# a pod that sleeps but exits at once on SIGTERM (a bare `sleep` as PID 1 ignores it and
# would hold every deletion for its grace period)
EXIT_ON_TERM = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]

Log = Any


def log(msg: str) -> None:
    print(f"[kubelet-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def missing() -> str:
    from tests import oci_images
    if os.geteuid() != 0:
        return "the runc runtime needs root"
    if shutil.which("runc") is None:
        return "runc is not installed"
    if not oci_images.have_registry():
        return "docker-registry or busybox-static is not installed"
    if not os.path.exists("/usr/lib/cni/bridge"):
        return "containernetworking-plugins are not installed"
    return ""


# -- processes ----------------------------------------------------------------------------

def start_kubelet(server: Server, root: Path) -> subprocess.Popen:
    out = open(root.parent / "kubelet.log", "ab")
    entry = ["-m", "pybernetes.cli.main"]
    if os.environ.get("KUBELET_BENCH_ENTRY"):   # e.g. a script that wraps the kubelet
        entry = [os.environ["KUBELET_BENCH_ENTRY"]]
    return subprocess.Popen(
        [sys.executable, *entry, "kubelet", "--kubeconfig",
         str(server.data_dir / "admin.kubeconfig"), "--runtime", "runc", "--node-name", NODE,
         "--root-dir", str(root), "--cni-bridge", BRIDGE,
         "--pod-cidr", f"10.{SUBNET}.250.0/24", "--log-level", "warning"],
        cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)


def monitors_rss_kib(root: Path) -> tuple[int, int]:
    """(count, total VmRSS) of the container monitors of this kubelet's root dir."""
    n = total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            argv = open(f"/proc/{d}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        monitor = "monitor.py" in argv or os.path.basename(argv.split("\0")[0]) == "conmon"
        if monitor and str(root) in argv:
            n += 1
            total += rss_kib(int(d))
    return n, total


def kubelet_cpu(pid: int) -> tuple[float, float]:
    """(own, exec'd tools) CPU seconds of the kubelet: utime+stime of its threads, and
    cutime+cstime of the children it waited for (CNI plugins, runc, unshare, iptables;
    not conmon, which daemonizes, nor the containers)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return cpu_seconds(pid), (int(fields[13]) + int(fields[14])) / CLOCK_TICKS


def cpu_used(before: dict, after: dict, pods: int) -> dict:
    """CPU seconds per pod spent by each process between two samples: steadier than
    the latency on a shared machine (other work slows us but does not add to these)."""
    return {k: round((after[k] - before[k]) / max(pods, 1), 3) for k in before}


def cpu_sample(kubelet_pid: int, apiserver_pid: int) -> dict:
    own, tools = kubelet_cpu(kubelet_pid)
    return {"kubelet": own, "kubelet_tools": tools, "apiserver": cpu_seconds(apiserver_pid),
            "other_control_plane": other_control_plane(apiserver_pid),
            "node_total": NodeCgroup.usage(), "containers": NodeCgroup.containers()}


def other_control_plane(apiserver_pid: int) -> float:
    """CPU seconds of the server's supervisor and its components but the API server
    (controller manager, scheduler)."""
    with open(f"/proc/{apiserver_pid}/stat") as f:
        parent = int(f.read().rsplit(")", 1)[1].split()[1])
    total = cpu_seconds(parent)
    for pid in children(parent):
        if pid != apiserver_pid:
            try:
                total += cpu_seconds(pid)
            except OSError:
                pass
    return total


class NodeCgroup:
    """A cpuacct cgroup (v1; cpu.stat on v2) holding the server and the kubelet with all
    they start (conmon daemonizes, so /proc's child times miss it and its runc); with the
    containers' cgroups under /pybernetes, its usage is all the CPU the node spends on
    the pods, whatever else runs on the machine."""
    name = f"kubelet-bench-{os.getpid()}"

    @staticmethod
    def _mount() -> tuple[str, bool]:
        """(mount point, is v2) of the hierarchy that accounts CPU."""
        v2 = ""
        with open("/proc/self/mountinfo") as f:
            for line in f:
                pre, _, post = line.partition(" - ")
                fstype, _src, opts = (post.split() + ["", "", ""])[:3]
                if fstype == "cgroup" and "cpuacct" in opts.split(","):
                    return pre.split()[4], False
                if fstype == "cgroup2" and not v2:
                    v2 = pre.split()[4]
        return v2, True

    @classmethod
    def _usage_s(cls, rel: str) -> float:
        mount, v2 = cls._mount()
        try:
            if v2:
                with open(os.path.join(mount, rel, "cpu.stat")) as f:
                    return int(f.readline().split()[1]) / 1e6
            with open(os.path.join(mount, rel, "cpuacct.usage")) as f:
                return int(f.read()) / 1e9
        except (OSError, ValueError, IndexError):
            return 0.0

    @classmethod
    def usage(cls) -> float:
        return cls._usage_s(cls.name) + cls.containers()

    @classmethod
    def containers(cls) -> float:
        """The containers' cgroups (runc init's work once it joined them, and the pods')."""
        return cls._usage_s("pybernetes")

    @classmethod
    def move(cls, into: bool) -> None:
        """Move this process into the cgroup (its children started meanwhile stay) or
        back to the root."""
        mount, _v2 = cls._mount()
        path = os.path.join(mount, cls.name) if into else mount
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    @classmethod
    def remove(cls) -> None:
        mount, _v2 = cls._mount()
        try:
            os.rmdir(os.path.join(mount, cls.name))
        except OSError as e:
            log(f"cgroup {cls.name} not removed: {e}")


def memory(kubelet_pid: int, root: Path) -> dict:
    n, mon = monitors_rss_kib(root)
    return {"kubelet_rss_mib": round(rss_kib(kubelet_pid) / 1024, 1), "monitors": n,
            "monitors_rss_mib": round(mon / 1024, 1)}


# -- scenarios ----------------------------------------------------------------------------

def bench_pod(name: str, image: str, runtime_class: str = "") -> dict:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "labels": {"app": "kubelet-bench"}},
           "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": image,
                                    "command": EXIT_ON_TERM}]}}
    if runtime_class:
        pod["spec"]["runtimeClassName"] = runtime_class
    return pod


async def ensure_runtime_class(api: Api, name: str) -> None:
    """The server ships `crun`; any other class is made with handler NAME."""
    path = "/apis/node.k8s.io/v1/runtimeclasses"
    try:
        await api.request("GET", f"{path}/{name}")
    except RuntimeError:   # not there: create it
        await api.request("POST", path, {"apiVersion": "node.k8s.io/v1",
                                         "kind": "RuntimeClass", "metadata": {"name": name},
                                         "handler": name})


def all_running(pod: dict) -> bool:
    spec = (pod.get("spec") or {}).get("containers") or []
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return bool(spec) and len(statuses) == len(spec) and all(
        "running" in (s.get("state") or {}) for s in statuses)


async def wait_node(api: Api, timeout: float = 90.0) -> None:
    def ready(_t: str, node: dict) -> bool:
        return node["metadata"]["name"] == NODE and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (node.get("status") or {}).get("conditions") or [])
    if await api.watch("/api/v1/nodes", ready, timeout) != "done":
        raise RuntimeError(f"node {NODE} not Ready in {timeout:g} s")


async def delete_all(api: Api, timeout: float = 180.0) -> float:
    t0 = time.monotonic()
    await api.request("DELETE", "/api/v1/namespaces/default/pods?labelSelector=app%3D"
                      "kubelet-bench")
    for _ in range(int(timeout)):
        left = await api.request("GET", "/api/v1/namespaces/default/pods?labelSelector="
                                 "app%3Dkubelet-bench")
        if not left["items"]:
            return round(time.monotonic() - t0, 2)
        await asyncio.sleep(1)
    raise RuntimeError(f"{len(left['items'])} pods still there after {timeout:g} s")


async def warm_up(api: Api, image: str, runtime_class: str = "") -> float:
    t0 = time.monotonic()
    done = asyncio.create_task(api.watch(
        "/api/v1/namespaces/default/pods", lambda _t, p: p["metadata"]["name"] == "warm-up"
        and all_running(p), 120))
    await asyncio.sleep(0.3)
    await api.request("POST", "/api/v1/namespaces/default/pods",
                      bench_pod("warm-up", image, runtime_class))
    if await done != "done":
        raise RuntimeError("the warm-up pod did not run (image pull?)")
    took = time.monotonic() - t0
    await delete_all(api)
    return round(took, 2)


async def startup(api: Api, image: str, count: int, pods_per_s: float, kubelet_pid: int,
                  root: Path, apiserver_pid: int, runtime_class: str = "") -> dict:
    created: dict[str, float] = {}
    running: dict[str, float] = {}
    rss: dict[str, dict] = {}

    def seen(_type: str, pod: dict) -> bool:
        name = pod["metadata"]["name"]
        if name in created and name not in running and all_running(pod):
            running[name] = time.monotonic()
            if len(running) in (count // 2, count):
                rss[str(len(running))] = memory(kubelet_pid, root)
        return len(running) >= count
    watcher = asyncio.create_task(api.watch(
        "/api/v1/namespaces/default/pods?labelSelector=app%3Dkubelet-bench", seen,
        STARTUP_TIMEOUT_S))
    await asyncio.sleep(0.5)   # the watch is open before the first create
    sem = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def create(i: int) -> None:
        name = f"bench-{i:03d}"
        async with sem:
            created[name] = time.monotonic()
            await api.request("POST", "/api/v1/namespaces/default/pods",
                              bench_pod(name, image, runtime_class))
    t0, ticks = time.monotonic(), machine_ticks()
    cpu0 = cpu_sample(kubelet_pid, apiserver_pid)
    tasks = []
    for i in range(count):
        if pods_per_s > 0:
            await asyncio.sleep(max(0.0, t0 + i / pods_per_s - time.monotonic()))
        tasks.append(asyncio.create_task(create(i)))
    await asyncio.gather(*tasks)
    outcome = await watcher
    wall = time.monotonic() - t0
    cpu = cpu_used(cpu0, cpu_sample(kubelet_pid, apiserver_pid), len(running))
    lat = sorted(running[n] - created[n] for n in running)
    return {"pods": count, "rate_per_s": pods_per_s, "outcome": outcome,
            "running": len(running), "wall_s": round(wall, 2),
            "machine_cpu_pct": machine_share(ticks, machine_ticks()),
            "cpu_s_per_pod": cpu, "p50_s": quantile(lat, 0.5), "p90_s": quantile(lat, 0.9),
            "p99_s": quantile(lat, 0.99), "max_s": round(lat[-1], 3) if lat else None,
            "latencies_s": [round(running[n] - created[n], 3) for n in sorted(running)],
            "memory": rss}


def quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile of sorted values."""
    if not values:
        return None
    i = min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))
    return round(values[i], 3)


async def scenarios(server: Server, kubelet_pid: int, root: Path, image: str,
                    args: argparse.Namespace, result: dict) -> None:
    api = Api(server)
    try:
        await wait_node(api)
        if args.runtime_class:
            await ensure_runtime_class(api, args.runtime_class)
        log("node Ready; idle for 5 s")
        await asyncio.sleep(5)
        result["idle"] = memory(kubelet_pid, root)
        result["warm_up_s"] = await warm_up(api, image, args.runtime_class)
        log(f"image pulled and cached ({result['warm_up_s']} s); idle again for 5 s")
        await asyncio.sleep(5)
        result["idle_after_warm_up"] = memory(kubelet_pid, root)
        profiler = None
        if args.profile:
            pid = kubelet_pid if args.profile == "kubelet" else server.apiserver_pid()
            profiler = Profiler(pid, Path(args.tmp) / f"{args.profile}-profile.txt")
        for rate in args.rates:
            log(f"startup: {args.pods} pods at {rate or 'once'} pods/s")
            run = await startup(api, image, args.pods, rate, kubelet_pid, root,
                                server.apiserver_pid(), args.runtime_class)
            log(f"  p50 {run['p50_s']} s, p99 {run['p99_s']} s, all in {run['wall_s']} s; "
                f"CPU s/pod {run['cpu_s_per_pod']}; memory {run['memory']}")
            run["delete_s"] = await delete_all(api)
            result["startup"].append(run)
        if profiler is not None:
            result["profile"] = profiler.stop(top=30)
        await asyncio.sleep(3)
        result["after_delete"] = memory(kubelet_pid, root)
    finally:
        await api.close()


def run(args: argparse.Namespace, result: dict) -> None:
    from tests import oci_images
    from tests.e2e.kubelet_fixtures import NodeNet, force_cleanup
    tmp = Path(args.tmp)
    registry = oci_images.start_registry(tmp / "registry", _free_port())
    server = kubelet = None
    try:
        oci_images.push_image(registry.url, "bench/busybox", "1", oci_images.busybox_image())
        NodeCgroup.move(into=True)
        try:
            server = start_server(tmp / "server", "sqlite", extra=[
                "--disable", "kubelet", "--cluster-cidr", f"10.{SUBNET}.0.0/16"])
            kubelet = start_kubelet(server, tmp / "kubelet")
        finally:
            NodeCgroup.move(into=False)
        result["kubelet_pid"] = kubelet.pid
        asyncio.run(scenarios(server, kubelet.pid, tmp / "kubelet",
                              f"{registry.host}/bench/busybox:1", args, result))
    finally:
        if kubelet is not None:
            stop_process(kubelet, 30)
        if server is not None:
            server.stop()
        registry.stop()
        force_cleanup(tmp / "kubelet", NodeNet(NODE, BRIDGE, SUBNET))
        NodeCgroup.remove()


def _free_port() -> int:
    from .procs import free_port
    return free_port()


# -- report -------------------------------------------------------------------------------

def judge(result: dict) -> dict:
    """The p99 goal per kind of run: paced creation (the SLI's setting: a steady rate
    the node can take) and all at once (then the node's throughput sets the tail)."""
    runs = result.get("startup") or []
    out = {}
    for kind, chosen in (("paced", [r for r in runs if r["rate_per_s"]]),
                         ("all_at_once", [r for r in runs if not r["rate_per_s"]])):
        p99 = max((r["p99_s"] for r in chosen if r.get("p99_s") is not None), default=None)
        if chosen:
            out[f"startup_p99_s_{kind}"] = {
                "value": p99, "goal": f"< {GOALS['startup_p99_s']}",
                "met": p99 is not None and p99 < GOALS["startup_p99_s"],
                "kubernetes_slo_met": p99 is not None and p99 < SLO_P99_S}
    at50 = [r["memory"].get(str(r["pods"] // 2), {}).get("kubelet_rss_mib") for r in runs]
    rss50 = max((m for m in at50 if m is not None), default=None)
    out["kubelet_rss_mib_50_pods"] = {"value": rss50,
                                      "goal": f"< {GOALS['kubelet_rss_mib_50_pods']}",
                                      "met": rss50 is not None
                                      and rss50 < GOALS["kubelet_rss_mib_50_pods"]}
    return out


def plot(r: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run in r.get("startup") or []:
        lat = sorted(run["latencies_s"])
        how = f"{run['rate_per_s']:g} pods/s" if run["rate_per_s"] else "all at once"
        label = f"{how}: p50 {run['p50_s']} s, p99 {run['p99_s']} s"
        a.plot(lat, [100 * (i + 1) / len(lat) for i in range(len(lat))], label=label)
    a.axvline(GOALS["startup_p99_s"], color="green", ls="--", lw=1, label="goal p99 1 s")
    a.axvline(SLO_P99_S, color="red", ls=":", lw=1, label="Kubernetes SLO p99 5 s")
    a.set(xlabel="creation -> all containers running, seen by a watch (s)",
          ylabel="% of pods", title="Pod startup latency (image cached, one node)")
    a.legend(fontsize=8)
    names, kub, mon = [], [], []
    for label, m in memory_rows(r):
        names.append(label)
        kub.append(m["kubelet_rss_mib"])
        mon.append(m["monitors_rss_mib"])
    xs = range(len(names))
    b.bar([x - 0.2 for x in xs], kub, 0.4, label="kubelet VmRSS")
    b.bar([x + 0.2 for x in xs], mon, 0.4, label="monitors (all, summed)")
    b.axhline(GOALS["kubelet_rss_mib_50_pods"], color="green", ls="--", lw=1,
              label="goal: kubelet < 100 MiB")
    b.set_xticks(list(xs), names, fontsize=8)
    b.set(ylabel="MiB", title="Memory")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def memory_rows(r: dict) -> list[tuple[str, dict]]:
    rows = [("idle", r["idle"])] if r.get("idle") else []
    for run in r.get("startup") or []:
        for n, m in sorted(run["memory"].items(), key=lambda kv: int(kv[0])):
            rows.append((f"{n} pods", m))
        break   # the first run's (later runs start from a warmer heap)
    if r.get("after_delete"):
        rows.append(("all deleted", r["after_delete"]))
    return rows


def table(r: dict) -> str:
    m = r["machine"]
    lines = [f"Run {r['date']} at {r['git']['commit'][:10]}"
             f"{' (dirty tree)' if r['git']['dirty'] else ''} on {m['cpus']} CPUs "
             f"({m['cpu']}), {m['mem_gib']} GiB; one node, busybox image cached.", "",
             "| pods created | p50 | p90 | p99 | max | all running after | machine CPU busy "
             "(steal) | CPU s per pod: kubelet + its tools / API server | CPU s per pod, "
             "whole node |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in r.get("startup") or []:
        how = f"{run['pods']} at {run['rate_per_s']}/s" if run["rate_per_s"] \
            else f"{run['pods']} at once"
        cpu = run["machine_cpu_pct"]
        per_pod = run.get("cpu_s_per_pod")
        own = (f"{per_pod['kubelet']} + {per_pod['kubelet_tools']} / {per_pod['apiserver']}"
               if per_pod else "-")
        node = (per_pod or {}).get("node_total", "-")
        lines.append(f"| {how} | {run['p50_s']} s | {run['p90_s']} s | {run['p99_s']} s | "
                     f"{run['max_s']} s | {run['wall_s']} s | {cpu['busy']}% "
                     f"({cpu['steal']}%) | {own} | {node} |")
    lines += ["", "| kubelet memory | kubelet VmRSS | monitors | monitors' VmRSS, summed |",
              "|---|---|---|---|"]
    for label, mem in memory_rows(r):
        lines.append(f"| {label} | {mem['kubelet_rss_mib']} MiB | {mem['monitors']} | "
                     f"{mem['monitors_rss_mib']} MiB |")
    v = r["verdict"]
    goals = []
    for kind, label in (("paced", "paced"), ("all_at_once", "all at once")):
        s = v.get(f"startup_p99_s_{kind}")
        if s:
            goals.append(f"startup p99 ({label}) {s['value']} s vs < 1 s: "
                         f"{'met' if s['met'] else 'missed'} (Kubernetes SLO 5 s: "
                         f"{'met' if s['kubernetes_slo_met'] else 'missed'})")
    k = v["kubelet_rss_mib_50_pods"]
    goals.append(f"kubelet RSS with 50 pods {k['value']} MiB vs < 100 MiB: "
                 f"{'met' if k['met'] else 'missed'}")
    lines += ["", "Goals: " + "; ".join(goals) + "."]
    return "\n".join(lines)


def update_doc(r: dict, doc: Path = DOC) -> bool:
    return write_between_markers(doc, BEGIN, END, table(r))


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt   # unwinds through the finally blocks: everything stops


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.kubelet_bench")
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--rates", type=float, nargs="+", default=[2.0, 5.0, 10.0, 0.0],
                    help="pods/s for each startup run (0: all at once); default 2 5 10 0")
    ap.add_argument("--quick", action="store_true", help="20 pods, one run at 5/s")
    ap.add_argument("--profile", nargs="?", const="kubelet", choices=["kubelet", "apiserver"],
                    help="py-spy on the kubelet (default) or the API server")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--runtime-class", default="", metavar="NAME",
                    help="the bench pods' runtimeClassName (e.g. crun; default: none, runc)")
    ap.add_argument("--report", action="store_true",
                    help="only redraw the plot and the table from kubelet.json")
    args = ap.parse_args(argv)
    if args.report:
        return report(args.results)
    why = missing()
    if why:
        print(f"kubelet benchmark skipped: {why}", file=sys.stderr)
        return 0
    if args.quick:
        args.pods, args.rates = 20, [5.0]
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    result: dict = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                    "git": git_commit(), "machine": machine_info(), "startup": [],
                    "load_before": os.getloadavg(), "runtime_class": args.runtime_class}
    with tempfile.TemporaryDirectory(prefix="kubelet-bench-") as tmp:
        args.tmp = tmp
        try:
            run(args, result)
        finally:
            log(f"kubelet log tail:\n{_tail(Path(tmp) / 'kubelet.log')}")
    result["verdict"] = judge(result)
    name = f"kubelet-{args.profile}-profile.json" if args.profile else "kubelet.json"
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / name).write_text(json.dumps(result, indent=1) + "\n")
    log(f"wrote {args.results / name}: {json.dumps(result['verdict'])}")
    if not args.profile:
        plot(result, args.results / "kubelet.png")
        if args.results.resolve() == RESULTS.resolve() and not args.quick:
            update_doc(result)
    return 0


def report(results: Path) -> int:
    r = json.loads((results / "kubelet.json").read_text())
    for run in r.get("startup") or []:
        lat = sorted(run["latencies_s"])
        run.update({"p50_s": quantile(lat, 0.5), "p90_s": quantile(lat, 0.9),
                    "p99_s": quantile(lat, 0.99)})
    r["verdict"] = judge(r)
    (results / "kubelet.json").write_text(json.dumps(r, indent=1) + "\n")
    plot(r, results / "kubelet.png")
    if results.resolve() == RESULTS.resolve():
        update_doc(r)
    return 0


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text()[-n:]
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
