"""The same server on a real etcd (`--storage etcd`): kubectl works, state lives in etcd
and survives an API server restart."""
from __future__ import annotations

import json

import pytest

from ..conftest import Kubectl, kubectl_binary, start_cluster
from ..storage.conftest import ETCD_BIN, EtcdServer

pytestmark = [pytest.mark.etcd,
              pytest.mark.skipif(ETCD_BIN is None, reason="etcd binary not installed"),
              pytest.mark.skipif(kubectl_binary("1.33") is None, reason="no kubectl 1.33")]

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: "nginx:1.27"}]
"""


def test_kubectl_session_on_etcd(tmp_path) -> None:
    etcd = EtcdServer(tmp_path / "etcd")
    etcd.start()
    data = tmp_path / "server"
    extra = ["--storage", "etcd", "--etcd-endpoints", etcd.url]
    try:
        c = start_cluster(data, extra=extra)
        try:
            k = Kubectl(kubectl_binary("1.33"), c.kubeconfig)
            assert "namespace/on-etcd created" in k("create", "namespace", "on-etcd")
            assert "deployment.apps/web created" in k("-n", "on-etcd", "apply", "-f", "-",
                                                      input=DEPLOY)
            k("-n", "on-etcd", "create", "configmap", "settings", "--from-literal=a=1")
            k("-n", "on-etcd", "label", "configmap", "settings", "tier=db")
            assert k("-n", "on-etcd", "get", "cm", "-l", "tier=db", "-o", "name").split() == \
                ["configmap/settings"]
            before = json.loads(k("-n", "on-etcd", "get", "deploy", "web", "-o", "json"))
            svc = json.loads(k("get", "svc", "kubernetes", "-o", "json"))
            assert svc["spec"]["clusterIP"] == "10.43.0.1"
        finally:
            assert c.stop() == 0
        c = start_cluster(data, port=c.port, extra=extra)
        try:
            k = Kubectl(kubectl_binary("1.33"), c.kubeconfig)
            after = json.loads(k("-n", "on-etcd", "get", "deploy", "web", "-o", "json"))
            assert after["metadata"]["uid"] == before["metadata"]["uid"]
            assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
            assert 'configmap "settings" deleted' in k("-n", "on-etcd", "delete", "cm", "settings")
            table = k("-n", "on-etcd", "get", "deploy")
            assert table.split("\n")[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE",
                                                    "AGE"]
        finally:
            c.stop()
    finally:
        etcd.stop()
