"""The pods/eviction subresource against a real API server: a PodDisruptionBudget says yes
(one disruption spent, the pod noted and deleted) or no (429 with upstream's Status), pods
that cost nothing go at once, and malformed Evictions are 400s that touch nothing.

No disruption controller runs here: each test writes the budget's status itself, as the
controller would have computed it."""
from __future__ import annotations

import json
from typing import Iterator

import pytest

from tests.conftest import Cluster, start_cluster

NS = "evict"
PODS = f"/api/v1/namespaces/{NS}/pods"
PDBS = f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets"
MERGE = "application/merge-patch+json"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("eviction"))
    try:
        status, body = c.json("POST", "/api/v1/namespaces",
                              {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        assert status == 201, body
        yield c
    finally:
        c.stop()


def make_pod(c: Cluster, name: str, labels: dict | None = None, phase: str = "Running",
             ready: bool = True, node: str | None = "node-1") -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "img"}]}
    if node:
        spec["nodeName"] = node
    status, pod = c.json("POST", PODS, {"apiVersion": "v1", "kind": "Pod",
                                        "metadata": {"name": name, "labels": labels or {}},
                                        "spec": spec})
    assert status == 201, pod
    cond = {"type": "Ready", "status": "True" if ready else "False",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}
    status, pod = c.json("PATCH", f"{PODS}/{name}/status",
                         {"status": {"phase": phase, "conditions": [cond]}}, content_type=MERGE)
    assert status == 200, pod
    return pod


def make_pdb(c: Cluster, name: str, selector: dict, **spec) -> None:
    body = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name}, "spec": dict(spec, selector=selector)}
    status, pdb = c.json("POST", PDBS, body)
    assert status == 201, pdb


def set_budget(c: Cluster, name: str, healthy: int, desired: int, expected: int,
               generation: int = 1) -> dict:
    """What the disruption controller would write."""
    allowed = max(healthy - desired, 0)
    status, pdb = c.json("PATCH", f"{PDBS}/{name}/status", {"status": {
        "observedGeneration": generation, "currentHealthy": healthy, "desiredHealthy": desired,
        "expectedPods": expected, "disruptionsAllowed": allowed}}, content_type=MERGE)
    assert status == 200, pdb
    return pdb


def evict(c: Cluster, name: str, delete_options: dict | None = None, query: str = "",
          version: str = "policy/v1", body: object = None) -> tuple[int, dict, dict]:
    if body is None:
        body = {"apiVersion": version, "kind": "Eviction",
                "metadata": {"name": name, "namespace": NS}}
        if delete_options is not None:
            body["deleteOptions"] = delete_options
    status, headers, raw = c.request("POST", f"{PODS}/{name}/eviction{query}", body)
    return status, headers, json.loads(raw) if raw else {}


def get(c: Cluster, path: str) -> tuple[int, dict]:
    return c.json("GET", path)


def condition(obj: dict, kind: str) -> dict | None:
    return next((x for x in (obj.get("status") or {}).get("conditions") or []
                 if x["type"] == kind), None)


SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
           "code": 201}


def test_no_budget_deletes_the_pod(cluster: Cluster) -> None:
    make_pod(cluster, "lonely", {"app": "lonely"})
    status, _, body = evict(cluster, "lonely", {"gracePeriodSeconds": 0})
    assert (status, body) == (201, SUCCESS)
    assert get(cluster, f"{PODS}/lonely")[0] == 404


def test_graceful_eviction_marks_the_pod_with_disruption_target(cluster: Cluster) -> None:
    make_pod(cluster, "graceful", {"app": "graceful"})
    status, _, body = evict(cluster, "graceful")
    assert (status, body) == (201, SUCCESS)
    _, pod = get(cluster, f"{PODS}/graceful")
    assert pod["metadata"]["deletionTimestamp"]
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 30
    cond = condition(pod, "DisruptionTarget")
    assert cond is not None and cond["status"] == "True"
    assert (cond["reason"], cond["message"]) == ("EvictionByEvictionAPI", "Eviction API: evicting")


