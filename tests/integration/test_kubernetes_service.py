"""In-cluster clients find the API server through `default/kubernetes`: its Endpoints and
EndpointSlice name an address pods can reach (not loopback), the server answers there
with a certificate valid for that address and the Service IP, and a restart on another
port moves the endpoints along."""
from __future__ import annotations

import ssl
import urllib.request

from pybernetes.auth.pki import san_names
from pybernetes.kubelet.machine import primary_ip

from ..conftest import start_cluster

SLICE = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes"
ENDPOINTS = "/api/v1/namespaces/default/endpoints/kubernetes"


def _published(cluster) -> tuple[list, list]:
    s, ep = cluster.json("GET", ENDPOINTS)
    assert s == 200, ep
    s, es = cluster.json("GET", SLICE)
    assert s == 200, es
    assert es["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    from_endpoints = [(a["ip"], p["port"]) for sub in ep["subsets"] for a in sub["addresses"]
                      for p in sub["ports"]]
    from_slice = [(a, p["port"]) for e in es["endpoints"] for a in e["addresses"]
                  for p in es["ports"]]
    return from_endpoints, from_slice


def test_kubernetes_service_points_at_the_advertised_address(tmp_path) -> None:
    address = primary_ip()
    cluster = start_cluster(tmp_path / "server", extra=[
        "--advertise-address", address, "--service-cidr", "10.232.0.0/16"])
    try:
        s, svc = cluster.json("GET", "/api/v1/namespaces/default/services/kubernetes")
        assert svc["spec"]["clusterIP"] == "10.232.0.1"
        assert _published(cluster) == ([(address, cluster.port)], [(address, cluster.port)])

        # served there too, with a certificate for that address and the Service IP
        ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "pki" / "ca.crt"))
        with urllib.request.urlopen(f"https://{address}:{cluster.port}/livez", context=ctx,
                                    timeout=30) as r:
            assert r.status == 200
        from cryptography import x509
        cert = x509.load_pem_x509_certificate(
            (cluster.data_dir / "pki" / "server.crt").read_bytes())
        names = san_names(cert)
        assert {address, "10.232.0.1", "kubernetes.default.svc"} <= names
    finally:
        cluster.stop()

    again = start_cluster(tmp_path / "server", extra=[
        "--advertise-address", address, "--service-cidr", "10.232.0.0/16"])
    try:
        assert again.port != cluster.port
        assert _published(again) == ([(address, again.port)], [(address, again.port)])
    finally:
        again.stop()
