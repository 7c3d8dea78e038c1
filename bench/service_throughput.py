"""Requests/s through a Service's ClusterIP against the same pod reached directly
(goal: ratio >= 0.9 with the nftables proxy — the data path is the kernel's NAT), and
the same through the userspace proxy for comparison.

    .venv/bin/python -m bench.service_throughput [--requests 4000] [--concurrency 16]
                                                  [--rounds 3]
    .venv/bin/python -m bench.service_throughput --report   # redraw from the JSON

Needs root, runc, the CNI plugins, nft, Debian's docker-registry and busybox-static,
and ApacheBench (`ab`, Debian apache2-utils) as the load generator (says so and exits
0 without them). Starts a registry with the test busybox image, a `pybernetes server`
(API server, controller manager, scheduler, runc kubelet on a bridge and pod CIDR of
its own; no proxy) and one busybox httpd pod behind a ClusterIP Service. Then, from
the host, `ab -n N -c C` (a new TCP connection per request, as busybox httpd closes
each) in rounds that alternate between the pod IP and the ClusterIP, so drift in the
machine's load hits both alike:

- with `pybernetes proxy` in nftables mode (its own table name), then
- with `pybernetes proxy --proxy-mode userspace` (every byte through Python).

The ratio is the median ClusterIP rate over the median direct rate of the same phase.
Writes bench/results/service_throughput.json and .png and the table in
docs/PERFORMANCE.md ("Service throughput")."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from .apiserver_bench import git_commit, machine_info
from .procs import Server, free_port, machine_share, machine_ticks, start_server, stop_process
from .report import write_between_markers

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DOC = REPO / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- BEGIN service throughput results -->", "<!-- END service throughput results -->"
NAME = "service_throughput"
S = 110 + os.getpid() % 20          # 10.S.0.0/16 pods, 10.(S+20).0.0/16 services: clear of
POD_CIDR, SERVICE_CIDR = f"10.{S}.0.0/16", f"10.{S + 20}.0.0/16"   # the e2e modules' ranges
NODE = f"bench-svc-{os.getpid()}"
BRIDGE = f"pyt{os.getpid() % 100000}"
TABLE = f"pyb_bench_{os.getpid()}"
GOAL_RATIO = 0.9
HTTPD = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"


def log(msg: str) -> None:
    print(f"[service-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def missing() -> str:
    from tests import oci_images
    if os.geteuid() != 0:
        return "the runc runtime and nftables need root"
    for tool, pkg in (("runc", "runc"), ("nft", "nftables"), ("ab", "apache2-utils")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian {pkg})"
    if not oci_images.have_registry():
        return "docker-registry or busybox-static is not installed"
    if not os.path.exists("/usr/lib/cni/bridge"):
        return "containernetworking-plugins are not installed"
    return ""


# -- the cluster ----------------------------------------------------------------------------

def kubectl(server: Server, *args: str, timeout: float = 120) -> str:
    env = dict(os.environ, KUBECONFIG=str(server.data_dir / "admin.kubeconfig"))
    p = subprocess.run([shutil.which("kubectl") or "kubectl", *args], capture_output=True,
                       text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


def wait(what: str, check: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = check()
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            got = None
        if got:
            return got
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


def start_proxy(server: Server, tmp: Path, mode: str) -> subprocess.Popen:
    out = open(tmp / f"proxy-{mode}.log", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "pybernetes.cli.main", "proxy", "--kubeconfig",
         str(server.data_dir / "admin.kubeconfig"), "--hostname-override", NODE,
         "--cluster-cidr", POD_CIDR, "--service-cluster-ip-range", SERVICE_CIDR,
         "--nftables-table", TABLE, "--proxy-mode", mode, "--log-level", "info"],
        cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)


def answers(url: str) -> bool:
    p = subprocess.run(["curl", "-sf", "--max-time", "3", url], capture_output=True)
    return p.returncode == 0


# -- load -----------------------------------------------------------------------------------

def ab(url: str, requests: int, concurrency: int) -> dict:
    """One ApacheBench run: requests/s, failures and latency percentiles (ms)."""
    t0 = machine_ticks()
    p = subprocess.run(["ab", "-q", "-r", "-s", "10", "-n", str(requests), "-c",
                        str(concurrency), url], capture_output=True, text=True, timeout=600)
    cpu = machine_share(t0, machine_ticks())
    out = p.stdout

    def number(label: str) -> float | None:
        m = re.search(rf"^{re.escape(label)}:\s+([\d.]+)", out, re.M)
        return float(m.group(1)) if m else None

    pct = {int(k): int(v) for k, v in re.findall(r"^\s+(\d+)%\s+(\d+)", out, re.M)}
    return {"per_s": number("Requests per second"), "complete": number("Complete requests"),
            "failed": number("Failed requests"), "p50_ms": pct.get(50), "p99_ms": pct.get(99),
            "machine_cpu_pct": cpu, "exit": p.returncode,
            **({"error": p.stderr.strip()[-300:]} if p.returncode else {})}


def phase(name: str, direct: str, vip: str, args: argparse.Namespace) -> dict:
    """Alternating rounds against the pod and the ClusterIP; medians and their ratio."""
    rounds: dict[str, list[dict]] = {"direct": [], "cluster_ip": []}
    ab(vip, min(500, args.requests), args.concurrency)       # warm caches and conntrack
    for i in range(args.rounds):
        for target, url in (("direct", direct), ("cluster_ip", vip)):
            r = ab(url, args.requests, args.concurrency)
            rounds[target].append(r)
            log(f"{name} round {i + 1} {target}: {r['per_s']} req/s, failed {r['failed']}, "
                f"p50 {r['p50_ms']} ms, machine {r['machine_cpu_pct'].get('busy')}% busy")
    med = {t: statistics.median([r["per_s"] or 0 for r in rs]) for t, rs in rounds.items()}
    ratio = round(med["cluster_ip"] / med["direct"], 3) if med["direct"] else None
    return {"rounds": rounds, "direct_per_s": med["direct"], "cluster_ip_per_s": med["cluster_ip"],
            "ratio": ratio}


def run(args: argparse.Namespace, result: dict) -> None:
    from tests import oci_images
    from tests.e2e.kubelet_fixtures import NodeNet, force_cleanup
    tmp = Path(args.tmp)
    registry = oci_images.start_registry(tmp / "registry", free_port())
    server = proxy = None
    try:
        oci_images.push_image(registry.url, "bench/busybox", "1", oci_images.busybox_image())
        server = start_server(tmp / "server", "sqlite", extra=[
            "--disable", "proxy", "--disable", "dns", "--disable", "ingress",
            "--node-name", NODE, "--kubelet-runtime", "runc", "--cluster-cidr", POD_CIDR,
            "--service-cidr", SERVICE_CIDR, "--kubelet-arg", f"cni-bridge={BRIDGE}",
            "--kubelet-arg", f"port={free_port()}", "--log-level", "warning"])
        direct, vip = deploy(server, f"{registry.host}/bench/busybox:1")
        result["targets"] = {"direct": direct, "cluster_ip": vip}
        for mode in ("nftables", "userspace"):
            proxy = start_proxy(server, tmp, mode)
            wait(f"the ClusterIP through the {mode} proxy", lambda: answers(vip), 120)
            result[mode] = phase(mode, direct, vip, args)
            stop_process(proxy, 30)
            proxy = None
    finally:
        if proxy is not None:
            stop_process(proxy, 30)
        if server is not None:
            try:
                kubectl(server, "delete", "deployment", "web", "--wait=true", "--timeout=60s")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            server.stop()
        registry.stop()
        force_cleanup(tmp / "server" / "kubelet", NodeNet(NODE, BRIDGE, S))
        subprocess.run(["nft", "delete", "table", "ip", TABLE], capture_output=True)


def deploy(server: Server, image: str) -> tuple[str, str]:
    """One httpd pod and its ClusterIP Service; (direct URL, ClusterIP URL)."""
    wait("the node Ready", lambda: "True" in kubectl(
        server, "get", "node", NODE, "-o",
        "jsonpath={.status.conditions[?(@.type=='Ready')].status}"), 120)
    wait("the default ServiceAccount",
         lambda: kubectl(server, "get", "serviceaccount", "default", "-o", "name"), 60)
    kubectl(server, "create", "deployment", "web", "--image", image, "--port", "8080",
            "--", "sh", "-c", HTTPD)
    kubectl(server, "expose", "deployment", "web", "--port", "80", "--target-port", "8080")
    kubectl(server, "rollout", "status", "deployment/web", "--timeout=180s", timeout=200)
    pod = json.loads(kubectl(server, "get", "pods", "-l", "app=web", "-o", "json"))["items"][0]
    vip = kubectl(server, "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
    direct = f"http://{pod['status']['podIP']}:8080/"
    wait("the pod answers", lambda: answers(direct), 60)
    return direct, f"http://{vip}/"


# -- report ---------------------------------------------------------------------------------

def plot(r: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bars = [(f"{mode}\n{t.replace('_', ' ')}", r[mode][f"{t}_per_s"], mode, t)
            for mode in ("nftables", "userspace") if r.get(mode)
            for t in ("direct", "cluster_ip")]
    for x, (label, value, mode, t) in enumerate(bars):
        ax.bar(x, value, color="tab:gray" if t == "direct" else "tab:blue")
        for rr in r[mode]["rounds"][t]:
            ax.plot(x, rr["per_s"] or 0, "k.", ms=4)
    ax.set_xticks(range(len(bars)), [b[0] for b in bars])
    ax.set(ylabel="requests/s (median of rounds; dots: each round)",
           title="HTTP requests/s, one connection each: pod IP vs ClusterIP")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def table(r: dict) -> str:
    m = r["machine"]
    lines = [f"Run {r['date']} at {r['git']['commit'][:10]}"
             f"{' (dirty tree)' if r['git']['dirty'] else ''} on {m['cpus']} CPUs "
             f"({m['cpu']}); `ab -n {r['params']['requests']} -c "
             f"{r['params']['concurrency']}` from the host, {r['params']['rounds']} alternating "
             "rounds per target, one busybox httpd pod (a new connection per request).", "",
             "| proxy | pod IP direct | through the ClusterIP | ratio | goal | failed requests |",
             "|---|---|---|---|---|---|"]
    for mode in ("nftables", "userspace"):
        p = r.get(mode)
        if not p:
            lines.append(f"| {mode} | not run | | | | |")
            continue
        failed = sum(int(x["failed"] or 0) for rs in p["rounds"].values() for x in rs)
        goal = f">= {GOAL_RATIO}" if mode == "nftables" else "(comparison)"
        met = "" if mode != "nftables" else (" (met)" if (p["ratio"] or 0) >= GOAL_RATIO
                                              else " (**missed**)")
        lines.append(f"| {mode} | {p['direct_per_s']:.0f}/s | {p['cluster_ip_per_s']:.0f}/s | "
                     f"{p['ratio']}{met} | {goal} | {failed} |")
    if r.get("error"):
        lines += ["", f"The run failed: {r['error']}"]
    return "\n".join(lines)


def update_doc(r: dict, doc: Path = DOC) -> bool:
    return write_between_markers(doc, BEGIN, END, table(r))


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.service_throughput")
    ap.add_argument("--requests", type=int, default=4000, help="per ab run")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3, help="ab runs per target and proxy")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--report", action="store_true",
                    help="only redraw the plot and the table from the JSON")
    args = ap.parse_args(argv)
    path = args.results / f"{NAME}.json"
    if args.report:
        r = json.loads(path.read_text())
        plot(r, args.results / f"{NAME}.png")
        update_doc(r)
        return 0
    why = missing()
    if why:
        print(f"service throughput benchmark skipped: {why}", file=sys.stderr)
        return 0
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    result: dict = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                    "git": git_commit(), "machine": machine_info(),
                    "params": {"requests": args.requests, "concurrency": args.concurrency,
                               "rounds": args.rounds}, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="service-bench-") as tmp:
        args.tmp = tmp
        try:
            run(args, result)
        except Exception as e:  # noqa: BLE001 - recorded: the JSON says how far it got
            result["error"] = f"{type(e).__name__}: {e}"
            log(f"FAILED: {result['error']}")
            for f in sorted(Path(tmp).glob("proxy-*.log")):
                log(f"{f.name}:\n{f.read_text()[-1500:]}")
    args.results.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    log(f"wrote {path}")
    if result.get("nftables"):
        plot(result, args.results / f"{NAME}.png")
        if args.results.resolve() == RESULTS.resolve():
            update_doc(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
