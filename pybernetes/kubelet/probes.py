"""Liveness, readiness and startup probes, as upstream's prober runs them.

One asyncio task per (container, probe kind). A probe runs `initialDelaySeconds` after
the container started and every `periodSeconds` after that, each attempt bounded by
`timeoutSeconds`; a result only counts once it repeated `successThreshold` /
`failureThreshold` times. Until a startup probe succeeds, the other two wait. A
liveness or startup probe that reaches its failure threshold stops (until the pod
worker restarts the container and adds it again) and reports a change whose
`grace_period` is the probe's terminationGracePeriodSeconds or the pod's.

Handlers: httpGet (2xx success, 3xx success with a warning; redirects followed only
to the same host, at most 10), tcpSocket, exec (through the runtime's `exec_sync`)
and grpc (grpc.health.v1.Health/Check, grpc_probe.py). Events use upstream's reasons
and wording: Unhealthy "Liveness probe failed: ...", ProbeWarning "Readiness probe warning: ..."."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import urljoin, urlsplit

import aiohttp

from pybernetes.machinery.streams import read_capped
from pybernetes.kubelet.runtime.base import ExecResult

log = logging.getLogger(__name__)

SUCCESS, FAILURE, UNKNOWN, WARNING = "Success", "Failure", "Unknown", "Warning"
LIVENESS, READINESS, STARTUP = "Liveness", "Readiness", "Startup"
SPEC_KEYS = {LIVENESS: "livenessProbe", READINESS: "readinessProbe", STARTUP: "startupProbe"}
INITIAL = {LIVENESS: SUCCESS, READINESS: FAILURE, STARTUP: UNKNOWN}
USER_AGENT = "kube-probe/1.33"
MAX_BODY = 10 * 1024           # upstream keeps the first 10 KiB of a response / output
MAX_REDIRECTS = 10
MAX_RETRIES = 3                # attempts after a probe *error* (not a failure)

ExecSync = Callable[[str, list[str], float], Awaitable[ExecResult]]


class ProbeError(Exception):
    """The probe could not be run at all (its result is thrown away)."""


@dataclass
class Outcome:
    result: str                # Success | Failure | Warning
    output: str = ""


@dataclass
class ProbeTarget:
    """Where a container's probes go."""

    pod_ip: str
    container_id: str
    ports: list[dict]          # the container's ports (to resolve named ports)
    exec_sync: ExecSync | None = None


def _port(port: Any, ports: list[dict]) -> int:
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in ports:
        if p.get("name") == port:
            return int(p.get("containerPort", 0))
    # upstream falls back to parsing the name as a number, and reports that failure
    raise ProbeError(f'strconv.Atoi: parsing "{port}": invalid syntax')


def _go_dial_error(host: str, port: int, exc: BaseException) -> str:
    """How Go's net.Dial words what went wrong."""
    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"dial tcp {addr}: i/o timeout"
    if isinstance(exc, ConnectionRefusedError):
        return f"dial tcp {addr}: connect: connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return f"dial tcp {addr}: connect: {exc.strerror.lower()}"
    return f"dial tcp {addr}: {exc}"


# ----- handlers -------------------------------------------------------------------------
async def tcp_probe(host: str, port: int, timeout: float) -> Outcome:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError) as e:
        return Outcome(FAILURE, _go_dial_error(host, port, e))
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 1)
    except (OSError, asyncio.TimeoutError):
        pass
    return Outcome(SUCCESS)


def http_url(handler: dict, target: ProbeTarget) -> tuple[str, dict[str, str]]:
    scheme = (handler.get("scheme") or "HTTP").lower()
    host = handler.get("host") or target.pod_ip
    port = _port(handler.get("port"), target.ports)
    path = handler.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in handler.get("httpHeaders") or []:
        if h.get("name"):
            headers[h["name"]] = h.get("value", "")
    return f"{scheme}://{hostport}{path}", headers


async def http_probe(url: str, headers: dict[str, str], timeout: float) -> Outcome:
    """GET url; redirects followed only to the same host (upstream's probe checker)."""
    first_host = urlsplit(url).hostname
    tmo = aiohttp.ClientTimeout(total=timeout)
    conn = aiohttp.TCPConnector(ssl=False, force_close=True)   # probes do not keep alive
    try:
        async with aiohttp.ClientSession(connector=conn, timeout=tmo,
                                         auto_decompress=True) as session:
            current = url
            for hop in range(MAX_REDIRECTS + 1):
                async with session.get(current, headers=headers, allow_redirects=False) as res:
                    body = (await read_capped(res.content, MAX_BODY))[:MAX_BODY].decode(
                        "utf-8", "replace")
                    location = res.headers.get("Location")
                    if 300 <= res.status < 400 and location:
                        nxt = urljoin(current, location)
                        if urlsplit(nxt).hostname == first_host and hop < MAX_REDIRECTS:
                            current = nxt
                            continue
                        if urlsplit(nxt).hostname == first_host:
                            return Outcome(FAILURE, f'Get "{nxt}": stopped after 10 redirects')
                    return _http_outcome(res.status, body)
    except (asyncio.TimeoutError, TimeoutError):
        return Outcome(FAILURE, f'Get "{url}": context deadline exceeded '
                                "(Client.Timeout exceeded while awaiting headers)")
    except aiohttp.ClientConnectorError as e:
        u = urlsplit(url)
        return Outcome(FAILURE, f'Get "{url}": '
                                + _go_dial_error(u.hostname or "", u.port or 80, e.os_error))
    except aiohttp.ClientError as e:
        return Outcome(FAILURE, f'Get "{url}": {e}')
    return Outcome(FAILURE, "unreachable")


