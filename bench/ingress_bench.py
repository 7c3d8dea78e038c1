"""Ingress data plane: a Python (aiohttp + uvloop) reverse proxy against Debian's nginx
driven by a rendered config, both in front of the same local backend.

    python -m bench.ingress_bench [--requests 20000] [--concurrency 32] [--quick]
    python -m bench.ingress_bench --report      # redraw plot + table from ingress.json

Needs Debian's nginx-light (or nginx) and apache2-utils (`ab`, the load generator: one
C process, so the client costs little of the 2 cores); says so and exits 0 without them.

The backend is an nginx worker answering `200` with a 1 KiB body (fast, so the proxy
under test is what limits). Each candidate runs as ONE process / ONE worker on
127.0.0.1 and proxies every request to the backend over kept-alive upstream
connections. Per candidate, `ab` runs twice: client keep-alive (`-k`) and a new TCP
connection per request. Recorded per run: requests/s, failed requests, p50/p99 latency,
and the proxy's own CPU time per request (utime+stime from /proc: the steadier number on
a shared, loaded machine). Writes bench/results/ingress.json, bench/results/ingress.png
and the table in docs/PERFORMANCE.md ("Ingress")."""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .apiserver_bench import git_commit, machine_info
from .procs import (Server, children, cpu_seconds, free_port, machine_share, machine_ticks,
                    start_server, stop_process)
from .report import publish, pyplot, save_figure

RESULTS = Path(__file__).parent / "results"
DOC = Path(__file__).resolve().parents[1] / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- BEGIN ingress results -->", "<!-- END ingress results -->"
BODY = "x" * 1024
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
AB = shutil.which("ab") or "/usr/bin/ab"
CANDIDATES = ("nginx", "python", "pybernetes-ingress")
BENCH_HOST = "bench.example.com"
MODES = ("keepalive", "new-connection")


def nginx_conf(tmp: Path, listen: int, body: str) -> str:
    """A minimal nginx.conf: one worker, `body` as the server block's content."""
    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    return f"""
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/client_body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  keepalive_requests 100000;
  server {{
    listen 127.0.0.1:{listen};
    {body}
  }}
}}
"""


def start_nginx(tmp: Path, listen: int, body: str, head: str = "") -> subprocess.Popen:
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / "nginx.conf"
    text = nginx_conf(tmp, listen, body)
    conf.write_text(text.replace("http {", f"http {{\n{head}", 1))
    proc = subprocess.Popen([NGINX, "-e", "stderr", "-p", str(tmp), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, start_new_session=True)
    _wait_port(listen, proc)
    return proc


def start_python_proxy(listen: int, backend: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "bench.ingress_bench", "--python-proxy",
                             str(listen), str(backend)], cwd=Path(__file__).parents[1],
                            start_new_session=True)
    _wait_port(listen, proc)
    return proc


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


# ----- the Python candidate ---------------------------------------------------------
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
       "te", "trailer", "proxy-authenticate", "proxy-authorization", "host",
       "content-length"}


async def _python_proxy(listen: int, backend: int) -> None:
    """The plainest aiohttp reverse proxy worth measuring: pooled upstream connections,
    streamed bodies, X-Forwarded-* set, hop-by-hop headers dropped."""
    from aiohttp import ClientSession, TCPConnector, web

    session = ClientSession(connector=TCPConnector(limit=0, ttl_dns_cache=None),
                            auto_decompress=False)
    base = f"http://127.0.0.1:{backend}"

    async def handle(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        headers["Host"] = request.host
        headers["X-Forwarded-For"] = request.remote or ""
        headers["X-Forwarded-Proto"] = request.scheme
        data = request.content if request.body_exists else None
        async with session.request(request.method, base + request.rel_url.raw_path_qs,
                                   headers=headers, data=data, allow_redirects=False) as up:
            out = web.StreamResponse(status=up.status, headers={
                k: v for k, v in up.headers.items() if k.lower() not in HOP})
            if up.content_length is not None:
                out.content_length = up.content_length
            await out.prepare(request)
            async for chunk in up.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", listen, backlog=4096).start()
    await asyncio.Event().wait()


def serve_python_proxy(listen: int, backend: int) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_python_proxy(listen, backend))


# ----- load -------------------------------------------------------------------------
def run_ab(port: int, requests: int, concurrency: int, keepalive: bool,
           host: str = "") -> dict[str, Any]:
    cmd = [AB, "-q", "-n", str(requests), "-c", str(concurrency), "-s", "30"]
    cmd += ["-H", f"Host: {host}"] if host else []
    cmd += ["-k"] if keepalive else []
    out = subprocess.run(cmd + [f"http://127.0.0.1:{port}/bench"], capture_output=True,
                         text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"ab failed: {out.stderr.strip()[-300:]}")
    return parse_ab(out.stdout)


