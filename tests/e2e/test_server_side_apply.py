"""Server-side apply as users drive it: `kubectl apply --server-side` (1.33 and 1.27),
lightkube's `apply`, and the official client's PATCH with application/apply-patch+yaml —
field ownership, conflicts with other managers, --force-conflicts, pruning, and the
client-side → server-side hand-over."""
from __future__ import annotations

import json

import pytest
import yaml

from ..conftest import Cluster, Kubectl, kubectl_binary

pytestmark = pytest.mark.kubectl

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: web
        image: {image}
{extra}"""


def manifest(name: str, replicas: int = 2, image: str = "nginx:1", extra: str = "") -> str:
    return WEB.format(name=name, replicas=replicas, image=image, extra=extra)


def managers(kc: Kubectl, kind: str, name: str) -> dict[str, dict]:
    obj = json.loads(kc.run("get", kind, name, "-o", "json", "--show-managed-fields").stdout)
    return {f'{e["manager"]}/{e["operation"]}': e["fieldsV1"]
            for e in obj["metadata"].get("managedFields", [])}


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_kubectl_server_side_apply_owns_conflicts_and_prunes(cluster: Cluster, version: str):
    binary = kubectl_binary(version)
    if binary is None:
        pytest.skip(f"no kubectl {version}")
    kc = Kubectl(binary, cluster.kubeconfig)
    name = f"ssa-{version.replace('.', '')}"

    out = kc.run("apply", "--server-side", "-f", "-", input=manifest(name)).stdout
    assert f"deployment.apps/{name} serverside-applied" in out
    owned = managers(kc, "deployment", name)["kubectl/Apply"]
    assert "f:replicas" in owned["f:spec"]

    # someone else takes replicas over: re-applying our value conflicts, naming them
    kc.run("scale", "deployment", name, "--replicas=4")
    clash = kc.run("apply", "--server-side", "-f", "-", input=manifest(name), check=False)
    assert clash.returncode != 0
    assert "Apply failed with 1 conflict: conflict with" in clash.stderr
    assert ".spec.replicas" in clash.stderr and "--force-conflicts" in clash.stderr
    assert kc.run("get", "deployment", name, "-o", "jsonpath={.spec.replicas}").stdout == "4"

    kc.run("apply", "--server-side", "--force-conflicts", "-f", "-", input=manifest(name))
    assert kc.run("get", "deployment", name, "-o", "jsonpath={.spec.replicas}").stdout == "2"

    # a field dropped from the configuration is removed (nobody else owns it)
    kc.run("apply", "--server-side", "-f", "-",
           input=manifest(name, extra="  minReadySeconds: 7\n"))
    assert kc.run("get", "deployment", name,
                  "-o", "jsonpath={.spec.minReadySeconds}").stdout == "7"
    kc.run("apply", "--server-side", "-f", "-", input=manifest(name))
    assert kc.run("get", "deployment", name,
                  "-o", "jsonpath={.spec.minReadySeconds}").stdout == ""

    # a server-side dry run changes nothing
    kc.run("apply", "--server-side", "--dry-run=server", "-f", "-",
           input=manifest(name, image="nginx:9"))
    assert kc.run("get", "deployment", name, "-o",
                  "jsonpath={.spec.template.spec.containers[0].image}").stdout == "nginx:1"


def test_apply_creates_and_two_managers_share_a_configmap(cluster: Cluster, kubectl: Kubectl):
    base = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}}
    one = yaml.safe_dump({**base, "data": {"a": "1", "b": "2"}})
    two = yaml.safe_dump({**base, "data": {"b": "2", "c": "3"}})
    kubectl.run("apply", "--server-side", "--field-manager=one", "-f", "-", input=one)
    kubectl.run("apply", "--server-side", "--field-manager=two", "-f", "-", input=two)
    data = json.loads(kubectl.run("get", "cm", "shared", "-o", "json").stdout)["data"]
    assert data == {"a": "1", "b": "2", "c": "3"}
    # `one` lets go of b: `two` still owns it, so it stays; a goes
    kubectl.run("apply", "--server-side", "--field-manager=one", "-f", "-",
                input=yaml.safe_dump({**base, "data": {}}))
    data = json.loads(kubectl.run("get", "cm", "shared", "-o", "json").stdout)["data"]
    assert data == {"b": "2", "c": "3"}


def test_client_side_apply_then_server_side(cluster: Cluster, kubectl: Kubectl):
    kubectl.run("apply", "-f", "-", input=manifest("handover"))
    assert "kubectl-client-side-apply/Update" in managers(kubectl, "deployment", "handover")
    kubectl.run("apply", "--server-side", "-f", "-", input=manifest("handover", replicas=2))
    assert "kubectl/Apply" in managers(kubectl, "deployment", "handover")


def test_python_clients_apply(cluster: Cluster) -> None:
    from kubernetes import client, config
    from lightkube import Client, KubeConfig
    from lightkube.resources.core_v1 import ConfigMap

    lk = Client(config=KubeConfig.from_file(cluster.kubeconfig), field_manager="operator")
    cm = lk.apply(ConfigMap.from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": "lk", "namespace": "default"},
                                       "data": {"k": "v"}}))
    assert cm.data == {"k": "v"}
    assert [e.manager for e in cm.metadata.managedFields] == ["operator"]

    api = client.CoreV1Api(config.new_client_from_config(cluster.kubeconfig))
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "lk"},
            "data": {"k": "other"}}
    with pytest.raises(client.ApiException) as e:
        api.patch_namespaced_config_map("lk", "default", body, field_manager="other",
                                        _content_type="application/apply-patch+yaml")
    assert e.value.status == 409
    status = json.loads(e.value.body)
    assert status["reason"] == "Conflict"
    assert status["details"]["causes"][0] == {
        "reason": "FieldManagerConflict", "message": 'conflict with "operator"', "field": ".data.k"}
    patched = api.patch_namespaced_config_map(
        "lk", "default", body, field_manager="other", force=True,
        _content_type="application/apply-patch+yaml")
    assert patched.data == {"k": "other"}


def test_apply_errors(cluster: Cluster) -> None:
    url = "/api/v1/namespaces/default/configmaps/bad"
    apply = "application/apply-patch+yaml"
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\n"
    s, _, raw = cluster.request("PATCH", url, body, content_type=apply)
    status = json.loads(raw)
    assert s == 422 and "fieldManager: Required value: is required for apply patch" in \
        status["message"]
    s, _, raw = cluster.request("PATCH", url + "?fieldManager=x", b"kind: [", content_type=apply)
    assert s == 400
    s, _, raw = cluster.request("PATCH", url + "?fieldManager=x",
                                b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n",
                                content_type=apply)
    assert s == 400 and "does not match the name" in json.loads(raw)["message"]
    s, _, _ = cluster.request("GET", url)
    assert s == 404   # nothing was created by any of them
