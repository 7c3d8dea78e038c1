"""Shared pieces of the real-kubelet e2e tests (test_kubelet_runc.py,
test_kubelet_lifecycle.py, and the whole-server runc modules): the kubelet as its own
process or a whole server with a runc node (runc_server), a module's cluster + registry +
node, polling, pod manifests and the by-id cleanup of anything a failed
test left on the machine. Each test module passes its own bridge, subnet and node
name so two modules never share network state."""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pytest

from tests import oci_images
from tests.conftest import Cluster, Kubectl, free_port, kubectl_binary, start_cluster

REPO = Path(__file__).resolve().parents[2]
CNI_BRIDGE = "/usr/lib/cni/bridge"

REQUIREMENTS = [
    pytest.mark.kubectl,
    pytest.mark.skipif(os.geteuid() != 0, reason="the runc runtime needs root"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed"),
    pytest.mark.skipif(shutil.which("conmon") is None, reason="conmon is not installed"),
    pytest.mark.skipif(not oci_images.have_registry(),
                       reason="docker-registry or busybox-static is not installed"),
    pytest.mark.skipif(not os.path.exists(CNI_BRIDGE),
                       reason="containernetworking-plugins are not installed"),
]


@dataclass
class NodeNet:
    """One test module's node: its name, CNI bridge and 10.<subnet>.0.0/16 network."""
    node: str
    bridge: str
    subnet: int
    extra: list[str] = field(default_factory=list)   # more kubelet flags


def wait_for(what: str, fn: Callable[[], object], timeout: float = 30.0,
             every: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class KubeletProcess:
    def __init__(self, cluster: Cluster, root: Path, net: NodeNet, runtime: str = "runc",
                 node: str | None = None):
        self.cluster, self.root, self.net, self.runtime = cluster, root, net, runtime
        self.node = node or net.node
        self.log_path = root.parent / f"{root.name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pybernetes.cli.main", "kubelet", "--kubeconfig",
             self.cluster.kubeconfig, "--runtime", self.runtime, "--node-name", self.node,
             "--root-dir", str(self.root), "--cni-bridge", self.net.bridge,
             "--pod-cidr", f"10.{self.net.subnet}.250.0/24", "--crash-loop-backoff-max", "2",
             "--heartbeat-period", "2", "--log-level", "info", *self.net.extra],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-5000:]
        except OSError:
            return ""


def wait_node_ready(kc: Kubectl, node: str, timeout: float = 60) -> None:
    wait_for(f"node {node} to be Ready", lambda: "True" in kc.run(
        "get", "node", node, "-o",
        "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False).stdout,
        timeout=timeout)


def force_cleanup(root: Path, net: NodeNet) -> None:
    """Only when a test failed half-way: nothing of ours may outlive the test. The
    runtime removes what is left (processes, mounts, cgroups, netns, CNI leases)."""
    import asyncio

    from pybernetes.kubelet.network.pod_network import PodNetwork
    from pybernetes.kubelet.runtime.runc import RuncRuntime

    pod_net = PodNetwork(pod_cidr=f"10.{net.subnet}.0.0/24", state_dir=str(root / "cni"),
                         bridge=net.bridge)

    async def remove_all() -> None:
        rt = RuncRuntime(str(root), network=pod_net)
        for sb in await rt.list_pod_sandboxes():
            await rt.remove_pod_sandbox(sb.id)
        for c in await rt.list_containers():
            await rt.remove_container(c.id)
    if (root / "runc").is_dir():
        asyncio.run(remove_all())
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(str(root))), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    asyncio.run(pod_net.remove_bridge())   # the bridge and its loopback guard rule


def pod_json(kc: Kubectl, name: str) -> dict:
    p = kc.run("get", "pod", name, "-o", "json", check=False)
    return json.loads(p.stdout) if p.returncode == 0 else {}


def container_state(pod: dict, i: int = 0) -> dict:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[i] if len(statuses) > i else {}


