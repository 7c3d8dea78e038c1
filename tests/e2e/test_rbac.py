"""RBAC end to end: `pybernetes server --authorization-mode RBAC` with its controller
manager, scheduler and a process-runtime kubelet, driven by the real kubectl as an
admin and as a ServiceAccount (its token from `kubectl create token`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from tests import oci_images
from tests.conftest import Kubectl, free_port, kubectl_binary, start_cluster, wait_for

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not oci_images.have_registry(),
                                 reason="needs docker-registry and busybox-static")]
NODE = "rbac-e2e"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("rbac")
    registry = oci_images.start_registry(tmp / "registry", free_port())
    cluster = None
    try:
        oci_images.push_image(registry.url, "e2e/busybox", "1", oci_images.busybox_image())
        cluster = start_cluster(tmp / "server", components=(
            "controller-manager", "scheduler", "kubelet"), extra=[
            "--authorization-mode", "RBAC", "--node-name", NODE,
            "--kubelet-runtime", "process"])
        binary = kubectl_binary("1.33") or kubectl_binary()
        if binary is None:
            pytest.skip("no kubectl on this machine")
        kc = Kubectl(binary, cluster.kubeconfig)
        for ns in ("team-a", "team-b"):
            kc("create", "namespace", ns)
            wait_for(f"{ns}'s default ServiceAccount",
                     lambda: cluster.has_default_service_account(ns), 60)
        yield {"tmp": tmp, "cluster": cluster, "kubectl": kc, "binary": binary,
               "image": f"{registry.host}/e2e/busybox:1"}
    finally:
        if cluster is not None:
            Kubectl(kubectl_binary() or "kubectl", cluster.kubeconfig).run(
                "delete", "deployments,pods", "--all", "-n", "team-a", "--grace-period=1",
                "--wait=true", "--timeout=60s", check=False, timeout=90)
            cluster.stop()
        registry.stop()


def as_serviceaccount(env: dict, namespace: str, name: str) -> Kubectl:
    """kubectl with only the ServiceAccount's token (no client certificate)."""
    kc, cluster = env["kubectl"], env["cluster"]
    kc("create", "serviceaccount", name, "-n", namespace)
    token = kc("create", "token", name, "-n", namespace).strip()
    path = Path(env["tmp"], f"{namespace}-{name}.kubeconfig")
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {
            "server": cluster.url,
            "certificate-authority": str(cluster.data_dir / "pki" / "ca.crt")}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa",
                                                "namespace": namespace}}]}))
    return Kubectl(env["binary"], str(path))


def test_bootstrap_roles_and_bindings_exist(env: dict) -> None:
    kc = env["kubectl"]
    roles = kc("get", "clusterroles", "-o", "name")
    for name in ("cluster-admin", "admin", "edit", "view", "system:basic-user",
                 "system:discovery", "system:public-info-viewer", "system:node",
                 "system:kube-scheduler", "system:kube-controller-manager",
                 "system:node-proxier"):
        assert f"clusterrole.rbac.authorization.k8s.io/{name}\n" in roles
    admin = json.loads(kc("get", "clusterrolebinding", "cluster-admin", "-o", "json"))
    assert admin["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                  "name": "system:masters"}]
    assert admin["metadata"]["annotations"][
        "rbac.authorization.kubernetes.io/autoupdate"] == "true"


def test_a_role_grants_one_namespace_only(env: dict) -> None:
    kc = env["kubectl"]
    kc("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", "team-a")
    kc("create", "rolebinding", "reader-reads", "--role=pod-reader",
       "--serviceaccount=team-a:reader", "-n", "team-a")
    sa = as_serviceaccount(env, "team-a", "reader")
    wait_for("the binding in effect",
             lambda: sa.run("get", "pods", "-n", "team-a", check=False).returncode == 0, 30)
    denied = sa.run("get", "pods", "-n", "team-b", check=False)
    assert denied.returncode == 1
    assert ('Error from server (Forbidden): pods is forbidden: User '
            '"system:serviceaccount:team-a:reader" cannot list resource "pods" in API group "" '
            'in the namespace "team-b"') in denied.stderr
    denied = sa.run("delete", "pod", "nothing", "-n", "team-a", check=False)
    assert 'cannot delete resource "pods" in API group "" in the namespace "team-a"' \
        in denied.stderr
    denied = sa.run("get", "nodes", check=False)
    assert 'cannot list resource "nodes" in API group "" at the cluster scope' in denied.stderr
    # kubectl auth can-i asks a SelfSubjectAccessReview: yes is exit 0, no is exit 1
    assert sa("auth", "can-i", "list", "pods", "-n", "team-a").strip() == "yes"
    no = sa.run("auth", "can-i", "list", "pods", "-n", "team-b", check=False)
    assert no.returncode == 1 and no.stdout.strip() == "no"
    listing = sa("auth", "can-i", "--list", "-n", "team-a")
    assert any(line.split()[:1] == ["pods"] and "[get list]" in line
               for line in listing.splitlines()), listing
    assert "selfsubjectaccessreviews.authorization.k8s.io" in listing
    # an admin may impersonate the ServiceAccount (kubectl --as)
    who = "--as=system:serviceaccount:team-a:reader"
    assert kc("auth", "can-i", "list", "pods", "-n", "team-a", who).strip() == "yes"
    assert kc.run("auth", "can-i", "list", "pods", "-n", "team-b", who,
                  check=False).stdout.strip() == "no"
    assert "pods is forbidden" in kc.run("get", "pods", "-n", "team-b", who,
                                         check=False).stderr
    # ... and the ServiceAccount may impersonate nobody
    denied = sa.run("get", "pods", "--as=alice", check=False)
    assert ('users "alice" is forbidden: User "system:serviceaccount:team-a:reader" cannot '
            'impersonate resource "users" in API group "" at the cluster scope') \
        in denied.stderr
    # an admin asks about someone else with a SubjectAccessReview
    review = json.loads(kc("create", "--validate=false", "-o", "json", "-f", "-",
                            input=json.dumps({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "system:serviceaccount:team-a:reader",
                 "resourceAttributes": {"verb": "get", "resource": "pods",
                                        "namespace": "team-a"}}})))
    assert review["status"]["allowed"] is True
    assert review["status"]["reason"] == ('RBAC: allowed by RoleBinding "reader-reads/team-a" '
                                          'of Role "pod-reader" to ServiceAccount '
                                          '"reader/team-a"')


