"""pods/log, pods/exec, pods/attach and pods/portforward: checked here, served by the
pod's kubelet.

As upstream's API server: the pod names its node, the Node object gives the kubelet's
address (status.addresses) and port (status.daemonEndpoints.kubeletEndpoint.Port); the
request goes there over TLS with the API server's kubelet client cert. Logs stream
back as they come; exec/attach/portforward are upgrades (WebSocket or SPDY/3.1) that
are forwarded to the kubelet and then spliced byte for byte, so every protocol the
kubelet speaks reaches kubectl unchanged.
"""
from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from ..machinery import errors
from ..machinery.http_upgrade import switch_protocols
from ..machinery.printing import get_path
from .request_info import RequestInfo
from .resource_store import ResourceStore

if TYPE_CHECKING:
    from .rest import ResourceHandler

ADDRESS_PREFERENCE = ("InternalIP", "Hostname", "InternalDNS", "ExternalIP", "ExternalDNS")
DEFAULT_KUBELET_PORT = 10250
CONNECT_TIMEOUT = 10.0
LOG_PARAMS = ("follow", "previous", "timestamps", "sinceSeconds", "sinceTime", "tailLines",
              "limitBytes")
# What a 101 from the kubelet carries that the client must see.
UPGRADE_RESPONSE_HEADERS = ("upgrade", "connection", "sec-websocket-accept",
                            "sec-websocket-protocol", "sec-websocket-extensions",
                            "x-stream-protocol-version")
UPGRADE_REQUEST_HEADERS = ("upgrade", "connection", "sec-websocket-key",
                           "sec-websocket-version", "sec-websocket-protocol",
                           "x-stream-protocol-version")

_ssl_contexts: dict[str, ssl.SSLContext] = {}


async def handle(h: "ResourceHandler", request: web.Request, info: RequestInfo,
                 rs: ResourceStore, ns: str) -> web.StreamResponse:
    sub = info.subresource
    if rs.s.kind != "Pod" or sub not in ("log", "exec", "attach", "portforward"):
        raise errors.service_unavailable(
            f"{info.resource}/{sub} is not served by this API server yet")
    pod = await rs.get(ns, info.name)
    q = request.query
    if sub == "portforward":
        host, port = await _kubelet_address(h, pod)
        path = f"/portforward/{quote(ns)}/{quote(info.name)}"
        return await proxy_upgrade(h, request, host, port, path, _portforward_query(q))
    container = resolve_container(pod, q.get("container", ""))
    if sub == "log":
        _check_log_options(q, info.name)
        if not get_path(pod, "spec", "nodeName"):
            return web.Response(body=b"", content_type="text/plain")  # upstream: no log yet
        check_log_status(pod, container, q.get("previous", "").lower() in ("1", "true"))
        host, port = await _kubelet_address(h, pod)
        path = f"/containerLogs/{quote(ns)}/{quote(info.name)}/{quote(container)}"
        query = urlencode([(k, q[k]) for k in LOG_PARAMS if k in q])
        return await proxy_logs(h, request, host, port, path, query)
    host, port = await _kubelet_address(h, pod)
    query = _stream_query(q, sub)
    path = f"/{sub}/{quote(ns)}/{quote(info.name)}/{quote(container)}"
    return await proxy_upgrade(h, request, host, port, path, query)


# --- checks with upstream's wording ---------------------------------------------------------

def _names(containers: list | None) -> str:
    return " ".join(c.get("name", "") for c in containers or [])


def resolve_container(pod: dict, name: str) -> str:
    """The container a request is for: the one named, or the pod's only one."""
    spec, pod_name = pod.get("spec") or {}, pod["metadata"]["name"]
    containers = spec.get("containers") or []
    if not name:
        if len(containers) == 1:
            return containers[0]["name"]
        if not containers:
            raise errors.bad_request(f"a container name must be specified for pod {pod_name}")
        msg = (f"a container name must be specified for pod {pod_name}, "
               f"choose one of: [{_names(containers)}]")
        if spec.get("initContainers"):
            msg += f" or one of the init containers: [{_names(spec['initContainers'])}]"
        if spec.get("ephemeralContainers"):
            msg += (" or one of the ephemeral containers: "
                    f"[{_names(spec['ephemeralContainers'])}]")
        raise errors.bad_request(msg)
    every = containers + (spec.get("initContainers") or []) + \
        (spec.get("ephemeralContainers") or [])
    if not any(c.get("name") == name for c in every):
        raise errors.bad_request(f"container {name} is not valid for pod {pod_name}")
    return name


