"""`pybernetes server` with the ingress controller on loopback ports: real Ingress,
Service, EndpointSlice and Secret objects (made with kubectl), real HTTP to backends
that are plain Python servers on 127.0.0.x standing in for pods (selectorless Services
with hand-made EndpointSlices), through the real nginx."""
from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from pybernetes.ingress.certs import self_signed
from tests.conftest import Kubectl, free_port, kubectl_binary, start_cluster, wait_for

pytestmark = pytest.mark.skipif(
    not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"),
    reason="nginx not installed (apt-get install nginx-light)")

HTTP, HTTPS = free_port(), free_port()


class Echo(BaseHTTPRequestHandler):
    """Answers with its name, the path and the request headers as JSON; an Upgrade
    request gets 101 and then every byte echoed back (what a WebSocket server looks
    like to a proxy that only tunnels)."""
    protocol_version = "HTTP/1.1"
    name = "?"

    def do_GET(self) -> None:
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self._upgrade()
            return
        body = json.dumps({"backend": self.name, "path": self.path,
                           "headers": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _upgrade(self) -> None:
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        for _ in range(100):  # bounded
            data = self.connection.recv(4096)
            if not data:
                return
            self.connection.sendall(b"echo:" + data)

    def log_message(self, *args: object) -> None:
        pass


def serve(name: str, ip: str) -> tuple[ThreadingHTTPServer, int]:
    handler = type(f"Echo_{name}", (Echo,), {"name": name})
    server = ThreadingHTTPServer((ip, 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def selectorless(name: str, port: int, port_name: str, ip: str, target: int | None) -> str:
    """A Service without selector and its EndpointSlice (no endpoints when target is None)."""
    eps = [] if target is None else [{"addresses": [ip], "conditions": {"ready": True}}]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"ports": [{"name": port_name, "port": port, "targetPort": target or 80}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-manual",
                      "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4", "endpoints": eps,
         "ports": [{"name": port_name, "port": target or 80, "protocol": "TCP"}]}]})


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    binary = kubectl_binary("1.33") or kubectl_binary()
    if binary is None:
        pytest.skip("no kubectl on this machine")
    servers = {}
    for name, ip in (("alpha", "127.0.0.2"), ("beta", "127.0.0.3"), ("gamma", "127.0.0.4")):
        servers[name] = (*serve(name, ip), ip)
    args = [f"http-port={HTTP}", f"https-port={HTTPS}", "bind-address=127.0.0.1",
            "min-sync-period=100ms"]
    cluster = start_cluster(tmp_path_factory.mktemp("ingress"), components=("ingress",),
                            extra=[a for x in args for a in ("--ingress-arg", x)])
    kubectl = Kubectl(binary, cluster.kubeconfig)
    try:
        for (name, port, pname), target in ((("alpha", 80, "http"), "alpha"),
                                            (("beta", 8080, "web"), "beta"),
                                            (("gamma", 80, "http"), "gamma"),
                                            (("empty", 80, "http"), None)):
            srv = servers.get(target) if target else None
            kubectl("apply", "-f", "-", input=selectorless(
                name, port, pname, srv[2] if srv else "127.0.0.9", srv[1] if srv else None))
        yield cluster, kubectl
    finally:
        cluster.stop()
        for srv, _, _ in servers.values():
            srv.shutdown()
            srv.server_close()
    assert not _nginx_running(cluster.data_dir), "nginx outlived the server"


def _nginx_running(data_dir: Path) -> bool:
    pid_file = data_dir / "ingress" / "nginx.pid"
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def get(host: str, path: str, port: int = HTTP) -> tuple[int, dict | bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        body = r.read()
    finally:
        conn.close()
    if r.getheader("Content-Type") == "application/json":
        return r.status, json.loads(body)
    return r.status, body


def routed(host: str, path: str) -> str | int:
    """The backend's name, or the status code when no backend answered."""
    status, body = get(host, path)
    return body["backend"] if status == 200 and isinstance(body, dict) else status


TWO_HOSTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: two-hosts}
spec:
  rules:
  - host: alpha.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: alpha, port: {number: 80}}}}
      - {path: /api, pathType: Prefix, backend: {service: {name: beta, port: {name: web}}}}
  - host: "*.wild.example.com"
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: gamma, port: {number: 80}}}}
  - host: beta.example.com
    http:
      paths:
      - {path: /only, pathType: Exact, backend: {service: {name: beta, port: {number: 8080}}}}
      - {path: /none, pathType: Prefix, backend: {service: {name: empty, port: {number: 80}}}}
