"""Private images and image GC on a real runc node, as root: a second real
docker-registry that wants Basic auth (htpasswd, bcrypt) holds a private image. A pod
without credentials gets ErrImagePull (the registry's 401), one with a
kubernetes.io/dockerconfigjson Secret in imagePullSecrets runs, and so does one
whose ServiceAccount names the Secret (the ServiceAccount admission plugin copies it
into the pod). Then the kubelet, restarted with thresholds that force image GC,
removes the image no container uses and keeps the one a running pod uses, as
`pybernetes images ls` shows before and after."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests import oci_images
from tests.conftest import free_port
from tests.e2e.kubelet_fixtures import (REQUIREMENTS, NodeNet, apply, container_state, in_phase,
                                        pod, pod_json, runc_node, wait_for, wait_node_ready)

pytestmark = REQUIREMENTS + [pytest.mark.skipif(shutil.which("htpasswd") is None,
                                                reason="htpasswd (apache2-utils) is missing")]

SUBNET = 100 + (os.getpid() + 90) % 100   # not the other kubelet modules' in the same run
BRIDGE = f"pyq{os.getpid() % 100000}"
NODE = f"e2e-auth-{os.getpid()}"
NET = NodeNet(NODE, BRIDGE, SUBNET)
USER, PASSWORD = "puller", "s3cret-pass"
REPO = Path(__file__).resolve().parents[2]


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("kubelet-auth")
    htpasswd = tmp / "htpasswd"
    htpasswd.write_text(subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True,
                                       capture_output=True, text=True).stdout)
    private = oci_images.start_registry(tmp / "private-registry", free_port(), htpasswd)
    try:
        auth = {"Authorization": f"Basic {basic(USER, PASSWORD)}"}
        oci_images.push_image(private.url, "private/busybox", "1",
                              oci_images.busybox_image(top_extra=b"private\n"), auth)
        with runc_node(tmp, NET) as e:
            e["private"] = f"{private.host}/private/busybox:1"
            e["private_host"] = private.host
            yield e
    finally:
        private.stop()


def pull_secret(host: str, user: str, password: str) -> dict:
    config = {"auths": {host: {"username": user, "password": password,
                               "auth": basic(user, password)}}}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}}


def images_ls(env: dict) -> set[str]:
    """`pybernetes images ls` of the kubelet's store, as name:tag."""
    p = subprocess.run([sys.executable, "-m", "pybernetes.cli.main", "images", "ls", "--root",
                        str(env["root"] / "images")], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    header, *rows = p.stdout.splitlines()
    assert header.split()[:3] == ["IMAGE", "TAG", "IMAGE"], header
    return {":".join(row.split()[:2]) for row in rows}


def running(env: dict, name: str) -> dict:
    """The pod once Running; its status and the kubelet's log tail if it never gets there."""
    kc = env["kubectl"]
    try:
        return wait_for(f"{name} Running", in_phase(kc, name, "Running"), 120)
    except AssertionError:
        raise AssertionError(json.dumps(pod_json(kc, name).get("status"), indent=1)
                             + env["kubelet"].log()[-3000:]) from None


def test_private_image_needs_its_pull_secret(env: dict) -> None:
    kc = env["kubectl"]
    apply(kc, pod("anon", env["private"], ["sleep", "3600"]))
    waiting = wait_for("ErrImagePull", lambda: (lambda w: w if w.get("reason") in (
        "ErrImagePull", "ImagePullBackOff") else None)(
        container_state(pod_json(kc, "anon")).get("state", {}).get("waiting", {})), 60)
    events = kc("get", "events", "--field-selector", "involvedObject.name=anon")
    assert "may require authorization" in events or "may require authorization" in \
        waiting.get("message", ""), (events, waiting)
    kc("delete", "pod", "anon", "--wait=true", "--timeout=60s")

    # a wrong password is still a 401
    wrong = pull_secret(env["private_host"], USER, "wrong")
    wrong["metadata"]["name"] = "badcred"
    apply(kc, wrong)
    apply(kc, pod("bad", env["private"], ["sleep", "3600"],
                  imagePullSecrets=[{"name": "badcred"}]))
    wait_for("ErrImagePull with bad credentials", lambda: container_state(
        pod_json(kc, "bad")).get("state", {}).get("waiting", {}).get("reason") in (
        "ErrImagePull", "ImagePullBackOff"), 60)
    kc("delete", "pod", "bad", "--wait=true", "--timeout=60s")

    apply(kc, pull_secret(env["private_host"], USER, PASSWORD))
    apply(kc, pod("private", env["private"], ["sleep", "3600"],
                  imagePullSecrets=[{"name": "regcred"}]))
    p = running(env, "private")
    assert "/private/busybox@sha256:" in container_state(p)["imageID"]


def test_service_account_pull_secrets_reach_its_pods(env: dict) -> None:
    kc = env["kubectl"]
    kc("create", "serviceaccount", "builder")
    kc("patch", "serviceaccount", "builder", "-p",
       '{"imagePullSecrets": [{"name": "regcred"}]}')
    apply(kc, pod("via-sa", env["private"], ["sleep", "3600"], serviceAccountName="builder"))
    assert pod_json(kc, "via-sa")["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    running(env, "via-sa")
    kc("delete", "pod", "via-sa", "--wait=true", "--timeout=60s")


def test_image_gc_removes_unused_images_and_keeps_used_ones(env: dict) -> None:
    kc = env["kubectl"]
    public, private = env["image"], env["private"]
    apply(kc, pod("once", public, ["true"], restartPolicy="Never"))
    wait_for("the public image's pod to finish", in_phase(kc, "once", "Succeeded"), 90)
    kc("delete", "pod", "once", "--wait=true", "--timeout=60s")
    before = images_ls(env)
    assert public in before and private in before, before

    kubelet = env["kubelet"]
    kubelet.stop()
    kubelet.net = NodeNet(NET.node, NET.bridge, NET.subnet, [
        "--image-gc-high-threshold", "0", "--image-gc-low-threshold", "0",
        "--image-gc-period", "1s", "--image-minimum-gc-age", "0s"])
    kubelet.start()
    wait_node_ready(kc, NODE)
    wait_for("image GC to remove the unused image", lambda: public not in images_ls(env), 60)
    after = images_ls(env)
    assert private in after, after            # the running pod's image stays
    p = pod_json(kc, "private")
    assert p["status"]["phase"] == "Running"
    assert container_state(p)["restartCount"] == 0