def test_budget_allows_one_then_refuses_with_upstream_status(cluster: Cluster) -> None:
    for i in range(3):
        make_pod(cluster, f"web-{i}", {"app": "web"})
    make_pdb(cluster, "my-pdb", {"matchLabels": {"app": "web"}}, minAvailable=2)
    set_budget(cluster, "my-pdb", healthy=3, desired=2, expected=3)

    status, _, body = evict(cluster, "web-0")
    assert (status, body) == (201, SUCCESS)
    _, pdb = get(cluster, f"{PDBS}/my-pdb")
    assert pdb["status"]["disruptionsAllowed"] == 0
    assert list(pdb["status"]["disruptedPods"]) == ["web-0"]
    cond = condition(pdb, "DisruptionAllowed")
    assert cond is not None and (cond["status"], cond["reason"]) == ("False", "InsufficientPods")
    assert get(cluster, f"{PODS}/web-0")[1]["metadata"].get("deletionTimestamp")

    set_budget(cluster, "my-pdb", healthy=2, desired=2, expected=3)
    status, headers, body = evict(cluster, "web-1")
    assert status == 429
    assert body == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "reason": "TooManyRequests",
        "details": {"causes": [{"reason": "DisruptionBudget", "message":
                                "The disruption budget my-pdb needs 2 healthy pods and has 2 "
                                "currently"}]},
        "code": 429}
    assert headers["Content-Type"] == "application/json"
    _, pod = get(cluster, f"{PODS}/web-1")
    assert not pod["metadata"].get("deletionTimestamp")
    assert condition(pod, "DisruptionTarget") is None  # refused: the pod is untouched


def test_dry_run_spends_and_deletes_nothing(cluster: Cluster) -> None:
    make_pod(cluster, "dry-0", {"app": "dry"})
    make_pdb(cluster, "dry-pdb", {"matchLabels": {"app": "dry"}}, maxUnavailable=1)
    set_budget(cluster, "dry-pdb", healthy=1, desired=0, expected=1)
    status, _, body = evict(cluster, "dry-0", query="?dryRun=All")
    assert (status, body) == (201, SUCCESS)
    status, _, body = evict(cluster, "dry-0", {"dryRun": ["All"]})
    assert (status, body) == (201, SUCCESS)
    _, pdb = get(cluster, f"{PDBS}/dry-pdb")
    assert pdb["status"]["disruptionsAllowed"] == 1 and not pdb["status"].get("disruptedPods")
    _, pod = get(cluster, f"{PODS}/dry-0")
    assert not pod["metadata"].get("deletionTimestamp")
    assert condition(pod, "DisruptionTarget") is None


def test_budget_not_yet_observed_asks_to_retry(cluster: Cluster) -> None:
    make_pod(cluster, "gen-0", {"app": "gen"})
    make_pdb(cluster, "gen-pdb", {"matchLabels": {"app": "gen"}}, minAvailable=0)
    set_budget(cluster, "gen-pdb", healthy=1, desired=0, expected=1, generation=0)
    status, headers, body = evict(cluster, "gen-0")
    assert status == 429 and headers.get("Retry-After") == "10"
    assert body["details"] == {"causes": [{
        "reason": "DisruptionBudget",
        "message": "The disruption budget gen-pdb is still being processed by the server."}],
        "retryAfterSeconds": 10}


def test_pods_that_cost_nothing_ignore_the_budget(cluster: Cluster) -> None:
    make_pdb(cluster, "tight", {"matchLabels": {"app": "tight"}}, minAvailable=5)
    set_budget(cluster, "tight", healthy=1, desired=5, expected=1)
    make_pod(cluster, "done", {"app": "tight"}, phase="Succeeded", ready=False)
    make_pod(cluster, "waiting", {"app": "tight"}, phase="Pending", ready=False, node=None)
    for name in ("done", "waiting"):
        status, _, body = evict(cluster, name)
        assert (status, body) == (201, SUCCESS), name
        assert get(cluster, f"{PODS}/{name}")[0] == 404, name  # nothing to stop: gone at once
    _, pdb = get(cluster, f"{PDBS}/tight")
    assert not pdb["status"].get("disruptedPods")


