"""Probes against real servers, sockets and processes on loopback: handlers, wording,
thresholds, startup gating, and cancellation."""
import asyncio
import socket
import time

import pytest
from aiohttp import web

from pybernetes.kubelet.probes import (FAILURE, LIVENESS, READINESS, STARTUP, SUCCESS, WARNING,
                                       ProbeError, ProbeManager, ProbeTarget, http_probe,
                                       http_url, kill_message, run_handler, tcp_probe)
from pybernetes.kubelet.runtime.base import ExecResult


async def host_exec(container_id: str, cmd: list[str], timeout: float) -> ExecResult:
    """exec_sync as a runtime provides it, here as a host process."""
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return ExecResult(proc.returncode, out, err)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redirect(location: str):
    async def handler(req):
        raise web.HTTPFound(location)
    return handler


class Server:
    """A real HTTP server whose /healthz answer the test switches."""

    def __init__(self):
        self.status = 200
        self.seen_headers: dict = {}

    async def healthz(self, req):
        self.seen_headers = dict(req.headers)
        return web.Response(status=self.status, text="ok" if self.status < 400 else "bad")

    async def start(self):
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/loop", redirect("/loop"))
        app.router.add_get("/hop", redirect("/healthz"))
        app.router.add_get("/away", redirect("http://localhost:1/elsewhere"))
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def slow(self, req):
        await asyncio.sleep(0.8)
        return web.Response(text="late")


@pytest.fixture
async def server():
    s = await Server().start()
    yield s
    await s.runner.cleanup()


def target(port=0, **kw) -> ProbeTarget:
    return ProbeTarget(pod_ip="127.0.0.1", container_id="c1",
                       ports=[{"name": "http", "containerPort": port}], exec_sync=host_exec,
                       **kw)


async def test_http_get_outcomes(server):
    t = target(server.port)
    probe = {"httpGet": {"path": "healthz", "port": "http",
                         "httpHeaders": [{"name": "X-Check", "value": "1"}]}}
    out = await run_handler(probe, t)
    assert (out.result, out.output) == (SUCCESS, "ok")
    assert server.seen_headers["User-Agent"] == "kube-probe/1.33"
    assert server.seen_headers["X-Check"] == "1"
    server.status = 503
    out = await run_handler(probe, t)
    assert (out.result, out.output) == (FAILURE, "HTTP probe failed with statuscode: 503")
    base = f"http://127.0.0.1:{server.port}"
    hop = await http_probe(f"{base}/hop", {}, 1)       # same host: followed
    assert hop.result == FAILURE and "503" in hop.output
    away = await http_probe(f"{base}/away", {}, 1)     # another host: last response, a warning
    assert away.result == WARNING and away.output.startswith("Probe terminated redirects")
    loop = await http_probe(f"{base}/loop", {}, 1)
    assert (loop.result, loop.output) == (FAILURE, f'Get "{base}/loop": stopped after 10 '
                                                   "redirects")
    slow = await http_probe(f"{base}/slow", {}, 0.2)
    assert slow.result == FAILURE and "context deadline exceeded" in slow.output


async def test_http_and_tcp_connection_refused():
    port = free_port()
    url, _ = http_url({"port": port, "path": "/x", "scheme": "HTTP"}, target())
    out = await http_probe(url, {}, 1)
    assert out.output == (f'Get "http://127.0.0.1:{port}/x": dial tcp 127.0.0.1:{port}: '
                          "connect: connection refused")
    out = await tcp_probe("127.0.0.1", port, 1)
    assert (out.result, out.output) == (FAILURE, f"dial tcp 127.0.0.1:{port}: connect: "
                                                 "connection refused")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert (await tcp_probe("127.0.0.1", s.getsockname()[1], 1)).result == SUCCESS
    with pytest.raises(ProbeError, match='strconv.Atoi: parsing "metrics": invalid syntax'):
        await run_handler({"tcpSocket": {"port": "metrics"}}, target())


async def test_exec_outcomes():
    ok = await run_handler({"exec": {"command": ["sh", "-c", "echo fine"]}}, target())
    assert (ok.result, ok.output) == (SUCCESS, "fine\n")
    bad = await run_handler({"exec": {"command": ["sh", "-c", "echo broken >&2; exit 3"]}},
                            target())
    assert (bad.result, bad.output) == (FAILURE, "broken\n")
    slow = await run_handler({"exec": {"command": ["sleep", "5"]}, "timeoutSeconds": 0.2},
                             target())
    assert (slow.result, slow.output) == (FAILURE, 'command "sleep 5" timed out')