def parse_ab(text: str) -> dict[str, Any]:
    def num(pattern: str) -> float | None:
        m = re.search(pattern, text, re.M)
        return float(m.group(1)) if m else None
    non_2xx = num(r"^Non-2xx responses:\s+(\d+)") or 0
    return {"per_s": num(r"^Requests per second:\s+([\d.]+)"),
            "complete": num(r"^Complete requests:\s+(\d+)"),
            "failed": (num(r"^Failed requests:\s+(\d+)") or 0) + non_2xx,
            "p50_ms": num(r"^\s+50%\s+(\d+)"), "p99_ms": num(r"^\s+99%\s+(\d+)")}


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (nginx master + worker)."""
    total = 0.0
    for p in [pid] + children(pid):
        try:
            total += cpu_seconds(p)
        except OSError:
            pass
    return total


def measure(name: str, pid: int, port: int, args: argparse.Namespace,
            log: Any, host: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    run_ab(port, min(1000, args.requests), args.concurrency, True, host)  # warm up
    for mode in MODES:
        n = args.requests if mode == "keepalive" else max(args.requests // 4, 100)
        cpu0, ticks0 = tree_cpu(pid), machine_ticks()
        r = run_ab(port, n, args.concurrency, mode == "keepalive", host)
        cpu = tree_cpu(pid) - cpu0
        r["proxy_cpu_ms_per_request"] = round(1000 * cpu / max(r["complete"] or 1, 1), 4)
        r["machine"] = machine_share(ticks0, machine_ticks())
        out[mode] = r
        log(f"{name} {mode}: {r['per_s']:.0f}/s, failed {r['failed']:g}, p99 {r['p99_ms']} ms,"
            f" proxy CPU {r['proxy_cpu_ms_per_request']} ms/request")
    return out


def run(args: argparse.Namespace, tmp: Path, result: dict, log: Any) -> None:
    backend = free_port()
    procs: list[subprocess.Popen] = []
    try:
        procs.append(start_nginx(tmp / "backend", backend,
                                 f'location / {{ return 200 "{BODY}"; }}'))
        for name in args.candidates:
            port = free_port()
            if name == "pybernetes-ingress":
                result["candidates"][name] = measure_ingress(tmp, backend, port, args, log)
                continue
            if name == "nginx":
                head = (f"upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; }}")
                proc = start_nginx(tmp / "proxy", port, (
                    "location / { proxy_pass http://backend; proxy_http_version 1.1;"
                    ' proxy_set_header Connection ""; proxy_set_header Host $host;'
                    " proxy_set_header X-Forwarded-For $remote_addr;"
                    " proxy_set_header X-Forwarded-Proto $scheme; }"), head)
            else:
                proc = start_python_proxy(port, backend)
            procs.append(proc)
            try:
                result["candidates"][name] = measure(name, proc.pid, port, args, log)
            finally:
                stop_process(proc)
                procs.remove(proc)
    finally:
        for proc in procs:
            stop_process(proc)


# ----- the real thing: `pybernetes ingress` in a `pybernetes server` ------------------
def _api(server: Server, method: str, path: str, body: dict) -> None:
    import urllib.request
    req = urllib.request.Request(server.url + path, data=json.dumps(body).encode(),
                                 method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=server.ssl_context(), timeout=30) as r:
        r.read()


def _routed(port: int) -> bool:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/bench", headers={"Host": BENCH_HOST})
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def measure_ingress(tmp: Path, backend: int, port: int, args: argparse.Namespace,
                    log: Any) -> dict[str, Any]:
    """A server with only the API server and the ingress (one nginx worker, as the
    candidates), a selectorless Service whose EndpointSlice is the backend, an Ingress
    for BENCH_HOST; measured like the candidates, CPU of the nginx it runs."""
    off = [a for c in ("controller-manager", "scheduler", "kubelet", "proxy", "dns")
           for a in ("--disable", c)]
    ing = [f"http-port={port}", f"https-port={free_port()}", "bind-address=127.0.0.1",
           "workers=1", "status-address=127.0.0.1"]
    server = start_server(tmp / "server", "sqlite", extra=off + [
        "--kube-apiserver-arg", "disable-admission-plugins=ServiceAccount"] +
        [a for x in ing for a in ("--ingress-arg", x)])
    try:
        ns = "/api/v1/namespaces/default"
        _api(server, "POST", f"{ns}/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "bench"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": backend}]}})
        _api(server, "POST", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "bench-1", "labels": {"kubernetes.io/service-name": "bench"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": backend}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]})
        _api(server, "POST", "/apis/networking.k8s.io/v1/namespaces/default/ingresses", {
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "bench"}, "spec": {"rules": [{"host": BENCH_HOST, "http": {
                "paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {
                    "name": "bench", "port": {"number": 80}}}}]}}]}})
        deadline = time.monotonic() + 120
        while not _routed(port):
            if time.monotonic() > deadline:
                raise RuntimeError("the Ingress did not route in 120 s")
            time.sleep(0.5)
        pid = _nginx_master(tmp / "server" / "ingress" / "nginx.pid")
        return measure("pybernetes-ingress", pid, port, args, log, BENCH_HOST)
    finally:
        server.stop()


def _nginx_master(pid_file: Path) -> int:
    return int(pid_file.read_text().strip())


# ----- report -----------------------------------------------------------------------
def table(result: dict) -> str:
    lines = ["| data plane | client connections | requests/s | failed | p50 | p99 "
             "| proxy CPU per request | machine busy |", "|---|---|---|---|---|---|---|---|"]
    for name, modes in result.get("candidates", {}).items():
        for mode, r in modes.items():
            lines.append(f"| {name} | {mode} | {r['per_s']:.0f} | {r['failed']:g} | "
                         f"{r['p50_ms']:g} ms | {r['p99_ms']:g} ms | "
                         f"{r['proxy_cpu_ms_per_request']:g} ms | {r['machine']['busy']}% |")
    c = result.get("commit", "")[:8] + ("+dirty" if result.get("dirty") else "")
    lines.append("")
    lines.append(f"{result.get('requests')} requests (new-connection: a quarter), "
                 f"{result.get('concurrency')} in flight, {result.get('date', '')[:10]}, "
                 f"commit {c}" + (" (quick)" if result.get("quick") else "")
                 + (f"; run failed: {result['error']}" if result.get("error") else ""))
    return "\n".join(lines)


def plot(result: dict, out: Path) -> None:
    plt = pyplot()

    cands = list(result.get("candidates", {}))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, (key, unit) in zip(axes, (("per_s", "requests/s (higher is better)"),
                                      ("proxy_cpu_ms_per_request",
                                       "proxy CPU ms per request (lower is better)"))):
        width = 0.38
        for i, mode in enumerate(MODES):
            vals = [result["candidates"][c].get(mode, {}).get(key) or 0 for c in cands]
            xs = [j + (i - 0.5) * width for j in range(len(cands))]
            bars = ax.bar(xs, vals, width, label=mode)
            for bar, v in zip(bars, vals):
                label = f"{v:,.0f}" if v >= 100 else f"{v:.3g}"
                ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(cands)), cands)
        ax.set_ylabel(unit)
        ax.legend(fontsize=8)
    fig.suptitle(f"Ingress data plane, one worker each, {result.get('concurrency')} in flight "
                 f"— {result.get('date', '')[:10]} {result.get('commit', '')[:8]}", fontsize=10)
    save_figure(fig, out)


def report(result: dict) -> None:
    publish(plot, result, RESULTS / "ingress.png", DOC, BEGIN, END, table(result))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--candidates", nargs="+", choices=CANDIDATES, default=list(CANDIDATES))
    p.add_argument("--quick", action="store_true", help="2,000 requests")
    p.add_argument("--report", action="store_true", help="redraw from ingress.json")
    p.add_argument("--python-proxy", nargs=2, type=int, metavar=("LISTEN", "BACKEND"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.python_proxy:
        serve_python_proxy(*args.python_proxy)
        return 0
    path = RESULTS / "ingress.json"
    if args.report:
        report(json.loads(path.read_text()))
        return 0
    for tool, pkg in ((NGINX, "nginx-light"), (AB, "apache2-utils")):
        if not Path(tool).exists():
            print(f"{tool} missing: apt-get install {pkg}; benchmark skipped", file=sys.stderr)
            return 0
    if args.quick:
        args.requests = 2000
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "requests": args.requests, "concurrency": args.concurrency, "quick": args.quick,
        "machine": machine_info(), "candidates": {}, **git_commit()}
    tmp = Path(tempfile.mkdtemp(prefix="ingress-bench-"))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)
    try:
        run(args, tmp, result, log)
    except Exception as e:  # noqa: BLE001 - recorded in the JSON, not raised
        result["error"] = f"{type(e).__name__}: {e}"
        log(f"FAILED: {result['error']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    report(result)
    return 1 if result.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
