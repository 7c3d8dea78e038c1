"""kubectl logs / exec / port-forward / cp through the API server to a kubelet's
streaming server, with the real kubectl 1.33 (WebSocket) and 1.27 (SPDY/3.1).

The node is the kubelet streaming server alone (`python -m pybernetes.kubelet.server`)
with the host-process provider: exec runs on this machine, port-forward reaches
127.0.0.1, logs are CRI files the test writes. Everything stays on loopback.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import Cluster, Kubectl, free_port, kubectl_binary, start_cluster

VERSIONS = ["1.33", "1.27"]
NODE = "stream-node"


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


class Node:
    """The kubelet streaming server process and what the tests write for it."""

    def __init__(self, cluster: Cluster, root: Path):
        from pybernetes.auth.pki import PKI, issue_serving_cert
        self.cluster, self.root = cluster, root
        self.log_root = root / "pods"
        self.log_root.mkdir(parents=True)
        pki = PKI.at(str(cluster.data_dir / "pki"))
        crt, key = issue_serving_cert(pki, NODE, ["127.0.0.1"], str(root / "kubelet.crt"),
                                      str(root / "kubelet.key"))
        port_file = root / "port"
        self.out = open(root / "kubelet.out", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pybernetes.kubelet.server", "--port", "0",
             "--port-file", str(port_file), "--tls-cert-file", crt,
             "--tls-private-key-file", key, "--client-ca-file", pki.ca_crt,
             "--log-root", str(self.log_root)],
            stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert self.proc.poll() is None, (root / "kubelet.out").read_text()
            assert time.monotonic() < deadline, "kubelet server did not start"
            time.sleep(0.1)
        self.port = int(port_file.read_text())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.out.close()

    def open_files(self, path: Path) -> list[str]:
        """The kubelet server's open descriptors on `path`."""
        fds = Path(f"/proc/{self.proc.pid}/fd")
        found = []
        for fd in fds.iterdir():
            try:
                if os.readlink(fd) == str(path):
                    found.append(fd.name)
            except OSError:
                pass
        return found

    def register(self) -> None:
        status, body = self.cluster.json("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}})
        assert status == 201, body
        status, body = self.cluster.json(
            "PATCH", f"/api/v1/nodes/{NODE}/status",
            {"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                      {"type": "Hostname", "address": NODE}],
                        "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}}}},
            content_type="application/merge-patch+json")
        assert status == 200, body

    def run_pod(self, name: str, containers: list[str], logs: dict[str, dict[int, str]],
                restarted: tuple[str, ...] = ()) -> str:
        """A pod bound here, Running, with CRI log files `logs[container][attempt]`."""
        status, pod = self.cluster.json("POST", "/api/v1/namespaces/default/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": NODE,
                     "containers": [{"name": c, "image": "busybox"} for c in containers]}})
        assert status == 201, pod
        uid = pod["metadata"]["uid"]
        now = stamp(datetime.now(timezone.utc))
        statuses = []
        for c in containers:
            cs = {"name": c, "ready": True, "restartCount": 1 if c in restarted else 0,
                  "image": "busybox", "imageID": "", "containerID": f"pyb://{name}-{c}-1",
                  "state": {"running": {"startedAt": now[:19] + "Z"}}}
            if c in restarted:
                cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error",
                                                  "containerID": f"pyb://{name}-{c}-0"}}
            statuses.append(cs)
        status, body = self.cluster.json(
            "PATCH", f"/api/v1/namespaces/default/pods/{name}/status",
            {"status": {"phase": "Running", "podIP": "127.0.0.1",
                        "containerStatuses": statuses}},
            content_type="application/merge-patch+json")
        assert status == 200, body
        for c, attempts in logs.items():
            d = self.log_root / f"default_{name}_{uid}" / c
            d.mkdir(parents=True)
            for attempt, text in attempts.items():
                (d / f"{attempt}.log").write_text(text)
        return uid


