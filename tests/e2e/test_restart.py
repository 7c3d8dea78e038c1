"""Restart the server on the same data dir: every object is still there with the same
uid and resourceVersion, and a watch resumes from a version seen before the restart."""
from __future__ import annotations

import json

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from ..conftest import start_cluster


def _api(kubeconfig: str) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=kubeconfig))


def test_objects_and_watches_survive_restart(tmp_path) -> None:
    data_dir = tmp_path / "data"
    c = start_cluster(data_dir)
    try:
        api = _api(c.kubeconfig)
        made = {}
        for i in range(5):
            cm = api.create_namespaced_config_map("default", k8s.V1ConfigMap(
                metadata=k8s.V1ObjectMeta(name=f"keep-{i}"), data={"i": str(i)}))
            made[cm.metadata.name] = (cm.metadata.uid, cm.metadata.resource_version)
        svc = api.create_namespaced_service("default", k8s.V1Service(
            metadata=k8s.V1ObjectMeta(name="keep-svc"),
            spec=k8s.V1ServiceSpec(ports=[k8s.V1ServicePort(port=80)])))
        before_rv = api.list_namespaced_config_map("default").metadata.resource_version
    finally:
        assert c.stop() == 0
    c = start_cluster(data_dir, port=c.port)
    try:
        api = _api(c.kubeconfig)
        for name, (uid, rv) in made.items():
            cm = api.read_namespaced_config_map(name, "default")
            assert (cm.metadata.uid, cm.metadata.resource_version) == (uid, rv)
        again = api.read_namespaced_service("keep-svc", "default")
        assert again.spec.cluster_ip == svc.spec.cluster_ip
        api.patch_namespaced_config_map("keep-0", "default", {"data": {"i": "changed"}})
        w = k8s_watch.Watch()
        for ev in w.stream(api.list_namespaced_config_map, "default",
                           resource_version=before_rv, timeout_seconds=5):
            assert (ev["type"], ev["object"].metadata.name) == ("MODIFIED", "keep-0")
            w.stop()
            break
        else:
            raise AssertionError("the resumed watch saw nothing")
        # history from before the restart is gone: a watch from there is told 410 Expired
        status, _, raw = c.request("GET", "/api/v1/namespaces/default/configmaps?watch=1"
                                          "&resourceVersion=1&timeoutSeconds=2")
        event = json.loads(raw.splitlines()[0])
        assert status == 200 and event["type"] == "ERROR"
        assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
        status, body = c.get_raw("/api/v1/namespaces")
        names = {n["metadata"]["name"] for n in json.loads(body)["items"]}
        assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    finally:
        c.stop()
