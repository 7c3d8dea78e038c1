"""A user's session with the real kubectl, for two installed kubectl versions.

Everything here needs no running pods: the API server alone must answer as a
real cluster would.
"""
from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest

from ..conftest import Cluster, Kubectl, kubectl_binary

VERSIONS = [v for v in ("1.27", "1.33") if kubectl_binary(v)]
pytestmark = [pytest.mark.kubectl, pytest.mark.skipif(not VERSIONS, reason="no kubectl")]

APP_YAML = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  labels: {app: web}
data:
  color: blue
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
---
apiVersion: v1
kind: Pod
metadata:
  name: solo
  labels: {app: solo, tier: backend}
spec:
  containers:
  - name: main
    image: busybox:1.36
    command: ["sleep", "3600"]
"""


@pytest.fixture(scope="module", params=VERSIONS)
def k(request, cluster: Cluster) -> Kubectl:
    """kubectl of one version, working in its own namespace."""
    ns = "session-" + request.param.replace(".", "-")
    kc = Kubectl(kubectl_binary(request.param), _own_kubeconfig(cluster, ns))
    assert f"namespace/{ns} created" in kc("create", "namespace", ns)
    kc("config", "set-context", "--current", f"--namespace={ns}")
    return kc


def _own_kubeconfig(cluster: Cluster, ns: str) -> str:
    path = str(cluster.data_dir / f"{ns}.kubeconfig")
    if not os.path.exists(path):
        with open(cluster.kubeconfig) as src, open(path, "w") as dst:
            dst.write(src.read())
    return path


def test_version_and_discovery(k: Kubectl, cluster: Cluster) -> None:
    out = k("version")
    assert "Server Version" in out and "v1.33.0" in out.split("Server Version", 1)[1]
    resources = k("api-resources")
    for line in ("pods", "deployments", "services", "configmaps", "namespaces",
                 "cronjobs", "ingresses", "leases", "endpointslices"):
        assert line in resources
    assert "po " in resources or "po\t" in resources or " po " in resources
    versions = k("api-versions").split()
    assert {"v1", "apps/v1", "batch/v1", "networking.k8s.io/v1",
            "rbac.authorization.k8s.io/v1"} <= set(versions)
    info = k("cluster-info")
    assert f"https://127.0.0.1:{cluster.port}" in info
    assert k("get", "--raw", "/healthz").strip() == "ok"
    assert json.loads(k("get", "--raw", "/version"))["gitVersion"].startswith("v1.33")


def test_create_and_get_in_every_output(k: Kubectl) -> None:
    out = k("create", "-f", "-", input=APP_YAML)
    for line in ("configmap/app-config created", "deployment.apps/web created",
                 "service/web created", "pod/solo created"):
        assert line in out
    table = k("get", "pods")
    assert table.split("\n")[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "solo" in table and "0/1" in table and "Pending" in table
    wide = k("get", "pods", "-o", "wide").split("\n")[0]
    for col in ("IP", "NODE", "NOMINATED NODE", "READINESS GATES"):
        assert col in wide
    deploys = k("get", "deployments").split("\n")[0].split()
    assert deploys == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    svc = k("get", "svc", "web")
    assert "ClusterIP" in svc and "80/TCP" in svc and "10.43." in svc
    as_yaml = k("get", "pod", "solo", "-o", "yaml")
    assert "restartPolicy: Always" in as_yaml and "uid:" in as_yaml
    as_json = json.loads(k("get", "pod", "solo", "-o", "json"))
    assert as_json["spec"]["containers"][0]["terminationMessagePath"] == "/dev/termination-log"
    assert as_json["status"]["phase"] == "Pending"
    assert k("get", "pods", "-o", "name").split() == ["pod/solo"]
    assert k("get", "pod", "solo", "-o", "jsonpath={.spec.containers[0].image}") == "busybox:1.36"
    cols = k("get", "pods", "-o", "custom-columns=NAME:.metadata.name,IMAGE:.spec.containers[0].image")
    assert cols.split("\n")[1].split() == ["solo", "busybox:1.36"]
    both = k("get", "deployments,services")
    assert "deployment.apps/web" in both and "service/web" in both


def test_watch_sees_a_later_change(k: Kubectl) -> None:
    k("create", "configmap", "watched", "--from-literal=a=1")
    env = dict(os.environ, KUBECONFIG=k.kubeconfig)
    proc = subprocess.Popen([k.binary, "get", "configmap", "watched", "-w",
                             "--output-watch-events"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    try:
        lines += [proc.stdout.readline(), proc.stdout.readline()]  # header, initial state
        k("label", "configmap", "watched", "changed=yes")
        lines.append(proc.stdout.readline())  # the change, from the open watch
    finally:
        proc.kill()
        proc.wait(5)
    assert lines[0].split() == ["EVENT", "NAME", "DATA", "AGE"]
    assert lines[1].split()[:3] == ["ADDED", "watched", "1"]
    assert lines[2].split()[:3] == ["MODIFIED", "watched", "1"]


def test_describe_label_annotate_patch(k: Kubectl) -> None:
    desc = k("describe", "pod", "solo")
    assert "Name:" in desc and "solo" in desc and "busybox:1.36" in desc
    assert "Replicas:" in k("describe", "deployment", "web")
    k("label", "pod", "solo", "env=test")
    assert k("get", "pods", "-l", "env=test", "-o", "name").strip() == "pod/solo"
    k("annotate", "pod", "solo", "owner=team-a")
    assert k("get", "pod", "solo", "-o", "jsonpath={.metadata.annotations.owner}") == "team-a"
    # strategic merge: containers merge by name, the image changes, the command stays
    k("patch", "pod", "solo", "-p",
      '{"spec":{"containers":[{"name":"main","image":"busybox:1.37"}]}}')
    pod = json.loads(k("get", "pod", "solo", "-o", "json"))
    assert pod["spec"]["containers"][0]["image"] == "busybox:1.37"
    assert pod["spec"]["containers"][0]["command"] == ["sleep", "3600"]
    k("patch", "configmap", "app-config", "--type=merge", "-p", '{"data":{"size":"large"}}')
    k("patch", "configmap", "app-config", "--type=json",
      "-p", '[{"op":"replace","path":"/data/color","value":"green"}]')
    data = json.loads(k("get", "configmap", "app-config", "-o", "json"))["data"]
    assert data == {"color": "green", "size": "large"}


def test_edit_replace_apply(k: Kubectl, tmp_path) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/color: green/color: red/' \"$1\"\n")
    editor.chmod(0o755)
    out = k("edit", "configmap", "app-config", env={"EDITOR": str(editor), "KUBE_EDITOR": str(editor)})
    assert "edited" in out
    assert k("get", "cm", "app-config", "-o", "jsonpath={.data.color}") == "red"

    cm = json.loads(k("get", "cm", "app-config", "-o", "json"))
    cm["data"]["color"] = "purple"
    k("replace", "-f", "-", input=json.dumps(cm))
    assert k("get", "cm", "app-config", "-o", "jsonpath={.data.color}") == "purple"

    manifest = textwrap.dedent("""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: applied
        data:
          one: "1"
          two: "2"
        """)
    assert "configmap/applied created" in k("apply", "-f", "-", input=manifest)
    changed = manifest.replace('  two: "2"\n', '  three: "3"\n')
    assert "configmap/applied configured" in k("apply", "-f", "-", input=changed)
    data = json.loads(k("get", "cm", "applied", "-o", "json"))["data"]
    assert data == {"one": "1", "three": "3"}  # client-side apply removed "two"
    assert "configmap/applied unchanged" in k("apply", "-f", "-", input=changed)


def test_scale_and_explain(k: Kubectl) -> None:
    assert "deployment.apps/web scaled" in k("scale", "deployment", "web", "--replicas=4")
    assert k("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}") == "4"
    explained = k("explain", "pod.spec.containers")
    assert "FIELD" in explained and "image" in explained


def test_create_helpers(k: Kubectl) -> None:
    k("create", "configmap", "lit", "--from-literal=k1=v1", "--from-literal=k2=v2")
    assert json.loads(k("get", "cm", "lit", "-o", "json"))["data"] == {"k1": "v1", "k2": "v2"}
    k("create", "secret", "generic", "creds", "--from-literal=password=s3cret")
    secret = json.loads(k("get", "secret", "creds", "-o", "json"))
    assert secret["type"] == "Opaque" and secret["data"]["password"] == "czNjcmV0"
    table = k("get", "secrets").split("\n")[0].split()
    assert table == ["NAME", "TYPE", "DATA", "AGE"]


def test_malformed_manifest_stores_nothing(k: Kubectl) -> None:
    bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata: [unclosed\n"
    p = k.run("create", "-f", "-", input=bad, check=False)
    assert p.returncode != 0 and p.stderr.strip()
    unknown = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\nbogus: 1\n"
    p = k.run("create", "-f", "-", input=unknown, check=False)
    assert p.returncode != 0 and 'unknown field "bogus"' in p.stderr
    invalid = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_Valid\n"
    p = k.run("create", "-f", "-", input=invalid, check=False)
    assert p.returncode != 0 and "Invalid value" in p.stderr
    assert "broken" not in k("get", "cm", "-o", "name")
    p = k.run("get", "cm", "no-such-thing", check=False)
    assert 'configmaps "no-such-thing" not found' in p.stderr


def test_delete_by_name_label_and_all(k: Kubectl) -> None:
    assert 'pod "solo" deleted' in k("delete", "pod", "solo")
    k("create", "cm", "l1", "--from-literal=a=b")
    k("label", "cm", "l1", "group=x")
    k("create", "cm", "l2", "--from-literal=a=b")
    k("label", "cm", "l2", "group=x")
    out = k("delete", "cm", "-l", "group=x")
    assert 'configmap "l1" deleted' in out and 'configmap "l2" deleted' in out
    k("delete", "cm", "--all")
    left = set(k("get", "cm", "-o", "name").split()) - {"configmap/kube-root-ca.crt"}
    assert left == set()