def cri(lines: list[tuple[datetime, str, str]]) -> str:
    return "".join(f"{stamp(t)} {stream} F {msg}\n" for t, stream, msg in lines)


OLD = datetime(2016, 10, 6, 0, 17, 9, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    if not kubectl_binary("1.33") or not kubectl_binary("1.27"):
        pytest.skip("kubectl 1.33 and 1.27 are needed")
    root = tmp_path_factory.mktemp("streaming")
    cluster = start_cluster(root / "cluster")
    n = None
    try:
        n = Node(cluster, root / "node")
        n.register()
        recent = datetime.now(timezone.utc)
        n.run_pod("web", ["app"], {"app": {
            0: cri([(OLD, "stdout", "first life")]),
            1: cri([(OLD, "stdout", "old line"), (OLD, "stderr", "old error"),
                    (recent, "stdout", "recent line")])}}, restarted=("app",))
        n.run_pod("multi", ["a", "b"], {"a": {0: cri([(OLD, "stdout", "from a")])},
                                        "b": {0: cri([(OLD, "stdout", "from b")])}})
        yield n
    finally:
        if n is not None:
            n.stop()
        cluster.stop()


@pytest.fixture(params=VERSIONS)
def kubectl(request, node: Node) -> Kubectl:
    return Kubectl(kubectl_binary(request.param), node.cluster.kubeconfig)


def test_logs(kubectl: Kubectl) -> None:
    assert kubectl("logs", "web") == "old line\nold error\nrecent line\n"
    assert kubectl("logs", "pod/web", "--tail=1") == "recent line\n"
    stamped = kubectl("logs", "web", "--timestamps", "--tail=2").splitlines()
    assert stamped[0] == f"{stamp(OLD)} old error"
    assert stamped[1].endswith(" recent line")
    assert kubectl("logs", "web", "--since=1h") == "recent line\n"
    assert kubectl("logs", "web", "--previous") == "first life\n"
    assert kubectl("logs", "web", "--limit-bytes=5") == "old l"
    assert kubectl("logs", "multi", "-c", "b") == "from b\n"


def test_log_errors(kubectl: Kubectl, node: Node) -> None:
    p = kubectl.run("logs", "multi", "-c", "nope", check=False)
    assert p.returncode != 0
    assert "container nope is not valid for pod multi" in p.stderr
    p = kubectl.run("logs", "multi", "-c", "a", "--previous", check=False)
    assert 'previous terminated container "a" in pod "multi" not found' in p.stderr
    status, body = node.cluster.json("GET", "/api/v1/namespaces/default/pods/multi/log")
    assert status == 400
    assert body["message"] == ("a container name must be specified for pod multi, "
                               "choose one of: [a b]")


def test_logs_follow_sees_new_lines(kubectl: Kubectl, node: Node) -> None:
    log = next(node.log_root.glob("default_multi_*/a/0.log"))
    p = subprocess.Popen([kubectl.binary, "logs", "-f", "multi", "-c", "a", "--tail=1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, KUBECONFIG=kubectl.kubeconfig))
    try:
        assert p.stdout is not None
        p.stdout.readline()  # what is there already
        line = f"appended by {os.path.basename(kubectl.binary)}"
        with open(log, "a") as f:
            f.write(cri([(datetime.now(timezone.utc), "stdout", line)]))
        assert p.stdout.readline() == line + "\n"
        assert node.open_files(log)  # being followed
    finally:
        p.kill()
        p.wait(10)
    # the client left: the kubelet stops following (no open log file left behind)
    for _ in range(100):
        if not node.open_files(log):
            break
        time.sleep(0.1)
    assert not node.open_files(log)


def test_exec(kubectl: Kubectl) -> None:
    assert kubectl("exec", "web", "--", "hostname") == socket.gethostname() + "\n"
    p = kubectl.run("exec", "web", "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                    check=False)
    assert (p.returncode, p.stdout) == (3, "out\n")
    assert "err\n" in p.stderr
    assert kubectl("exec", "-i", "web", "--", "cat", input="data\n") == "data\n"
    assert kubectl("exec", "multi", "-c", "b", "--", "echo", "in b") == "in b\n"


class EchoServer:
    """A TCP server on 127.0.0.1 answering every line with `echo: <line>`."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as f:
            conn.settimeout(20)
            for line in f:
                conn.sendall(b"echo: " + line)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()


def test_port_forward(kubectl: Kubectl) -> None:
    server, local = EchoServer(), free_port()
    p = subprocess.Popen([kubectl.binary, "port-forward", "pod/web", f"{local}:{server.port}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, KUBECONFIG=kubectl.kubeconfig))
    try:
        assert p.stdout is not None
        assert p.stdout.readline().startswith(f"Forwarding from 127.0.0.1:{local}")
        for i in range(3):  # one tunnel, several connections
            with socket.create_connection(("127.0.0.1", local), timeout=20) as c, \
                    c.makefile("rb") as f:
                c.sendall(f"hello {i}\n".encode())
                assert f.readline() == f"echo: hello {i}\n".encode()
    finally:
        p.kill()
        p.wait(10)
        server.stop()


def test_cp_both_ways(kubectl: Kubectl, tmp_path: Path) -> None:
    """`kubectl cp` is tar through exec: here the "container" is this machine."""
    pod_side = tmp_path / "in-pod"
    pod_side.mkdir()
    src = tmp_path / "local.txt"
    src.write_bytes(os.urandom(200_000).hex().encode())  # several frames' worth
    kubectl("cp", str(src), f"default/web:{pod_side}/copied.txt")
    assert (pod_side / "copied.txt").read_bytes() == src.read_bytes()
    back = tmp_path / "back.txt"
    kubectl("cp", f"default/web:{pod_side}/copied.txt", str(back))
    assert back.read_bytes() == src.read_bytes()


def test_attach_shows_new_output(kubectl: Kubectl, node: Node) -> None:
    log = next(node.log_root.glob("default_multi_*/b/0.log"))
    p = subprocess.Popen([kubectl.binary, "attach", "multi", "-c", "b"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, KUBECONFIG=kubectl.kubeconfig))
    try:
        assert p.stdout is not None
        line = f"attached {os.path.basename(kubectl.binary)}"
        for _ in range(50):  # until the attach is in place (it shows only new output)
            with open(log, "a") as f:
                f.write(cri([(datetime.now(timezone.utc), "stdout", line)]))
            if _readable(p.stdout, 0.2):
                break
        assert p.stdout.readline() == line + "\n"
    finally:
        p.kill()
        p.wait(10)


def _readable(f, timeout: float) -> bool:
    import select
    return bool(select.select([f], [], [], timeout)[0])


def test_exec_tty_gets_the_terminal_size(kubectl: Kubectl) -> None:
    """`exec -it` from a terminal (script(1) gives kubectl one): the remote side is a
    terminal of the caller's size, and the exit code still comes back."""
    if not shutil.which("script"):
        pytest.skip("script(1) is needed to give kubectl a terminal")
    inner = f"stty cols 91 rows 13; {kubectl.binary} exec -it web -- sh -c 'stty size; exit 4'"
    p = subprocess.run(["script", "-qec", inner, "/dev/null"], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, KUBECONFIG=kubectl.kubeconfig))
    assert "13 91" in p.stdout, p.stdout + p.stderr
    assert p.returncode == 4, p.stdout + p.stderr


def test_official_python_client(node: Node) -> None:
    """The `kubernetes` client speaks the WebSocket channel protocols (v4) for exec and
    port-forward (one connection per port, no SPDY)."""
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes.stream import portforward, stream
    api = kubernetes.client.CoreV1Api(
        kubernetes.config.new_client_from_config(node.cluster.kubeconfig))
    out = stream(api.connect_get_namespaced_pod_exec, "web", "default",
                 command=["echo", "hi"], stdout=True, stderr=True, stdin=False, tty=False)
    assert out == "hi\n"
    resp = stream(api.connect_get_namespaced_pod_exec, "web", "default",
                  command=["sh", "-c", "exit 5"], stdout=True, stderr=True, stdin=False,
                  tty=False, _preload_content=False)
    resp.run_forever(timeout=20)
    assert resp.returncode == 5
    server = EchoServer()
    try:
        pf = portforward(api.connect_get_namespaced_pod_portforward, "web", "default",
                         ports=str(server.port))
        sock = pf.socket(server.port)
        sock.setblocking(True)
        sock.settimeout(20)
        sock.sendall(b"over websocket\n")
        got = b""
        for _ in range(100):
            if got.endswith(b"\n"):
                break
            got += sock.recv(1024)
        assert got == b"echo: over websocket\n"
        sock.close()
        assert pf.error(server.port) is None
    finally:
        server.stop()


def test_errors_a_user_sees(kubectl: Kubectl, node: Node) -> None:
    c = node.cluster
    for name, bound in (("pending", False), ("starting", True)):
        spec = {"containers": [{"name": "x", "image": "busybox"}]}
        if bound:
            spec["nodeName"] = NODE
        status, _ = c.json("POST", "/api/v1/namespaces/default/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
        assert status in (201, 409)
    c.json("PATCH", "/api/v1/namespaces/default/pods/starting/status", {"status": {
        "phase": "Pending", "containerStatuses": [{
            "name": "x", "ready": False, "restartCount": 0, "image": "busybox", "imageID": "",
            "state": {"waiting": {"reason": "ContainerCreating"}}}]}},
        content_type="application/merge-patch+json")
    p = kubectl.run("exec", "pending", "--", "true", check=False)
    assert p.returncode != 0 and "pod pending does not have a host assigned" in p.stderr
    assert kubectl("logs", "pending") == ""
    p = kubectl.run("logs", "starting", check=False)
    assert 'container "x" in pod "starting" is waiting to start: ContainerCreating' in p.stderr
    p = kubectl.run("exec", "web", "--", "/no/such/command", check=False)
    assert p.returncode != 0 and "no/such/command" in p.stderr


def test_kubelet_accepts_only_the_api_server(node: Node, tmp_path: Path) -> None:
    import ssl
    import urllib.error
    import urllib.request
    from pybernetes.auth.pki import PKI, issue_client_cert
    pki = PKI.at(str(node.cluster.data_dir / "pki"))
    url = f"https://127.0.0.1:{node.port}"

    def get(path: str, cert: tuple[str, str] | None) -> int:
        ctx = ssl.create_default_context(cafile=pki.ca_crt)
        if cert:
            ctx.load_cert_chain(*cert)
        try:
            with urllib.request.urlopen(url + path, context=ctx, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    logs = "/containerLogs/default/web/app"
    assert get("/healthz", None) == 200
    assert get(logs, None) == 401
    other = issue_client_cert(pki, "system:node:other", ["system:nodes"],
                              str(tmp_path / "n.crt"), str(tmp_path / "n.key"))
    assert get(logs, other) == 403
    assert get(logs, (pki.kubelet_client_crt, pki.kubelet_client_key)) == 200


def processes_with(marker: str) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker.encode() in (d / "cmdline").read_bytes():
                    found.append(int(d.name))
            except OSError:
                pass
    return found


def test_exec_process_ends_when_the_client_leaves(kubectl: Kubectl) -> None:
    marker = f"left-behind-{os.getpid()}-{os.path.basename(kubectl.binary)}"
    p = subprocess.Popen([kubectl.binary, "exec", "web", "--", "sh", "-c",
                          f"echo started; sleep 300; : {marker}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, KUBECONFIG=kubectl.kubeconfig))
    try:
        assert p.stdout is not None and p.stdout.readline() == "started\n"
        assert processes_with(marker)
    finally:
        p.kill()
        p.wait(10)
    for _ in range(100):
        if not processes_with(marker):
            break
        time.sleep(0.1)
    assert not processes_with(marker)
