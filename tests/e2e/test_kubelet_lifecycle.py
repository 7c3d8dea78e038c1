"""The real kubelet (runc) through a pod's life, as a user sees it with the real
kubectl: ConfigMap and Secret volumes (a ConfigMap change reaches the mounted file of
a running pod; items and defaultMode; an optional missing ConfigMap does not block),
init containers in order and a failing one (Init:Error, Init:CrashLoopBackOff),
postStart/preStop exec hooks, a crash loop whose back-off doubles, a hostPort on the
node's 127.0.0.1, and a 50-pod churn that leaves nothing behind.

The kubelet runs with short periods so the test is quick: pods are resynced every
second (--sync-frequency 1: ConfigMap changes show up within about that) and the
restart back-off starts at 1 s and doubles up to 4 s."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import Kubectl, free_port
from tests.e2e.kubelet_fixtures import (REQUIREMENTS, NodeNet, apply, container_ids, http_get,
                                        in_phase, pod, pod_cgroups, pod_json, processes_with,
                                        runc_node, wait_for)

pytestmark = REQUIREMENTS

SUBNET = 100 + (os.getpid() + 50) % 100   # not test_kubelet_runc.py's, in the same run
NET = NodeNet(node=f"e2e-life-{os.getpid()}", bridge=f"pyl{os.getpid() % 100000}",
              subnet=SUBNET,
              extra=["--sync-frequency", "1", "--crash-loop-backoff-initial", "1",
                     "--crash-loop-backoff-max", "4"])
CHURN = 50


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with runc_node(tmp_path_factory.mktemp("kubelet-life"), NET) as e:
        yield e


def out_dir(env: dict, name: str) -> Path:
    """A host directory a pod writes what it saw into (a hostPath volume)."""
    d = Path(env["tmp"], name)
    d.mkdir()
    return d


def read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def container_log(env: dict, p: dict, container: str) -> str:
    md = p["metadata"]
    return read(Path(env["root"], "logs", "pods", f"default_{md['name']}_{md['uid']}",
                     container, "0.log"))


def status_cell(kc: Kubectl, name: str) -> str:
    """The STATUS column of `kubectl get pod`, as a user reads it."""
    row = kc.run("get", "pod", name, "--no-headers", check=False).stdout.split()
    return row[2] if len(row) > 2 else ""


class Watch:
    """`kubectl get pod NAME -w` with a jsonpath, its lines gathered in a thread."""

    def __init__(self, kc: Kubectl, name: str, jsonpath: str):
        env = dict(os.environ, KUBECONFIG=kc.kubeconfig)
        self.proc = subprocess.Popen([kc.binary, "get", "pod", name, "-w", "-o",
                                      f"jsonpath={jsonpath}"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env)
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        self.thread.join(5)


def delete_pods(kc: Kubectl, *names: str) -> None:
    kc("delete", "pod", *names, "--wait=true", timeout=60)


def test_configmap_and_secret_volumes_reach_a_running_pod(env: dict) -> None:
    kc = env["kubectl"]
    out = out_dir(env, "volumes")
    kc("create", "configmap", "webcfg", "--from-literal=greeting=hello")
    kc("create", "secret", "generic", "creds", "--from-literal=user=admin",
       "--from-literal=pass=s3cret")
    script = ("ls -lL /sec/creds/password > /out/secret-ls; cat /sec/creds/password > /out/secret; "
              "ls /sec > /out/secret-top; ls /opt > /out/optional; "
              "while true; do cat /cfg/greeting > /out/greeting.new; "
              "cat /out/greeting.new > /out/greeting; sleep 0.2; done")
    apply(kc, pod("volpod", env["image"], ["sh", "-c", script], volumes=[
        {"name": "cfg", "configMap": {"name": "webcfg"}},
        {"name": "sec", "secret": {"secretName": "creds", "defaultMode": 0o400,
                                   "items": [{"key": "pass", "path": "creds/password"}]}},
        {"name": "opt", "configMap": {"name": "no-such-config", "optional": True}},
        {"name": "out", "hostPath": {"path": str(out)}}],
        container={"volumeMounts": [{"name": "cfg", "mountPath": "/cfg"},
                                    {"name": "sec", "mountPath": "/sec"},
                                    {"name": "opt", "mountPath": "/opt"},
                                    {"name": "out", "mountPath": "/out"}]}))
    wait_for("volpod Running (the optional ConfigMap is missing)",
             in_phase(kc, "volpod", "Running"), 40)
    wait_for("the mounted ConfigMap", lambda: read(out / "greeting") == "hello", 10)
    assert read(out / "secret") == "s3cret"
    assert read(out / "secret-ls").split()[0] == "-r--------"   # defaultMode 0400
    assert read(out / "secret-top").split() == ["creds"]   # only the item
    assert read(out / "optional") == ""
    kc("patch", "configmap", "webcfg", "-p", '{"data":{"greeting":"goodbye"}}')
    wait_for("the ConfigMap change in the running pod",
             lambda: read(out / "greeting") == "goodbye", 15)
    assert pod_json(kc, "volpod")["status"]["containerStatuses"][0]["restartCount"] == 0
    delete_pods(kc, "volpod")


def test_init_containers_run_in_order_and_hooks_run(env: dict) -> None:
    kc = env["kubectl"]
    out = out_dir(env, "hooks")
    step = "echo {0} >> /work/order"
    manifest = pod("inits", env["image"], ["sh", "-c", "cat /work/order; exec sleep 3600"],
                   container={
                       "volumeMounts": [{"name": "work", "mountPath": "/work"},
                                        {"name": "out", "mountPath": "/out"}],
                       "lifecycle": {
                           "postStart": {"exec": {"command": [
                               "sh", "-c", "echo postStart >> /out/hooks"]}},
                           "preStop": {"exec": {"command": [
                               "sh", "-c", "echo preStop >> /out/hooks"]}}}},
                   volumes=[{"name": "work", "emptyDir": {}},
                            {"name": "out", "hostPath": {"path": str(out)}}])
    manifest["spec"]["initContainers"] = [
        {"name": name, "image": env["image"], "command": ["sh", "-c", step.format(name)],
         "volumeMounts": [{"name": "work", "mountPath": "/work"}]}
        for name in ("first", "second")]
    apply(kc, manifest)
    p = wait_for("inits Running", in_phase(kc, "inits", "Running"), 40)
    inits = p["status"]["initContainerStatuses"]
    assert [s["state"]["terminated"]["reason"] for s in inits] == ["Completed"] * 2
    wait_for("the app's output", lambda: "second" in container_log(env, p, "c"), 10)
    assert [line.split()[-1] for line in container_log(env, p, "c").splitlines()] == \
        ["first", "second"]
    wait_for("the postStart hook", lambda: "postStart" in read(out / "hooks"), 10)
    delete_pods(kc, "inits")
    assert read(out / "hooks").split() == ["postStart", "preStop"]


def test_a_failing_init_container_keeps_the_pod_initializing(env: dict) -> None:
    kc = env["kubectl"]
    for name, policy in (("initfail", "Always"), ("initfail-once", "Never")):
        manifest = pod(name, env["image"], ["sleep", "3600"], restartPolicy=policy)
        manifest["spec"]["initContainers"] = [
            {"name": "check", "image": env["image"], "command": ["sh", "-c", "exit 3"]}]
        apply(kc, manifest)
    wait_for("Init:CrashLoopBackOff", lambda: status_cell(kc, "initfail")
             == "Init:CrashLoopBackOff", 30)
    p = pod_json(kc, "initfail")
    init = p["status"]["initContainerStatuses"][0]
    assert init["restartCount"] >= 1 and init["lastState"]["terminated"]["exitCode"] == 3
    app = p["status"]["containerStatuses"][0]
    assert app["state"]["waiting"]["reason"] == "PodInitializing"
    assert p["status"]["phase"] == "Pending"
    wait_for("Init:Error", lambda: status_cell(kc, "initfail-once") == "Init:Error", 30)
    once = pod_json(kc, "initfail-once")
    assert once["status"]["phase"] == "Failed"
    assert once["status"]["initContainerStatuses"][0]["restartCount"] == 0
    delete_pods(kc, "initfail", "initfail-once")


def test_crash_loop_back_off_doubles(env: dict) -> None:
    kc = env["kubectl"]
    apply(kc, pod("crasher", env["image"], ["sh", "-c", "echo crashing; exit 2"]))
    with Watch(kc, "crasher", '{.status.containerStatuses[0].state.waiting.message}{"\\n"}'
               ) as watch:
        wait_for("back-off at its 4 s maximum", lambda: any(
            line.startswith("back-off 4s") for line in watch.lines), 40)
    delays = [line.split()[1] for line in watch.lines if line.startswith("back-off")]
    assert [d for i, d in enumerate(delays) if d not in delays[:i]] == ["1s", "2s", "4s"]
    p = pod_json(kc, "crasher")
    st = p["status"]["containerStatuses"][0]
    assert st["restartCount"] >= 3
    assert st["lastState"]["terminated"]["exitCode"] == 2
    assert st["lastState"]["terminated"]["reason"] == "Error"
    assert st["state"].get("waiting", {}).get("reason", "CrashLoopBackOff") == \
        "CrashLoopBackOff"
    msg = next(line for line in watch.lines if line.startswith("back-off 4s"))
    assert msg == (f"back-off 4s restarting failed container=c pod=crasher_default"
                   f"({p['metadata']['uid']})")
    events = kc("get", "events", "--field-selector", "involvedObject.name=crasher")
    assert "BackOff" in events and "Back-off restarting failed container c in pod " \
        "crasher_default" in events
    delete_pods(kc, "crasher")


def test_host_port_answers_on_the_node_loopback(env: dict) -> None:
    kc = env["kubectl"]
    port = free_port()
    apply(kc, pod("hostport", env["image"], ["sh", "-c", "mkdir -p /www && echo via hostPort "
                                             "> /www/index.html && exec httpd -f -p 8080 -h /www"],
                  container={"ports": [{"containerPort": 8080, "hostPort": port}]}))
    wait_for("hostport Running", in_phase(kc, "hostport", "Running"), 40)
    body = wait_for("an answer on 127.0.0.1:hostPort",
                    lambda: http_get(f"http://127.0.0.1:{port}/"), 15)
    assert body.strip() == "via hostPort"
    delete_pods(kc, "hostport")
    assert http_get(f"http://127.0.0.1:{port}/") == ""   # the DNAT went with the pod


def churn_manifest(env: dict, i: int) -> dict:
    # exits at once on SIGTERM (a bare `sleep` as PID 1 would hold the deletion for the
    # whole grace period)
    m = pod(f"churn-{i}", env["image"], ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
            nodeName=NET.node)
    m["metadata"]["labels"] = {"app": "churn"}
    return m


def sandboxes_of(root: Path, uids: set[str]) -> dict[str, dict]:
    """sandbox id -> its runtime record, for the sandboxes of these pods."""
    out = {}
    for f in glob.glob(str(root / "runc" / "sandboxes" / "*" / "sandbox.json")):
        try:
            rec = json.loads(Path(f).read_text())
        except (OSError, ValueError):
            continue
        if (rec.get("config") or {}).get("pod_uid") in uids:
            out[rec["id"]] = rec
    return out


def test_churn_of_50_pods_leaves_nothing_behind(env: dict) -> None:
    kc, root = env["kubectl"], env["root"]
    items = [churn_manifest(env, i) for i in range(CHURN)]
    kc("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                             "items": items}))

    def all_running() -> list[dict] | None:
        got = json.loads(kc("get", "pods", "-l", "app=churn", "-o", "json"))["items"]
        running = [p for p in got if (p.get("status") or {}).get("phase") == "Running"]
        return got if len(running) == CHURN else None
    pods = wait_for("every churn pod Running", all_running, 150, every=1.0)
    uids = {p["metadata"]["uid"] for p in pods}
    ids = set().union(*(container_ids(p) for p in pods))
    ips = {p["status"]["podIP"] for p in pods}
    assert len(ids) == CHURN and len(ips) == CHURN
    boxes = wait_for("the sandboxes", lambda: (lambda b: b if len(b) == CHURN else None)(
        sandboxes_of(root, uids)), 10)
    kc("delete", "pods", "-l", "app=churn", "--wait=true", timeout=90)
    wait_for("every churn sandbox gone", lambda: not sandboxes_of(root, uids), 60)
    for sid in boxes:
        assert not (root / "netns" / sid).exists()
        assert not list((root / "cni" / "cache").rglob(f"*{sid}*"))
        assert not (root / "runc" / "sandboxes" / sid).exists()
    assert not [ip for ip in ips if list((root / "cni" / "ipam").rglob(ip))]
    for cid in ids:
        assert not (root / "runc" / "containers" / cid).exists()
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    assert not [x for x in list(boxes) + list(uids) + list(ids) if x in mounts]
    for uid in uids:
        assert not pod_cgroups(uid)
        assert not (root / "pods" / uid).exists()
    assert processes_with(ids) == []
    links = json.loads(subprocess.run(["ip", "-j", "link", "show", "master", NET.bridge],
                                      capture_output=True, text=True).stdout or "[]")
    assert links == [], links   # no veth left (no other pod runs now)
