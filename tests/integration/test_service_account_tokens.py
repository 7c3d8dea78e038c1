"""ServiceAccount tokens against a real API server and controller-manager (which creates
the `default` account and the kube-root-ca.crt ConfigMap): `kubectl create token`, the
token as a kubeconfig credential, what stops a token from working, and the ServiceAccount
admission plugin's volume on new pods."""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import jwt
import pytest
import yaml

from tests.conftest import Cluster, Kubectl, kubectl_binary, wait_for

API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
CLUSTER_COMPONENTS = ("controller-manager",)   # for conftest's cluster fixture


@pytest.fixture(scope="module", autouse=True)
def root_ca_published(cluster: Cluster) -> None:
    """start_cluster waits for the default ServiceAccount; pods also mount the CA."""
    wait_for("kube-root-ca.crt in default", lambda: cluster.json(
        "GET", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt")[0] == 200)


def claims_of(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


def token_kubeconfig(cluster: Cluster, token: str, path: Path) -> str:
    """The admin kubeconfig with its client certificate swapped for `token:`."""
    cfg = yaml.safe_load(open(cluster.kubeconfig))
    cfg["users"] = [{"name": u["name"], "user": {"token": token}} for u in cfg["users"]]
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def as_token(cluster: Cluster, method: str, path: str, token: str,
             body: object = None) -> tuple[int, dict]:
    return cluster.json(method, path, body, anonymous=True,
                        headers={"Authorization": f"Bearer {token}"})


def sa_uid(cluster: Cluster, ns: str, name: str) -> str:
    return cluster.json("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/{name}")[1][
        "metadata"]["uid"]


def create_pod(cluster: Cluster, name: str, ns: str = "default", **spec) -> tuple[int, dict]:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}
    return cluster.json("POST", f"/api/v1/namespaces/{ns}/pods", pod)


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_kubectl_create_token_claims(cluster: Cluster, version: str) -> None:
    binary = kubectl_binary(version)
    if binary is None:
        pytest.skip(f"no kubectl {version}")
    kc = Kubectl(binary, cluster.kubeconfig)
    before = int(time.time())
    token = kc("create", "token", "default", "--audience", "x", "--duration", "10m").strip()
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "RS256" and header["kid"]
    claims = claims_of(token)
    assert claims["aud"] == ["x"]
    assert claims["iss"] == API_AUDIENCE
    assert claims["sub"] == "system:serviceaccount:default:default"
    assert claims["exp"] - claims["iat"] == 600
    assert claims["nbf"] == claims["iat"] and before - 5 <= claims["iat"] <= time.time() + 5
    assert len(claims["jti"]) == 36
    assert claims["kubernetes.io"] == {
        "namespace": "default",
        "serviceaccount": {"name": "default", "uid": sa_uid(cluster, "default", "default")}}


def test_token_request_defaults_and_refusals(cluster: Cluster) -> None:
    url = "/api/v1/namespaces/default/serviceaccounts/default/token"
    status, out = cluster.json("POST", url, {"apiVersion": "authentication.k8s.io/v1",
                                             "kind": "TokenRequest", "spec": {}})
    assert status == 201, out
    assert out["spec"] == {"audiences": [API_AUDIENCE], "expirationSeconds": 3600,
                           "boundObjectRef": None}
    claims = claims_of(out["status"]["token"])
    assert claims["exp"] - claims["iat"] == 3600
    status, out = cluster.json("POST", url, {"spec": {"expirationSeconds": 599}})
    assert (status, out["message"]) == (422, 'TokenRequest.authentication.k8s.io "default" is '
                                        "invalid: spec.expirationSeconds: Invalid value: 599: "
                                        "may not specify a duration less than 10 minutes")
    status, out = cluster.json("POST", "/api/v1/namespaces/default/serviceaccounts/nope/token",
                               {"spec": {}})
    assert (status, out["message"]) == (404, 'serviceaccounts "nope" not found')
    status, out = cluster.json("POST", url, {"spec": {"boundObjectRef": {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}}})
    assert (status, out["message"]) == (400, "cannot bind token to object of type apps/v1, "
                                        "Kind=Deployment")


def test_the_token_authenticates_as_the_service_account(cluster: Cluster, kubectl: Kubectl,
                                                         tmp_path: Path) -> None:
    token = kubectl("create", "token", "default").strip()
    kc = Kubectl(kubectl.binary, token_kubeconfig(cluster, token, tmp_path / "sa.kubeconfig"))
    who = kc("auth", "whoami")
    assert "system:serviceaccount:default:default" in who
    assert "[system:serviceaccounts system:serviceaccounts:default system:authenticated]" in who
    assert f"JTI={claims_of(token)['jti']}" in who
    status, body = as_token(cluster, "POST", "/apis/authentication.k8s.io/v1/"
                            "selfsubjectreviews", token, {"kind": "SelfSubjectReview",
                                                          "apiVersion": "authentication.k8s.io/v1"})
    assert status == 201
    assert body["status"]["userInfo"]["uid"] == sa_uid(cluster, "default", "default")
    assert "No resources found" in kc.run("get", "pods", "-n", "kube-public").stderr


def test_bad_tokens_are_401(cluster: Cluster, kubectl: Kubectl, tmp_path: Path) -> None:
    sa_key = (cluster.data_dir / "pki" / "sa.key").read_bytes()
    now = int(time.time())
    good = claims_of(kubectl("create", "token", "default").strip())
    expired = jwt.encode(dict(good, iat=now - 7200, nbf=now - 7200, exp=now - 3600), sa_key,
                         algorithm="RS256")
    other_audience = kubectl("create", "token", "default", "--audience", "x").strip()
    for bad in (expired, other_audience, "garbled", good_token_tampered(kubectl)):
        assert as_token(cluster, "GET", "/api/v1/namespaces/default/pods", bad) == \
            (401, UNAUTHORIZED)
    kc = Kubectl(kubectl.binary, token_kubeconfig(cluster, expired, tmp_path / "x.kubeconfig"))
    p = kc.run("get", "pods", check=False)
    assert p.returncode == 1
    assert "error: You must be logged in to the server (Unauthorized)" in p.stderr


def good_token_tampered(kubectl: Kubectl) -> str:
    """A real token whose claims were changed after signing (another account's name)."""
    head, body, sig = kubectl("create", "token", "default").strip().split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["sub"] = "system:serviceaccount:kube-system:admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


def test_deleting_the_service_account_or_bound_pod_revokes_its_tokens(
        cluster: Cluster, kubectl: Kubectl) -> None:
    kubectl("create", "serviceaccount", "robot")
    token = kubectl("create", "token", "robot").strip()
    assert as_token(cluster, "GET", "/api/v1/namespaces/default/pods", token)[0] == 200
    kubectl("delete", "serviceaccount", "robot")
    wait_for("the robot's token to stop working", lambda: as_token(
        cluster, "GET", "/api/v1/namespaces/default/pods", token) == (401, UNAUTHORIZED))
    kubectl("create", "serviceaccount", "robot")   # same name, another uid
    assert as_token(cluster, "GET", "/api/v1/namespaces/default/pods", token)[0] == 401

    status, pod = create_pod(cluster, "bound", serviceAccountName="robot")
    assert status == 201, pod
    bound = kubectl("create", "token", "robot", "--bound-object-kind", "Pod",
                    "--bound-object-name", "bound").strip()
    assert claims_of(bound)["kubernetes.io"]["pod"] == {"name": "bound",
                                                        "uid": pod["metadata"]["uid"]}
    status, body = as_token(cluster, "POST", "/apis/authentication.k8s.io/v1/"
                            "selfsubjectreviews", bound, {"kind": "SelfSubjectReview"})
    assert body["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"] == \
        ["bound"]
    status, body = cluster.json("POST", "/api/v1/namespaces/default/serviceaccounts/robot/token",
                                {"spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                                             "name": "bound", "uid": "other"}}})
    assert status == 409 and "does not match the UID in record" in body["message"]
    cluster.json("DELETE", "/api/v1/namespaces/default/pods/bound?gracePeriodSeconds=0")
    wait_for("the pod-bound token to stop working", lambda: as_token(
        cluster, "GET", "/api/v1/namespaces/default/pods", bound)[0] == 401)


def test_new_pods_get_the_kube_api_access_volume(cluster: Cluster) -> None:
    status, pod = create_pod(cluster, "mounted", initContainers=[
        {"name": "init", "image": "busybox"}])
    assert status == 201, pod
    spec = pod["spec"]
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "default"
    [vol] = spec["volumes"]
    name = vol["name"]
    assert name.startswith("kube-api-access-") and len(name) == len("kube-api-access-") + 5
    assert vol == {"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt",
                       "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}
    mount = {"name": name, "readOnly": True, "mountPath": MOUNT_PATH}
    assert spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["initContainers"][0]["volumeMounts"] == [mount]


def test_automount_false_and_missing_accounts(cluster: Cluster, kubectl: Kubectl) -> None:
    status, pod = create_pod(cluster, "no-token", automountServiceAccountToken=False)
    assert status == 201 and "volumes" not in pod["spec"]
    assert "volumeMounts" not in pod["spec"]["containers"][0]
    kubectl("create", "serviceaccount", "quiet")
    kubectl("patch", "serviceaccount", "quiet", "-p", '{"automountServiceAccountToken":false}')
    status, pod = create_pod(cluster, "quiet-pod", serviceAccountName="quiet")
    assert status == 201 and "volumes" not in pod["spec"]
    status, pod = create_pod(cluster, "loud-pod", serviceAccountName="quiet",
                             automountServiceAccountToken=True)
    assert status == 201 and pod["spec"]["volumes"][0]["name"].startswith("kube-api-access-")
    status, body = create_pod(cluster, "orphan", serviceAccountName="ghost")
    assert status == 403
    assert body["message"] == ('pods "orphan" is forbidden: error looking up service account '
                               'default/ghost: serviceaccount "ghost" not found')


def test_legacy_token_secrets_are_filled_and_die_with_their_account(
        cluster: Cluster, kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl("create", "serviceaccount", "legacy")
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "legacy-token",
                     "annotations": {"kubernetes.io/service-account.name": "legacy"}}}))
    url = "/api/v1/namespaces/default/secrets/legacy-token"
    secret = wait_for("the tokens controller to fill the secret", lambda: (
        lambda s: s if {"token", "ca.crt", "namespace"} <= set(s.get("data") or {}) else None)(
        cluster.json("GET", url)[1]))
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["namespace"] == "default"
    assert data["ca.crt"] == (cluster.data_dir / "pki" / "ca.crt").read_text()
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == \
        sa_uid(cluster, "default", "legacy")
    assert claims_of(data["token"]) == {
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": "default",
        "kubernetes.io/serviceaccount/secret.name": "legacy-token",
        "kubernetes.io/serviceaccount/service-account.name": "legacy",
        "kubernetes.io/serviceaccount/service-account.uid": sa_uid(cluster, "default", "legacy"),
        "sub": "system:serviceaccount:default:legacy"}
    kc = Kubectl(kubectl.binary, token_kubeconfig(cluster, data["token"], tmp_path / "l.conf"))
    assert "system:serviceaccount:default:legacy" in kc("auth", "whoami")
    kubectl("delete", "serviceaccount", "legacy")
    wait_for("the secret to go with its account", lambda: cluster.json("GET", url)[0] == 404)
    assert as_token(cluster, "GET", "/api/v1/namespaces/default/pods", data["token"]) == \
        (401, UNAUTHORIZED)