def check_log_status(pod: dict, container: str, previous: bool) -> None:
    """The kubelet's answers for a container that has no log to show (upstream checks
    them on the node from the pod status; the status here is the same one)."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    statuses = (status.get("containerStatuses") or []) + \
        (status.get("initContainerStatuses") or []) + \
        (status.get("ephemeralContainerStatuses") or [])
    cs = next((s for s in statuses if s.get("name") == container), None)
    if cs is None:
        raise errors.bad_request(f'container "{container}" in pod "{name}" is not available')
    state, last = cs.get("state") or {}, (cs.get("lastState") or {}).get("terminated")
    if previous:
        if not last or not last.get("containerID"):
            raise errors.bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found')
        return
    if "running" in state:
        return
    if "terminated" in state:
        if state["terminated"].get("containerID") or (last and last.get("containerID")):
            return
        raise errors.bad_request(f'container "{container}" in pod "{name}" is terminated')
    if last:
        if last.get("containerID"):
            return
        raise errors.bad_request(f'container "{container}" in pod "{name}" is terminated')
    waiting = state.get("waiting")
    if waiting is not None:
        reason = waiting.get("reason", "")
        why = {"ErrImagePull": "image can't be pulled",
               "ImagePullBackOff": "trying and failing to pull image"}.get(reason, reason)
        raise errors.bad_request(
            f'container "{container}" in pod "{name}" is waiting to start: {why}')
    raise errors.bad_request(
        f'container "{container}" in pod "{name}" is waiting to start - no logs yet')


def _check_log_options(q, name: str) -> None:
    causes = []
    for field, minimum in (("tailLines", 0), ("limitBytes", 1), ("sinceSeconds", 1)):
        if field not in q:
            continue
        try:
            value = int(q[field])
        except ValueError:
            raise errors.bad_request(f'strconv.ParseInt: parsing "{q[field]}": invalid syntax')
        if value < minimum:
            detail = "must be greater than or equal to 0" if minimum == 0 else \
                "must be greater than 0"
            causes.append(errors.invalid_value(field, value, detail))
    if "sinceSeconds" in q and "sinceTime" in q:
        causes.append(errors.forbidden(
            "", "at most one of `sinceTime` or `sinceSeconds` may be specified"))
    if causes:
        raise errors.invalid("PodLogOptions", name, causes)


def _stream_query(q, sub: str) -> str:
    """PodExecOptions/PodAttachOptions as the kubelet's parameters (upstream's names)."""
    def on(key: str) -> bool:
        return q.get(key, "").lower() in ("1", "true")
    params: list[tuple[str, str]] = []
    for key, kubelet_key in (("stdin", "input"), ("stdout", "output"), ("stderr", "error"),
                             ("tty", "tty")):
        if on(key):
            params.append((kubelet_key, "1"))
    if sub == "exec":
        commands = q.getall("command", [])
        if not commands:
            raise errors.bad_request("you must specify at least 1 command")
        params += [("command", c) for c in commands]
    if not any(on(k) for k in ("stdin", "stdout", "stderr")):
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return urlencode(params)


def _portforward_query(q) -> str:
    """PodPortForwardOptions.ports (for the WebSocket channel protocol) as the kubelet's
    `port` parameters; SPDY clients name their ports in stream headers instead."""
    ports = []
    for value in q.getall("ports", []):
        for p in value.split(","):
            if not p.strip().isdigit() or not 0 < int(p) < 65536:
                raise errors.bad_request(f"invalid port {p.strip()!r}: must be 1-65535")
            ports.append(("port", p.strip()))
    return urlencode(ports)


# --- reaching the kubelet -------------------------------------------------------------------

async def _kubelet_address(h: "ResourceHandler", pod: dict) -> tuple[str, int]:
    node_name = get_path(pod, "spec", "nodeName")
    if not node_name:
        raise errors.bad_request(f"pod {pod['metadata']['name']} does not have a host assigned")
    nodes = h.api.resource("", "v1", "nodes")
    assert nodes is not None
    node = await nodes.get("", node_name)
    addresses = get_path(node, "status", "addresses") or []
    host = ""
    for kind in ADDRESS_PREFERENCE:
        host = next((a.get("address", "") for a in addresses if a.get("type") == kind), "")
        if host:
            break
    if not host:
        raise errors.bad_request(f'node "{node_name}" has no address to reach its kubelet')
    endpoint = get_path(node, "status", "daemonEndpoints", "kubeletEndpoint") or {}
    port = endpoint.get("Port", DEFAULT_KUBELET_PORT)
    if not port:
        # Upstream would dial 10250 anyway; a node that says it serves nothing (a fake
        # node, a kubelet without certificates) gets a clear answer and no traffic
        # to an address that may route off this machine (DESIGN.md §6).
        raise errors.StatusError(
            503, "ServiceUnavailable",
            f'node "{node_name}" serves no kubelet API (its kubelet port is 0: a fake node, '
            "or a kubelet started without serving certificates)")
    return host, int(port)


def kubelet_ssl_context(h: "ResourceHandler") -> ssl.SSLContext:
    """Client TLS toward kubelets: our kubelet client cert; kubelet serving certs must
    come from the cluster CA (their names are not checked: nodes are reached by IP)."""
    from ..auth.pki import PKI
    pki = PKI.at(h.api.config.pki_dir)
    ctx = _ssl_contexts.get(pki.dir)
    if ctx is None:
        ca = h.api.config.client_ca_file or pki.ca_crt
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = False
        ctx.load_cert_chain(pki.kubelet_client_crt, pki.kubelet_client_key)
        _ssl_contexts[pki.dir] = ctx
    return ctx


def _unreachable(host: str, port: int, e: BaseException) -> errors.StatusError:
    # upstream's wording when the dial to a kubelet fails
    return errors.internal(f"error dialing backend: dial tcp {_hostport(host, port)}: "
                           f"{e.strerror if isinstance(e, OSError) and e.strerror else e}")


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def proxy_logs(h: "ResourceHandler", request: web.Request, host: str, port: int,
                     path: str, query: str) -> web.StreamResponse:
    url = f"https://{_hostport(host, port)}{path}" + (f"?{query}" if query else "")
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            upstream = await session.get(url, ssl=kubelet_ssl_context(h))
        except (aiohttp.ClientConnectorError, OSError) as e:
            raise _unreachable(host, port, e)
        async with upstream:
            if upstream.status != 200:
                text = (await upstream.text()).strip()
                raise errors.StatusError(upstream.status if upstream.status < 500 else 500,
                                         _reason(upstream.status), text or upstream.reason or "")
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(request)

            async def relay() -> None:
                with contextlib.suppress(aiohttp.ClientPayloadError, ConnectionError):
                    async for chunk in upstream.content.iter_any():
                        await resp.write(chunk)
                with contextlib.suppress(ConnectionError):
                    await resp.write_eof()

            # `logs -f` of a quiet container: nothing is written for a long time, so the
            # client's leaving is noticed by watching its connection, not by a failed write
            tasks = [asyncio.create_task(relay()), asyncio.create_task(_client_gone(request))]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            return resp


async def _client_gone(request: web.Request, every: float = 1.0) -> None:
    while True:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(every)


def _reason(status: int) -> str:
    return {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}.get(
        status, "InternalError")


async def proxy_upgrade(h: "ResourceHandler", request: web.Request, host: str, port: int,
                        path: str, query: str) -> web.StreamResponse:
    """Forward an upgrade request to the kubelet; on its 101, splice both connections."""
    if "upgrade" not in request.headers.get("Connection", "").lower():
        raise errors.bad_request("Upgrade request required")
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=kubelet_ssl_context(h)), CONNECT_TIMEOUT)
    except (OSError, asyncio.TimeoutError, ssl.SSLError) as e:
        raise _unreachable(host, port, e)
    try:
        writer.write(_request_head(request, host, port, path, query))
        status, head_lines = await asyncio.wait_for(_read_head(reader), CONNECT_TIMEOUT * 3)
        if status != 101:
            return await _relay_failure(reader, status, head_lines)
        headers = [(k, v) for k, v in head_lines if k.lower() in UPGRADE_RESPONSE_HEADERS]
        client = await switch_protocols(request, headers)
        await _splice(client, reader, writer)
        return client.response
    finally:
        writer.close()


def _request_head(request: web.Request, host: str, port: int, path: str, query: str) -> bytes:
    lines = [f"{request.method} {path}{'?' + query if query else ''} HTTP/1.1",
             f"Host: {_hostport(host, port)}"]
    for k, v in request.headers.items():
        if k.lower() in UPGRADE_REQUEST_HEADERS:
            lines.append(f"{k}: {v}")
    if request.method == "POST":
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    if len(raw) > 65536:
        raise errors.internal("the kubelet's response headers are too large")
    first, *rest = raw.decode("latin-1").split("\r\n")
    parts = first.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise errors.internal(f"bad response from the kubelet: {first!r}")
    headers = []
    for line in rest:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
    return int(parts[1]), headers


async def _relay_failure(reader: asyncio.StreamReader, status: int,
                         headers: list[tuple[str, str]]) -> web.Response:
    length = next((int(v) for k, v in headers if k.lower() == "content-length" and v.isdigit()),
                  None)
    try:
        body = await asyncio.wait_for(
            reader.readexactly(length) if length is not None else reader.read(65536), 10)
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
        body = b""
    message = body.decode("utf-8", "replace").strip() or f"kubelet answered {status}"
    raise errors.StatusError(status if status < 500 else 500, _reason(status), message)


async def _splice(client, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy both ways until either side closes, then close both."""
    async def up() -> None:
        while data := await client.read(65536):
            writer.write(data)
            await writer.drain()

    async def down() -> None:
        while data := await reader.read(65536):
            await client.write(data)

    tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client.close()
