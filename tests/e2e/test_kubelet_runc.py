"""The real kubelet end to end, as root: a cluster (API server, controller manager,
scheduler), `pybernetes kubelet --runtime runc` as its own process with a root dir,
CNI bridge and pod CIDR of this test's own, and a busybox image (built from Debian's
busybox-static) served by a real local docker-registry. The real kubectl drives it.

What a user sees: an httpd pod goes Running with an IP and answers on it from the
host; a bad image gives ErrImagePull then ImagePullBackOff; a container over its
memory limit is OOMKilled and restarted; env from a ConfigMap and a Secret reaches
the container; deleting a pod sends SIGTERM, then SIGKILL after the grace period;
a kubelet restart leaves running containers alone; and the teardown leaves no
netns, veth, mount, cgroup or process behind."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.kubelet_fixtures import (REQUIREMENTS, KubeletProcess, NodeNet, apply,
                                        assert_node_left_nothing, container_state, http_get,
                                        pod, pod_cgroups, pod_json, runc_node, wait_for)

pytestmark = REQUIREMENTS

SUBNET = 100 + os.getpid() % 100          # 10.<SUBNET>.0.0/16: this test's pod network
BRIDGE = f"pyt{os.getpid() % 100000}"
NODE = f"e2e-runc-{os.getpid()}"
NET = NodeNet(NODE, BRIDGE, SUBNET)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with runc_node(tmp_path_factory.mktemp("kubelet-runc"), NET) as e:
        yield e


def remember(env: dict, p: dict) -> None:
    """Ids of everything this pod had on the node, for the teardown check."""
    uid = p["metadata"]["uid"]
    env["seen"].setdefault(uid, set())
    for s in (p.get("status") or {}).get("containerStatuses") or []:
        for cid in [s.get("containerID", "")] + [
                (s.get("lastState") or {}).get("terminated", {}).get("containerID", "")]:
            if cid:
                env["seen"][uid].add(cid.split("://", 1)[1])


def test_httpd_pod_runs_with_an_ip_and_answers(env: dict) -> None:
    kc = env["kubectl"]
    apply(kc, pod("web", env["image"], ["sh", "-c",
                                        "mkdir -p /www && echo hello from $(hostname) > "
                                        "/www/index.html && exec httpd -f -p 8080 -h /www"]))
    p = wait_for("web Running", lambda: (lambda q: q if (q.get("status") or {}).get("phase")
                                         == "Running" else None)(pod_json(kc, "web")), 40)
    ip = p["status"]["podIP"]
    assert ip.startswith(f"10.{SUBNET}."), ip
    assert p["status"]["hostIP"] and p["status"]["qosClass"] == "BestEffort"
    st = container_state(p)
    assert st["containerID"].startswith("runc://") and st["restartCount"] == 0
    assert st["imageID"].startswith(f"{env['registry'].host}/e2e/busybox@sha256:")
    wide = kc("get", "pods", "-o", "wide")
    assert "web" in wide and "Running" in wide and ip in wide and NODE in wide
    body = wait_for("httpd to answer on the pod IP", lambda: http_get(f"http://{ip}:8080/"), 15)
    assert body.strip() == "hello from web"
    ready = wait_for("Ready", lambda: pod_json(kc, "web")["status"]["conditions"], 10)
    kinds = {c["type"]: c["status"] for c in ready}
    assert kinds["Ready"] == "True" and kinds["ContainersReady"] == "True"
    assert kinds["Initialized"] == "True" and kinds["PodScheduled"] == "True"
    env["web_ip"] = ip
    remember(env, p)


def test_bad_image_gives_err_image_pull_then_backoff(env: dict) -> None:
    kc = env["kubectl"]
    apply(kc, pod("badimage", f"{env['registry'].host}/e2e/no-such-image:1", ["true"]))
    wait_for("ImagePullBackOff", lambda: (container_state(pod_json(kc, "badimage"))
                                          .get("state", {}).get("waiting", {}).get("reason")
                                          == "ImagePullBackOff"), 30)
    events = kc("get", "events", "--field-selector", "involvedObject.name=badimage")
    assert "Error: ErrImagePull" in events and "Error: ImagePullBackOff" in events
    assert pod_json(kc, "badimage")["status"]["phase"] == "Pending"
    remember(env, pod_json(kc, "badimage"))


def test_oom_killed_container_is_restarted(env: dict) -> None:
    kc = env["kubectl"]
    apply(kc, pod("hog", env["image"], ["sh", "-c", 'a=x; while true; do a="$a$a"; done'],
                  container={"resources": {"limits": {"memory": "24Mi"}}}))
    p = wait_for("OOMKilled and a restart", lambda: (lambda q: q if container_state(q).get(
        "restartCount", 0) >= 1 and container_state(q).get("lastState", {}).get(
        "terminated", {}).get("reason") == "OOMKilled" else None)(pod_json(kc, "hog")), 40)
    assert p["status"]["qosClass"] == "Burstable"   # a memory limit only
    remember(env, p)


def test_env_from_configmap_and_secret(env: dict) -> None:
    kc = env["kubectl"]
    kc("create", "configmap", "settings", "--from-literal=color=blue")
    kc("create", "secret", "generic", "creds", "--from-literal=password=s3cret")
    apply(kc, pod("envpod", env["image"], ["sh", "-c", "echo color=$COLOR password=$PASSWORD"],
                  restartPolicy="Never", container={"env": [
                      {"name": "COLOR", "valueFrom": {"configMapKeyRef": {
                          "name": "settings", "key": "color"}}},
                      {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {
                          "name": "creds", "key": "password"}}}]}))
    p = wait_for("envpod Succeeded", lambda: (lambda q: q if (q.get("status") or {}).get(
        "phase") == "Succeeded" else None)(pod_json(kc, "envpod")), 40)
    term = container_state(p)["state"]["terminated"]
    assert term["reason"] == "Completed" and term["exitCode"] == 0
    uid = p["metadata"]["uid"]
    log = Path(env["tmp"], "kubelet", "logs", "pods", f"default_envpod_{uid}", "c", "0.log")
    assert log.read_text().rstrip().endswith("stdout F color=blue password=s3cret")
    remember(env, p)


def test_probes_restart_a_dead_container_and_keep_an_unready_one_out(env: dict) -> None:
    kc = env["kubectl"]
    manifest = pod("probed", env["image"], ["sleep", "3600"], container_name="unready",
                   container={"readinessProbe": {"exec": {"command": ["cat", "/nope"]},
                                                 "periodSeconds": 1}})
    manifest["spec"]["containers"].append({
        "name": "dying", "image": env["image"], "command": ["sleep", "3600"],
        "livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1,
                          "failureThreshold": 1}})
    apply(kc, manifest)

    def restarted() -> dict | None:
        q = pod_json(kc, "probed")
        by_name = {s["name"]: s for s in (q.get("status") or {}).get("containerStatuses") or []}
        dying = by_name.get("dying", {})
        return q if dying.get("restartCount", 0) >= 1 and "running" in by_name.get(
            "unready", {}).get("state", {}) else None
    p = wait_for("the dying container restarted", restarted, 40)
    unready = container_state(p, 0)
    assert unready["name"] == "unready" and unready["ready"] is False
    ready = {c["type"]: c for c in p["status"]["conditions"]}["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    assert "unready" in ready["message"]
    events = kc("get", "events", "--field-selector", "involvedObject.name=probed")
    assert "Liveness probe failed" in events and "Readiness probe failed" in events
    assert "failed liveness probe, will be restarted" in events
    remember(env, p)


def test_delete_sends_sigterm_then_sigkill_after_grace(env: dict) -> None:
    kc = env["kubectl"]
    out = Path(env["tmp"], "sigterm")
    out.mkdir()
    script = ('trap "echo TERM >> /out/log" TERM; echo started >> /out/log; '
              'while true; do echo alive >> /out/log; sleep 0.2; done')
    apply(kc, pod("stubborn", env["image"], ["sh", "-c", script],
                  terminationGracePeriodSeconds=3,
                  volumes=[{"name": "out", "hostPath": {"path": str(out)}}],
                  container={"volumeMounts": [{"name": "out", "mountPath": "/out"}]}))
    p = wait_for("stubborn Running", lambda: (lambda q: q if (q.get("status") or {}).get(
        "phase") == "Running" else None)(pod_json(kc, "stubborn")), 40)
    remember(env, p)
    wait_for("the trap to be set", lambda: "alive" in (out / "log").read_text()
             if (out / "log").exists() else False, 10)
    cid = container_state(p)["containerID"].split("://")[1]
    pid = json.load(open(Path(env["tmp"], "kubelet", "runc", "containers", cid,
                              "monitor.json")))["pid"]
    kc("delete", "pod", "stubborn", "--wait=true", timeout=40)
    lines = (out / "log").read_text().split()
    assert lines[0] == "started" and "TERM" in lines, lines
    after = lines[lines.index("TERM") + 1:]
    assert after.count("alive") >= 3, lines   # it lived on through the grace period ...
    assert not os.path.exists(f"/proc/{pid}")  # ... and was killed at its end


def test_kubelet_restart_keeps_running_containers(env: dict) -> None:
    kc, kubelet = env["kubectl"], env["kubelet"]
    before = pod_json(kc, "web")
    done_before = container_state(pod_json(kc, "envpod"))["containerID"]
    cid = container_state(before)["containerID"].split("://")[1]
    pid = json.load(open(Path(env["tmp"], "kubelet", "runc", "containers", cid,
                              "monitor.json")))["pid"]
    kubelet.stop()
    kubelet.start()
    wait_for("the restarted kubelet to log in", lambda: kubelet.log_path.read_text().count(
        "kubelet: node") >= 2, 30)   # the whole log: its tail may hold only newer lines
    time.sleep(2)  # a relist and a sync of every pod have happened by now
    after = pod_json(kc, "web")
    st = container_state(after)
    assert st["containerID"] == f"runc://{cid}" and st["restartCount"] == 0
    assert after["status"]["phase"] == "Running"
    assert os.path.exists(f"/proc/{pid}")
    done = pod_json(kc, "envpod")   # a finished pod is not run again
    assert done["status"]["phase"] == "Succeeded"
    assert container_state(done)["containerID"] == done_before
    assert http_get(f"http://{env['web_ip']}:8080/").strip() == "hello from web"


def test_process_runtime_runs_host_processes(env: dict) -> None:
    kc, node = env["kubectl"], f"{NODE}-proc"
    kubelet = KubeletProcess(env["cluster"], Path(env["tmp"], "kubelet-proc"), NET, "process",
                             node)
    kubelet.start()
    try:
        wait_for("the process node", lambda: "True" in kc.run(
            "get", "node", node, "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False).stdout,
            timeout=30)
        assert "process://" in kc("get", "node", node, "-o",
                                  "jsonpath={.status.nodeInfo.containerRuntimeVersion}")
        apply(kc, pod("hostproc", env["image"], ["sh", "-c", "echo pid $$ on the host"],
                      restartPolicy="Never", nodeName=node))
        p = wait_for("hostproc Succeeded", lambda: (lambda q: q if (q.get("status") or {})
                     .get("phase") == "Succeeded" else None)(pod_json(kc, "hostproc")), 30)
        assert p["status"]["podIP"] == p["status"]["hostIP"]   # the node's network
        assert container_state(p)["containerID"].startswith("process://")
        log = Path(env["tmp"], "kubelet-proc", "logs", "pods",
                   f"default_hostproc_{p['metadata']['uid']}", "c", "0.log")
        assert " stdout F pid " in log.read_text()
        kc("delete", "pod", "hostproc", "--wait=true", timeout=30)
    finally:
        kubelet.stop()
    kc("delete", "node", node)


def test_seccomp_profiles(env: dict) -> None:
    """securityContext.seccompProfile: RuntimeDefault (here the pod's) refuses new
    namespaces and mounts; a privileged, Unconfined container may do both; a Localhost
    profile comes from the kubelet's <root-dir>/seccomp."""
    kc = env["kubectl"]
    profiles = Path(env["tmp"], "kubelet", "seccomp")
    profiles.mkdir(exist_ok=True)
    (profiles / "no-mkdir.json").write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    tries = ("unshare -U true && echo userns-ok || echo userns-denied; "
             "mount -t tmpfs none /tmp && echo mount-ok || echo mount-denied")
    default = {"seccompProfile": {"type": "RuntimeDefault"}}
    apply(kc, pod("sec-default", env["image"], ["sh", "-c", tries], restartPolicy="Never",
                  securityContext=default))
    apply(kc, pod("sec-privileged", env["image"], ["sh", "-c", tries], restartPolicy="Never",
                  securityContext=default, container={"securityContext": {
                      "privileged": True, "seccompProfile": {"type": "Unconfined"}}}))
    apply(kc, pod("sec-local", env["image"], ["sh", "-c", "mkdir /tmp/d || echo mkdir-denied"],
                  restartPolicy="Never", securityContext={"seccompProfile": {
                      "type": "Localhost", "localhostProfile": "no-mkdir.json"}}))
    for name in ("sec-default", "sec-privileged", "sec-local"):
        remember(env, wait_for(f"{name} Succeeded", lambda: (lambda q: q if (
            q.get("status") or {}).get("phase") == "Succeeded" else None)(
                pod_json(kc, name)), 40))
    assert logged(env, "sec-default") == ["userns-denied", "mount-denied"]
    assert logged(env, "sec-privileged") == ["userns-ok", "mount-ok"]
    assert logged(env, "sec-local") == ["mkdir-denied"]


def logged(env: dict, name: str) -> list[str]:
    """What the pod's container wrote to stdout (its CRI log file: this node's kubelet
    serves no logs API)."""
    uid = pod_json(env["kubectl"], name)["metadata"]["uid"]
    log = Path(env["tmp"], "kubelet", "logs", "pods", f"default_{name}_{uid}", "c", "0.log")
    return [line.split(" ", 3)[3] for line in log.read_text().splitlines()
            if line.split(" ", 3)[1] == "stdout"]


def test_teardown_leaves_nothing_behind(env: dict) -> None:
    kc = env["kubectl"]
    for name in ("web", "badimage", "hog", "envpod", "probed", "sec-default",
                 "sec-privileged", "sec-local"):
        remember(env, pod_json(kc, name))
    kc("delete", "pods", "--all", "--wait=true", timeout=60)
    root = Path(env["tmp"], "kubelet")
    assert_node_left_nothing(root, BRIDGE)
    for uid in env["seen"]:
        assert not pod_cgroups(uid)
        assert not (root / "pods" / uid).exists()
    ids = set().union(*env["seen"].values())
    assert ids
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmdline = open(f"/proc/{d}/cmdline", "rb").read().decode(errors="replace")
            except OSError:
                continue
            assert not any(i in cmdline for i in ids), cmdline
    leases = list((root / "cni" / "ipam").rglob("10.*"))
    assert not leases, leases
