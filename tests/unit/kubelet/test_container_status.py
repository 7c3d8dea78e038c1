"""Pod status from runtime containers: states, reasons, lastState, phase."""
from __future__ import annotations

import argparse
import os

from pybernetes.cli import kubelet as cli
from pybernetes.kubelet import container_status as cst
from pybernetes.kubelet.runtime.base import ContainerStatus


def cs(name: str = "c", attempt: int = 0, state: str = "running", code: int = 0,
       reason: str = "") -> ContainerStatus:
    return ContainerStatus(id=f"id-{name}-{attempt}", name=name, attempt=attempt, state=state,
                           created_at=1.0, started_at=2.0, finished_at=3.0 if state == "exited"
                           else 0.0, exit_code=code, reason=reason)


def status(view: cst.ContainerView) -> dict:
    return cst.api_container_status(view)


def test_running_container() -> None:
    s = status(cst.ContainerView(spec={"name": "c", "image": "busybox"}, latest=cs(),
                                 ready=True, image_id="reg/busybox@sha256:1"))
    assert s["state"]["running"]["startedAt"] == "1970-01-01T00:00:02Z"
    assert s["ready"] and s["started"] and s["restartCount"] == 0
    assert s["containerID"] == "runc://id-c-0" and s["imageID"] == "reg/busybox@sha256:1"


def test_oom_killed_then_crash_loop_back_off() -> None:
    latest = cs(attempt=2, state="exited", code=137, reason="OOMKilled")
    s = status(cst.ContainerView(spec={"name": "c"}, latest=latest,
                                 waiting=("CrashLoopBackOff", "back-off 20s ...")))
    assert s["state"] == {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": "back-off 20s ..."}}
    assert s["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert s["lastState"]["terminated"]["exitCode"] == 137
    assert s["restartCount"] == 2 and not s["ready"]


def test_restarted_container_keeps_previous_as_last_state() -> None:
    s = status(cst.ContainerView(spec={"name": "c"}, latest=cs(attempt=1),
                                 previous=cs(attempt=0, state="exited", code=1)))
    assert "running" in s["state"] and s["restartCount"] == 1
    assert s["lastState"]["terminated"]["reason"] == "Error"


def test_not_created_yet_is_container_creating_or_pull_error() -> None:
    assert status(cst.ContainerView(spec={"name": "c"}))["state"] == {
        "waiting": {"reason": "ContainerCreating"}}
    s = status(cst.ContainerView(spec={"name": "c"}, waiting=("ErrImagePull", "not found")))
    assert s["state"]["waiting"]["reason"] == "ErrImagePull" and "containerID" not in s


def test_pod_phase() -> None:
    run = {"state": {"running": {}}}
    ok = {"state": {"terminated": {"exitCode": 0}}}
    bad = {"state": {"terminated": {"exitCode": 1}}}
    wait = {"state": {"waiting": {"reason": "ContainerCreating"}}}
    looping = {"state": {"waiting": {"reason": "CrashLoopBackOff"}},
               "lastState": {"terminated": {"exitCode": 1}}}
    assert cst.pod_phase({}, [], [run]) == "Running"
    assert cst.pod_phase({}, [], [wait]) == "Pending"
    assert cst.pod_phase({}, [], [looping]) == "Running"
    assert cst.pod_phase({"restartPolicy": "Never"}, [], [ok]) == "Succeeded"
    assert cst.pod_phase({"restartPolicy": "Never"}, [], [ok, bad]) == "Failed"
    assert cst.pod_phase({"restartPolicy": "OnFailure"}, [], [bad]) == "Running"
    assert cst.pod_phase({}, [{"name": "i", **run}], [wait]) == "Pending"
    assert cst.pod_phase({"restartPolicy": "Never"}, [{"name": "i", **bad}], [wait]) == "Failed"
    assert cst.pod_phase({}, [{"name": "i", **ok}], [run]) == "Running"


def test_should_restart() -> None:
    assert cst.should_restart("Always", cs(state="exited"))
    assert not cst.should_restart("OnFailure", cs(state="exited"))
    assert cst.should_restart("OnFailure", cs(state="exited", code=2))
    assert not cst.should_restart("Never", cs(state="exited", code=2))


def _args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    return parser.parse_args(["kubelet", "--kubeconfig", "k", *sum(
        ([f"--{k.replace('_', '-')}", v] for k, v in kw.items()), [])])


def test_runc_without_root_falls_back_to_process(monkeypatch, capsys) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    args = _args(runtime="runc")
    assert cli._check(args) == ""
    assert args.runtime == "process"
    assert "not running as root" in capsys.readouterr().err


def test_real_runtime_flags_are_checked() -> None:
    assert "--pod-cidr" in cli._check(_args(runtime="process", pod_cidr="10.1.2"))
    assert "--cluster-dns" in cli._check(_args(runtime="process", cluster_dns="nope"))
    assert "--cni-bridge" in cli._check(_args(runtime="process",
                                              cni_bridge="a-very-long-bridge-name"))