"""


def test_default_class_and_two_hosts_two_paths(env):
    cluster, kubectl = env
    wait_for("the default IngressClass", lambda: "pybernetes.io/ingress" in kubectl(
        "get", "ingressclass", "pybernetes", "--ignore-not-found"), timeout=60)
    kubectl("apply", "-f", "-", input=TWO_HOSTS)
    # the DefaultIngressClass admission plugin filled the class in
    assert kubectl("get", "ingress", "two-hosts", "-o",
                   "jsonpath={.spec.ingressClassName}") == "pybernetes"
    wait_for("alpha routed", lambda: routed("alpha.example.com", "/") == "alpha", timeout=60)
    assert routed("alpha.example.com", "/api") == "beta"
    assert routed("alpha.example.com", "/api/v1/x") == "beta"
    assert routed("alpha.example.com", "/apix") == "alpha"       # element-wise prefix
    assert routed("beta.example.com", "/only") == "beta"
    assert routed("beta.example.com", "/only/") == 404            # Exact
    assert routed("beta.example.com", "/none/x") == 503           # no endpoints
    assert routed("unknown.example.com", "/") == 404
    assert routed("a.wild.example.com", "/x") == "gamma"         # one label: the wildcard
    assert routed("a.b.wild.example.com", "/x") == 404            # two labels: no match
    # kubectl's columns, with this machine's address in ADDRESS
    from pybernetes.kubelet.machine import primary_ip
    wait_for("status address", lambda: primary_ip() in kubectl("get", "ingress", "two-hosts"),
             timeout=30)
    header, row = kubectl("get", "ingress", "two-hosts").splitlines()
    assert header.split() == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert row.split()[:5] == ["two-hosts", "pybernetes",
                               "alpha.example.com,*.wild.example.com,beta.example.com",
                               primary_ip(), "80"]


def test_forwarded_headers(env):
    wait_for("alpha routed", lambda: routed("alpha.example.com", "/") == "alpha", timeout=60)
    status, body = get(f"alpha.example.com:{HTTP}", "/hdr?x=1")
    assert status == 200 and body["path"] == "/hdr?x=1"
    h = {k.lower(): v for k, v in body["headers"].items()}
    assert h["host"] == f"alpha.example.com:{HTTP}"
    assert h["x-forwarded-for"] == "127.0.0.1"
    assert h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-host"] == f"alpha.example.com:{HTTP}"
    assert h["x-forwarded-port"] == str(HTTP)


def test_websocket_passes_through(env):
    wait_for("alpha routed", lambda: routed("alpha.example.com", "/") == "alpha", timeout=60)
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", HTTP), timeout=10) as s:
        s.sendall(f"GET /ws HTTP/1.1\r\nHost: alpha.example.com\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        for i in range(3):
            s.sendall(f"frame {i}".encode())
            assert s.recv(4096) == f"echo:frame {i}".encode()


def test_default_backend(env):
    _, kubectl = env
    kubectl("apply", "-f", "-", input="""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: fallback}
spec:
  defaultBackend: {service: {name: gamma, port: {number: 80}}}
