"""Service proxy sync latency: 1,000 Services x 10 endpoints (goal: an endpoint change
is in the kernel's rules within 1 s).

Two measurements, both in a network namespace of their own (no rule touches the host):
- data plane: the proxy's sync code in this process: the first (full) sync of the
  whole state, then single-endpoint changes (model + render + diff + `nft -f`);
- end to end: a real `pybernetes server` (API server only) holding the Services and
  EndpointSlices and a real `pybernetes proxy --netns`; an EndpointSlice is changed
  through the API and `nft monitor` timestamps the transaction that adds the new
  endpoint's chain. Latency = that commit - the moment the PUT was sent.

    .venv/bin/python -m bench.proxy_bench [--services 1000] [--endpoints 10] [--changes 20]
    .venv/bin/python -m bench.proxy_bench --report     # redraw plot + table from proxy.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

from bench.procs import cpu_seconds, machine_share, machine_ticks, start_server, stop_process
from bench.report import publish, pyplot, save_figure

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DOC = REPO / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- BEGIN proxy results -->", "<!-- END proxy results -->"
NS = "bench"
TABLE = "pybbench"
POD_CIDR = "10.100.0.0/14"
GOAL_S = 1.0


def pod_ip(i: int, j: int) -> str:
    return f"10.{100 + i // 250}.{i % 250}.{j + 1}"


def new_ip(k: int) -> str:
    """An endpoint address no pod_ip() ever gives (outside POD_CIDR's first uses)."""
    return f"10.99.{k // 250}.{k % 250 + 1}"


def service(i: int, cluster_ip: str | None = None) -> dict:
    spec: dict = {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    if i % 4 == 0:  # a quarter are NodePorts: more chains and map entries
        spec["type"] = "NodePort"
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"s{i}", "namespace": NS}, "spec": spec}


def endpoint_slice(i: int, ips: list[str]) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"s{i}-x", "namespace": NS,
                         "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "addressType": "IPv4", "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": "n1"}
                          for ip in ips]}


def stats(xs: list[float]) -> dict:
    if not xs:
        return {}
    xs = sorted(xs)
    return {"n": len(xs), "median_s": round(statistics.median(xs), 3),
            "p90_s": round(xs[min(len(xs) - 1, int(0.9 * len(xs)))], 3),
            "max_s": round(xs[-1], 3)}


class Netns:
    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> "Netns":
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"],
                       check=True)
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]


# -- data plane -----------------------------------------------------------------------------

def dataplane(ns: Netns, n: int, e: int, changes: int) -> dict:
    from pybernetes.proxy.model import service_ports
    from pybernetes.proxy.nftables import Config, NftablesProxier
    services = [service(i, f"10.43.{i // 250}.{i % 250 + 1}") for i in range(n)]
    for i, s in enumerate(services):
        if i % 4 == 0:
            s["spec"]["ports"][0]["nodePort"] = 30000 + i
    slices = [endpoint_slice(i, [pod_ip(i, j) for j in range(e)]) for i in range(n)]
    proxier = NftablesProxier(Config(table=TABLE, node_name="n1", cluster_cidr=POD_CIDR,
                                     service_cidr="10.43.0.0/16"), ns.prefix())

    async def one(ports: list) -> float:
        t = time.perf_counter()
        await proxier.sync(ports)
        return time.perf_counter() - t

    out: dict = {}
    t = time.perf_counter()
    ports = service_ports(services, slices)
    out["model_all_s"] = round(time.perf_counter() - t, 3)
    total = asyncio.run(one(ports))
    out["full_sync_s"] = round(total, 3)
    out["full_render_s"] = round(proxier.last_render_seconds, 3)
    out["full_apply_s"] = round(proxier.last_apply_seconds, 3)
    out["script_lines"] = proxier.last_script_lines
    rng = random.Random(1)
    times, renders, applies = [], [], []
    for k in range(changes):
        # the proxy rebuilds only the changed Service's ports (ServiceWatcher.desired)
        i = rng.randrange(n)
        slices[i]["endpoints"][0]["addresses"] = [new_ip(k)]
        [changed] = service_ports([services[i]], [slices[i]])
        ports = [changed if p.name == changed.name else p for p in ports]
        times.append(asyncio.run(one(ports)))
        renders.append(proxier.last_render_seconds)
        applies.append(proxier.last_apply_seconds)
    out["change_sync"] = stats(times)
    out["change_render_median_s"] = round(statistics.median(renders), 3)
    out["change_apply_median_s"] = round(statistics.median(applies), 3)
    out["change_sync_all_s"] = [round(t, 3) for t in times]
    return out


