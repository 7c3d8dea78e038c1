"""RuntimeClass end to end, as root: `pybernetes server` with the runc runtime (its own
bridge, cluster CIDR and node name), the busybox test image from a real local
registry, and the real kubectl 1.33.

What a user sees: the server ships a `crun` RuntimeClass (`kubectl get runtimeclass`),
the node reports its runtime handlers; a pod with runtimeClassName crun runs under
crun (crun's own state knows its container, conmon drives crun), `kubectl logs` and
`exec` reach it, and deleting it leaves nothing behind; a pod naming no existing class
is refused at create (403, upstream's message); a class whose handler the node does
not have leaves its pod Pending with FailedCreatePodSandBox; a class' overhead lands
in the pod's spec.overhead."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.kubelet_fixtures import (
    REQUIREMENTS, NodeNet, apply, assert_node_left_nothing, container_ids, container_state,
    in_phase, pod, pod_cgroups, pod_json, processes_with, runc_server, wait_for,
)

pytestmark = [*REQUIREMENTS,
              pytest.mark.skipif(shutil.which("crun") is None, reason="crun is not installed")]

SUBNET = 100 + (os.getpid() + 10) % 100   # not the other kubelet modules' in the same run
NET = NodeNet(node=f"e2e-rtc-{os.getpid()}", bridge=f"pyr{os.getpid() % 100000}",
              subnet=SUBNET)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with runc_server(tmp_path_factory.mktemp("runtime-class"), NET) as env:
        yield env


def runtime_class(name: str, handler: str, **extra) -> dict:
    return {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
            "metadata": {"name": name}, "handler": handler, **extra}


def crun_containers(root: Path) -> list[str]:
    """Ids of the containers crun's own state (the kubelet's crun root) holds."""
    state = root / "runc" / "state-crun"
    if not state.is_dir():
        return []
    out = subprocess.run(["crun", "--root", str(state), "list", "--format", "json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return [c["id"] for c in json.loads(out.stdout or "[]") or []]


def parent_cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    with open(f"/proc/{ppid}/cmdline", "rb") as f:
        return f.read().decode().split("\0")


def test_server_ships_a_crun_class_and_the_node_reports_handlers(env: dict) -> None:
    kc = env["kubectl"]
    header, *rows = kc("get", "runtimeclass").splitlines()
    assert header.split() == ["NAME", "HANDLER", "AGE"]
    assert [r.split()[:2] for r in rows] == [["crun", "crun"]]
    node = json.loads(kc("get", "node", NET.node, "-o", "json"))
    handlers = [h["name"] for h in node["status"]["runtimeHandlers"]]
    assert handlers == ["", "crun", "runc"], node["status"]["runtimeHandlers"]
    assert node["status"]["runtimeHandlers"][1]["features"] == {
        "recursiveReadOnlyMounts": False, "userNamespaces": False}


def test_crun_pod_runs_under_crun_with_logs_and_exec(env: dict) -> None:
    kc, root = env["kubectl"], env["root"]
    apply(kc, pod("crun-pod", env["image"], ["sh", "-c", "echo started in crun; sleep 300"],
                  runtimeClassName="crun"))
    p = wait_for("crun-pod Running", in_phase(kc, "crun-pod", "Running"), 60)
    cid = container_state(p)["containerID"].split("://", 1)[1]
    assert crun_containers(root) == [cid]
    assert not (root / "runc" / "state" / cid).exists()       # runc never saw it
    pid = json.loads((root / "runc" / "containers" / cid / "monitor.json").read_text())["pid"]
    conmon = parent_cmdline(pid)
    runtime = conmon[conmon.index("-r") + 1]
    assert runtime.endswith(("/crun", "/crun-v1-create")), conmon
    wait_for("the log", lambda: "started in crun" in kc("logs", "crun-pod"), 20)
    assert kc("exec", "crun-pod", "--", "sh", "-c", "echo $((6 * 7))").strip() == "42"
    uid = p["metadata"]["uid"]
    kc("delete", "pod", "crun-pod", "--wait=true", "--timeout=60s", timeout=90)
    wait_for("crun to forget the container", lambda: crun_containers(root) == [], 20)
    assert not pod_cgroups(uid)
    assert not processes_with({cid})


def test_unknown_class_is_refused_at_create(env: dict) -> None:
    kc = env["kubectl"]
    out = kc.run("apply", "-f", "-", check=False, input=json.dumps(
        pod("no-class", env["image"], ["true"], runtimeClassName="gvisor")))
    assert out.returncode != 0
    assert 'Error from server (Forbidden): error when creating "STDIN": pods "no-class" is ' \
           'forbidden: pod rejected: RuntimeClass "gvisor" not found' in out.stderr, out.stderr


def test_handler_the_node_lacks_leaves_the_pod_pending(env: dict) -> None:
    kc = env["kubectl"]
    apply(kc, runtime_class("kata", "kata"))
    apply(kc, pod("kata-pod", env["image"], ["true"], runtimeClassName="kata"))
    want = 'Failed to create pod sandbox: RuntimeHandler "kata" not supported'

    def event() -> str:
        out = kc("get", "events", "--field-selector",
                 "involvedObject.name=kata-pod,reason=FailedCreatePodSandBox", "-o", "json")
        return next((e["message"] for e in json.loads(out)["items"]), "")
    assert wait_for("FailedCreatePodSandBox", event, 40) == want
    p = pod_json(kc, "kata-pod")
    assert p["status"]["phase"] == "Pending"
    assert container_state(p).get("state", {}).get("waiting", {}).get("reason") == \
        "ContainerCreating"
    assert not list((env["root"] / "runc" / "sandboxes").iterdir())
    kc("delete", "pod", "kata-pod", "--wait=true", "--timeout=60s", timeout=90)
    kc("delete", "runtimeclass", "kata")


def test_overhead_lands_in_the_pod_and_it_runs(env: dict) -> None:
    kc = env["kubectl"]
    apply(kc, runtime_class("crun-overhead", "crun",
                            overhead={"podFixed": {"cpu": "50m", "memory": "16Mi"}}))
    apply(kc, pod("heavy", env["image"], ["sleep", "300"], runtimeClassName="crun-overhead"))
    p = wait_for("heavy Running", in_phase(kc, "heavy", "Running"), 60)
    assert p["spec"]["overhead"] == {"cpu": "50m", "memory": "16Mi"}
    ids = container_ids(p)
    assert set(crun_containers(env["root"])) == ids
    kc("delete", "pod", "heavy", "--wait=true", "--timeout=60s", timeout=90)
    kc("delete", "runtimeclass", "crun-overhead")
    assert not processes_with(ids)


def test_teardown_leaves_nothing_behind(env: dict) -> None:
    kc = env["kubectl"]
    kc("delete", "pods", "--all", "--wait=true", "--timeout=60s", timeout=90)
    assert_node_left_nothing(env["root"], NET.bridge)
    assert crun_containers(env["root"]) == []