""")
    wait_for("default backend", lambda: routed("unknown.example.com", "/") == "gamma",
             timeout=60)
    assert routed("beta.example.com", "/nothing-here") == "gamma"
    assert routed("alpha.example.com", "/") == "alpha"


def peer_cert(sni: str) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", HTTPS), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            return s.getpeercert(binary_form=True)


def test_tls_ingress_serves_the_secrets_certificate(env, tmp_path):
    _, kubectl = env
    crt, key = self_signed("secure.example.com", "secure.example.com", days=1)
    (tmp_path / "tls.crt").write_bytes(crt)
    (tmp_path / "tls.key").write_bytes(key)
    kubectl("create", "secret", "tls", "secure-tls", f"--cert={tmp_path / 'tls.crt'}",
            f"--key={tmp_path / 'tls.key'}")
    kubectl("create", "ingress", "secure", "--rule=secure.example.com/*=alpha:80,tls=secure-tls")
    want = ssl.PEM_cert_to_DER_cert(crt.decode())
    wait_for("the Secret's certificate", lambda: peer_cert("secure.example.com") == want,
             timeout=60)
    # unknown names get the default, self-signed certificate
    from cryptography import x509
    other = x509.load_der_x509_certificate(peer_cert("other.example.com"))
    assert "PyBernetes Ingress Controller Fake Certificate" in other.subject.rfc4514_string()
    # and HTTPS reaches the backend, which learns the scheme
    ctx = ssl.create_default_context(cadata=crt.decode())
    conn = http.client.HTTPSConnection("127.0.0.1", HTTPS, context=ctx, timeout=10)
    conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", HTTPS), timeout=10),
                                server_hostname="secure.example.com")
    try:
        conn.request("GET", "/x", headers={"Host": "secure.example.com"})
        r = conn.getresponse()
        body = json.loads(r.read())
    finally:
        conn.close()
    assert r.status == 200 and body["backend"] == "alpha"
    h = {k.lower(): v for k, v in body["headers"].items()}
    assert h["x-forwarded-proto"] == "https" and h["x-forwarded-port"] == str(HTTPS)
    assert "80, 443" in kubectl("get", "ingress", "secure")     # PORTS


def test_endpoints_change_follows(env):
    """Removing the backend's endpoint turns its route into a 503; adding it back heals."""
    _, kubectl = env
    wait_for("alpha routed", lambda: routed("alpha.example.com", "/") == "alpha", timeout=60)
    patch = json.dumps({"endpoints": []})
    kubectl("patch", "endpointslice", "alpha-manual", "--type=merge", "-p", patch)
    wait_for("503 without endpoints", lambda: routed("alpha.example.com", "/") == 503,
             timeout=60)
    kubectl("patch", "endpointslice", "alpha-manual", "--type=merge", "-p", json.dumps(
        {"endpoints": [{"addresses": ["127.0.0.2"], "conditions": {"ready": True}}]}))
    wait_for("routed again", lambda: routed("alpha.example.com", "/") == "alpha", timeout=60)


def test_classes_decide_who_serves(env):
    """An Ingress of another controller's class is left alone; an explicit class and the
    legacy annotation are kept by admission; a newer default class takes over."""
    _, kubectl = env
    kubectl("apply", "-f", "-", input="""
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: other}
spec: {controller: example.com/other}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: not-ours}
spec:
  ingressClassName: other
  rules:
  - host: other.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: beta, port: {number: 8080}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: legacy
  annotations: {kubernetes.io/ingress.class: pybernetes}
spec:
  rules:
  - host: legacy.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: beta, port: {number: 8080}}}}
""")
    assert kubectl("get", "ingress", "legacy", "-o", "jsonpath={.spec.ingressClassName}") == ""
    wait_for("the legacy annotation is served",
             lambda: routed("legacy.example.com", "/") == "beta", timeout=60)
    assert routed("other.example.com", "/") == "gamma"     # our default backend, not beta
    assert kubectl("get", "ingress", "not-ours", "-o",
                   "jsonpath={.status.loadBalancer.ingress}") == ""
    kubectl("annotate", "ingressclass", "other",
            "ingressclass.kubernetes.io/is-default-class=true")
    try:
        kubectl("create", "ingress", "newer", "--rule=newer.example.com/*=beta:8080")
        assert kubectl("get", "ingress", "newer", "-o",
                       "jsonpath={.spec.ingressClassName}") == "other"
    finally:
        kubectl("annotate", "ingressclass", "other", "ingressclass.kubernetes.io/is-default-class-")


def test_events_tell_what_happened(env):
    """`kubectl describe ingress` shows the sync, and why a host got the default cert."""
    _, kubectl = env
    kubectl("create", "ingress", "missing-tls",
            "--rule=missing.example.com/*=alpha:80,tls=no-such-secret")

    def events(name: str) -> str:
        return kubectl("get", "events", "--field-selector", f"involvedObject.name={name}")
    text = wait_for("a Warning about the Secret", lambda: "InvalidConfiguration" in
                    events("missing-tls") and events("missing-tls"), timeout=60)
    assert "TLS Secret default/no-such-secret not found" in text
    assert "Scheduled for sync" in events("two-hosts")
    described = kubectl("describe", "ingress", "two-hosts")
    assert "alpha.example.com" in described and "Scheduled for sync" in described
    assert "/api" in described and "beta:web" in described
    from cryptography import x509
    cert = x509.load_der_x509_certificate(peer_cert("missing.example.com"))
    assert "Fake Certificate" in cert.subject.rfc4514_string()
