"""A whole `pybernetes server` with the process runtime (pods are host processes, as
on a machine without runc): its proxy runs in userspace mode and says so, and a
NodePort Service whose named targetPort is a different number in each of its two
pods answers from both on 127.0.0.1 and on the node address."""
from __future__ import annotations

import json
import os
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests import oci_images
from tests.conftest import Cluster, Kubectl, free_port, kubectl_binary, start_cluster, wait_for

pytestmark = [pytest.mark.kubectl, pytest.mark.skipif(
    not oci_images.have_registry(), reason="docker-registry or busybox-static is not installed")]
NODE = f"svc-proc-{os.getpid()}"
SERVICE_CIDR = f"10.{240 + os.getpid() % 10}.0.0/16"   # clear of the e2e modules' ranges


def wildcard_free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The process runtime pulls images too (and ignores their layers): a local one."""
    registry = oci_images.start_registry(tmp_path_factory.mktemp("registry"), free_port())
    try:
        oci_images.push_image(registry.url, "e2e/busybox", "1", oci_images.busybox_image())
        yield f"{registry.host}/e2e/busybox:1"
    finally:
        registry.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("svc-process"),
                      components=("controller-manager", "scheduler", "kubelet", "proxy"),
                      extra=["--node-name", NODE, "--kubelet-runtime", "process",
                             "--service-cidr", SERVICE_CIDR])
    try:
        yield c
    finally:
        kc = Kubectl(kubectl_binary() or "kubectl", c.kubeconfig)
        kc.run("delete", "deployments", "--all", "--cascade=foreground", "--wait=true",
               "--timeout=60s", check=False, timeout=90)
        kc.run("delete", "pods", "--all", "--wait=true", "--timeout=60s", check=False,
               timeout=90)
        c.stop()


def web(name: str, root: Path, port: int, image: str) -> dict:
    """A Deployment of one host process serving `root` on `port`, named port http."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text(name)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name, "tier": "web"}},
                                  "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
                                      "name": "web", "image": image,
                                      "command": [sys.executable, "-m", "http.server", str(port),
                                                  "--directory", str(root)],
                                      "ports": [{"name": "http", "containerPort": port}]}]}}}}


def get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def test_node_port_through_the_userspace_proxy(cluster: Cluster, image: str,
                                               tmp_path: Path) -> None:
    kc = Kubectl(kubectl_binary("1.33") or kubectl_binary() or "kubectl", cluster.kubeconfig)
    wait_for("the node Ready", lambda: "True" in kc.run(
        "get", "node", NODE, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        check=False).stdout, 60)
    for name in ("one", "two"):
        kc("apply", "-f", "-", input=json.dumps(web(name, tmp_path / name,
                                                    wildcard_free_port(), image)))
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"type": "NodePort", "selector": {"tier": "web"},
                    "ports": [{"port": 80, "targetPort": "http"}]}}
    kc("apply", "-f", "-", input=json.dumps(svc))
    node_port = json.loads(kc("get", "svc", "web", "-o", "json"))["spec"]["ports"][0]["nodePort"]
    node = json.loads(kc("get", "node", NODE, "-o", "json"))
    address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    for host in ("127.0.0.1", address):
        url = f"http://{host}:{node_port}/"
        seen = wait_for(f"both pods through {url}", lambda: (lambda s: s if s == {"one", "two"}
                        else None)({get(url) for _ in range(6)}), 90)
        assert seen == {"one", "two"}
    proxy_log = (cluster.data_dir / "logs" / "proxy.log").read_text()
    assert "userspace proxy: slower" in proxy_log
    # the pods are host processes: deleting them must end them
    kc("delete", "deployments", "one", "two", "--cascade=foreground", "--wait=true",
       "--timeout=60s", timeout=90)
    wait_for("no pod left", lambda: not kc("get", "pods", "-o", "name"), 60)
    wait_for("the servers gone", lambda: not servers_of(tmp_path), 30)


def servers_of(root: Path) -> list[int]:
    """Pids of live processes whose command line names `root` (our http.servers)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if str(root).encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found
