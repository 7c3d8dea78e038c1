"""API server benchmark: pod creates, gets, LIST of 10k pods, watch fan-out.

    python -m bench.apiserver_bench [--storage sqlite|etcd] [--quick] [--profile]

Starts a real etcd (for --storage etcd) and a real `pybernetes server` on
loopback ports with a temp data dir, drives it from a separate load-generator
process, samples the API server's CPU from /proc during every scenario, and
writes bench/results/apiserver-<storage>.json.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import orjson

from . import load
from .procs import (CpuMeter, Server, py_spy, rss_mib, run_recorded, start_etcd,
                    start_server)

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parent.parent
NAMESPACE, WATCH_NAMESPACE = "bench", "bench-watch"

# Each goal: (scenario, metric key, comparison, target).
GOALS = {
    "create_per_s": ("create", "per_s", ">=", 1000),
    "get_per_s": ("get", "per_s", ">=", 3000),
    "get_p99_ms": ("get", "p99_ms", "<", 50),
    "list_json_s": ("list", "json_s", "<", 1.0),
    "list_table_s": ("list", "table_s", "<", 1.0),
    "watch_p99_ms": ("watch", "p99_ms", "<", 100),
}

FULL = {"creates": 5000, "gets": 20000, "list_pods": 10000, "watchers": 100, "updates": 200}
QUICK = {"creates": 1000, "gets": 5000, "list_pods": 2000, "watchers": 50, "updates": 100}


def git_commit() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain",
                                                                  "--", "pybernetes"))}


def machine_info() -> dict:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(open("/proc/meminfo").readline().split()[1])
    except OSError:
        mem_kib = 0
    return {"cpu": model, "cpus": os.cpu_count(), "mem_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version()}


class Runner:
    """Runs load steps in a worker process while metering the server's CPU."""

    def __init__(self, server: Server, etcd_pid: int | None, resource: str) -> None:
        self.server = server
        self.pids = {"apiserver": server.apiserver_pid()}
        if etcd_pid:
            self.pids["etcd"] = etcd_pid
        ctx = multiprocessing.get_context("spawn")
        self.pool = concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx)
        self.target = load.Target(server.url, str(server.pki / "ca.crt"),
                                  str(server.pki / "admin.crt"), str(server.pki / "admin.key"),
                                  resource)
        self.pids["client"] = self.pool.submit(load.client_pid, self.target).result(60)

    def step(self, fn: Callable[..., Any], *args: Any, timeout: float = 300.0) -> Any:
        """Run fn(target, *args) in the load process; adds CPU (percent of one
        core, per process: apiserver, etcd, client) when it returns a dict."""
        meter = CpuMeter(self.pids)
        meter.start()
        result = self.pool.submit(fn, self.target, *args).result(timeout=timeout)
        cpu = meter.stop()
        if isinstance(result, dict):
            result["cpu_pct"] = cpu
            result["machine_cpu_pct"] = meter.machine
            if result.get("per_s"):  # what one request costs the server, load aside
                result["apiserver_cpu_ms_per_request"] = round(
                    10 * cpu["apiserver"] / result["per_s"], 3)
            result["loadavg_1m"] = float(open("/proc/loadavg").read().split()[0])
            result["apiserver_rss_mib"] = round(rss_mib(self.pids["apiserver"]), 1)
        return result

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


def run_scenarios(runner: Runner, sizes: dict, log: Callable[[str], None],
                  out: dict[str, dict]) -> None:
    """Fills `out` scenario by scenario (so a failure keeps what was measured)."""
    runner.step(load.ensure_namespaces, [NAMESPACE, WATCH_NAMESPACE])

    log(f"baseline: {sizes['gets']} GETs of /version, 32 in flight (no storage involved)")
    out["baseline"] = runner.step(load.get_path, "/version", sizes["gets"])

    log(f"create: {sizes['creates']} pods, 32 in flight")
    out["create"] = runner.step(load.create_pods, NAMESPACE, 0, sizes["creates"])
    created = out["create"]["created"]
    if not created:
        raise RuntimeError(f"no pod created: {out['create']['error_samples']}")

    log(f"get: {sizes['gets']} random GETs over {created} pods, 32 in flight")
    out["get"] = runner.step(load.get_pods, NAMESPACE, created, sizes["gets"])

    log(f"list: filling to {sizes['list_pods']} pods")
    fill = runner.step(load.create_pods, NAMESPACE, sizes["creates"], sizes["list_pods"])
    forms = runner.step(load.list_pods, NAMESPACE)
    out["list"] = {"pods": created + fill["created"], "fill": _brief(fill), **forms,
                   "json_s": forms.get("json", {}).get("wall_s_median"),
                   "table_s": forms.get("table", {}).get("wall_s_median")}

    log(f"watch: {sizes['watchers']} watchers, {sizes['updates']} updates 20 ms apart")
    runner.step(load.create_pods, WATCH_NAMESPACE, 0, 10)
    out["watch"] = runner.step(load.watch_fanout, WATCH_NAMESPACE, sizes["watchers"],
                               sizes["updates"])


