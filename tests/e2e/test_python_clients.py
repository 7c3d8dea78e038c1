"""The official `kubernetes` client and `lightkube` against a real server:
CRUD, paginated lists, watch resumed from a resourceVersion, 409 on stale updates."""
from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.rest import ApiException

from ..conftest import Cluster


@pytest.fixture(scope="module")
def core(cluster: Cluster) -> k8s.CoreV1Api:
    api_client = k8s_config.new_client_from_config(config_file=cluster.kubeconfig)
    return k8s.CoreV1Api(api_client)


@pytest.fixture(scope="module")
def ns(core: k8s.CoreV1Api) -> str:
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="pyclient")))
    return "pyclient"


def _cm(name: str, **data: str) -> k8s.V1ConfigMap:
    return k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=name, labels={"suite": "py"}), data=data)


def test_official_client_crud(core: k8s.CoreV1Api, ns: str) -> None:
    created = core.create_namespaced_config_map(ns, _cm("crud", a="1"))
    assert created.metadata.uid and created.metadata.resource_version
    got = core.read_namespaced_config_map("crud", ns)
    assert got.data == {"a": "1"} and got.metadata.uid == created.metadata.uid
    got.data["b"] = "2"
    updated = core.replace_namespaced_config_map("crud", ns, got)
    assert int(updated.metadata.resource_version) > int(got.metadata.resource_version)
    patched = core.patch_namespaced_config_map("crud", ns, {"data": {"c": "3"}})
    assert patched.data == {"a": "1", "b": "2", "c": "3"}
    core.delete_namespaced_config_map("crud", ns)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("crud", ns)
    assert e.value.status == 404


def test_stale_update_is_409(core: k8s.CoreV1Api, ns: str) -> None:
    first = core.create_namespaced_config_map(ns, _cm("stale", v="0"))
    core.patch_namespaced_config_map("stale", ns, {"data": {"v": "1"}})
    first.data["v"] = "2"
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("stale", ns, first)
    assert e.value.status == 409
    assert "the object has been modified" in e.value.body


def test_pagination(core: k8s.CoreV1Api, ns: str) -> None:
    for i in range(25):
        core.create_namespaced_config_map(ns, _cm(f"page-{i:02d}", i=str(i)))
    names: list[str] = []
    token = None
    pages = 0
    while True:
        resp = core.list_namespaced_config_map(ns, limit=10, _continue=token,
                                               label_selector="suite=py")
        pages += 1
        names += [c.metadata.name for c in resp.items]
        token = resp.metadata._continue
        if not token:
            break
    assert pages >= 3
    assert [n for n in names if n.startswith("page-")] == [f"page-{i:02d}" for i in range(25)]


def test_watch_resumes_from_resource_version(core: k8s.CoreV1Api, ns: str) -> None:
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, _cm("watched-1"))
    core.create_namespaced_config_map(ns, _cm("watched-2"))
    w = k8s_watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=start,
                       timeout_seconds=5):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 2:
            w.stop()
    assert seen == [("ADDED", "watched-1"), ("ADDED", "watched-2")]


def test_lightkube_crud_list_watch_conflict(cluster: Cluster, ns: str) -> None:
    from lightkube import ApiError, Client, KubeConfig
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import ConfigMap

    client = Client(KubeConfig.from_file(cluster.kubeconfig), namespace=ns)
    cm = client.create(ConfigMap(metadata=ObjectMeta(name="lk", labels={"via": "lightkube"}),
                                 data={"x": "1"}))
    assert client.get(ConfigMap, "lk").data == {"x": "1"}
    cm.data["x"] = "2"
    client.replace(cm)
    stale = cm
    stale.data["x"] = "3"
    with pytest.raises(ApiError) as e:
        client.replace(stale)
    assert e.value.status.code == 409
    listed = list(client.list(ConfigMap, labels={"via": "lightkube"}, chunk_size=1))
    assert [c.metadata.name for c in listed] == ["lk"]
    rv = client.get(ConfigMap, "lk").metadata.resourceVersion
    events: list[tuple[str, str]] = []

    def change() -> None:
        time.sleep(0.5)
        client.patch(ConfigMap, "lk", {"data": {"x": "4"}})

    threading.Thread(target=change, daemon=True).start()
    for op, obj in client.watch(ConfigMap, resource_version=rv, labels={"via": "lightkube"}):
        events.append((op, obj.data["x"]))
        break
    assert events == [("MODIFIED", "4")]
    client.delete(ConfigMap, "lk")