def _http_outcome(status: int, body: str) -> Outcome:
    if 200 <= status < 300:
        return Outcome(SUCCESS, body)
    if 300 <= status < 400:
        return Outcome(WARNING, f"Probe terminated redirects, Response body: {body}")
    return Outcome(FAILURE, f"HTTP probe failed with statuscode: {status}")


async def exec_probe(target: ProbeTarget, command: list[str], timeout: float) -> Outcome:
    if target.exec_sync is None:
        raise ProbeError("exec probes are not supported by this runtime")
    try:
        res = await asyncio.wait_for(target.exec_sync(target.container_id, command, timeout),
                                     timeout + 5)
    except (asyncio.TimeoutError, TimeoutError):
        return Outcome(FAILURE, f'command "{" ".join(command)}" timed out')
    except KeyError as e:
        raise ProbeError(f"container not found {e}") from None
    output = (res.stdout + res.stderr)[:MAX_BODY].decode("utf-8", "replace")
    return Outcome(SUCCESS if res.exit_code == 0 else FAILURE, output)


async def run_handler(probe: dict, target: ProbeTarget) -> Outcome:
    """One attempt of a probe (ProbeError when it cannot be run)."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    if probe.get("exec") is not None:
        return await exec_probe(target, list(probe["exec"].get("command") or []), timeout)
    if probe.get("httpGet") is not None:
        url, headers = http_url(probe["httpGet"], target)
        return await http_probe(url, headers, timeout)
    if probe.get("tcpSocket") is not None:
        h = probe["tcpSocket"]
        return await tcp_probe(h.get("host") or target.pod_ip, _port(h.get("port"),
                                                                      target.ports), timeout)
    if probe.get("grpc") is not None:
        return await _grpc(probe["grpc"], target, timeout)
    raise ProbeError("missing probe handler")


async def _grpc(handler: dict, target: ProbeTarget, timeout: float) -> Outcome:
    from pybernetes.kubelet.grpc_probe import grpc_probe
    port = handler.get("port")
    if not isinstance(port, int):
        raise ProbeError(f"invalid grpc port {port!r}")
    ok, message = await grpc_probe(target.pod_ip, port, handler.get("service") or "", timeout,
                                   USER_AGENT)
    return Outcome(SUCCESS if ok else FAILURE, message)


# ----- workers ----------------------------------------------------------------------------
@dataclass
class ProbeChange:
    """A probe's result changed (what the pod worker acts on)."""

    container: str
    container_id: str
    kind: str                  # Liveness | Readiness | Startup
    result: str                # Success | Failure | Unknown
    grace_period: float | None = None   # for a liveness/startup failure: how long to stop


EventSink = Callable[[str, str, str], None]     # (type, reason, message) for the container
ChangeSink = Callable[[ProbeChange], None]


def kill_message(kind: str, container: str) -> str:
    """The Killing event's message after a liveness/startup failure."""
    return f"Container {container} failed {kind.lower()} probe, will be restarted"


