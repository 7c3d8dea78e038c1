"""Route table: host and path matching and precedence as the Ingress spec states
(networking.k8s.io/v1 path types; the spec's own examples), and the nginx config
rendered from it checked by nginx -t where nginx is installed."""
from __future__ import annotations

import base64
import os
import shutil
import subprocess

import pytest

from pybernetes.ingress import certs, routes
from pybernetes.ingress.endpoints import ready_addresses
from pybernetes.ingress.nginx_conf import Settings, render


def ingress(name: str, rules: list[dict], created: str = "2026-01-01T00:00:00Z",
            default: str | None = None, tls: list[dict] | None = None,
            namespace: str = "default") -> dict:
    spec: dict = {"rules": rules}
    if default:
        spec["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
    if tls:
        spec["tls"] = tls
    return {"metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
            "spec": spec}


def rule(host: str, *paths: tuple[str, str, str]) -> dict:
    r: dict = {"http": {"paths": [
        {"path": p, "pathType": t, "backend": {"service": {"name": svc, "port": {"number": 80}}}}
        for p, t, svc in paths]}}
    if host:
        r["host"] = host
    return r


def svc_of(table: routes.RouteTable, host: str, path: str) -> str | None:
    b = table.lookup(host, path)
    return b.service if b else None


# The Ingress docs' "Examples" table: (path type, rule path(s), request path, matches?)
SPEC_EXAMPLES = [
    ("Prefix", ["/"], "/", True), ("Prefix", ["/"], "/anything", True),
    ("Exact", ["/foo"], "/foo", True), ("Exact", ["/foo"], "/bar", False),
    ("Exact", ["/foo"], "/foo/", False), ("Exact", ["/foo/"], "/foo", False),
    ("Prefix", ["/foo"], "/foo", True), ("Prefix", ["/foo"], "/foo/", True),
    ("Prefix", ["/foo/"], "/foo", True), ("Prefix", ["/foo/"], "/foo/", True),
    ("Prefix", ["/aaa/bb"], "/aaa/bbb", False), ("Prefix", ["/aaa/bbb"], "/aaa/bbb", True),
    ("Prefix", ["/aaa/bbb/"], "/aaa/bbb", True), ("Prefix", ["/aaa/bbb"], "/aaa/bbb/", True),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb/ccc", True), ("Prefix", ["/aaa/bbb"], "/aaa/bbbxyz", False),
    ("Prefix", ["/", "/aaa"], "/aaa/ccc", True), ("Prefix", ["/", "/aaa", "/aaa/bbb"], "/aaa/bbb",
                                                   True),
    ("Prefix", ["/", "/aaa", "/aaa/bbb"], "/ccc", True), ("Prefix", ["/aaa"], "/ccc", False),
    ("ImplementationSpecific", ["/foo"], "/foo/bar", True),
]


@pytest.mark.parametrize("kind,paths,request_path,matches", SPEC_EXAMPLES)
def test_spec_path_examples(kind, paths, request_path, matches):
    table = routes.build([ingress("i", [rule("", *[(p, kind, f"s{i}") for i, p in
                                                 enumerate(paths)])])])
    assert (table.lookup("x", request_path) is not None) is matches


def test_longest_path_wins_and_exact_beats_prefix():
    table = routes.build([ingress("i", [rule(
        "", ("/", "Prefix", "root"), ("/aaa", "Prefix", "aaa"), ("/aaa/bbb", "Prefix", "bbb"),
        ("/aaa", "Exact", "exact"))])])
    assert svc_of(table, "h", "/aaa/bbb/c") == "bbb"
    assert svc_of(table, "h", "/aaa/bbbc") == "aaa"
    assert svc_of(table, "h", "/aaa") == "exact"
    assert svc_of(table, "h", "/aaa/") == "aaa"
    assert svc_of(table, "h", "/zzz") == "root"


def test_hosts_exact_then_wildcard_then_any():
    table = routes.build([ingress("i", [
        rule("foo.example.com", ("/", "Prefix", "foo")),
        rule("*.example.com", ("/", "Prefix", "wild")),
        rule("", ("/", "Prefix", "any"))])])
    assert svc_of(table, "foo.example.com", "/") == "foo"
    assert svc_of(table, "FOO.example.com:8080", "/") == "foo"
    assert svc_of(table, "bar.example.com", "/") == "wild"
    assert svc_of(table, "a.bar.example.com", "/") == "any"     # one label only
    assert svc_of(table, "example.com", "/") == "any"


def test_no_match_in_selected_host_is_default_backend_or_404():
    rules = [rule("foo.com", ("/api", "Prefix", "api")), rule("", ("/", "Prefix", "any"))]
    table = routes.build([ingress("i", rules)])
    assert svc_of(table, "foo.com", "/other") is None          # 404: stays in its host
    with_default = routes.build([ingress("i", rules, default="fallback")])
    assert svc_of(with_default, "foo.com", "/other") == "fallback"


def test_oldest_ingress_wins_conflicts():
    old = ingress("old", [rule("h", ("/x", "Prefix", "old"))], "2026-01-01T00:00:00Z",
                  default="old-default")
    new = ingress("new", [rule("h", ("/x/", "Prefix", "new"), ("/y", "Exact", "y"))],
                  "2026-02-01T00:00:00Z", default="new-default")
    table = routes.build([new, old])
    assert svc_of(table, "h", "/x/1") == "old"
    assert svc_of(table, "h", "/y") == "y"
    assert table.default_backend.service == "old-default"
    assert any(src == "default/new" and "already routed" in p for src, p in table.problems)


def test_tls_hosts_and_wildcards():
    ing = ingress("i", [rule("a.example.com", ("/", "Prefix", "a")),
                        rule("b.other.com", ("/", "Prefix", "b")),
                        rule("c.other.com", ("/", "Prefix", "c"))],
                  tls=[{"hosts": ["*.example.com"], "secretName": "wild"},
                       {"hosts": ["b.other.com"], "secretName": "b-cert"}])
    table = routes.build([ing])
    assert table.hosts["a.example.com"].tls == ("default", "wild")
    assert table.hosts["b.other.com"].tls == ("default", "b-cert")
    assert table.hosts["c.other.com"].tls is None
    assert routes.host_matches("*.example.com", "x.example.com")
    assert not routes.host_matches("*.example.com", "x.y.example.com")


def test_backend_by_port_name_and_ready_endpoints_only():
    svc = {"metadata": {"name": "web", "namespace": "default"},
           "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "web"}]}}
    sl = {"metadata": {"name": "web-1", "namespace": "default",
                       "labels": {"kubernetes.io/service-name": "web"}},
          "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
          "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                        {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
                        {"addresses": ["10.0.0.3"]}]}
    by_name = routes.Backend("default", "web", "http")
    by_number = routes.Backend("default", "web", 80)
    assert ready_addresses(by_name, svc, [sl]) == [("10.0.0.1", 8080), ("10.0.0.3", 8080)]
    assert ready_addresses(by_number, svc, [sl]) == ready_addresses(by_name, svc, [sl])
    assert ready_addresses(routes.Backend("default", "web", 81), svc, [sl]) == []
    assert ready_addresses(by_name, None, [sl]) == []


def _secret(pem_crt: bytes, pem_key: bytes) -> dict:
    return {"metadata": {"name": "s", "namespace": "default"}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(pem_crt).decode(),
                     "tls.key": base64.b64encode(pem_key).decode()}}