def apply(kc: Kubectl, manifest: dict) -> None:
    kc("apply", "-f", "-", input=json.dumps(manifest))


def pod(name: str, image: str, command: list[str], **spec) -> dict:
    container = {"name": spec.pop("container_name", "c"), "image": image, "command": command}
    container.update(spec.pop("container", {}))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 2, **spec}}


def in_phase(kc: Kubectl, name: str, phase: str) -> Callable[[], dict | None]:
    """For wait_for: the pod once it is in this phase."""
    def check() -> dict | None:
        p = pod_json(kc, name)
        return p if (p.get("status") or {}).get("phase") == phase else None
    return check


def container_ids(p: dict) -> set[str]:
    """Runtime ids of the pod's container instances (current and last), for the
    teardown checks."""
    out = set()
    status = p.get("status") or {}
    for s in (status.get("containerStatuses") or []) + (
            status.get("initContainerStatuses") or []):
        for cid in [s.get("containerID", "")] + [
                (s.get("lastState") or {}).get("terminated", {}).get("containerID", "")]:
            if cid:
                out.add(cid.split("://", 1)[1])
    return out


def processes_with(ids: set[str]) -> list[str]:
    """Command lines of live processes that name one of these ids."""
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmdline = open(f"/proc/{d}/cmdline", "rb").read().decode(errors="replace")
            except OSError:
                continue
            if any(i in cmdline for i in ids):
                found.append(cmdline)
    return found


def http_get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as r:
            return r.read().decode()
    except OSError:
        return ""


@contextmanager
def runc_node(tmp: Path, net: NodeNet, delete: str = "pods") -> Iterator[dict]:
    """A whole runc setup for one test module: a real registry holding the busybox
    test image, a cluster (API server, controller manager, scheduler) and a runc
    kubelet on its own bridge and subnet. Yields {tmp, registry, cluster, kubelet,
    kubectl, image, root, storage}; on the way out deletes `delete` objects, stops
    everything and removes whatever the node left behind."""
    registry = oci_images.start_registry(tmp / "registry", free_port())
    cluster = kubelet = None
    try:
        oci_images.push_image(registry.url, "e2e/busybox", "1", oci_images.busybox_image())
        cluster = start_cluster(tmp / "cluster", components=("controller-manager", "scheduler"),
                                extra=["--cluster-cidr", f"10.{net.subnet}.0.0/16"])
        kubelet = KubeletProcess(cluster, tmp / "kubelet", net)
        kubelet.start()
        binary = kubectl_binary("1.33") or kubectl_binary()
        if binary is None:
            pytest.skip("no kubectl on this machine")
        kc = Kubectl(binary, cluster.kubeconfig)
        wait_node_ready(kc, net.node)
        yield {"tmp": tmp, "registry": registry, "cluster": cluster, "kubelet": kubelet,
               "kubectl": kc, "image": f"{registry.host}/e2e/busybox:1", "seen": {},
               "root": tmp / "kubelet", "storage": Path(cluster.data_dir) / "storage"}
    finally:
        if kubelet is not None and cluster is not None:
            Kubectl(kubectl_binary() or "kubectl", cluster.kubeconfig).run(
                "delete", delete, "--all", "--wait=true", "--timeout=40s", check=False,
                timeout=60)
        if kubelet is not None:
            kubelet.stop()
        if cluster is not None:
            cluster.stop()
        registry.stop()
        force_cleanup(tmp / "kubelet", net)


def busybox_with(applets: Sequence[str]) -> oci_images.Image:
    """The test busybox's base layer plus these applets, as a one-layer image."""
    base = oci_images.busybox_base_layer()
    for applet in applets:
        base.symlink(f"bin/{applet}", "busybox")
    layer = base.build()
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}
    return oci_images.Image([layer], config, False)


