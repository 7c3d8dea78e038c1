from pybernetes.api.apps import (ControllerRevisionStrategy, DaemonSetStrategy,
                                 DeploymentStrategy, ReplicaSetStrategy, StatefulSetStrategy)

from group_helpers import column_names, create, messages, pod_template, update

DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
          "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": pod_template()}}


def test_deployment_defaults():
    s = DeploymentStrategy()
    obj, errs = create(s, DEPLOY)
    assert errs == []
    spec = obj["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert obj["status"] == {}
    assert s.tracks_generation and s.categories == ("all",) and s.short_names == ("deploy",)
    assert s.scale is not None and "scale" in s.subresources


def test_deployment_recreate_gets_no_rolling_update():
    obj = {**DEPLOY, "spec": {**DEPLOY["spec"], "strategy": {"type": "Recreate"}}}
    out, errs = create(DeploymentStrategy(), obj)
    assert errs == [] and out["spec"]["strategy"] == {"type": "Recreate"}


def test_selector_must_match_template_labels():
    obj = {**DEPLOY, "spec": {**DEPLOY["spec"], "selector": {"matchLabels": {"app": "y"}}}}
    _, errs = create(DeploymentStrategy(), obj)
    assert messages(errs) == ['spec.template.metadata.labels: Invalid value: '
                              'map[string]string{"app":"x"}: `selector` does not match template '
                              '`labels`']


def test_selector_required_and_not_empty():
    spec = dict(DEPLOY["spec"])
    del spec["selector"]
    _, errs = create(DeploymentStrategy(), {**DEPLOY, "spec": spec})
    assert "spec.selector: Required value" in messages(errs)
    _, errs = create(DeploymentStrategy(), {**DEPLOY, "spec": {**spec, "selector": {}}})
    assert any(m.endswith("empty selector is invalid for deployment") for m in messages(errs))


def test_deployment_rolling_update_rules():
    bad = {**DEPLOY, "spec": {**DEPLOY["spec"], "strategy": {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}}}
    _, errs = create(DeploymentStrategy(), bad)
    assert messages(errs) == ["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: "
                              "may not be 0 when `maxSurge` is 0"]
    bad["spec"]["strategy"]["rollingUpdate"] = {"maxUnavailable": "200%", "maxSurge": "x"}
    msgs = messages(create(DeploymentStrategy(), bad)[1])
    assert 'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "200%": must not be ' \
           'greater than 100%' in msgs
    assert any(m.startswith('spec.strategy.rollingUpdate.maxSurge: Invalid value: "x": a valid '
                            'percent string') for m in msgs)
    recreate = {**DEPLOY, "spec": {**DEPLOY["spec"], "strategy": {
        "type": "Recreate", "rollingUpdate": {}}}}
    assert messages(create(DeploymentStrategy(), recreate)[1]) == [
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is "
        "'Recreate'"]


def test_deployment_restart_policy_and_replicas():
    obj = {**DEPLOY, "spec": {**DEPLOY["spec"], "replicas": -1,
                              "template": pod_template(restart="Never")}}
    msgs = messages(create(DeploymentStrategy(), obj)[1])
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in msgs
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: ' \
           '"Always"' in msgs


def test_selector_is_immutable():
    s = DeploymentStrategy()
    old, _ = create(s, DEPLOY)
    new = {**old, "spec": {**old["spec"], "selector": {"matchLabels": {"app": "x", "b": "c"}},
                           "template": pod_template({"app": "x", "b": "c"})}}
    _, errs = update(s, new, old)
    assert messages(errs) == [
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"x", '
        '"b":"c"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable']


def test_deployment_table():
    s = DeploymentStrategy()
    obj, _ = create(s, DEPLOY)
    obj["status"] = {"readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
    row = s.table_row(obj)
    assert column_names(s) == ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers",
                               "Images", "Selector"]
    assert [c.priority for c in s.columns] == [0, 0, 0, 0, 0, 1, 1, 1]
    assert row[:4] == ["web", "1/1", 1, 1]
    assert row[5:] == ["c", "busybox", "app=x"]


def test_replicaset_defaults_and_table():
    s = ReplicaSetStrategy()
    obj, errs = create(s, {**DEPLOY, "kind": "ReplicaSet"})
    assert errs == [] and obj["spec"]["replicas"] == 1 and obj["status"] == {"replicas": 0}
    assert column_names(s)[:5] == ["Name", "Desired", "Current", "Ready", "Age"]
    assert s.table_row(obj)[:4] == ["web", 1, 0, 0]


def test_statefulset_defaults():
    s = StatefulSetStrategy()
    sts = {"metadata": {"name": "db"}, "spec": {
        "selector": {"matchLabels": {"app": "x"}}, "template": pod_template(),
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}
    obj, errs = create(s, sts)
    assert errs == []
    spec = obj["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain",
                                                            "whenScaled": "Retain"}
    assert "serviceName" not in spec  # optional since 1.32
    pvc = spec["volumeClaimTemplates"][0]
    assert pvc["spec"]["volumeMode"] == "Filesystem" and pvc["status"] == {"phase": "Pending"}
    assert obj["status"] == {"replicas": 0, "availableReplicas": 0}
    assert column_names(s) == ["Name", "Ready", "Age", "Containers", "Images"]
    assert s.table_row(obj)[:2] == ["db", "0/1"]


def test_statefulset_forbidden_update():
    s = StatefulSetStrategy()
    old, _ = create(s, {"metadata": {"name": "db"}, "spec": {
        "selector": {"matchLabels": {"app": "x"}}, "template": pod_template()}})
    new = {**old, "spec": {**old["spec"], "podManagementPolicy": "Parallel"}}
    msgs = messages(update(s, new, old)[1])
    assert len(msgs) == 1 and msgs[0].startswith("spec: Forbidden: updates to statefulset spec "
                                                 "for fields other than 'replicas'")
    scaled = {**old, "spec": {**old["spec"], "replicas": 3}}
    assert update(s, scaled, old)[1] == []


def test_daemonset_defaults_and_table():
    s = DaemonSetStrategy()
    ds = {"metadata": {"name": "agent"}, "spec": {"selector": {"matchLabels": {"app": "x"}},
                                                  "template": pod_template()}}
    ds["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/os": "linux"}
    obj, errs = create(s, ds)
    assert errs == []
    assert obj["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 1, "maxSurge": 0}}
    assert obj["spec"]["revisionHistoryLimit"] == 10
    assert obj["status"] == {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                             "desiredNumberScheduled": 0, "numberReady": 0}
    assert column_names(s)[:8] == ["Name", "Desired", "Current", "Ready", "Up-to-date",
                                   "Available", "Node Selector", "Age"]
    assert s.table_row(obj)[:7] == ["agent", 0, 0, 0, 0, 0, "kubernetes.io/os=linux"]


def test_controllerrevision_table_and_immutable_data():
    s = ControllerRevisionStrategy()
    cr = {"metadata": {"name": "web-5d4f", "ownerReferences": [{
        "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u",
        "controller": True}]}, "revision": 2, "data": {"spec": {}}}
    obj, errs = create(s, cr)
    assert errs == []
    assert s.table_row(obj)[:3] == ["web-5d4f", "statefulset.apps/web", 2]
    changed = {**obj, "data": {"spec": {"x": 1}}}
    assert [e.field for e in update(s, changed, obj)[1]] == ["data"]
    assert s.table_row({"metadata": {"name": "x"}, "revision": 1})[1] == "<none>"
