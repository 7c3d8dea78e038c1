"""Nodes, events, PV/PVC, quotas, limit ranges, RCs, pod templates, componentstatuses."""
from pybernetes.api.core import STRATEGIES, core_event_to_events_v1, events_v1_to_core_event
from pybernetes.api.core.componentstatuses import ComponentStatusStrategy
from pybernetes.api.core.events import EventStrategy
from pybernetes.api.core.limitranges import LimitRangeStrategy
from pybernetes.api.core.nodes import NodeStrategy
from pybernetes.api.core.persistentvolumes import (PersistentVolumeClaimStrategy,
                                                   PersistentVolumeStrategy)
from pybernetes.api.core.podtemplates import PodTemplateStrategy
from pybernetes.api.core.replicationcontrollers import ReplicationControllerStrategy
from pybernetes.api.core.resourcequotas import ResourceQuotaStrategy

from core_flow import ago, create, messages, update

NODE = {"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": "",
                                              "kubernetes.io/role": "worker"}},
        "spec": {"podCIDR": "10.42.1.0/24"},
        "status": {"capacity": {"cpu": "2", "memory": "4Gi"},
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "192.168.1.5"}],
                   "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12",
                                "kernelVersion": "6.1.0", "containerRuntimeVersion": "runc"}}}


def test_identity_of_every_core_resource():
    short = {s.plural: s.short_names for s in STRATEGIES}
    assert short == {"componentstatuses": ("cs",), "configmaps": ("cm",), "endpoints": ("ep",),
                     "events": ("ev",), "limitranges": ("limits",), "namespaces": ("ns",),
                     "nodes": ("no",), "persistentvolumeclaims": ("pvc",),
                     "persistentvolumes": ("pv",), "pods": ("po",), "podtemplates": (),
                     "replicationcontrollers": ("rc",), "resourcequotas": ("quota",),
                     "secrets": (), "serviceaccounts": ("sa",), "services": ("svc",)}
    cluster = {s.plural for s in STRATEGIES if not s.namespaced}
    assert cluster == {"componentstatuses", "namespaces", "nodes", "persistentvolumes"}
    assert all(s.group == "" and s.version == "v1" for s in STRATEGIES)


def test_node_keeps_registered_status_and_prints():
    s = NodeStrategy()
    node, errs = create(s, NODE)
    assert errs == []
    assert node["status"]["allocatable"] == {"cpu": "2", "memory": "4Gi"}
    cells = s.table_row(node)
    assert cells[0:3] == ["n1", "Ready", "control-plane,worker"]
    assert cells[4:] == ["v1.33.0", "192.168.1.5", "<none>", "Debian GNU/Linux 12", "6.1.0",
                         "runc"]
    node["spec"]["unschedulable"] = True
    node["status"]["conditions"][0]["status"] = "Unknown"
    assert s.table_row(node)[1] == "NotReady,SchedulingDisabled"
    assert s.field_labels(node) == {"metadata.name": "n1", "spec.unschedulable": "true"}
    changed = {**node, "spec": {**node["spec"], "podCIDR": "10.42.2.0/24"}}
    assert messages(update(s, changed, node)[1]) == [
        'spec.podCIDR: Invalid value: "10.42.2.0/24": field is immutable']
    bad = {"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}}
    assert messages(s.validate(bad)) == [
        'spec.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoExecute", '
        '"NoSchedule", "PreferNoSchedule"']


EVENT = {"apiVersion": "v1", "kind": "Event",
         "metadata": {"name": "web.1", "namespace": "default"},
         "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "u1",
                            "apiVersion": "v1", "fieldPath": "spec.containers{web}"},
         "reason": "Pulled", "message": "Successfully pulled image\n", "type": "Normal",
         "source": {"component": "kubelet", "host": "n1"}, "count": 3,
         "firstTimestamp": ago(3 * 3600), "lastTimestamp": ago(600), "eventTime": None,
         "reportingComponent": "kubelet", "reportingInstance": "n1"}


def test_event_row_field_labels_and_namespace_rule():
    s = EventStrategy()
    assert s.storage_resource == "events"
    # ages are relative to now, not to import time (xdist may run this minutes later)
    event = {**EVENT, "firstTimestamp": ago(3 * 3600), "lastTimestamp": ago(600)}
    assert s.table_row(event) == ["10m", "Normal", "Pulled", "pod/web", "spec.containers{web}",
                                  "kubelet, n1", "Successfully pulled image", "3h", 3, "web.1"]
    assert [c.name for c in s.columns if c.priority == 0] == [
        "Last Seen", "Type", "Reason", "Object", "Message"]
    labels = s.field_labels(EVENT)
    assert labels["involvedObject.name"] == "web" and labels["source"] == "kubelet"
    assert labels["reason"] == "Pulled" and labels["type"] == "Normal"
    assert s.validate(EVENT) == []
    other = {**EVENT, "metadata": {"name": "x", "namespace": "kube-system"}}
    assert messages(s.validate(other)) == [
        'involvedObject.namespace: Invalid value: "default": does not match event.namespace']


def test_event_conversion_round_trip():
    v1 = core_event_to_events_v1(EVENT)
    assert v1["apiVersion"] == "events.k8s.io/v1"
    assert v1["regarding"] == EVENT["involvedObject"]
    assert v1["note"] == EVENT["message"]
    assert v1["deprecatedSource"] == EVENT["source"] and v1["deprecatedCount"] == 3
    assert v1["deprecatedFirstTimestamp"] == EVENT["firstTimestamp"]
    assert v1["reportingController"] == "kubelet" and v1["reportingInstance"] == "n1"
    assert "involvedObject" not in v1 and "message" not in v1
    back = events_v1_to_core_event(v1)
    for key in EVENT:
        assert back[key] == EVENT[key], key