def _brief(step: dict) -> dict:
    keys = ("created", "per_s", "p50_ms", "p99_ms", "errors", "cpu_pct")
    return {k: step.get(k) for k in keys}


def judge(scenarios: dict) -> dict:
    """Measured value against each goal."""
    verdicts = {}
    for name, (scenario, key, op, target) in GOALS.items():
        value = scenarios.get(scenario, {}).get(key)
        met = None if value is None else (value >= target if op == ">=" else value < target)
        verdicts[name] = {"value": value, "goal": f"{op} {target}", "met": met}
    return verdicts


class Profiler:
    """py-spy sampling the API server for the whole run (raw collapsed stacks)."""

    def __init__(self, pid: int, out: Path) -> None:
        exe = py_spy()
        if not exe:
            raise RuntimeError("py-spy not installed (.venv/bin/pip install py-spy)")
        self.out = out
        self.proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", "100",
                                      "--format", "raw", "--output", str(out), "--nonblocking"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self, top: int = 25) -> dict:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        return summarize_stacks(self.out, top)


def summarize_stacks(path: Path, top: int) -> dict:
    """Self and inclusive sample counts per frame ("func (file:line)")."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    if not path.exists():
        return {"error": "py-spy wrote nothing"}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    pct = lambda c: {f: round(100 * n / total, 1) for f, n in c.most_common(top)}  # noqa: E731
    ours = Counter({f: n for f, n in inclusive.items() if "pybernetes/" in f})
    return {"samples": total, "self_pct": pct(own), "inclusive_pct": pct(inclusive),
            "pybernetes_inclusive_pct": pct(ours)}


def run(args: argparse.Namespace, sizes: dict, tmp: Path, result: dict,
        log: Callable[[str], None]) -> None:
    etcd = server = runner = profiler = None
    try:
        if args.storage == "etcd":
            etcd = start_etcd(tmp / "etcd")
            log(f"etcd at {etcd.url}")
        # the API server alone: no controllers, scheduler or node competing for the CPU
        alone = [a for c in ("controller-manager", "scheduler", "kubelet")
                 for a in ("--disable", c)]
        # nothing creates the default ServiceAccount pods would need
        alone += ["--kube-apiserver-arg", "disable-admission-plugins=ServiceAccount"]
        server = start_server(tmp / "server", args.storage, etcd.url if etcd else None,
                              extra=alone)
        runner = Runner(server, etcd.proc.pid if etcd else None, args.resource)
        log(f"server at {server.url}, apiserver pid {runner.pids['apiserver']}, data {tmp}")
        if args.profile:
            profiler = Profiler(runner.pids["apiserver"], tmp / "profile.txt")
        started = time.monotonic()
        try:
            run_scenarios(runner, sizes, log, result["scenarios"])
        finally:
            result["duration_s"] = round(time.monotonic() - started, 1)
            if profiler:
                result["profile"] = profiler.stop()
                profiler = None
    finally:
        if profiler:
            profiler.stop()
        if runner:
            runner.close()
        for proc in (server, etcd):
            if proc:
                proc.stop()


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.apiserver_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--storage", choices=("sqlite", "etcd"), default="sqlite")
    ap.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    ap.add_argument("--profile", action="store_true",
                    help="sample the API server with py-spy; hot spots go into the JSON")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    ap.add_argument("--resource", choices=sorted(load.RESOURCES), default="pods",
                    help="what to create/get/list/watch (pods is the benchmark)")
    ap.add_argument("--keep", action="store_true", help="keep the temp data dir")
    args = ap.parse_args(argv)
    log = lambda msg: print(f"[bench {args.storage}] {msg}", file=sys.stderr, flush=True)  # noqa
    sizes = QUICK if args.quick else FULL
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so `finally` stops server and etcd

    tmp = Path(tempfile.mkdtemp(prefix=f"pyb-bench-{args.storage}-"))
    result: dict[str, Any] = {"storage": args.storage, "resource": args.resource,
                              "quick": args.quick, "sizes": sizes,
                              "date": datetime.datetime.now(datetime.UTC).isoformat(
                                  timespec="seconds"),
                              **git_commit(), "machine": machine_info(), "scenarios": {}}
    run_recorded(lambda: run(args, sizes, tmp, result, log), result, tmp, args.keep, log)
    result["goals"] = judge(result["scenarios"])

    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.resource == "pods" else f"-{args.resource}"
    path = args.out / f"apiserver-{args.storage}{suffix}.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    for name, v in result["goals"].items():
        log(f"{name:14} {v['value']!s:>10}  goal {v['goal']:>8}  "
            f"{'ok' if v['met'] else 'MISSED' if v['met'] is False else 'n/a'}")
    log(f"wrote {path}")
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
