"""API objects as the API server and the EndpointSlice controller write them."""
from __future__ import annotations


def service(name: str, ns: str = "default", cluster_ip: str = "10.43.0.20",
            ports: list[dict] | None = None, **spec) -> dict:
    ips = [] if cluster_ip == "" else [cluster_ip]
    body = {"clusterIP": cluster_ip, "clusterIPs": ips, "type": "ClusterIP",
            "ports": ports if ports is not None else
            [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": "1"}, "spec": body}


def headless(name: str, ns: str = "default", ports: list[dict] | None = None, **spec) -> dict:
    return service(name, ns, "None", ports, **spec)


def external(name: str, target: str, ns: str = "default") -> dict:
    svc = service(name, ns, "", [])
    svc["spec"] = {"type": "ExternalName", "externalName": target}
    return svc


def endpoint(ip: str, ready: bool | None = True, hostname: str = "",
             terminating: bool = False) -> dict:
    cond: dict = {"serving": bool(ready), "terminating": terminating}
    if ready is not None:
        cond["ready"] = ready
    ep = {"addresses": [ip], "conditions": cond}
    if hostname:
        ep["hostname"] = hostname
    return ep


def endpoint_slice(svc: str, endpoints: list[dict], ns: str = "default",
                   ports: list[dict] | None = None, name: str = "",
                   address_type: str = "IPv4") -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{svc}-abcde", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": address_type, "endpoints": endpoints,
            "ports": ports if ports is not None else
            [{"name": "http", "port": 8080, "protocol": "TCP"}]}