def test_unready_pods_and_the_unhealthy_pod_eviction_policy(cluster: Cluster) -> None:
    # the budget is met without the unready pod: it goes, spending nothing
    make_pdb(cluster, "met", {"matchLabels": {"app": "met"}}, minAvailable=1)
    set_budget(cluster, "met", healthy=1, desired=1, expected=2)
    make_pod(cluster, "met-sick", {"app": "met"}, ready=False)
    status, _, _ = evict(cluster, "met-sick")
    assert status == 201
    assert get(cluster, f"{PDBS}/met")[1]["status"]["disruptionsAllowed"] == 0

    # not met: IfHealthyBudget (the default) refuses, AlwaysAllow lets it go
    make_pdb(cluster, "short", {"matchLabels": {"app": "short"}}, minAvailable=2,
             unhealthyPodEvictionPolicy="IfHealthyBudget")
    set_budget(cluster, "short", healthy=1, desired=2, expected=2)
    make_pod(cluster, "short-sick", {"app": "short"}, ready=False)
    assert evict(cluster, "short-sick")[0] == 429
    make_pdb(cluster, "always", {"matchLabels": {"app": "always"}}, minAvailable=2,
             unhealthyPodEvictionPolicy="AlwaysAllow")
    set_budget(cluster, "always", healthy=1, desired=2, expected=2)
    make_pod(cluster, "always-sick", {"app": "always"}, ready=False)
    assert evict(cluster, "always-sick")[0] == 201
    assert get(cluster, f"{PDBS}/always")[1]["status"]["disruptionsAllowed"] == 0


def test_more_than_one_budget_is_unsupported(cluster: Cluster) -> None:
    make_pod(cluster, "twice", {"app": "twice", "tier": "x"})
    make_pdb(cluster, "by-app", {"matchLabels": {"app": "twice"}}, maxUnavailable=1)
    make_pdb(cluster, "by-tier", {"matchLabels": {"tier": "x"}}, maxUnavailable=1)
    status, _, body = evict(cluster, "twice")
    assert status == 500
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "This pod has more than one PodDisruptionBudget, which the "
                               "eviction subresource does not support.", "code": 500}
    assert not get(cluster, f"{PODS}/twice")[1]["metadata"].get("deletionTimestamp")


def test_v1beta1_eviction_and_preconditions(cluster: Cluster) -> None:
    pod = make_pod(cluster, "pre", {"app": "pre"})
    status, _, body = evict(cluster, "pre", {"preconditions": {"uid": "not-the-uid"}})
    assert status == 409 and body["reason"] == "Conflict"
    assert "Precondition failed: UID in precondition: not-the-uid" in body["message"]
    status, _, body = evict(cluster, "pre", {"preconditions": {"uid": pod["metadata"]["uid"]},
                                             "gracePeriodSeconds": 0}, version="policy/v1beta1")
    assert (status, body) == (201, SUCCESS)
    assert get(cluster, f"{PODS}/pre")[0] == 404


@pytest.mark.parametrize("body, fragment", [
    ([], "Eviction"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "victim"}}, "kind"),
    ({"apiVersion": "apps/v1", "kind": "Eviction", "metadata": {"name": "victim"}},
     "API version"),
    ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}},
     "name in URL does not match name in Eviction object"),
    ({"apiVersion": "policy/v1", "kind": "Eviction"},
     "name in URL does not match name in Eviction object"),
    ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "victim"},
      "deleteOptions": {"gracePeriodSeconds": "soon"}}, "cannot be handled as a"),
    ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "victim"},
      "deleteOptions": []}, "cannot be handled as a"),
    ({"apiVersion": "policy/v1", "kind": "Eviction",
      "metadata": {"name": "victim", "namespace": "elsewhere"}}, "namespace"),
])
def test_malformed_evictions_are_400s(cluster: Cluster, body: object, fragment: str) -> None:
    if get(cluster, f"{PODS}/victim")[0] == 404:
        make_pod(cluster, "victim", {"app": "victim"})
    status, _, raw = cluster.request("POST", f"{PODS}/victim/eviction", body)
    answer = json.loads(raw)
    assert status == 400, answer
    assert answer["reason"] == "BadRequest" and fragment in answer["message"], answer
    _, pod = get(cluster, f"{PODS}/victim")
    assert not pod["metadata"].get("deletionTimestamp")


def test_other_refusals(cluster: Cluster) -> None:
    status, _, body = evict(cluster, "nobody")
    assert status == 404 and body["message"] == 'pods "nobody" not found'
    make_pod(cluster, "kept", {"app": "kept"})
    status, body = cluster.json("GET", f"{PODS}/kept/eviction")
    assert status == 405 and body["reason"] == "MethodNotAllowed"
    status, _, body = evict(cluster, "kept", {"propagationPolicy": "Sometimes"})
    assert status == 422 and body["reason"] == "Invalid"
    status, _, body = evict(cluster, "kept", {"dryRun": ["All"]}, query="?dryRun=Nope")
    assert status == 400
    assert not get(cluster, f"{PODS}/kept")[1]["metadata"].get("deletionTimestamp")