class _Worker:
    def __init__(self, mgr: "ProbeManager", kind: str, container: dict, target: ProbeTarget,
                 started_at: float):
        self.mgr, self.kind, self.container = mgr, kind, container
        self.name = container.get("name", "")
        self.spec = container[SPEC_KEYS[kind]]
        self.target, self.started_at = target, started_at
        self.result = INITIAL[kind]
        self.last, self.run_length = "", 0

    def _num(self, key: str, default: float) -> float:
        v = self.spec.get(key)
        return float(v) if v is not None and v != "" else default

    async def attempt(self) -> Outcome | None:
        """One probe with upstream's retries on errors; None when it errored."""
        for i in range(MAX_RETRIES):
            try:
                return await run_handler(self.spec, self.target)
            except ProbeError as e:
                if i == MAX_RETRIES - 1:
                    self.mgr.event(self.name, "Warning", "Unhealthy",
                                   f"{self.kind} probe errored and resulted in unknown state: "
                                   f"{e}")
        return None

    def _record(self, outcome: Outcome) -> str:
        if outcome.result == FAILURE:
            self.mgr.event(self.name, "Warning", "Unhealthy",
                           f"{self.kind} probe failed: {outcome.output}")
            return FAILURE
        if outcome.result == WARNING:
            self.mgr.event(self.name, "Warning", "ProbeWarning",
                           f"{self.kind} probe warning: {outcome.output}")
        return SUCCESS

    def _counts(self, result: str) -> bool:
        """upstream's threshold rule: a result counts after enough repeats in a row."""
        if result == self.last:
            self.run_length += 1
        else:
            self.last, self.run_length = result, 1
        if result == FAILURE and self.run_length < self._num("failureThreshold", 3):
            return False
        if result == SUCCESS and self.run_length < self._num("successThreshold", 1):
            return False
        return True

    async def run(self) -> None:
        period = max(self._num("periodSeconds", 10), 0.001)
        delay = self.started_at + self._num("initialDelaySeconds", 0) - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        while True:
            if self.kind == STARTUP or self.mgr.started(self.name):
                if await self.step():
                    return
            await asyncio.sleep(period)

    async def step(self) -> bool:
        """One period's work; True when this worker is done."""
        outcome = await self.attempt()
        if outcome is None:
            return False
        result = self._record(outcome)
        if not self._counts(result):
            return False
        if result != self.result:
            self.result = result
            grace = None
            if result == FAILURE and self.kind in (LIVENESS, STARTUP):
                grace = self.spec.get("terminationGracePeriodSeconds")
                if grace is None:
                    grace = self.mgr.pod_grace
            self.mgr.changed(ProbeChange(self.name, self.target.container_id, self.kind,
                                         result, grace))
        if self.kind == STARTUP and result == SUCCESS:
            return True        # started: the startup probe is done with this container
        # a failed liveness/startup probe holds until the container is restarted
        return result == FAILURE and self.kind in (LIVENESS, STARTUP)


class ProbeManager:
    """The probes of one pod. `add_container` when a container (instance) starts,
    `remove_container` when it stops; query `ready`, `started`, `live`."""

    def __init__(self, pod: dict, *, on_change: ChangeSink | None = None,
                 on_event: Callable[[str, str, str, str], None] | None = None):
        self.pod = pod
        self.pod_grace = float((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
        self._on_change, self._on_event = on_change, on_event
        self._workers: dict[tuple[str, str], tuple[_Worker, asyncio.Task]] = {}
        self._containers: set[str] = set()

    # results -----------------------------------------------------------------------
    def _result(self, name: str, kind: str) -> str | None:
        w = self._workers.get((name, kind))
        return w[0].result if w else None

    def started(self, name: str) -> bool:
        """True without a startup probe, else once it succeeded."""
        r = self._result(name, STARTUP)
        return r is None or r == SUCCESS

    def ready(self, name: str) -> bool:
        """Readiness: needs a started container and, with a readiness probe, its success."""
        if name not in self._containers:
            return False
        r = self._result(name, READINESS)
        return self.started(name) and (r is None or r == SUCCESS)

    def live(self, name: str) -> bool:
        r = self._result(name, LIVENESS)
        return r is None or r == SUCCESS

    # lifecycle -------------------------------------------------------------------------
    def add_container(self, container: dict, target: ProbeTarget,
                      started_at: float | None = None) -> None:
        """Start the probes of a (new instance of a) container."""
        name = container.get("name", "")
        self.remove_container(name)
        self._containers.add(name)
        for kind, key in SPEC_KEYS.items():
            if container.get(key):
                w = _Worker(self, kind, container, target, started_at or time.time())
                task = asyncio.get_running_loop().create_task(
                    self._guard(w), name=f"probe-{kind}-{name}")
                self._workers[(name, kind)] = (w, task)

    async def _guard(self, w: _Worker) -> None:
        try:
            await w.run()
        except asyncio.CancelledError:
            raise
        except Exception:   # a bug in one probe must not take the pod worker down
            log.exception("probe worker %s/%s failed", w.name, w.kind)

    def remove_container(self, name: str) -> None:
        for kind in SPEC_KEYS:
            entry = self._workers.pop((name, kind), None)
            if entry:
                entry[1].cancel()
        self._containers.discard(name)

    async def close(self) -> None:
        tasks = [t for _, t in self._workers.values()]
        for t in tasks:
            t.cancel()
        self._workers.clear()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    # sinks ---------------------------------------------------------------------------
    def changed(self, change: ProbeChange) -> None:
        if self._on_change:
            self._on_change(change)

    def event(self, container: str, type_: str, reason: str, message: str) -> None:
        if self._on_event:
            self._on_event(container, type_, reason, message)
