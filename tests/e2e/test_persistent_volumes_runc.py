"""Data that outlives its pod, on a real node (runc), as on k3s: a pod writes into a
claim of the default local-path class, is deleted, and a second pod reads the data
back from the same volume; a StatefulSet pod recreated after deletion finds what its
predecessor wrote in its claim. Deleting the claim deletes the volume and its data."""
from __future__ import annotations

import json
import os
import stat
from typing import Iterator

import pytest

from tests.e2e.kubelet_fixtures import (REQUIREMENTS, NodeNet, apply, container_state, in_phase,
                                        pod, pod_json, runc_node, wait_for)

pytestmark = REQUIREMENTS
SUBNET = 100 + (os.getpid() + 70) % 100   # not the other kubelet modules' in the same run
NET = NodeNet(node=f"e2e-pv-{os.getpid()}", bridge=f"pyv{os.getpid() % 100000}",
              subnet=SUBNET)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with runc_node(tmp_path_factory.mktemp("kubelet-pv"), NET, delete="statefulsets,pods") as e:
        yield e


def claim(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "64Mi"}}}}


def with_claim(p: dict, claim_name: str) -> dict:
    p["spec"]["restartPolicy"] = "Never"
    p["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}]
    p["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    return p


def test_data_outlives_the_pod_that_wrote_it(env: dict):
    kc, image = env["kubectl"], env["image"]
    apply(kc, claim("notes"))
    # a non-root writer: the provisioned directory is world-writable, as local-path's
    apply(kc, with_claim(pod("writer", image, ["sh", "-c", "echo written-by-$(hostname) "
                                                             "> /data/note"],
                             securityContext={"runAsUser": 1000}), "notes"))
    wait_for("the writer to finish", in_phase(kc, "writer", "Succeeded"), timeout=60)
    pvc = json.loads(kc("get", "pvc", "notes", "-o", "json"))
    uid = pvc["metadata"]["uid"]
    data_dir = env["storage"] / f"pvc-{uid}_default_notes"
    assert (data_dir / "note").read_text() == "written-by-writer\n"
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o777
    kc("delete", "pod", "writer")

    apply(kc, with_claim(pod("reader", image, ["sh", "-c",
                                               "cat /data/note > /dev/termination-log"]),
                         "notes"))
    done = wait_for("the reader to finish", in_phase(kc, "reader", "Succeeded"), timeout=60)
    assert container_state(done)["state"]["terminated"]["message"] == "written-by-writer\n"
    kc("delete", "pod", "reader")

    # reclaim policy Delete: the volume and its directory go with the claim
    kc("delete", "pvc", "notes")
    wait_for("the volume's data to be removed", lambda: not data_dir.exists())
    wait_for("the volume to be deleted",
             lambda: f"pvc-{uid}" not in kc("get", "pv", "-o", "name"))


def test_statefulset_pod_finds_its_claim_again(env: dict):
    kc, image = env["kubectl"], env["image"]
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
           "spec": {"replicas": 1, "serviceName": "web",
                    "selector": {"matchLabels": {"app": "web-pv"}},
                    "template": {"metadata": {"labels": {"app": "web-pv"}}, "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "c", "image": image, "command": [
                            "sh", "-c", "date +%s%N >> /www/starts; sleep 3600"],
                            "volumeMounts": [{"name": "www", "mountPath": "/www"}]}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "64Mi"}}}}]}}
    apply(kc, sts)
    first = wait_for("web-0 to run", in_phase(kc, "web-0", "Running"), timeout=60)
    kc("delete", "pod", "web-0")
    wait_for("web-0 to come back", lambda: (p := in_phase(kc, "web-0", "Running")()) and
             p["metadata"]["uid"] != first["metadata"]["uid"], timeout=60)
    uid = json.loads(kc("get", "pvc", "www-web-0", "-o", "json"))["metadata"]["uid"]
    starts = env["storage"] / f"pvc-{uid}_default_www-web-0" / "starts"
    wait_for("the second start to be written",
             lambda: len(starts.read_text().split()) == 2)  # appended to the first one's
    kc("delete", "statefulset", "web")
    wait_for("web-0 to go", lambda: not pod_json(kc, "web-0"), timeout=40)
    kc("delete", "pvc", "www-web-0")
