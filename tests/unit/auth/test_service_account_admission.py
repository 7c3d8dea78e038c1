"""The ServiceAccount admission plugin's pod mutation, field by field as upstream writes it."""
from __future__ import annotations

import re

from pybernetes.admission.service_account import MOUNT_PATH, mount_token, should_automount


def test_every_container_gets_the_kube_api_access_volume_read_only():
    spec = {"initContainers": [{"name": "init"}],
            "containers": [{"name": "a", "volumeMounts": [{"name": "d", "mountPath": "/d"}]},
                           {"name": "b"}],
            "volumes": [{"name": "d", "emptyDir": {}}]}
    mount_token(spec)
    vol = spec["volumes"][-1]
    assert re.fullmatch(r"kube-api-access-[bcdfghjklmnpqrstvwxz2456789]{5}", vol["name"])
    assert vol["projected"] == {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}
    mount = {"name": vol["name"], "readOnly": True, "mountPath": MOUNT_PATH}
    assert spec["initContainers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "d", "mountPath": "/d"}, mount]
    assert spec["containers"][1]["volumeMounts"] == [mount]


def test_a_users_own_mount_at_the_path_wins():
    spec = {"containers": [{"name": "a", "volumeMounts": [
        {"name": "mine", "mountPath": MOUNT_PATH}]}], "volumes": [{"name": "mine",
                                                                    "emptyDir": {}}]}
    mount_token(spec)
    assert [v["name"] for v in spec["volumes"]] == ["mine"]


def test_pod_setting_wins_over_the_accounts():
    assert should_automount({}, {})
    assert not should_automount({"automountServiceAccountToken": False}, {})
    assert should_automount({"automountServiceAccountToken": False},
                            {"automountServiceAccountToken": True})
    assert not should_automount({}, {"automountServiceAccountToken": False})
