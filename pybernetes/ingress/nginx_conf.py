"""Render nginx.conf from a RouteTable: one `server` per virtual host (HTTP and HTTPS),
nginx locations that reproduce routes.py's matching, one `upstream` per backend with
its ready pod addresses.

How the Ingress path rules map onto nginx locations:
- Exact `/a`          → `location = /a`
- Prefix `/a`         → `location = /a` and `location ^~ /a/` (element-wise: `/ab` is
                        not matched); nginx then picks the longest prefix, as the spec's
                        "longest match wins"; an Exact `/a` takes the `= /a` slot;
- Prefix `/`          → `location /`;
- no route matched    → `location /` with the default backend, else 404.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from pybernetes.ingress.endpoints import Address
from pybernetes.ingress.routes import EXACT, Backend, Route, RouteTable, VirtualHost

# What a location path may hold inside nginx double quotes without surprises.
SAFE_PATH = re.compile(r"^/[\x21-\x7e]*$")
PROXY_HEADERS = (
    ("Host", "$best_http_host"),      # as the client sent it, port included
    # the client as this proxy saw it: a client's own X-Forwarded-* is not trusted
    ("X-Forwarded-For", "$remote_addr"),
    ("X-Real-IP", "$remote_addr"),
    ("X-Forwarded-Proto", "$scheme"),
    ("X-Forwarded-Host", "$best_http_host"),
    ("X-Forwarded-Port", "$server_port"),
    ("X-Forwarded-Scheme", "$scheme"),
    # WebSocket and other upgrades pass through; otherwise keep upstream connections alive
    ("Upgrade", "$http_upgrade"),
    ("Connection", "$connection_upgrade"),
)


@dataclass
class Settings:
    http_port: int = 80
    https_port: int = 443
    bind_addresses: tuple[str, ...] = ("0.0.0.0",)
    pid_file: str = "nginx.pid"
    temp_dir: str = "tmp"
    default_cert: str = "default.pem"        # cert + key in one PEM
    user: str = ""                           # worker user (when the master runs as root)
    workers: str = "auto"
    access_log: str = "off"                  # a path, or "off"
    extra_http: list[str] = field(default_factory=list)


def upstream_name(b: Backend) -> str:
    digest = hashlib.sha1(b.key.encode()).hexdigest()[:10]
    safe = re.sub(r"[^A-Za-z0-9_]", "_", f"{b.namespace}_{b.service}_{b.port}")[:60]
    return f"u_{safe}_{digest}"


def quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _listen(s: Settings, default: bool) -> list[str]:
    flag = " default_server" if default else ""
    out = []
    for addr in s.bind_addresses:
        host = f"[{addr}]" if ":" in addr else addr
        out.append(f"listen {host}:{s.http_port}{flag};")
        out.append(f"listen {host}:{s.https_port} ssl http2{flag};")
    return out


def _target(backend: Backend | None, endpoints: dict[str, list[Address]]) -> list[str]:
    """The body of a location sending to `backend` (503 without ready endpoints)."""
    if backend is None:
        return ["return 404;"]
    if not endpoints.get(backend.key):
        return ["return 503;"]
    return [f"proxy_pass http://{upstream_name(backend)};"]


def _locations(vhost: VirtualHost, table: RouteTable,
               endpoints: dict[str, list[Address]]) -> list[str]:
    exact: dict[str, Route] = {}
    prefix: dict[str, Route] = {}
    for r in vhost.routes:
        if not SAFE_PATH.match(r.path or "/"):
            continue  # spaces or control characters: see routes.problems
        if r.kind == EXACT:
            exact.setdefault(r.path, r)
        else:
            prefix.setdefault(r.path, r)
    blocks: list[tuple[str, Route | None]] = []
    for path, r in exact.items():
        blocks.append((f"= {quote(path)}", r))
    for path, r in prefix.items():
        if not path:
            blocks.append(("/", r))
            continue
        if path not in exact:
            blocks.append((f"= {quote(path)}", r))
        blocks.append((f"^~ {quote(path + '/')}", r))
    if "" not in prefix:
        blocks.append(("/", None))
    out = []
    for match, r in blocks:
        target = _target(r.backend if r else table.default_backend, endpoints)
        out.append(f"    location {match} {{ {' '.join(target)} }}")
    return out


def _server(vhost: VirtualHost, table: RouteTable, endpoints: dict[str, list[Address]],
            certs: dict[tuple[str, str], str], s: Settings) -> list[str]:
    name = vhost.host
    if not name:
        server_name = "_"
    elif name.startswith("*."):
        # nginx's own `*.a.b` also matches deeper names; the spec allows one label only
        server_name = "~^[^.]+" + re.escape(name[1:]) + "$"
    else:
        server_name = name
    lines = ["  server {"] + [f"    {x}" for x in _listen(s, default=not name)]
    lines.append(f"    server_name {quote(server_name)};")
    cert = certs.get(vhost.tls) if vhost.tls else None
    if cert:
        lines += [f"    ssl_certificate {quote(cert)};", f"    ssl_certificate_key {quote(cert)};"]
    lines += _locations(vhost, table, endpoints)
    lines.append("  }")
    return lines


def _upstreams(table: RouteTable, endpoints: dict[str, list[Address]]) -> list[str]:
    out = []
    for b in table.backends():
        addrs = endpoints.get(b.key) or []
        if not addrs:
            continue
        out.append(f"  upstream {upstream_name(b)} {{")
        for ip, port in addrs:
            host = f"[{ip}]" if ":" in ip else ip
            out.append(f"    server {host}:{port} max_fails=0;")
        out.append("    keepalive 32;")
        out.append("  }")
    return out


def render(table: RouteTable, endpoints: dict[str, list[Address]],
           certs: dict[tuple[str, str], str], s: Settings) -> str:
    """The whole nginx.conf. `endpoints`: Backend.key → ready addresses; `certs`:
    (namespace, secret) → PEM file with certificate and key."""
    vhosts = dict(table.hosts)
    vhosts.setdefault("", VirtualHost(""))          # the default server: 404 / defaultBackend
    t = s.temp_dir
    head = [
        f"worker_processes {s.workers};",
        "daemon off;",
        f"pid {quote(s.pid_file)};",
        "error_log stderr warn;",
        # after a reload, old workers holding WebSockets or slow requests get this long
        "worker_shutdown_timeout 30s;",
    ] + ([f"user {s.user};"] if s.user else []) + [
        "events { worker_connections 4096; }",
        "http {",
        f"  access_log {s.access_log};",
        "  server_tokens off;",
        f"  client_body_temp_path {t}/client_body;",
        f"  proxy_temp_path {t}/proxy;",
        f"  fastcgi_temp_path {t}/fastcgi;",
        f"  uwsgi_temp_path {t}/uwsgi;",
        f"  scgi_temp_path {t}/scgi;",
        "  client_max_body_size 0;",
        "  proxy_request_buffering off;",
        "  proxy_http_version 1.1;",
        "  proxy_read_timeout 3600s;",        # long enough for WebSockets and streams
        "  proxy_send_timeout 3600s;",
        "  proxy_connect_timeout 5s;",
        "  proxy_next_upstream error timeout;",
        "  server_names_hash_bucket_size 128;",
        "  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }",
        "  map $http_host $best_http_host { default $http_host; '' $host; }",
    ]
    head += [f"  proxy_set_header {k} {v};" for k, v in PROXY_HEADERS]
    head += [f"  ssl_certificate {quote(s.default_cert)};",
             f"  ssl_certificate_key {quote(s.default_cert)};",
             "  ssl_protocols TLSv1.2 TLSv1.3;"]
    head += [f"  {x}" for x in s.extra_http]
    body = _upstreams(table, endpoints)
    for host in sorted(vhosts, key=lambda h: (h != "", h)):
        body += _server(vhosts[host], table, endpoints, certs, s)
    return "\n".join(head + body + ["}", ""])