def test_tls_secret_checked(tmp_path):
    pem = open(certs.ensure_default_cert(str(tmp_path / "d.pem")), "rb").read()
    crt, _, key = pem.partition(b"-----END CERTIFICATE-----\n")
    crt += b"-----END CERTIFICATE-----\n"
    path, why = certs.write_secret(str(tmp_path / "c"), _secret(crt, key))
    assert path and not why and oct(os.stat(path).st_mode & 0o777) == "0o600"
    other = open(certs.ensure_default_cert(str(tmp_path / "e.pem")), "rb").read()
    _, _, other_key = other.partition(b"-----END CERTIFICATE-----\n")
    assert certs.write_secret(str(tmp_path / "c"), _secret(crt, other_key)) == (
        None, "the key does not belong to the certificate")
    assert certs.write_secret(str(tmp_path / "c"), _secret(b"junk", key))[0] is None


@pytest.mark.skipif(not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"),
                    reason="nginx not installed (apt-get install nginx-light)")
def test_rendered_config_passes_nginx_t(tmp_path):
    ing = ingress("i", [rule("a.example.com", ("/", "Prefix", "a"), ("/x", "Exact", "b"),
                             ("/x", "Prefix", "a"), ('/we ird"{', "Prefix", "b")),
                        rule("*.example.com", ("/p/", "Prefix", "a")),
                        rule("", ("/q", "ImplementationSpecific", "gone"))], default="a",
                  tls=[{"hosts": ["a.example.com"], "secretName": "s"}])
    table = routes.build([ing])
    default = certs.ensure_default_cert(str(tmp_path / "default.pem"))
    (tmp_path / "tmp").mkdir()
    s = Settings(http_port=18080, https_port=18443, bind_addresses=("127.0.0.1",),
                 pid_file=str(tmp_path / "nginx.pid"), temp_dir=str(tmp_path / "tmp"),
                 default_cert=default)
    eps = {"default/a:80": [("10.1.2.3", 8080)], "default/b:80": [("10.1.2.4", 80)]}
    text = render(table, eps, {("default", "s"): default}, s)
    assert "return 503;" in text               # the backend "gone" has no endpoints
    assert "location = \"/x\"" in text and "location ^~ \"/x/\"" in text
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    out = subprocess.run([nginx, "-t", "-q", "-e", "stderr", "-p", str(tmp_path), "-c",
                          str(conf)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
