"""controller-manager flags and the small pure parts of the namespace/SA controllers."""
from __future__ import annotations

import base64

import pytest
import yaml

from pybernetes.controllers.manager import controller_classes, select
from pybernetes.controllers.namespace import content_conditions
from pybernetes.controllers.serviceaccount import ca_from_kubeconfig

KNOWN = ["cronjob", "daemonset", "deployment", "disruption", "endpoints", "endpointslice",
         "garbagecollector", "job", "local-path-provisioner", "namespace", "nodeipam",
         "nodelifecycle", "persistentvolume-binder", "pv-protection", "pvc-protection",
         "replicaset", "resourcequota", "service-lb", "serviceaccount", "serviceaccount-token", "statefulset"]


def test_controllers_flag_star_enable_disable():
    assert select("*", KNOWN) == KNOWN
    assert select("*,-deployment,-endpoints,-cronjob,-daemonset,-disruption", KNOWN) == [
        "endpointslice", "garbagecollector", "job", "local-path-provisioner", "namespace",
        "nodeipam", "nodelifecycle", "persistentvolume-binder", "pv-protection",
        "pvc-protection", "replicaset", "resourcequota", "service-lb", "serviceaccount", "serviceaccount-token", "statefulset"]
    assert select("replicaset", KNOWN) == ["replicaset"]
    assert select("", KNOWN) == KNOWN
    with pytest.raises(ValueError, match="unknown controller"):
        select("*,-nope", KNOWN)


def test_every_known_controller_is_registered():
    assert sorted(controller_classes()) == sorted(KNOWN + ["clusterrole-aggregation"])


def test_namespace_conditions_say_what_remains():
    conds = {c["type"]: c for c in content_conditions({"pods": 2}, {"example.com/x": 1})}
    assert conds["NamespaceContentRemaining"]["status"] == "True"
    assert conds["NamespaceContentRemaining"]["message"] == \
        "Some resources are remaining: pods has 2 resource instances"
    assert conds["NamespaceFinalizersRemaining"]["reason"] == "SomeFinalizersRemain"
    done = {c["type"]: c for c in content_conditions({}, {})}
    assert done["NamespaceContentRemaining"]["reason"] == "ContentRemoved"


def test_root_ca_comes_from_the_kubeconfig(tmp_path):
    pem = "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n"
    cfg = {"current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "k"}}],
           "clusters": [{"name": "k", "cluster": {
               "certificate-authority-data": base64.b64encode(pem.encode()).decode()}}]}
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(cfg))
    assert ca_from_kubeconfig(str(path)) == pem
    (tmp_path / "ca.crt").write_text(pem)
    cfg["clusters"][0]["cluster"] = {"certificate-authority": "ca.crt"}
    path.write_text(yaml.safe_dump(cfg))
    assert ca_from_kubeconfig(str(path)) == pem