# -- end to end --------------------------------------------------------------------------------

class Monitor:
    """`nft monitor` in the netns: when did the transaction that added an endpoint's
    chain commit (the `# new generation` line that closes it)."""

    def __init__(self, ns: Netns):
        self.proc = subprocess.Popen(ns.prefix() + ["nft", "monitor"], stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.committed: dict[str, float] = {}
        self._pending: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            if line.startswith("add chain") and "__" in line:
                self._pending.append(line.rsplit("__", 1)[1].split("/")[0])
            elif line.startswith("# new generation"):
                now = time.monotonic()
                with self._lock:
                    for ip in self._pending:
                        self.committed.setdefault(ip, now)
                self._pending = []

    def wait(self, ip: str, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if ip in self.committed:
                    return self.committed[ip]
            time.sleep(0.005)
        return None

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


async def populate(server, n: int, e: int) -> float:
    began = time.monotonic()
    sem = asyncio.Semaphore(32)
    async with aiohttp.ClientSession() as s:
        async def post(path: str, body: dict) -> None:
            async with sem:
                async with s.post(server.url + path, json=body, ssl=server.ssl_context()) as r:
                    if r.status not in (200, 201, 409):
                        raise RuntimeError(f"POST {path}: {r.status} {await r.text()}")
        await post("/api/v1/namespaces", {"metadata": {"name": NS}})
        await asyncio.gather(*(post(f"/api/v1/namespaces/{NS}/services", service(i))
                               for i in range(n)))
        await asyncio.gather(*(post(f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices",
                                    endpoint_slice(i, [pod_ip(i, j) for j in range(e)]))
                               for i in range(n)))
    return time.monotonic() - began


def put_slice(server, i: int, ips: list[str]) -> None:
    import urllib.request
    path = f"{server.url}/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices/s{i}-x"
    req = urllib.request.Request(path, data=json.dumps(endpoint_slice(i, ips)).encode(),
                                 method="PUT", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=server.ssl_context(), timeout=30) as r:
        assert r.status == 200, r.status


def service_ips(ns: Netns) -> int:
    p = subprocess.run(ns.prefix() + ["nft", "list", "map", "ip", TABLE, "service-ips"],
                       capture_output=True, text=True)
    return p.stdout.count(": goto") if p.returncode == 0 else 0


def end_to_end(ns: Netns, tmp: Path, n: int, e: int, changes: int) -> dict:
    disable = [a for c in ("controller-manager", "scheduler", "kubelet", "proxy", "dns",
                           "ingress") for a in ("--disable", c)]
    server = start_server(tmp / "data", "sqlite", extra=disable)
    out: dict = {}
    proxy = monitor = None
    try:
        out["populate_s"] = round(asyncio.run(populate(server, n, e)), 1)
        monitor = Monitor(ns)
        began = time.monotonic()
        proxy = subprocess.Popen(
            [sys.executable, "-m", "pybernetes.cli.main", "proxy", "--kubeconfig",
             str(server.data_dir / "admin.kubeconfig"), "--netns", ns.name,
             "--nftables-table", TABLE, "--hostname-override", "n1", "--cluster-cidr", POD_CIDR,
             "--log-level", "warning"],
            cwd=REPO, stdout=open(tmp / "proxy.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 300
        while service_ips(ns) < n and time.monotonic() < deadline:
            if proxy.poll() is not None:
                raise RuntimeError(f"proxy exited: {(tmp / 'proxy.log').read_text()[-2000:]}")
            time.sleep(0.5)
        out["cold_start_s"] = round(time.monotonic() - began, 1)
        time.sleep(2)
        rng = random.Random(2)
        latencies, cpu0, ticks = [], cpu_seconds(proxy.pid), machine_ticks()
        for k in range(changes):
            i = rng.randrange(n)
            ips = [new_ip(k)] + [pod_ip(i, j) for j in range(1, e)]
            t0 = time.monotonic()
            put_slice(server, i, ips)
            seen = monitor.wait(new_ip(k), 30)
            if seen is not None:
                latencies.append(seen - t0)
            time.sleep(1.2)  # more than --min-sync-period: each change is synced alone
        out["proxy_cpu_s_per_change"] = round((cpu_seconds(proxy.pid) - cpu0) / changes, 3)
        out["machine"] = machine_share(ticks, machine_ticks())
        out["change_to_rules"] = stats(latencies)
        out["change_to_rules_all_s"] = [round(x, 3) for x in latencies]
        out["missed"] = changes - len(latencies)
    finally:
        if proxy:
            stop_process(proxy)
        if monitor:
            monitor.stop()
        server.stop()
    return out


# -- report -------------------------------------------------------------------------------------

def table(r: dict) -> str:
    d, e2e = r.get("dataplane", {}), r.get("end_to_end", {})

    def row(what: str, st: dict) -> str:
        return (f"| {what} | {st.get('median_s', '–')} s | {st.get('p90_s', '–')} s | "
                f"{st.get('max_s', '–')} s |")
    machine = (e2e.get("machine") or {}).get("busy", "?")
    note = (
        f"{r.get('services')} Services × {r.get('endpoints')} endpoints "
        f"({d.get('script_lines', '?')} nft commands when written whole). First full sync "
        f"{d.get('full_sync_s', '?')} s (render {d.get('full_render_s', '?')} s, nft "
        f"{d.get('full_apply_s', '?')} s). Per change (medians): render+diff "
        f"{d.get('change_render_median_s', '?')} s, nft {d.get('change_apply_median_s', '?')} s; "
        f"building every Service's ServicePorts from scratch takes "
        f"{d.get('model_all_s', '?')} s (the proxy rebuilds only changed ones). "
        f"End to end: proxy start to all rules {e2e.get('cold_start_s', '?')} s; proxy CPU "
        f"{e2e.get('proxy_cpu_s_per_change', '?')} s per change; machine {machine}% busy "
        f"during the changes; {e2e.get('missed', '?')} changes not seen within 30 s. "
        f"Goal < {GOAL_S:g} s. {r.get('date', '')}, commit {r.get('commit', '')[:8]}"
        + (f"; run failed: {r['error']}" if r.get("error") else ""))
    return "\n".join([
        "| measurement | median | p90 | max |", "|---|---|---|---|",
        row("endpoint change → rules committed (API PUT → `nft monitor`)",
            e2e.get("change_to_rules", {})),
        row("one sync after an endpoint change (render + diff + `nft -f`)",
            d.get("change_sync", {})),
        "", note])


def plot(r: dict, out: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    e2e = r.get("end_to_end", {}).get("change_to_rules_all_s", [])
    sync = r.get("dataplane", {}).get("change_sync_all_s", [])
    ax.plot(range(1, len(e2e) + 1), e2e, "o-", label="API change → rules committed")
    ax.plot(range(1, len(sync) + 1), sync, "s-", label="one sync (in process)")
    ax.axhline(GOAL_S, color="red", linestyle="--", label=f"goal {GOAL_S:g} s")
    ax.set_xlabel("endpoint change #")
    ax.set_ylabel("seconds")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title(f"Service proxy (nftables), {r.get('services')} Services × "
                 f"{r.get('endpoints')} endpoints — {r.get('date', '')} "
                 f"{r.get('commit', '')[:8]}", fontsize=10)
    save_figure(fig, out)


def report(r: dict) -> None:
    publish(plot, r, RESULTS / "proxy.png", DOC, BEGIN, END, table(r))


def _commit() -> str:
    p = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return p.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=10)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--skip-end-to-end", action="store_true")
    ap.add_argument("--report", action="store_true", help="redraw from proxy.json")
    ap.add_argument("--output", default=str(RESULTS / "proxy.json"))
    args = ap.parse_args(argv)
    if args.report:
        report(json.loads(Path(args.output).read_text()))
        return 0
    if os.geteuid() != 0:
        print("proxy_bench needs root (network namespaces, nftables)", file=sys.stderr)
        return 2
    result: dict = {"services": args.services, "endpoints": args.endpoints,
                    "date": time.strftime("%Y-%m-%d"), "commit": _commit()}
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as d, \
            Netns(f"pybbench{os.getpid() % 100000}") as ns:
        try:
            result["dataplane"] = dataplane(ns, args.services, args.endpoints, args.changes)
            subprocess.run(ns.prefix() + ["nft", "delete", "table", "ip", TABLE], check=False)
            print(json.dumps(result["dataplane"]), flush=True)
            if not args.skip_end_to_end:
                result["end_to_end"] = end_to_end(ns, Path(d), args.services, args.endpoints,
                                                  args.changes)
        except Exception as e:  # noqa: BLE001 - recorded in the JSON, not raised
            result["error"] = f"{type(e).__name__}: {e}"
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    report(result)
    return 1 if result.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
