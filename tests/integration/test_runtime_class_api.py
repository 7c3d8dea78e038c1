"""RuntimeClass (node.k8s.io/v1) against a real API server with the real kubectl: the
bootstrap `crun` class, server-side table, validation (422 with upstream's causes),
the handler's immutability, and the RuntimeClass admission plugin on pod create
(403 for an unknown class, overhead, nodeSelector merge and conflicts, tolerations)."""
from __future__ import annotations

import json

import pytest

from tests.conftest import Cluster, Kubectl

pytestmark = pytest.mark.kubectl

RC_PATH = "/apis/node.k8s.io/v1/runtimeclasses"


def runtime_class(name: str, handler: str | None = "crun", **extra) -> dict:
    obj = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
           "metadata": {"name": name}, **extra}
    if handler is not None:
        obj["handler"] = handler
    return obj


def pod(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec}}


def create_pod(cluster: Cluster, ns: str, body: dict) -> tuple[int, dict]:
    return cluster.json("POST", f"/api/v1/namespaces/{ns}/pods", body)


def test_bootstrap_class_and_table(kubectl: Kubectl) -> None:
    out = kubectl("get", "runtimeclass")
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "HANDLER", "AGE"]
    assert any(r.split()[:2] == ["crun", "crun"] for r in rows), out
    resources = kubectl("api-resources", "--api-group=node.k8s.io")
    line = [r for r in resources.splitlines() if r.startswith("runtimeclasses")]
    assert line and line[0].split()[1:] == ["node.k8s.io/v1", "false", "RuntimeClass"], resources
    explain = kubectl("explain", "runtimeclass.handler")
    assert "KIND:" in explain and "RuntimeClass" in explain and "handler" in explain


def test_validation(cluster: Cluster) -> None:
    status, body = cluster.json("POST", RC_PATH, runtime_class("bad-handler", "Not_A_Label"))
    assert status == 422, body
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "handler"
    assert body["message"].startswith(
        'RuntimeClass.node.k8s.io "bad-handler" is invalid: handler: Invalid value: '
        '"Not_A_Label": a lowercase RFC 1123 label'), body["message"]
    status, body = cluster.json("POST", RC_PATH, runtime_class("no-handler", None))
    assert status == 422 and body["details"]["causes"][0]["field"] == "handler", body
    status, body = cluster.json("POST", RC_PATH, runtime_class(
        "bad-overhead", overhead={"podFixed": {"cpu": "-1"}},
        scheduling={"nodeSelector": {"bad key!": "x"},
                    "tolerations": [{"key": "", "operator": "Equal", "value": "v"}]}))
    assert status == 422, body
    fields = {c["field"] for c in body["details"]["causes"]}
    assert fields == {"overhead.limits[cpu]", "scheduling.nodeSelector",
                      "scheduling.tolerations[0].operator"}, body


def test_handler_is_immutable(cluster: Cluster, kubectl: Kubectl) -> None:
    status, body = cluster.json("POST", RC_PATH, runtime_class(
        "immutable", overhead={"podFixed": {"memory": "1024Mi"}}))
    assert status == 201, body
    assert body["overhead"]["podFixed"] == {"memory": "1Gi"}   # canonical, as upstream
    p = kubectl.run("patch", "runtimeclass", "immutable", "--type=merge", "-p",
                    '{"handler": "runc"}', check=False)
    assert p.returncode != 0
    assert 'handler: Invalid value: "runc": field is immutable' in p.stderr, p.stderr
    kubectl("delete", "runtimeclass", "immutable")


def test_unknown_class_is_forbidden(cluster: Cluster, kubectl: Kubectl, ns: str) -> None:
    status, body = create_pod(cluster, ns, pod("p1", runtimeClassName="nope"))
    assert status == 403, body
    assert body["reason"] == "Forbidden"
    assert body["message"] == 'pods "p1" is forbidden: pod rejected: RuntimeClass "nope" ' \
                              'not found'
    p = kubectl.run("run", "p2", "-n", ns, "--image=busybox",
                    '--overrides={"spec": {"runtimeClassName": "nope"}}', check=False)
    assert p.returncode != 0
    assert 'pod rejected: RuntimeClass "nope" not found' in p.stderr, p.stderr


def test_overhead_and_scheduling_land_in_the_pod(cluster: Cluster, kubectl: Kubectl,
                                                  ns: str) -> None:
    toleration = {"key": "sandboxed", "operator": "Exists", "effect": "NoSchedule"}
    status, body = cluster.json("POST", RC_PATH, runtime_class(
        "heavy", overhead={"podFixed": {"cpu": "250m", "memory": "120Mi"}},
        scheduling={"nodeSelector": {"runtime": "crun"}, "tolerations": [toleration]}))
    assert status == 201, body
    try:
        status, body = create_pod(cluster, ns, pod("heavy", runtimeClassName="heavy",
                                                   nodeSelector={"zone": "a"}))
        assert status == 201, body
        spec = json.loads(kubectl("get", "pod", "heavy", "-n", ns, "-o", "json"))["spec"]
        assert spec["overhead"] == {"cpu": "250m", "memory": "120Mi"}
        assert spec["nodeSelector"] == {"zone": "a", "runtime": "crun"}
        assert toleration in spec["tolerations"]
        # the same overhead written differently is fine; another one is not
        status, body = create_pod(cluster, ns, pod("same", runtimeClassName="heavy",
                                                   overhead={"cpu": "0.25",
                                                             "memory": "120Mi"}))
        assert status == 201, body
        status, body = create_pod(cluster, ns, pod("other", runtimeClassName="heavy",
                                                   overhead={"cpu": "1"}))
        assert status == 403, body
        assert body["message"].endswith("pod rejected: Pod's Overhead doesn't match "
                                        "RuntimeClass's defined Overhead")
        status, body = create_pod(cluster, ns, pod("conflict", runtimeClassName="heavy",
                                                   nodeSelector={"runtime": "runc"}))
        assert status == 403, body
        assert body["message"].endswith(
            "conflict: runtimeClass.scheduling.nodeSelector[runtime] = crun; "
            "pod.spec.nodeSelector[runtime] = runc"), body
        status, body = create_pod(cluster, ns, pod("no-class", overhead={"cpu": "1"}))
        assert status == 403, body
        assert body["message"].endswith("pod rejected: Pod Overhead set without "
                                        "corresponding RuntimeClass defined Overhead")
    finally:
        kubectl("delete", "runtimeclass", "heavy")


async def test_bootstrap_keeps_a_users_class(api) -> None:
    """The server makes `crun` only when it is missing: a user's own class of that name
    (another handler here) survives the next start's bootstrap."""
    from pybernetes.apiserver.bootstrap import SYSTEM, bootstrap
    from pybernetes.apiserver.resource_store import Context
    rs = api.resource("node.k8s.io", "v1", "runtimeclasses")
    found = await rs.try_get("", "crun")
    assert found is not None and found[0]["handler"] == "crun"
    await rs.delete("", "crun", {}, Context(SYSTEM))
    await rs.create("", runtime_class("crun", "runc", metadata={"name": "crun",
                                                                "labels": {"mine": "yes"}}),
                    Context(SYSTEM))
    await bootstrap(api)
    found = await rs.try_get("", "crun")
    assert found[0]["handler"] == "runc" and found[0]["metadata"]["labels"] == {"mine": "yes"}