def test_pv_and_pvc():
    pv_s, pvc_s = PersistentVolumeStrategy(), PersistentVolumeClaimStrategy()
    pv, errs = create(pv_s, {"metadata": {"name": "pv1"}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
        "hostPath": {"path": "/data"}, "storageClassName": "local"}})
    assert errs == []
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["volumeMode"] == "Filesystem"
    assert pv["status"]["phase"] == "Pending" and "lastPhaseTransitionTime" in pv["status"]
    pv["spec"]["claimRef"] = {"namespace": "default", "name": "data"}
    cells = pv_s.table_row(pv)
    assert cells[:9] == ["pv1", "1Gi", "RWO,ROX", "Retain", "Pending", "default/data", "local",
                         "<unset>", ""]
    _, errs = create(pv_s, {"metadata": {"name": "pv2"}, "spec": {}})
    assert messages(errs) == ["spec.accessModes: Required value", "spec.capacity: Required value",
                              "spec: Required value: must specify a volume type"]
    pvc, errs = create(pvc_s, {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    assert errs == [] and pvc["spec"]["volumeMode"] == "Filesystem"
    assert pvc["status"] == {"phase": "Pending"}
    grown = {**pvc, "spec": {**pvc["spec"], "resources": {"requests": {"storage": "2Gi"}}}}
    assert update(pvc_s, grown, pvc)[1] == []
    moved = {**pvc, "spec": {**pvc["spec"], "accessModes": ["ReadWriteMany"]}}
    assert messages(update(pvc_s, moved, pvc)[1]) == [
        "spec: Forbidden: spec is immutable after creation except resources.requests and "
        "volumeAttributesClassName for bound claims"]
    assert pvc_s.table_row(pvc)[:7] == ["data", "Pending", "", "", "", "", "<unset>"]


def test_quota_and_limitrange():
    q = ResourceQuotaStrategy()
    quota, errs = create(q, {"metadata": {"name": "q"}, "spec": {
        "hard": {"pods": "10", "requests.cpu": "2", "limits.memory": "4Gi"}}})
    assert errs == [] and quota["status"] == {}
    quota["status"] = {"hard": quota["spec"]["hard"], "used": {"pods": "3"}}
    assert q.table_row(quota)[:3] == ["q", "pods: 3/10, requests.cpu: 0/2", "limits.memory: 0/4Gi"]
    assert [c.name for c in q.columns] == ["Name", "Request", "Limit", "Age"]
    lr = LimitRangeStrategy()
    obj, errs = create(lr, {"metadata": {"name": "l"}, "spec": {"limits": [
        {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}}]}})
    assert errs == []
    item = obj["spec"]["limits"][0]
    assert item["default"] == {"cpu": "2"}
    assert item["defaultRequest"] == {"cpu": "2", "memory": "64Mi"}
    _, errs = create(lr, {"metadata": {"name": "l"}, "spec": {"limits": [{"type": "Node"}]}})
    assert messages(errs)[0].startswith('spec.limits[0].type: Unsupported value: "Node"')


def test_replication_controller():
    s = ReplicationControllerStrategy()
    rc, errs = create(s, {"metadata": {"name": "rc"}, "spec": {"template": {
        "metadata": {"labels": {"app": "a"}},
        "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}})
    assert errs == []
    assert rc["spec"]["selector"] == {"app": "a"} and rc["spec"]["replicas"] == 1
    assert rc["metadata"]["labels"] == {"app": "a"}
    assert rc["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    assert rc["status"] == {"replicas": 0}
    assert s.tracks_generation and s.scale.selector_is_map
    assert s.table_row(rc)[:4] == ["rc", 1, 0, 0]
    assert s.table_row(rc)[5:] == ["c", "i:1", "app=a"]
    assert s.field_labels(rc)["status.replicas"] == "0"
    _, errs = create(s, {"metadata": {"name": "rc"}, "spec": {
        "selector": {"app": "b"}, "template": {
            "metadata": {"labels": {"app": "a"}},
            "spec": {"restartPolicy": "OnFailure",
                     "containers": [{"name": "c", "image": "i:1"}]}}}})
    assert messages(errs) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"a"}: '
        "`selector` does not match template `labels`",
        'spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: '
        '"Always"']


def test_pod_template_and_componentstatuses():
    pt = PodTemplateStrategy()
    obj, errs = create(pt, {"metadata": {"name": "t"}, "template": {
        "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c",
                                                                      "image": "i:1"}]}}})
    assert errs == [] and obj["template"]["spec"]["restartPolicy"] == "Always"
    assert pt.table_row(obj) == ["t", "c", "i:1", "a=b"]
    cs = ComponentStatusStrategy()
    assert cs.verbs == ("get", "list")
    items = cs.virtual_list()
    assert [i["metadata"]["name"] for i in items] == ["scheduler", "controller-manager", "etcd-0"]
    assert cs.table_row(items[0]) == ["scheduler", "Healthy", "ok", ""]


def test_resource_lists_outside_pods_are_canonical_too():
    pvc, _ = create(PersistentVolumeClaimStrategy(), {"metadata": {"name": "d"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1024Mi"}}}})
    assert pvc["spec"]["resources"]["requests"] == {"storage": "1Gi"}
    quota, _ = create(ResourceQuotaStrategy(), {"metadata": {"name": "q"},
                                                "spec": {"hard": {"cpu": "0.5", "pods": "10"}}})
    assert quota["spec"]["hard"] == {"cpu": "500m", "pods": "10"}
    node, _ = create(NodeStrategy(), {"metadata": {"name": "n"},
                                      "status": {"capacity": {"memory": "4096Mi"}}})
    assert node["status"] == {"capacity": {"memory": "4Gi"}, "allocatable": {"memory": "4Gi"}}
