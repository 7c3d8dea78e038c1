"""Unknown/duplicate field detection and JSON type errors against the v1.33 schemas."""
from __future__ import annotations

from pybernetes.machinery.fieldvalidation import duplicate_fields, type_errors, unknown_fields, \
    zero_nulls

POD = "io.k8s.api.core.v1.Pod"


def test_unknown_fields_paths_in_document_order():
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "x", "labels": {"any-key": "v"}, "bogus": 1},
           "spec": {"foo": 1, "containers": [
               {"name": "a", "bogus": 2, "ports": [{"containerPort": 80, "x": 1}],
                "resources": {"limits": {"cpu": "1", "example.com/gpu": "1"}}}],
               "nodeSelector": {"whatever": "ok"}},
           "status": {"phase": "Running"}}
    assert unknown_fields(pod, POD) == [
        "metadata.bogus", "spec.foo", "spec.containers[0].bogus", "spec.containers[0].ports[0].x"]


def test_known_objects_have_no_unknown_fields():
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "d", "annotations": {"a": "b"}},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
                       "strategy": {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                       "template": {"metadata": {"labels": {"app": "d"}}, "spec": {
                           "containers": [{"name": "c", "image": "nginx",
                                           "env": [{"name": "A", "valueFrom": {
                                               "fieldRef": {"fieldPath": "metadata.name"}}}]}]}}}}
    assert unknown_fields(deploy, "io.k8s.api.apps.v1.Deployment") == []


def test_nested_unknowns_through_templates_and_maps():
    deploy = {"spec": {"template": {"metadata": {"x": 1}, "spec": {"containers": [
        {"name": "a", "env": [{"name": "e", "valueFrom": {"fieldRef": {"q": 1}}}]}]}}}}
    assert unknown_fields(deploy, "io.k8s.api.apps.v1.Deployment") == [
        "spec.template.metadata.x",
        "spec.template.spec.containers[0].env[0].valueFrom.fieldRef.q"]


def test_open_values_accept_anything():
    # RawExtension (ControllerRevision.data) and CRD validation JSON are open
    cr = {"metadata": {"name": "r"}, "revision": 1, "data": {"anything": {"goes": [1]}}}
    assert unknown_fields(cr, "io.k8s.api.apps.v1.ControllerRevision") == []
    crd = {"spec": {"group": "g", "versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
        "type": "object", "properties": {"a": {"type": "string", "default": {"x": 1}}}}}}]}}
    name = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"
    assert unknown_fields(crd, name) == []


def test_wrong_shapes_are_not_reported_as_unknown():
    assert unknown_fields({"spec": "oops", "metadata": []}, POD) == []


def test_duplicate_fields():
    raw = b'{"metadata":{"name":"a","name":"b"},"spec":{"containers":[{"name":1,"name":2}]}}'
    assert duplicate_fields(raw) == ["metadata.name", "spec.containers[0].name"]
    assert duplicate_fields(b'{"a":1}') == []
    assert duplicate_fields(b"a: 1\na: 2\n") == []  # YAML is not handled here
    assert duplicate_fields('{"a":1,"a":2}'.encode("utf-16")) == ["a"]  # as json.loads reads
    assert duplicate_fields(b'\xef\xbb\xbf{"a":1,"a":2}') == ["a"]  # after a UTF-8 BOM


def test_type_errors_name_the_go_struct_and_type():
    pod = {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": "80"}]}]}}
    assert type_errors(pod, POD) == [
        "json: cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports."
        "containerPort of type int32"]
    d = {"spec": {"replicas": "3", "template": {"spec": {"containers": "x"}}}}
    assert type_errors(d, "io.k8s.api.apps.v1.Deployment") == [
        "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
        "json: cannot unmarshal string into Go struct field PodSpec.spec.template.spec.containers "
        "of type []v1.Container"]
    assert type_errors({"spec": {"replicas": 3, "paused": True}},
                       "io.k8s.api.apps.v1.Deployment") == []


def test_type_errors_of_scalars_in_maps_lists_and_open_values():
    pod = {"metadata": {"labels": {"a": 1}, "annotations": {"b": "ok"}},
           "spec": {"containers": [{"name": "a", "args": ["x", 2], "resources": {
               "limits": {"cpu": 1, "memory": "1Gi"}}, "ports": [{"containerPort": 8.5}]}],
               "hostNetwork": "yes", "terminationGracePeriodSeconds": 30.0}}
    assert type_errors(pod, POD) == [
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels.a of "
        "type string",
        "json: cannot unmarshal number into Go struct field Container.spec.containers.args of "
        "type string",
        "json: cannot unmarshal number into Go struct field ContainerPort.spec.containers.ports."
        "containerPort of type int32",
        "json: cannot unmarshal string into Go struct field PodSpec.spec.hostNetwork of type "
        "bool"]  # a quantity takes a number; 30.0 is a whole number


def test_zero_nulls_decodes_like_go():
    pod = {"metadata": {"name": None, "labels": {"a": None}},
           "spec": {"containers": [None, {"name": "c", "args": [None, "x"], "env": None}]},
           "status": {"conditions": [{"type": "Ready", "lastProbeTime": None,
                                      "message": "null"}]}}
    zero_nulls(pod, POD)
    assert pod == {"metadata": {"labels": {"a": ""}},
                   "spec": {"containers": [{}, {"name": "c", "args": ["", "x"]}]},
                   "status": {"conditions": [{"type": "Ready", "message": "null"}]}}
    untouched = {"metadata": {"annotations": {"note": "null"}}}
    zero_nulls(untouched, POD)
    assert untouched == {"metadata": {"annotations": {"note": "null"}}}
