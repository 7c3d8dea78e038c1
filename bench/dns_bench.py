"""Cluster DNS queries per second: a real `pybernetes server` (API server only) holding
1,000 ClusterIP Services and 100 headless Services of 10 endpoints, a real
`pybernetes dns` on loopback, a fake upstream resolver in its own process on loopback
(never the internet), and a load generator (this process) keeping 32 UDP queries in
flight for a fixed time per scenario:

  in-zone A (hot)      A of the 1,000 service names, over and over (answers come from
                       the response cache after the first round)
  in-zone SRV (hot)    SRV of the headless services (10 targets + 10 additional A)
  in-zone NXDOMAIN     names that do not exist (hot)
  in-zone A (cold)     a new pod name (10-42-x-y.bench.pod) every query: parsed,
                       looked up and rendered each time
  forwarded A          a name outside the zone, relayed to the upstream each time

Results: queries/s, lost queries, the dns server's CPU per query, written to
bench/results/dns.json (+ dns.png) and the table in docs/PERFORMANCE.md.

    .venv/bin/python -m bench.dns_bench [--seconds 10] [--services 1000]
    .venv/bin/python -m bench.dns_bench --report     # redraw plot + table from dns.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from bench.procs import (cpu_seconds, machine_share, machine_ticks, run_recorded,
                         start_server, stop_process)
from bench.report import pyplot, save_figure, write_between_markers

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DOC = REPO / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- BEGIN dns results -->", "<!-- END dns results -->"
NS = "bench"
IN_FLIGHT = 32
HEADLESS = 100
ENDPOINTS = 10
DISABLE = ("controller-manager", "scheduler", "kubelet", "proxy", "dns", "ingress")

# The upstream answers every A question with 192.0.2.1, built from the query's bytes (no
# parsing library), so the forwarded row measures our forwarder rather than the upstream.
UPSTREAM_MAIN = """
import asyncio, struct
class Upstream(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport
    def datagram_received(self, q, addr):
        i = 12
        while q[i]:
            i += q[i] + 1
        qend = i + 5
        flags = 0x8180 | (q[2] << 8 & 0x0100)
        rr = b"\\xc0\\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 1])
        self.transport.sendto(q[:2] + struct.pack("!HHHHH", flags, 1, 1, 0, 0)
                              + q[12:qend] + rr, addr)
async def main():
    t, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        Upstream, local_addr=("127.0.0.1", 0))
    print(t.get_extra_info("sockname")[1], flush=True)
    await asyncio.Event().wait()
try:
    import uvloop; uvloop.install()
except ImportError:
    pass
asyncio.run(main())
"""


def service(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}", "namespace": NS},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def headless(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"h{i}", "namespace": NS},
            "spec": {"clusterIP": "None",
                     "ports": [{"name": "web", "port": 80, "protocol": "TCP"}]}}


def endpoint_slice(i: int) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"h{i}-x", "namespace": NS,
                         "labels": {"kubernetes.io/service-name": f"h{i}"}},
            "addressType": "IPv4", "ports": [{"name": "web", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": [f"10.{100 + i // 250}.{i % 250}.{j + 1}"],
                           "hostname": f"h{i}-{j}", "conditions": {"ready": True}}
                          for j in range(ENDPOINTS)]}


async def populate(server, services: int) -> None:
    conn = aiohttp.TCPConnector(ssl=server.ssl_context(), limit=32)
    async with aiohttp.ClientSession(connector=conn) as s:
        async def post(path: str, body: dict) -> None:
            async with s.post(server.url + path, data=orjson.dumps(body),
                              headers={"Content-Type": "application/json"}) as r:
                if r.status >= 300:
                    raise RuntimeError(f"POST {path}: {r.status} {await r.text()}")
        await post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": NS}})
        sem = asyncio.Semaphore(32)

        async def one(path: str, body: dict) -> None:
            async with sem:
                await post(path, body)
        jobs = [one(f"/api/v1/namespaces/{NS}/services", service(i)) for i in range(services)]
        jobs += [one(f"/api/v1/namespaces/{NS}/services", headless(i)) for i in range(HEADLESS)]
        jobs += [one(f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices",
                     endpoint_slice(i)) for i in range(HEADLESS)]
        await asyncio.gather(*jobs)


def query(name: str, qtype: int, qid: int) -> bytes:
    wire = b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire + struct.pack("!HH", qtype, 1)


def load(port: int, names, qtype: int, seconds: float) -> dict:
    """Keep IN_FLIGHT queries outstanding for `seconds`; answers/s, lost, rcodes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(1.0)
    it = iter(names)
    sent = received = lost = 0
    rcodes: dict[int, int] = {}

    def send() -> None:
        nonlocal sent
        sock.send(query(next(it), qtype, sent & 0xFFFF))
        sent += 1
    for _ in range(IN_FLIGHT):
        send()
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        try:
            reply = sock.recv(65535)
        except socket.timeout:
            lost += sent - received - lost  # whatever is outstanding is gone
            for _ in range(IN_FLIGHT):
                send()
            continue
        received += 1
        rcodes[reply[3] & 0x0F] = rcodes.get(reply[3] & 0x0F, 0) + 1
        send()
    elapsed = time.perf_counter() - t0
    sock.close()
    return {"queries_per_s": round(received / elapsed), "answered": received, "lost": lost,
            "rcodes": {str(k): v for k, v in sorted(rcodes.items())}}


def cycle(names: list[str]):
    while True:
        yield from names


