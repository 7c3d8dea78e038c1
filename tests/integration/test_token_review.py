"""TokenReview (authentication.k8s.io/v1) against a real API server and controller-manager,
with the real kubectl: `kubectl create -f tokenreview.yaml -o yaml` says whose a
ServiceAccount token is and for which audiences, as a webhook authenticator (or the
kubelet's delegated authentication) asks kube-apiserver."""
from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import Cluster, Kubectl, kubectl_binary

API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
# conftest's cluster fixture; start_cluster waits for the default ServiceAccount
CLUSTER_COMPONENTS = ("controller-manager",)


def review(kubectl: Kubectl, token: str, audiences: list[str] | None = None) -> dict:
    spec: dict = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    manifest = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
    # --validate=false: kubectl's client-side check of a kind without a PATCH endpoint ends
    # in listing CustomResourceDefinitions, which this server does not serve yet
    return yaml.safe_load(kubectl("create", "-f", "-", "-o", "yaml", "--validate=false",
                                  input=yaml.safe_dump(manifest)))


def sa_uid(kubectl: Kubectl, name: str) -> str:
    return kubectl("get", "serviceaccount", name, "-o", "jsonpath={.metadata.uid}")


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_a_service_account_token_is_reviewed(kubectl: Kubectl, version: str):
    binary = kubectl_binary(version)
    if binary is None:
        pytest.skip(f"no kubectl {version}")
    kc = Kubectl(binary, kubectl.kubeconfig)
    token = kc("create", "token", "default").strip()
    out = review(kc, token)
    assert out["kind"] == "TokenReview"
    assert out["apiVersion"] == "authentication.k8s.io/v1"
    assert out["spec"] == {"token": token}
    status = out["status"]
    assert status["authenticated"] is True
    assert status["audiences"] == [API_AUDIENCE]
    assert "error" not in status
    user = status["user"]
    assert user["username"] == "system:serviceaccount:default:default"
    assert user["uid"] == sa_uid(kc, "default")
    assert user["groups"] == ["system:serviceaccounts", "system:serviceaccounts:default",
                              "system:authenticated"]
    assert user["extra"][CREDENTIAL_ID][0].startswith("JTI=")


def test_create_raw_posts_the_review_as_is(kubectl: Kubectl, tmp_path):
    token = kubectl("create", "token", "default").strip()
    path = tmp_path / "tokenreview.json"
    path.write_text(json.dumps({"apiVersion": "authentication.k8s.io/v1",
                                "kind": "TokenReview", "spec": {"token": token}}))
    out = yaml.safe_load(kubectl("create", "--raw", "/apis/authentication.k8s.io/v1/tokenreviews",
                                 "-f", str(path)))
    assert out["status"]["authenticated"] is True
    assert out["status"]["user"]["username"] == "system:serviceaccount:default:default"


def test_audiences_are_matched_as_asked(kubectl: Kubectl):
    token = kubectl("create", "token", "default", "--audience", "vault",
                    "--audience", "other").strip()
    status = review(kubectl, token, ["vault", "elsewhere"])["status"]
    assert status["authenticated"] is True
    assert status["audiences"] == ["vault"]   # what the token and the request share

    for asked in (None, ["elsewhere"]):   # none asked: the API server's own audience
        status = review(kubectl, token, asked)["status"]
        assert "authenticated" not in status and "audiences" not in status
        assert status["user"] == {}
        assert "is invalid for the target audiences" in status["error"]


def test_tokens_that_do_not_authenticate(kubectl: Kubectl):
    kubectl("create", "serviceaccount", "gone")
    token = kubectl("create", "token", "gone").strip()
    assert review(kubectl, token)["status"]["authenticated"] is True
    kubectl("delete", "serviceaccount", "gone")
    head, body, sig = kubectl("create", "token", "default").strip().split(".")
    tampered = ".".join((head, body, sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")))
    for token in ("garbled", tampered, token):
        status = review(kubectl, token)["status"]
        assert "authenticated" not in status, token
        assert status["user"] == {}
        assert status["error"].startswith("[invalid bearer token, ")


def test_bad_reviews_are_refused(cluster: Cluster, kubectl: Kubectl):
    url = "/apis/authentication.k8s.io/v1/tokenreviews"
    code, body = cluster.json("POST", url, {"spec": {}})
    assert (code, body["reason"], body["message"]) == (
        400, "BadRequest", "token is required for TokenReview in authentication")
    p = kubectl.run("create", "-f", "-", "--validate=false", input=yaml.safe_dump(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
         "spec": {"token": 5}}), check=False)
    assert p.returncode != 0
    code, _ = cluster.json("GET", url)
    assert code == 405
    resources = yaml.safe_load(kubectl("get", "--raw", "/apis/authentication.k8s.io/v1"))
    tr = next(r for r in resources["resources"] if r["name"] == "tokenreviews")
    assert (tr["kind"], tr["namespaced"], tr["verbs"]) == ("TokenReview", False, ["create"])