@contextmanager
def runc_server(tmp: Path, net: NodeNet, components: Sequence[str] = (),
                extra: Sequence[str] = (), applets: Sequence[str] = (),
                delete: Sequence[str] = ("deployments,pods",)) -> Iterator[dict]:
    """One `pybernetes server` as a user runs it on one machine: a real registry holding
    the busybox test image (with `applets` added, if any) and the server's controller
    manager, scheduler and runc kubelet on `net`'s node name, bridge and 10.<subnet>.0.0/16,
    plus `components` and `extra` server flags. Yields {tmp, registry, cluster, kubectl,
    image, root} once the node is Ready; on the way out `kubectl delete <delete> --all`,
    stops everything and removes whatever the node left behind."""
    registry = oci_images.start_registry(tmp / "registry", free_port())
    cluster = None
    root = tmp / "server" / "kubelet"
    try:
        image = busybox_with(applets) if applets else oci_images.busybox_image()
        oci_images.push_image(registry.url, "e2e/busybox", "1", image)
        cluster = start_cluster(tmp / "server", components=(
            "controller-manager", "scheduler", "kubelet", *components), extra=[
            "--node-name", net.node, "--kubelet-runtime", "runc",
            "--cluster-cidr", f"10.{net.subnet}.0.0/16",
            "--kubelet-arg", f"cni-bridge={net.bridge}", "--kubelet-arg", f"port={free_port()}",
            "--kubelet-arg", "heartbeat-period=2", *extra])
        binary = kubectl_binary("1.33") or kubectl_binary()
        if binary is None:
            pytest.skip("no kubectl on this machine")
        kc = Kubectl(binary, cluster.kubeconfig)
        wait_node_ready(kc, net.node, 90)
        yield {"tmp": tmp, "registry": registry, "cluster": cluster, "kubectl": kc,
               "image": f"{registry.host}/e2e/busybox:1", "root": root}
    finally:
        if cluster is not None:
            Kubectl(kubectl_binary() or "kubectl", cluster.kubeconfig).run(
                "delete", *delete, "--all", "--grace-period=1", "--wait=true",
                "--timeout=60s", check=False, timeout=90)
            cluster.stop()
        registry.stop()
        force_cleanup(root, net)


def remove_proxy_leftovers(table: str, service_cidr: str, pod_cidr: str) -> None:
    """Only if a server's proxy died without cleaning up after itself: its nftables table
    and the routes it adds for the service CIDR (local table) and the pod CIDR."""
    if subprocess.run(["nft", "list", "table", "ip", table], capture_output=True).returncode == 0:
        subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True)
    subprocess.run(["ip", "route", "del", "local", service_cidr, "dev", "lo", "table", "local"],
                   capture_output=True)
    subprocess.run(["ip", "route", "del", "unreachable", pod_cidr], capture_output=True)


def pod_cgroups(uid: str) -> list[str]:
    """The pod's cgroup dirs left under /pybernetes in any hierarchy: each v1 controller's
    (/sys/fs/cgroup/<ctrl>/pybernetes/...) and the unified one (/sys/fs/cgroup/pybernetes/...
    on cgroup v2, /sys/fs/cgroup/unified/pybernetes/... on a hybrid host)."""
    from pybernetes.kubelet.runtime.runc import CGROUP_ROOT, cgroup_dirs
    return [p for d in cgroup_dirs(CGROUP_ROOT)
            for p in glob.glob(f"{d}/**/pod{uid}", recursive=True)]


def assert_node_left_nothing(root: Path, bridge: str) -> None:
    """After its pods are deleted, a runc kubelet under `root` keeps no sandbox, container,
    network namespace, link on `bridge` or mount of its own."""
    wait_for("no sandbox left", lambda: not os.listdir(root / "runc" / "sandboxes"), 20)
    assert not os.listdir(root / "runc" / "containers")
    assert not os.listdir(root / "netns")
    links = json.loads(subprocess.run(["ip", "-j", "link", "show", "master", bridge],
                                      capture_output=True, text=True).stdout or "[]")
    assert links == [], links
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if str(root) in line]
