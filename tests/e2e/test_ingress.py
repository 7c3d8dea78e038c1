"""Ingress end to end on a real runc node, through the whole `pybernetes server` (API
server, controller manager, scheduler, runc kubelet, ingress): two Deployments of
busybox httpd behind two Services, one Ingress with two hosts and two paths reaching
the right pods, a TLS Ingress serving its Secret's certificate, and a scaled-to-zero
backend answering 503. The ingress listens on loopback ports; nginx sends to the pod
IPs on this test's bridge (no service proxy on the way, as ingress-nginx does).

Isolation (two e2e modules may run at once): S = 40 + (pid + 20) % 30 picks pod CIDR
10.S.0.0/16, service CIDR 10.(S+160).0.0/16, node ports, a bridge and node name of
this process's own."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
from typing import Iterator

import pytest

from pybernetes.ingress.certs import self_signed
from tests.conftest import free_port
from tests.e2e.kubelet_fixtures import REQUIREMENTS, NodeNet, runc_server, wait_for

pytestmark = REQUIREMENTS + [pytest.mark.skipif(
    not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"),
    reason="nginx not installed (apt-get install nginx-light)")]

K = 20
S = 40 + (os.getpid() + K) % 30
SERVICE_CIDR = f"10.{S + 160}.0.0/16"
NODE_PORTS = (30000 + S * 50, 30000 + S * 50 + 49)
BRIDGE = f"pyi{os.getpid() % 100000}"
NODE = f"e2e-ingress-{os.getpid()}"
NET = NodeNet(NODE, BRIDGE, S)
HTTP, HTTPS = free_port(), free_port()


def deployment(name: str, image: str) -> dict:
    # each page names its app and pod, so a response tells where it was routed
    script = ("for d in /www /www/api /www/only; do mkdir -p $d; "
              f"echo {name} $(hostname) > $d/index.html; done; exec httpd -f -p 8080 -h /www")
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "httpd", "image": image,
                                         "command": ["sh", "-c", script],
                                         "ports": [{"name": "http", "containerPort": 8080}],
                                         "readinessProbe": {"tcpSocket": {"port": 8080},
                                                            "periodSeconds": 1}}]}}}}


def service(name: str, port: int, port_name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name},
                     "ports": [{"name": port_name, "port": port, "targetPort": "http"}]}}


TWO_HOSTS = {
    "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
    "spec": {"rules": [
        {"host": "alpha.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "alpha", "port": {"number": 80}}}},
            {"path": "/api", "pathType": "Prefix",
             "backend": {"service": {"name": "beta", "port": {"name": "web"}}}}]}},
        {"host": "beta.example.com", "http": {"paths": [
            {"path": "/only/", "pathType": "Exact",
             "backend": {"service": {"name": "beta", "port": {"number": 8080}}}}]}}]}}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with runc_server(tmp_path_factory.mktemp("ingress-e2e"), NET, ("ingress",), [
            "--service-cidr", SERVICE_CIDR,
            "--service-node-port-range", f"{NODE_PORTS[0]}-{NODE_PORTS[1]}",
            "--ingress-arg", f"http-port={HTTP}", "--ingress-arg", f"https-port={HTTPS}",
            "--ingress-arg", "bind-address=127.0.0.1"]) as env:
        kc, image = env["kubectl"], env["image"]
        objs = [deployment("alpha", image), deployment("beta", image),
                service("alpha", 80, "http"), service("beta", 8080, "web"), TWO_HOSTS]
        kc("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": objs}))
        for name in ("alpha", "beta"):
            kc("rollout", "status", f"deployment/{name}", "--timeout=150s", timeout=160)
        yield env


def get(host: str, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", HTTP, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    except OSError as e:
        return 0, str(e)
    finally:
        conn.close()


def app(host: str, path: str) -> str | int:
    status, body = get(host, path)
    return body.split()[0] if status == 200 and body else status


def test_two_hosts_two_paths_reach_the_right_pods(env: dict) -> None:
    kc = env["kubectl"]
    wait_for("alpha through the ingress", lambda: app("alpha.example.com", "/") == "alpha", 90)
    # beta's endpoints may reach the ingress a moment after alpha's (one reload each)
    wait_for("beta through the ingress", lambda: app("alpha.example.com", "/api/") == "beta", 30)
    assert app("beta.example.com", "/only/") == "beta"
    assert app("beta.example.com", "/") == 404
    pods = json.loads(kc("get", "pods", "-l", "app=alpha", "-o", "json"))["items"]
    _, body = get("alpha.example.com", "/")
    assert body.split()[1] == pods[0]["metadata"]["name"]    # the pod itself answered
    node_ips = [a["address"] for a in json.loads(kc("get", "node", NODE, "-o", "json"))
                ["status"]["addresses"] if a["type"] == "InternalIP"]
    wait_for("ADDRESS", lambda: node_ips[0] in kc("get", "ingress", "web"), 30)


def https_get(host: str, path: str, ca: bytes) -> tuple[bytes, str]:
    """(the server's certificate, the body) over TLS with SNI `host`, verified by `ca`."""
    ctx = ssl.create_default_context(cadata=ca.decode())
    with socket.create_connection(("127.0.0.1", HTTPS), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                      .encode())
            data = b""
            for _ in range(100):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return s.getpeercert(binary_form=True), data.decode(errors="replace")


def test_tls_ingress_serves_the_secrets_certificate(env: dict) -> None:
    kc, tmp = env["kubectl"], env["tmp"]
    crt, key = self_signed("secure.example.com", "secure.example.com", days=1)
    (tmp / "tls.crt").write_bytes(crt)
    (tmp / "tls.key").write_bytes(key)
    kc("create", "secret", "tls", "secure", f"--cert={tmp / 'tls.crt'}",
       f"--key={tmp / 'tls.key'}")
    kc("create", "ingress", "secure", "--rule=secure.example.com/*=alpha:80,tls=secure")

    def served() -> str:
        try:
            cert, body = https_get("secure.example.com", "/", crt)
        except (OSError, ssl.SSLError):
            return ""
        return body if cert == ssl.PEM_cert_to_DER_cert(crt.decode()) else ""
    body = wait_for("the Secret's certificate", served, 60)
    assert body.startswith("HTTP/1.1 200") and "\r\n\r\nalpha " in body


def test_backend_without_ready_pods_answers_503(env: dict) -> None:
    kc = env["kubectl"]
    wait_for("beta routed", lambda: app("alpha.example.com", "/api/") == "beta", 60)
    kc("scale", "deployment/beta", "--replicas=0")
    wait_for("503 once beta has no pods", lambda: app("alpha.example.com", "/api/") == 503, 60)
    assert app("alpha.example.com", "/") == "alpha"
    kc("scale", "deployment/beta", "--replicas=1")
    wait_for("beta back", lambda: app("alpha.example.com", "/api/") == "beta", 120)