def scenarios(services: int) -> dict[str, tuple]:
    zone = "cluster.local"
    return {
        "in-zone A (hot)": (cycle([f"s{i}.{NS}.svc.{zone}" for i in range(services)]), 1),
        "in-zone SRV (hot)": (cycle([f"_web._tcp.h{i}.{NS}.svc.{zone}"
                                     for i in range(HEADLESS)]), 33),
        "in-zone NXDOMAIN (hot)": (cycle([f"nope{i}.{NS}.svc.{zone}" for i in range(100)]), 1),
        "in-zone A (cold)": ((f"10-42-{i // 250 % 250}-{i % 250}.{NS}.pod.{zone}"
                              for i in range(10 ** 7)), 1),
        "forwarded A": (cycle(["example.test"]), 1),
    }


def start_dns(kubeconfig: str, upstream_port: int, log: Path) -> tuple[subprocess.Popen, int]:
    argv = [sys.executable, "-m", "pybernetes.cli.main", "dns", "--kubeconfig", kubeconfig,
            "--bind-address", "127.0.0.1", "--dns-port", "0", "--metrics-port", "0",
            "--upstream", f"127.0.0.1:{upstream_port}", "--publish-kube-dns=false"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(log, "wb"),
                            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    port = 0
    while time.monotonic() < deadline and proc.poll() is None:
        text = log.read_text()
        m = re.search(r"port (\d+) \(UDP and TCP\)", text)
        port = int(m.group(1)) if m else 0
        if port and "synced" in text:
            return proc, port
        time.sleep(0.2)
    stop_process(proc)
    raise RuntimeError(f"pybernetes dns did not come up:\n{log.read_text()[-2000:]}")


def run(result: dict, tmp: Path, seconds: float, services: int, log) -> None:
    server = start_server(tmp / "server", "sqlite", extra=[
        a for c in DISABLE for a in ("--disable", c)] + [
        "--kube-apiserver-arg", "disable-admission-plugins=ServiceAccount"])
    upstream = dns = None
    try:
        t = time.monotonic()
        asyncio.run(populate(server, services))
        log(f"{services} services + {HEADLESS} headless x {ENDPOINTS} endpoints in "
            f"{time.monotonic() - t:.1f}s")
        upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM_MAIN], text=True,
                                    stdout=subprocess.PIPE, start_new_session=True)
        up_port = int(upstream.stdout.readline())
        dns, port = start_dns(str(server.data_dir / "admin.kubeconfig"), up_port,
                              tmp / "dns.log")
        result["scenarios"] = {}
        for name, (names, qtype) in scenarios(services).items():
            load(port, names, qtype, min(1.0, seconds))  # warm up (fills the cache)
            c0, m0 = cpu_seconds(dns.pid), machine_ticks()
            r = load(port, names, qtype, seconds)
            cpu = cpu_seconds(dns.pid) - c0
            r["server_cpu_us_per_query"] = round(1e6 * cpu / max(r["answered"], 1), 1)
            r["machine"] = machine_share(m0, machine_ticks())
            result["scenarios"][name] = r
            log(f"{name}: {r['queries_per_s']}/s, lost {r['lost']}, "
                f"{r['server_cpu_us_per_query']} us CPU per query, rcodes {r['rcodes']}")
    finally:
        for p in (dns, upstream):
            if p is not None:
                stop_process(p)
        server.stop()


def plot(result: dict, out: Path) -> None:
    plt = pyplot()
    sc = result.get("scenarios") or {}
    names = list(sc)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.barh(names, [sc[n]["queries_per_s"] for n in names], color="tab:blue")
    for i, n in enumerate(names):
        ax.text(sc[n]["queries_per_s"], i, f" {sc[n]['queries_per_s']}/s", va="center")
    ax.invert_yaxis()
    ax.set_xlim(0, 1.2 * max([sc[n]["queries_per_s"] for n in names] or [1]))
    ax.set_xlabel("queries per second over UDP, 32 in flight (higher is better)")
    ax.set_title(f"pybernetes dns, {result.get('services')} Services "
                 f"({result.get('date', '')}, commit {result.get('commit', '')[:8]})")
    save_figure(fig, out)


def table(result: dict) -> str:
    rows = ["| query | queries/s | lost | dns CPU per query | machine busy |",
            "|---|---:|---:|---:|---:|"]
    for name, r in (result.get("scenarios") or {}).items():
        busy = r.get("machine", {}).get("busy", "")
        rows.append(f"| {name} | {r['queries_per_s']} | {r['lost']} | "
                    f"{r['server_cpu_us_per_query']} µs | {busy}% |")
    note = (f"\n\n{result.get('services')} ClusterIP Services + {HEADLESS} headless × "
            f"{ENDPOINTS} endpoints; {result.get('seconds')} s per row, {IN_FLIGHT} queries in "
            f"flight from one Python client on the same 2-core machine. "
            f"{result.get('date', '')}, commit {result.get('commit', '')[:8]}")
    if result.get("error"):
        note += f"; run failed: {result['error']}"
    return "\n".join(rows) + note


def report(result: dict) -> None:
    plot(result, RESULTS / "dns.png")
    write_between_markers(DOC, BEGIN, END, table(result))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--report", action="store_true", help="only redraw from dns.json")
    args = ap.parse_args(argv)
    out = RESULTS / "dns.json"
    if args.report:
        report(json.loads(out.read_text()))
        return 0
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    result: dict = {"services": args.services, "seconds": args.seconds,
                    "date": time.strftime("%Y-%m-%d"), "commit": commit}
    tmp = Path(tempfile.mkdtemp(prefix="dns-bench-"))
    run_recorded(lambda: run(result, tmp, args.seconds, args.services,
                             lambda m: print(m, file=sys.stderr)),
                 result, tmp, args.keep, lambda m: print(m, file=sys.stderr))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    report(result)
    return 1 if result.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
