"""The API server's checks before it sends pods/log and pods/exec to a kubelet, with
upstream's wording."""
from __future__ import annotations

import pytest

from pybernetes.apiserver.node_proxy import check_log_status, resolve_container
from pybernetes.machinery.errors import StatusError


def pod(containers=("a",), init=(), statuses=None) -> dict:
    return {"metadata": {"name": "p"},
            "spec": {"containers": [{"name": c} for c in containers],
                     "initContainers": [{"name": c} for c in init]},
            "status": {"containerStatuses": statuses or []}}


def message(fn, *args) -> str:
    with pytest.raises(StatusError) as e:
        fn(*args)
    assert e.value.code == 400
    return e.value.message


def test_container_defaults_only_when_unambiguous() -> None:
    assert resolve_container(pod(), "") == "a"
    assert message(resolve_container, pod(("a", "b")), "") == \
        "a container name must be specified for pod p, choose one of: [a b]"
    assert message(resolve_container, pod(("a", "b"), init=("i",)), "") == (
        "a container name must be specified for pod p, choose one of: [a b] "
        "or one of the init containers: [i]")
    assert resolve_container(pod(("a", "b"), init=("i",)), "i") == "i"
    assert message(resolve_container, pod(), "zz") == "container zz is not valid for pod p"


def test_log_status_checks() -> None:
    running = {"name": "a", "state": {"running": {}}, "containerID": "x://1"}
    check_log_status(pod(statuses=[running]), "a", False)
    waiting = {"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}}
    assert message(check_log_status, pod(statuses=[waiting]), "a", False) == \
        'container "a" in pod "p" is waiting to start: ContainerCreating'
    pulling = {"name": "a", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
    assert message(check_log_status, pod(statuses=[pulling]), "a", False) == \
        'container "a" in pod "p" is waiting to start: trying and failing to pull image'
    assert message(check_log_status, pod(statuses=[running]), "a", True) == \
        'previous terminated container "a" in pod "p" not found'
    restarted = dict(running, lastState={"terminated": {"containerID": "x://0"}})
    check_log_status(pod(statuses=[restarted]), "a", True)
    assert message(check_log_status, pod(), "a", False) == \
        'container "a" in pod "p" is not available'
