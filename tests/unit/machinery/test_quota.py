"""Quota arithmetic and evaluators, and the LimitRanger's pure parts."""
from __future__ import annotations

from pybernetes.admission.limit_ranger import apply_defaults, claim_violations, pod_violations
from pybernetes.machinery import quota as q


def container(name: str, requests: dict | None = None, limits: dict | None = None,
              **extra) -> dict:
    res = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    return {"name": name, "image": "busybox", "resources": res, **extra}


def pod(*containers: dict, init: tuple = (), **spec) -> dict:
    return {"metadata": {"name": "p"}, "spec": {"containers": list(containers),
                                                "initContainers": list(init), **spec},
            "status": {}}


def test_sums_keep_the_written_format_and_zero_takes_the_other():
    a = q.parse_list({"memory": "512Mi", "cpu": "250m"})
    assert q.render_list(q.add(a, a)) == {"cpu": "500m", "memory": "1Gi"}
    assert q.render_list(q.add({"memory": q.ZERO}, a)) == {"cpu": "250m", "memory": "512Mi"}
    assert q.pretty_print(q.parse_list({"pods": "1", "limits.cpu": "2"})) == "limits.cpu=2,pods=1"
    ok, over = q.less_than_or_equal(q.parse_list({"pods": "5", "cpu": "1"}),
                                    q.parse_list({"pods": "4", "cpu": "2"}))
    assert (ok, over) == (False, ["pods"])


def test_pod_requests_take_the_larger_of_containers_and_init_steps_with_sidecars():
    p = pod(container("a", {"cpu": "100m"}), container("b", {"cpu": "200m"}),
            init=(container("sidecar", {"cpu": "50m"}, restartPolicy="Always"),
                  container("migrate", {"cpu": "1"})))
    # running: 100m + 200m + the 50m sidecar; the migrate step: 1 + 50m
    assert str(q.pod_aggregate(p, "requests")["cpu"]) == "1050m"
    small = pod(container("a", {"cpu": "100m"}), init=(container("i", {"cpu": "50m"}),))
    assert str(q.pod_aggregate(small, "requests")["cpu"]) == "100m"


def test_pod_usage_and_terminal_pods():
    p = pod(container("a", {"cpu": "100m", "memory": "64Mi"}, {"cpu": "200m"}))
    usage = q.render_list(q.PodEvaluator().usage(p))
    assert usage == {"count/pods": "1", "pods": "1", "cpu": "100m", "requests.cpu": "100m",
                     "memory": "64Mi", "requests.memory": "64Mi", "limits.cpu": "200m"}
    p["status"]["phase"] = "Succeeded"
    assert q.render_list(q.PodEvaluator().usage(p)) == {"count/pods": "1"}


def test_pod_scopes():
    ev = q.PodEvaluator()
    be = pod(container("a"))
    burst = pod(container("a", {"cpu": "1"}), activeDeadlineSeconds=30, priorityClassName="hi")
    assert ev.matches_scope({"scopeName": "BestEffort"}, be)
    assert ev.matches_scope({"scopeName": "NotBestEffort"}, burst)
    assert ev.matches_scope({"scopeName": "Terminating"}, burst)
    assert ev.matches_scope({"scopeName": "NotTerminating"}, be)
    sel = {"scopeName": "PriorityClass", "operator": "In", "values": ["hi"]}
    assert ev.matches_scope(sel, burst) and not ev.matches_scope(sel, be)
    quota = {"spec": {"scopes": ["BestEffort"]}, "status": {"hard": {"pods": "1"}}}
    assert ev.matches(quota, be) and not ev.matches(quota, burst)
    assert not q.ObjectCountEvaluator("", "configmaps", "configmaps").matches(quota, {})


def test_services_and_claims():
    lb = {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}}
    assert q.render_list(q.ServiceEvaluator().usage(lb)) == {
        "count/services": "1", "services": "1", "services.loadbalancers": "1",
        "services.nodeports": "2"}
    claim = {"spec": {"storageClassName": "gold",
                      "resources": {"requests": {"storage": "5Gi"}}}}
    assert q.render_list(q.PersistentVolumeClaimEvaluator().usage(claim)) == {
        "count/persistentvolumeclaims": "1", "persistentvolumeclaims": "1",
        "requests.storage": "5Gi",
        "gold.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
        "gold.storageclass.storage.k8s.io/requests.storage": "5Gi"}


def test_evaluators_for_names_add_object_counters():
    evs = q.evaluators_for_names(["pods", "count/deployments.apps", "secrets"])
    assert sorted((e.group, e.plural) for e in evs) == [
        ("", "pods"), ("", "secrets"), ("apps", "deployments")]
    dep = [e for e in evs if e.plural == "deployments"][0]
    quota = {"spec": {"hard": {"count/deployments.apps": "2"}}}
    assert q.render_list(q.calculate_usage(quota, dep, [{}, {}])) == {
        "count/deployments.apps": "2"}


def test_limit_range_defaults_and_bounds():
    lr = {"spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"},
                               "defaultRequest": {"cpu": "100m"}, "min": {"cpu": "50m"}}]}}
    p = pod(container("a"), container("b", {"cpu": "200m"}, {"cpu": "300m"}))
    apply_defaults(p, lr)
    assert p["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu request for container a; cpu limit for container a")
    assert pod_violations(lr, p) == []
    low = pod(container("a", {"cpu": "10m"}, {"cpu": "20m"}))
    assert pod_violations(lr, low) == [
        "minimum cpu usage per Container is 50m, but request is 10m"]
    pvc_lr = {"spec": {"limits": [{"type": "PersistentVolumeClaim",
                                   "max": {"storage": "1Gi"}}]}}
    assert claim_violations(pvc_lr, {"spec": {"resources": {}}}) == [
        "maximum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified"]