def test_view_by_rolebinding_and_aggregation(env: dict) -> None:
    kc = env["kubectl"]
    kc("create", "rolebinding", "viewer", "--clusterrole=view",
       "--serviceaccount=team-b:viewer", "-n", "team-b")
    sa = as_serviceaccount(env, "team-b", "viewer")
    wait_for("view in effect", lambda: sa.run("get", "deployments,services,configmaps",
                                              "-n", "team-b", check=False).returncode == 0, 30)
    denied = sa.run("create", "configmap", "x", "-n", "team-b", check=False)
    assert 'cannot create resource "configmaps"' in denied.stderr
    assert sa.run("get", "secrets", "-n", "team-b", check=False).returncode == 1
    assert sa.run("get", "leases", "-n", "team-b", check=False).returncode == 1
    # a ClusterRole labelled aggregate-to-view adds its rules to view (and so to edit)
    leases = {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
              "verbs": ["get", "list", "watch"]}
    kc("apply", "-f", "-", input=json.dumps({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "lease-viewer",
                     "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [leases]}))

    def aggregated(role: str) -> bool:
        return leases in json.loads(kc("get", "clusterrole", role, "-o", "json"))["rules"]
    wait_for("leases in view", lambda: aggregated("view"), 30)
    wait_for("leases in edit", lambda: aggregated("edit"), 30)
    wait_for("the viewer may list leases", lambda: sa.run(
        "auth", "can-i", "list", "leases.coordination.k8s.io", "-n", "team-b",
        check=False).stdout.strip() == "yes", 30)
    sa("get", "leases", "-n", "team-b")


def test_anonymous_users_get_public_info_only(env: dict) -> None:
    cluster = env["cluster"]
    status, _, body = cluster.request("GET", "/version", anonymous=True)
    assert status == 200
    status, _, body = cluster.request("GET", "/api/v1/pods", anonymous=True)
    assert status == 403
    assert json.loads(body)["message"] == ('pods is forbidden: User "system:anonymous" cannot '
                                           'list resource "pods" in API group "" at the '
                                           'cluster scope')
    status, _, body = cluster.request("GET", "/apis", anonymous=True)
    assert status == 403 and json.loads(body)["message"] == \
        'forbidden: User "system:anonymous" cannot get path "/apis"'


def test_components_keep_working_under_rbac(env: dict) -> None:
    """Controller manager (Deployment -> ReplicaSet -> Pods), scheduler and kubelet
    (Running, with status) do their jobs with only their bootstrap roles."""
    kc = env["kubectl"]
    kc("create", "deployment", "web", "--image", env["image"], "--replicas=2", "-n", "team-a",
       "--", "sleep", "3600")
    kc("rollout", "status", "deployment/web", "-n", "team-a", "--timeout=120s", timeout=150)
    pods = json.loads(kc("get", "pods", "-n", "team-a", "-l", "app=web", "-o", "json"))["items"]
    assert len(pods) == 2
    assert all(p["spec"]["nodeName"] == NODE and p["status"]["phase"] == "Running"
               for p in pods)
    logs = "".join(f.read_text() for f in (env["cluster"].data_dir / "logs").glob("*.log"))
    assert "forbidden" not in logs.lower()


def test_no_one_grants_what_they_do_not_hold(env: dict) -> None:
    """A namespace admin may hand out what `admin` holds there, nothing more."""
    kc = env["kubectl"]
    kc("create", "rolebinding", "lead-admin", "--clusterrole=admin",
       "--serviceaccount=team-a:lead", "-n", "team-a")
    lead = as_serviceaccount(env, "team-a", "lead")
    wait_for("admin in effect", lambda: lead.run("get", "roles", "-n", "team-a",
                                                 check=False).returncode == 0, 30)
    lead("create", "role", "deploy-reader", "--verb=get,list", "--resource=deployments.apps",
         "-n", "team-a")
    lead("create", "rolebinding", "readers", "--role=deploy-reader",
         "--serviceaccount=team-a:reader", "-n", "team-a")
    denied = lead.run("create", "role", "node-reader", "--verb=get", "--resource=nodes",
                      "-n", "team-a", check=False)
    assert denied.returncode == 1
    assert ('roles.rbac.authorization.k8s.io "node-reader" is forbidden: user '
            '"system:serviceaccount:team-a:lead" (groups=[') in denied.stderr
    assert ('is attempting to grant RBAC permissions not currently held:\n'
            '{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}') in denied.stderr
    denied = lead.run("create", "rolebinding", "root", "--clusterrole=cluster-admin",
                      "--serviceaccount=team-a:lead", "-n", "team-a", check=False)
    assert 'rolebindings.rbac.authorization.k8s.io "root" is forbidden' in denied.stderr
    # the admin (system:masters) may grant anything
    kc("create", "role", "node-reader", "--verb=get", "--resource=nodes", "-n", "team-a")
