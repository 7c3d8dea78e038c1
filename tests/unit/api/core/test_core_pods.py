"""Pods: what a v1.33 server stores for a minimal pod, update rules, STATUS column."""
from pybernetes.api.core.pods import PodStrategy

from core_flow import ago, create, messages, update

S = PodStrategy()
MINIMAL = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
           "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}
NOT_READY = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300}
UNREACHABLE = dict(NOT_READY, key="node.kubernetes.io/unreachable")


def test_minimal_pod_gets_v133_defaults():
    pod, errs = create(S, MINIMAL)
    assert errs == []
    # what `kubectl get pod -o yaml` shows (minus the ServiceAccount admission's parts)
    assert pod["spec"] == {
        "containers": [{"name": "nginx", "image": "nginx", "imagePullPolicy": "Always",
                        "resources": {}, "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"}],
        "dnsPolicy": "ClusterFirst", "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority", "priority": 0, "restartPolicy": "Always",
        "schedulerName": "default-scheduler", "securityContext": {},
        "terminationGracePeriodSeconds": 30, "tolerations": [NOT_READY, UNREACHABLE]}
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert S.tracks_generation


def test_client_status_is_dropped_and_qos_computed():
    obj = {"metadata": {"name": "g"}, "status": {"phase": "Running"}, "spec": {"containers": [
        {"name": "c", "image": "i:1", "resources": {"limits": {"cpu": "1", "memory": "64Mi"}}}]}}
    pod, _ = create(S, obj)
    assert pod["status"] == {"phase": "Pending", "qosClass": "Guaranteed"}


