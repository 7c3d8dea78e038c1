"""Every manifest in examples/ is accepted by the API server as a user would apply it."""
from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_all_examples_apply(kubectl) -> None:
    out = kubectl("apply", "-f", str(EXAMPLES))
    for created in ("deployment.apps/nginx-deployment created",
                    "deployment.apps/hello-world created", "job.batch/pi created",
                    "cronjob.batch/hello created", "statefulset.apps/web created",
                    "daemonset.apps/fluentd-elasticsearch created",
                    "resourcequota/compute-quota created"):
        assert created in out
    # the StatefulSet's container mounts a volume that only its claim template declares
    mounts = kubectl("get", "statefulset", "web", "-o",
                     "jsonpath={.spec.template.spec.containers[0].volumeMounts[0].name}")
    assert mounts == "www"
