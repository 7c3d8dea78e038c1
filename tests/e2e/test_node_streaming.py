"""`pybernetes server` with the runc runtime, as a user would run it on one machine, and
`kubectl logs/exec/port-forward/cp` into its real containers, with the real kubectl
1.33 (WebSocket) and 1.27 (SPDY/3.1).

The server runs every component; its kubelet uses this test's CNI bridge, cluster
CIDR and a free port, and serves with the cert the server issued it from the cluster
CA. A busybox Deployment's pods become Ready; `kubectl logs` (with -f and
--previous), `exec` (hostname, stdin, exit codes), `port-forward` to httpd in a pod
and `cp` both ways work through the API server to the kubelet. Deleting everything
leaves no sandbox, container, netns, mount, veth, lease, guard rule or process."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import Kubectl, free_port, kubectl_binary
from tests.e2e.kubelet_fixtures import (
    REQUIREMENTS, NodeNet, apply, assert_node_left_nothing, container_ids, container_state,
    force_cleanup, http_get,
    in_phase, pod, pod_json, processes_with, runc_server, wait_for,
)

pytestmark = REQUIREMENTS

VERSIONS = ["1.33", "1.27"]
SUBNET = 20 + os.getpid() % 20   # 10.<SUBNET>.0.0/16: not the other modules', nor 10.42/10.43
BRIDGE = f"pys{os.getpid() % 100000}"
NODE = f"e2e-stream-{os.getpid()}"
NET = NodeNet(NODE, BRIDGE, SUBNET)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    # the applets kubectl cp (tar) and these tests (tr) use
    with runc_server(tmp_path_factory.mktemp("node-streaming"), NET, applets=("tar", "tr"),
                     extra=["--kubelet-arg", "crash-loop-backoff-max=2"]) as env:
        env["seen"] = set()
        yield env


def kubectl(env: dict, version: str) -> Kubectl:
    binary = kubectl_binary(version)
    if binary is None:
        pytest.skip(f"kubectl {version} is not installed")
    return Kubectl(binary, env["kubectl"].kubeconfig)


def ready_pods(kc: Kubectl, selector: str) -> list[dict]:
    items = json.loads(kc("get", "pods", "-l", selector, "-o", "json"))["items"]
    return [p for p in items if any(c["type"] == "Ready" and c["status"] == "True"
                                    for c in (p.get("status") or {}).get("conditions") or [])]


def test_server_picks_and_reports_the_runc_node(env: dict) -> None:
    kc = env["kubectl"]
    out = env["cluster"].log()
    assert "the node runs pods with the runc runtime" in out
    node = json.loads(kc("get", "node", NODE, "-o", "json"))
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("runc://")
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
    assert any(a["type"] == "InternalIP" for a in node["status"]["addresses"])


def test_deployment_pods_become_ready(env: dict) -> None:
    kc = env["kubectl"]
    kc("create", "deployment", "web", "--image", env["image"], "--replicas", "2", "--",
       "sh", "-c", "mkdir -p /www && echo hello from $(hostname) > /www/index.html && "
       "exec httpd -f -p 8080 -h /www")
    kc("rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
    pods = wait_for("2 Ready web pods", lambda: len(ready_pods(kc, "app=web")) == 2
                    and ready_pods(kc, "app=web"), 30)
    for p in pods:
        assert p["status"]["podIP"].startswith(f"10.{SUBNET}.")
        assert container_state(p)["containerID"].startswith("runc://")
        env["seen"] |= container_ids(p)
    env["web"] = pods[0]["metadata"]["name"]


@pytest.fixture(scope="module")
def talker(env: dict) -> str:
    """A pod that prints a numbered line every 0.3 s; its first run exits 1, so it
    has a previous container."""
    script = ('if [ ! -f /data/ran ]; then touch /data/ran; echo first run; exit 1; fi; '
              'i=0; while true; do echo line $i; i=$((i+1)); sleep 0.3; done')
    apply(env["kubectl"], pod("talker", env["image"], ["sh", "-c", script],
                              volumes=[{"name": "data", "emptyDir": {}}],
                              container={"volumeMounts": [{"name": "data",
                                                           "mountPath": "/data"}]}))
    p = wait_for("talker restarted once and running", lambda: (lambda q: q if container_state(
        q).get("restartCount") == 1 and "running" in container_state(q).get("state", {})
        else None)(pod_json(env["kubectl"], "talker")), 60)
    env["seen"] |= container_ids(p)
    return "talker"


@pytest.mark.parametrize("version", VERSIONS)
def test_logs_follow_and_previous(env: dict, talker: str, version: str) -> None:
    kc = kubectl(env, version)
    wait_for("a few lines", lambda: "line 2" in kc("logs", talker), 20)
    assert kc("logs", talker, "--previous") == "first run\n"
    assert kc("logs", talker, "--tail=1").startswith("line ")
    proc = subprocess.Popen([kc.binary, "logs", "-f", "--tail=1", talker],
                            env=dict(os.environ, KUBECONFIG=kc.kubeconfig),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = int(proc.stdout.readline().split()[1])
        later = [proc.stdout.readline() for _ in range(3)]
    finally:
        proc.kill()
        proc.wait(10)
    assert [int(line.split()[1]) for line in later] == [first + 1, first + 2, first + 3]


@pytest.mark.parametrize("version", VERSIONS)
def test_exec_hostname_stdin_and_exit_codes(env: dict, version: str) -> None:
    kc, web = kubectl(env, version), env["web"]
    assert kc("exec", web, "--", "hostname") == f"{web}\n"
    assert kc("exec", "-i", web, "--", "tr", "a-z", "A-Z", input="from stdin\n") == \
        "FROM STDIN\n"
    p = kc.run("exec", web, "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (p.returncode, p.stdout) == (3, "out\n")
    assert "err" in p.stderr and "command terminated with exit code 3" in p.stderr
    p = kc.run("exec", web, "--", "no-such-command", check=False)
    assert p.returncode != 0


@pytest.mark.parametrize("version", VERSIONS)
def test_port_forward_to_httpd_in_the_pod(env: dict, version: str) -> None:
    kc, web = kubectl(env, version), env["web"]
    local = free_port()
    proc = subprocess.Popen([kc.binary, "port-forward", f"pod/{web}", f"{local}:8080"],
                            env=dict(os.environ, KUBECONFIG=kc.kubeconfig),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "Forwarding from 127.0.0.1" in proc.stdout.readline()
        body = wait_for("httpd through the tunnel",
                        lambda: http_get(f"http://127.0.0.1:{local}/"), 15)
        assert body == f"hello from {web}\n"
        assert http_get(f"http://127.0.0.1:{local}/") == body   # a second connection
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("version", VERSIONS)
def test_cp_into_and_out_of_the_pod(env: dict, version: str, tmp_path: Path) -> None:
    kc, web = kubectl(env, version), env["web"]
    src = tmp_path / "in.txt"
    src.write_text(f"copied in by kubectl {version}\n" * 100)
    kc("cp", str(src), f"{web}:/tmp/in.txt")
    assert kc("exec", web, "--", "cat", "/tmp/in.txt") == src.read_text()
    kc("cp", f"{web}:/www/index.html", str(tmp_path / "out.html"))
    assert (tmp_path / "out.html").read_text() == f"hello from {web}\n"


@pytest.mark.parametrize("version", VERSIONS)
def test_attach_with_stdin_to_cat(env: dict, version: str) -> None:
    """`kubectl attach -i` reaches the container's stdin (conmon's attach socket):
    `cat` echoes what it is sent; with stdinOnce the end of input closes its stdin,
    so cat ends and the pod completes."""
    kc, name = kubectl(env, version), f"cat-{version.replace('.', '-')}"
    apply(env["kubectl"], pod(name, env["image"], ["cat"], restartPolicy="Never",
                              container={"stdin": True, "stdinOnce": True}))
    wait_for(f"{name} Running", in_phase(env["kubectl"], name, "Running"), 40)
    out = kc("attach", "-i", name, input=f"hello through attach {version}\n", timeout=60)
    assert f"hello through attach {version}" in out
    done = wait_for(f"{name} Succeeded", in_phase(env["kubectl"], name, "Succeeded"), 30)
    env["seen"] |= container_ids(done)
    assert kc("logs", name) == f"hello through attach {version}\n"


def test_attach_tty_to_a_shell(env: dict) -> None:
    """`kubectl attach -it` from a terminal (script(1)) to a `tty: true` container: its
    shell reads our keystrokes on a terminal of our size and ends with `exit`."""
    if not shutil.which("script"):
        pytest.skip("script(1) is needed to give kubectl a terminal")
    kc = env["kubectl"]
    apply(kc, pod("shell", env["image"], ["sh"], restartPolicy="Never",
                  container={"stdin": True, "tty": True}))
    wait_for("shell Running", in_phase(kc, "shell", "Running"), 40)
    # kubectl attach resizes to size+1 and then to the size (a SIGWINCH for the app to
    # redraw), on a stream apart from stdin: the shell waits (bounded) for the second
    keys = ('for i in 1 2 3 4 5 6 7 8 9 10; do [ "$(stty size)" = "21 87" ] && break; '
            'sleep 0.3; done; stty size; echo $((6 * 7))x; exit 0\n')
    inner = f"stty cols 87 rows 21; {kc.binary} attach -it shell"
    p = subprocess.run(["script", "-qec", inner, "/dev/null"], input=keys, text=True,
                       capture_output=True, timeout=60,
                       env=dict(os.environ, KUBECONFIG=kc.kubeconfig))
    assert "21 87" in p.stdout and "42x" in p.stdout, p.stdout + p.stderr
    done = wait_for("shell Succeeded", in_phase(kc, "shell", "Succeeded"), 30)
    env["seen"] |= container_ids(done)


def test_teardown_leaves_nothing_behind(env: dict) -> None:
    kc, root = env["kubectl"], env["root"]
    for name in ("talker",):
        env["seen"] |= container_ids(pod_json(kc, name))
    kc("delete", "deployments,pods", "--all", "--wait=true", timeout=60)
    assert_node_left_nothing(root, BRIDGE)
    assert env["seen"] and not processes_with(env["seen"])
    assert not list((root / "cni" / "ipam").rglob("10.*"))
    env["cluster"].stop()
    force_cleanup(root, NET)
    rules = subprocess.run(["iptables", "-S", "INPUT"], capture_output=True, text=True).stdout
    assert BRIDGE not in rules
    assert not os.path.exists(f"/sys/class/net/{BRIDGE}")

