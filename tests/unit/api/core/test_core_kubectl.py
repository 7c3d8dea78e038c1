"""The core strategies behind a real `pybernetes apiserver`, driven by the real kubectl."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"
pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl 1.33 not installed")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory):
    data = tmp_path_factory.mktemp("apiserver")
    port = _free_port()
    exe = str(Path(sys.executable).with_name("pybernetes"))
    log = open(data / "apiserver.log", "w")
    # no controller-manager creates the default ServiceAccount: its admission is off
    proc = subprocess.Popen([exe, "apiserver", "--data-dir", str(data), "--secure-port",
                             str(port), "--disable-admission-plugins", "ServiceAccount"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "serving on" not in (data / "apiserver.log").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, \
                (data / "apiserver.log").read_text()
            time.sleep(0.2)
        pki = data / "pki"
        kc = data / "kubeconfig"
        kc.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}', "
            f"certificate-authority: '{pki}/ca.crt'}}}}]\n"
            f"users: [{{name: u, user: {{client-certificate: '{pki}/admin.crt', "
            f"client-key: '{pki}/admin.key'}}}}]\n"
            "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n")

        def run(*args: str, stdin: str | None = None, ok: bool = True) -> str:
            res = subprocess.run([KUBECTL, "--kubeconfig", str(kc), *args], input=stdin,
                                 capture_output=True, text=True, timeout=60)
            if ok:
                assert res.returncode == 0, res.stderr
            return res.stdout + res.stderr
        yield run
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_pod_defaults_and_table(kubectl):
    kubectl("run", "web", "--image=nginx")
    out = kubectl("get", "pod", "web", "-o", "jsonpath={.spec.dnsPolicy} "
                  "{.spec.containers[0].imagePullPolicy} {.status.phase} {.status.qosClass} "
                  "{.spec.tolerations[0].key}")
    assert out == "ClusterFirst Always Pending BestEffort node.kubernetes.io/not-ready"
    lines = kubectl("get", "pods", "-o", "wide").splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                                "NOMINATED", "NODE", "READINESS", "GATES"]
    assert lines[1].split()[:4] == ["web", "0/1", "Pending", "0"]
    assert kubectl("get", "pods", "--field-selector", "status.phase=Pending",
                   "-o", "name").strip() == "pod/web"


def test_pod_update_rules(kubectl):
    kubectl("run", "upd", "--image=nginx")
    kubectl("set", "image", "pod/upd", "upd=nginx:1.27")
    out = kubectl("patch", "pod", "upd", "-p", '{"spec":{"restartPolicy":"Never"}}', ok=False)
    assert 'The Pod "upd" is invalid: spec: Forbidden: pod updates may not change fields ' \
           "other than `spec.containers[*].image`" in out


def test_invalid_pod_is_rejected_with_field_errors(kubectl):
    manifest = ("apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers:\n"
                "  - {name: A, image: x, ports: [{containerPort: 70000}]}\n")
    out = kubectl("apply", "-f", "-", stdin=manifest, ok=False)
    assert 'spec.containers[0].name: Invalid value: "A"' in out
    assert ("spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between "
            "1 and 65535, inclusive") in out


def test_service_namespace_and_config_tables(kubectl):
    kubectl("create", "service", "nodeport", "np", "--tcp=80:8080")
    row = kubectl("get", "svc", "np", "--no-headers").split()
    assert row[1] == "NodePort" and row[3] == "<none>" and row[4].startswith("80:")
    assert row[4].endswith("/TCP")
    kubectl("create", "namespace", "team")
    assert kubectl("get", "ns", "team", "-o", "jsonpath={.spec.finalizers[0]} {.status.phase} "
                   "{.metadata.labels.kubernetes\\.io/metadata\\.name}") == "kubernetes Active team"
    kubectl("create", "secret", "generic", "s", "--from-literal=a=b")
    assert kubectl("get", "secret", "s", "--no-headers").split()[:3] == ["s", "Opaque", "1"]
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {a/b: c}\n"
    out = kubectl("apply", "-f", "-", stdin=cm, ok=False)  # kubectl create checks keys itself
    assert 'data[a/b]: Invalid value: "a/b"' in out


def test_componentstatuses_and_replication_controller(kubectl):
    out = kubectl("get", "componentstatuses", "--no-headers")
    assert [line.split()[:2] for line in out.splitlines() if line.strip()
            and not line.startswith("Warning")] == [
        ["scheduler", "Healthy"], ["controller-manager", "Healthy"], ["etcd-0", "Healthy"]]
    rc = ("apiVersion: v1\nkind: ReplicationController\nmetadata: {name: rc1}\nspec:\n"
          "  template:\n    metadata: {labels: {app: rc1}}\n"
          "    spec: {containers: [{name: c, image: 'busybox:1.36'}]}\n")
    kubectl("apply", "-f", "-", stdin=rc)
    kubectl("scale", "rc", "rc1", "--replicas=3")
    row = kubectl("get", "rc", "rc1", "-o", "wide", "--no-headers").split()
    assert row[:4] == ["rc1", "3", "0", "0"] and row[-1] == "app=rc1"


def test_scheduled_pod_terminates_gracefully(kubectl):
    pod = ("apiVersion: v1\nkind: Pod\nmetadata: {name: bound}\n"
           "spec: {nodeName: n1, containers: [{name: c, image: 'busybox:1.36'}]}\n")
    kubectl("apply", "-f", "-", stdin=pod)
    kubectl("delete", "pod", "bound", "--wait=false")
    row = kubectl("get", "pod", "bound", "--no-headers").split()
    assert row[2] == "Terminating"
    assert kubectl("get", "pod", "bound", "-o",
                   "jsonpath={.metadata.deletionGracePeriodSeconds}") == "30"
    kubectl("delete", "pod", "bound", "--grace-period=0", "--force")
    assert "NotFound" in kubectl("get", "pod", "bound", ok=False)