class Recorder:
    def __init__(self):
        self.changes, self.events = [], []

    def change(self, c):
        self.changes.append(c)

    def event(self, container, type_, reason, message):
        self.events.append((container, reason, message))


async def wait_for(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
       "spec": {"terminationGracePeriodSeconds": 45}}


async def test_liveness_failure_threshold_then_hold(tmp_path):
    flag = tmp_path / "healthy"
    flag.write_text("")
    rec = Recorder()
    mgr = ProbeManager(POD, on_change=rec.change, on_event=rec.event)
    c = {"name": "app", "livenessProbe": {"exec": {"command": ["test", "-e", str(flag)]},
                                          "periodSeconds": 0.05, "failureThreshold": 3,
                                          "terminationGracePeriodSeconds": 7}}
    mgr.add_container(c, target())
    try:
        await asyncio.sleep(0.2)
        assert mgr.live("app") and rec.changes == []
        flag.unlink()
        await wait_for(lambda: rec.changes)
        ch = rec.changes[0]
        assert (ch.container, ch.kind, ch.result, ch.grace_period) == ("app", LIVENESS,
                                                                        FAILURE, 7)
        unhealthy = [e for e in rec.events if e[1] == "Unhealthy"]
        assert len(unhealthy) == 3 and unhealthy[0] == ("app", "Unhealthy",
                                                        "Liveness probe failed: ")
        await asyncio.sleep(0.2)
        assert len(rec.changes) == 1 and not mgr.live("app")   # on hold until restarted
        flag.write_text("")
        mgr.add_container(c, target())                          # the restarted instance
        assert mgr.live("app")
    finally:
        await mgr.close()
    assert kill_message(LIVENESS, "app") == "Container app failed liveness probe, will be restarted"


async def test_readiness_success_threshold_and_startup_gating(server):
    rec = Recorder()
    mgr = ProbeManager(POD, on_change=rec.change, on_event=rec.event)
    server.status = 500
    c = {"name": "web",
         "startupProbe": {"httpGet": {"path": "/healthz", "port": server.port},
                          "periodSeconds": 0.05, "failureThreshold": 1000},
         "readinessProbe": {"tcpSocket": {"port": server.port}, "periodSeconds": 0.05,
                            "successThreshold": 2}}
    mgr.add_container(c, target(server.port))
    try:
        await asyncio.sleep(0.25)
        assert not mgr.started("web") and not mgr.ready("web")
        assert [ch for ch in rec.changes if ch.kind == READINESS] == []   # gated
        assert ("web", "Unhealthy", "Startup probe failed: HTTP probe failed with statuscode: "
                "500") in rec.events
        server.status = 200
        await wait_for(lambda: mgr.ready("web"))
        kinds = [(ch.kind, ch.result) for ch in rec.changes]
        assert kinds == [(STARTUP, SUCCESS), (READINESS, SUCCESS)]
        assert mgr.started("web")
    finally:
        await mgr.close()


async def test_initial_delay_and_removal_cancel_workers(tmp_path):
    rec = Recorder()
    mgr = ProbeManager(POD, on_change=rec.change, on_event=rec.event)
    c = {"name": "app", "readinessProbe": {"exec": {"command": ["true"]},
                                           "initialDelaySeconds": 30, "periodSeconds": 1}}
    mgr.add_container(c, target(), started_at=time.time())
    await asyncio.sleep(0.1)
    assert not mgr.ready("app") and rec.changes == []     # still in its initial delay
    tasks = [t for _, t in mgr._workers.values()]
    mgr.remove_container("app")
    await asyncio.sleep(0)
    await asyncio.wait(tasks, timeout=1)
    assert all(t.done() for t in tasks) and not mgr.ready("app")
    named = {"name": "named", "readinessProbe": {"tcpSocket": {"port": "nope"},
                                                 "periodSeconds": 0.05}}
    mgr.add_container(named, target())
    msg = ('Readiness probe errored and resulted in unknown state: strconv.Atoi: parsing '
           '"nope": invalid syntax')
    await wait_for(lambda: ("named", "Unhealthy", msg) in rec.events)
    assert not mgr.ready("named") and rec.changes == []
    plain = {"name": "plain"}
    mgr.add_container(plain, target())
    assert mgr.ready("plain") and mgr.live("plain")        # no probes: ready once running
    await mgr.close()