def test_existing_toleration_suppresses_the_default_one():
    obj = {"metadata": {"name": "t"}, "spec": {
        "containers": [{"name": "c", "image": "i:1"}],
        "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}]}}
    pod, _ = create(S, obj)
    keys = [t["key"] for t in pod["spec"]["tolerations"]]
    assert keys == ["node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"]


def test_image_update_is_allowed_other_spec_changes_are_forbidden():
    old, _ = create(S, MINIMAL)
    new = {**old, "spec": {**old["spec"], "containers": [
        {**old["spec"]["containers"][0], "image": "nginx:1.27"}]}}
    assert update(S, new, old)[1] == []
    bad = {**old, "spec": {**old["spec"], "restartPolicy": "Never"}}
    errs = update(S, bad, old)[1]
    assert len(errs) == 1 and errs[0].field == "spec" and errs[0].type == "FieldValueForbidden"
    assert errs[0].detail.startswith(
        "pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
        "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
        "set to 1 if it was previously negative)\n")
    assert "restartPolicy" in errs[0].detail


def test_status_update_keeps_spec_and_qos():
    old, _ = create(S, MINIMAL)
    new = {"metadata": dict(old["metadata"]), "spec": {"containers": []},
           "status": {"phase": "Running", "podIP": "10.42.0.5"}}
    S.prepare_for_status_update(new, old)
    assert new["spec"] == old["spec"]
    assert new["status"]["qosClass"] == "BestEffort"
    assert S.validate_status_update(new, old) == []
    new["status"]["phase"] = "Bogus"
    assert messages(S.validate_status_update(new, old)) == [
        'status.phase: Unsupported value: "Bogus": supported values: "Failed", "Pending", '
        '"Running", "Succeeded", "Unknown"']


def pod_with(status: dict, **spec) -> dict:
    base = {"metadata": {"name": "p", "creationTimestamp": ago(900)},
            "spec": {"containers": [{"name": "a"}], **spec}, "status": status}
    return base


def row(status: dict, **spec) -> list:
    return S.table_row(pod_with(status, **spec))


def running(ready=True, restarts=0, **extra):
    return {"name": "a", "ready": ready, "restartCount": restarts,
            "state": {"running": {"startedAt": ago(60)}}, **extra}


def test_status_column_common_states():
    assert row({"phase": "Pending"})[1:3] == ["0/1", "Pending"]
    waiting = {"phase": "Pending", "containerStatuses": [
        {"name": "a", "ready": False, "restartCount": 0,
         "state": {"waiting": {"reason": "ContainerCreating"}}}]}
    assert row(waiting)[1:4] == ["0/1", "ContainerCreating", "0"]
    assert row({"phase": "Running", "containerStatuses": [running()]})[1:3] == ["1/1", "Running"]
    done = {"phase": "Succeeded", "containerStatuses": [
        {"name": "a", "ready": False, "restartCount": 0,
         "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}
    assert row(done)[2] == "Completed"
    crash = {"phase": "Running", "containerStatuses": [
        {"name": "a", "ready": False, "restartCount": 3,
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(900)}},
         "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
    cells = row(crash)
    assert cells[2] == "CrashLoopBackOff"
    assert cells[3] == "3 (15m ago)"
    killed = {"phase": "Failed", "containerStatuses": [
        {"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 137}}}]}
    assert row(killed)[2] == "ExitCode:137"


def test_status_column_init_and_terminating():
    init = {"phase": "Pending", "initContainerStatuses": [
        {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
        {"name": "i2", "restartCount": 0, "state": {"running": {}}}]}
    spec_init = [{"name": "i1"}, {"name": "i2"}]
    assert row(init, initContainers=spec_init)[2] == "Init:1/2"
    failed = {"phase": "Pending", "initContainerStatuses": [
        {"name": "i1", "restartCount": 1, "state": {"terminated": {"exitCode": 2,
                                                                    "reason": "Error"}}}]}
    assert row(failed, initContainers=[{"name": "i1"}])[2] == "Init:Error"
    backoff = {"phase": "Pending", "initContainerStatuses": [
        {"name": "i1", "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
    assert row(backoff, initContainers=[{"name": "i1"}])[2] == "Init:CrashLoopBackOff"
    pod = pod_with({"phase": "Running", "containerStatuses": [running()]})
    pod["metadata"]["deletionTimestamp"] = ago(1)
    assert S.table_row(pod)[2] == "Terminating"
    gated = {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}
    assert row(gated)[2] == "SchedulingGated"


def test_sidecar_counts_toward_ready_and_wide_cells():
    status = {"phase": "Running", "podIP": "10.42.0.7", "nominatedNodeName": "",
              "conditions": [{"type": "Initialized", "status": "True"},
                             {"type": "example.com/gate", "status": "True"}],
              "initContainerStatuses": [{"name": "side", "ready": True, "started": True,
                                         "restartCount": 0, "state": {"running": {}}}],
              "containerStatuses": [running()]}
    cells = row(status, initContainers=[{"name": "side", "restartPolicy": "Always"}],
                nodeName="node-1", readinessGates=[{"conditionType": "example.com/gate"}])
    assert cells[0:4] == ["p", "2/2", "Running", "0"]
    assert cells[4] == "15m"
    assert cells[5:] == ["10.42.0.7", "node-1", "<none>", "1/1"]
    assert [c.name for c in S.columns] == ["Name", "Ready", "Status", "Restarts", "Age", "IP",
                                           "Node", "Nominated Node", "Readiness Gates"]
    assert [c.priority for c in S.columns] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert row({"phase": "Pending"})[5:] == ["<none>", "<none>", "<none>", "<none>"]


def test_field_labels():
    pod, _ = create(S, MINIMAL)
    pod["spec"]["nodeName"] = "n1"
    pod["status"]["podIPs"] = [{"ip": "10.42.0.9"}]
    labels = S.field_labels(pod)
    assert labels == {"metadata.name": "web", "metadata.namespace": "default",
                      "spec.nodeName": "n1", "spec.restartPolicy": "Always",
                      "spec.schedulerName": "default-scheduler", "spec.serviceAccountName": "",
                      "spec.hostNetwork": "false", "status.phase": "Pending",
                      "status.podIP": "10.42.0.9", "status.podIPs": "10.42.0.9",
                      "status.nominatedNodeName": ""}


def test_identity():
    assert (S.kind, S.plural, S.short_names, S.categories) == ("Pod", "pods", ("po",), ("all",))
    assert {"status", "binding", "log", "exec", "attach", "portforward", "eviction",
            "ephemeralcontainers", "resize"} == set(S.subresources)


def test_graceful_deletion_period():
    pod, _ = create(S, MINIMAL)
    assert S.deletion_grace_period(pod, None) == 0  # never scheduled: nothing to stop
    pod["spec"]["nodeName"] = "n1"
    assert S.deletion_grace_period(pod, None) == 30
    assert S.deletion_grace_period(pod, 5) == 5
    assert S.deletion_grace_period(pod, -3) == 1
    pod["status"]["phase"] = "Succeeded"
    assert S.deletion_grace_period(pod, 10) == 0


def test_containers_may_not_be_added_and_finished_ones_stay_finished():
    old, _ = create(S, MINIMAL)
    more = {**old, "spec": {**old["spec"], "containers": old["spec"]["containers"] + [
        {"name": "two", "image": "i:1"}]}}
    assert messages(update(S, more, old)[1]) == [
        "spec.containers: Forbidden: pod updates may not add or remove containers"]
    old["spec"]["restartPolicy"] = "Never"
    old["status"]["containerStatuses"] = [{"name": "nginx", "state": {"terminated": {
        "exitCode": 0}}}]
    new = {"metadata": dict(old["metadata"]), "status": {"phase": "Running", "containerStatuses": [
        {"name": "nginx", "state": {"running": {}}}]}}
    S.prepare_for_status_update(new, old)
    assert messages(S.validate_status_update(new, old)) == [
        "status.containerStatuses[0].state: Forbidden: may not be transitioned to "
        "non-terminated state"]


def test_service_account_alias_and_status_ips():
    pod, _ = create(S, {"metadata": {"name": "sa"}, "spec": {
        "serviceAccount": "builder", "containers": [{"name": "c", "image": "i:1"}]}})
    assert pod["spec"]["serviceAccountName"] == "builder"
    assert pod["spec"]["serviceAccount"] == "builder"
    new = {"metadata": dict(pod["metadata"]),
           "status": {"phase": "Running", "podIPs": [{"ip": "10.42.0.300"}]}}
    S.prepare_for_status_update(new, pod)
    assert messages(S.validate_status_update(new, pod)) == [
        'status.podIPs[0].ip: Invalid value: "10.42.0.300": must be a valid IP address, '
        '(e.g. 10.9.8.7 or 2001:db8::ffff)']
