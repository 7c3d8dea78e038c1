"""A pod's ServiceAccount credentials with the real kubelet (runc): the ServiceAccount
admission plugin adds the kube-api-access volume, the kubelet fills it (a TokenRequest
bound to the pod, the cluster CA from kube-root-ca.crt, the namespace), the container
reads /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace} from a
read-only mount, and the token it read authenticates against the API server from the
host, as the pod's ServiceAccount."""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.kubelet_fixtures import (REQUIREMENTS, NodeNet, apply, in_phase, pod, pod_json,
                                        runc_node, wait_for)

pytestmark = REQUIREMENTS

SUBNET = 100 + (os.getpid() + 30) % 100   # not the other kubelet modules' in the same run
NET = NodeNet(node=f"e2e-sa-{os.getpid()}", bridge=f"pys{os.getpid() % 100000}", subnet=SUBNET)
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with runc_node(tmp_path_factory.mktemp("sa-runc"), NET) as e:
        yield e


def read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def test_a_pod_reads_its_token_and_the_token_authenticates(env: dict) -> None:
    kc, cluster = env["kubectl"], env["cluster"]
    out = Path(env["tmp"], "seen")
    out.mkdir()
    script = (f"cat {SA_DIR}/token > /out/token.tmp; cat {SA_DIR}/ca.crt > /out/ca.crt; "
              f"cat {SA_DIR}/namespace > /out/namespace; "
              f"(touch {SA_DIR}/x 2>/dev/null && echo writable || echo read-only) > /out/rw; "
              "mv /out/token.tmp /out/token; sleep 3600")
    apply(kc, pod("sa-reader", env["image"], ["sh", "-c", script],
                  volumes=[{"name": "out", "hostPath": {"path": str(out)}}],
                  container={"volumeMounts": [{"name": "out", "mountPath": "/out"}]}))
    wait_for("sa-reader Running", in_phase(kc, "sa-reader", "Running"), 60)
    wait_for("the token the pod read", lambda: read(out / "token"), 20)
    p = pod_json(kc, "sa-reader")
    assert read(out / "namespace") == "default"
    assert read(out / "ca.crt") == (cluster.data_dir / "pki" / "ca.crt").read_text()
    assert read(out / "rw").strip() == "read-only"
    token = read(out / "token")
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    k8s = claims["kubernetes.io"]
    assert k8s["pod"] == {"name": "sa-reader", "uid": p["metadata"]["uid"]}
    assert k8s["node"]["name"] == NET.node
    assert claims["exp"] - claims["iat"] == 365 * 24 * 3600   # the kubelet's 3607 s, extended
    assert k8s["warnafter"] == claims["iat"] + 3607
    status, body = cluster.json(
        "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1"},
        anonymous=True, headers={"Authorization": f"Bearer {token}"})
    assert status == 201, body
    user = body["status"]["userInfo"]
    assert user["username"] == "system:serviceaccount:default:default"
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["sa-reader"]
    kc("delete", "pod", "sa-reader", "--wait=true", timeout=60)
    wait_for("the deleted pod's token to stop working", lambda: cluster.json(
        "GET", "/api/v1/namespaces/default/pods", anonymous=True,
        headers={"Authorization": f"Bearer {token}"})[0] == 401, 10)
