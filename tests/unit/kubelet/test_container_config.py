"""Pod spec + image config → the runtime's ContainerConfig, as Kubernetes documents it."""
import os

import pytest

from pybernetes.kubelet.container_config import (ANN_HASH, LABEL_NAME, VolumePath,
                                                 build_container_config, cgroup_parent,
                                                 container_argv, cpu_quota, cpu_shares,
                                                 pod_resources, read_termination_message)
from pybernetes.kubelet.env import ConfigError
from pybernetes.kubelet.runtime.base import ContainerRuntimeError, Mount

IMAGE = {"Entrypoint": ["/entry.sh"], "Cmd": ["serve", "--port=80"],
         "Env": ["PATH=/opt/bin:/bin", "LANG=C", "MODE=image"], "WorkingDir": "/srv",
         "User": ""}
FILES = {"/etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnginx:x:101:102::/:/bin/false\n"
                        b"app:x:1000:1000::/home/app:/bin/sh\n",
         "/etc/group": b"root:x:0:\nwww:x:33:\n"}


def pod(container: dict, uid: str = "u-1", **spec) -> dict:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": uid},
            "spec": {"containers": [container], **spec}}


def build(container, image=IMAGE, **kw):
    p = kw.pop("pod", None) or pod(container)
    return build_container_config(p, container, image, image_ref="sha256:abc",
                                  read_image_file=FILES.get, **kw)


@pytest.mark.parametrize("command, args, argv", [
    (None, None, ["/entry.sh", "serve", "--port=80"]),           # image defaults
    (["/bin/app"], None, ["/bin/app"]),                           # command drops CMD
    (None, ["run", "-v"], ["/entry.sh", "run", "-v"]),            # args replace CMD
    (["/bin/app"], ["x"], ["/bin/app", "x"]),
])
def test_command_and_args_versus_entrypoint_and_cmd(command, args, argv):
    c = {"name": "c", "command": command, "args": args}
    assert container_argv(c, IMAGE, {}) == argv


def test_expansion_in_command_and_args_uses_the_container_env():
    c = {"name": "c", "command": ["sh", "-c", "echo $(GREETING) $$(GREETING) $(UNSET)"],
         "env": [{"name": "GREETING", "value": "hi"}]}
    cfg = build(c, env=[("GREETING", "hi")])
    assert cfg.command == ["sh", "-c", "echo hi $(GREETING) $(UNSET)"]
    with pytest.raises(ContainerRuntimeError, match="no command specified"):
        container_argv({"name": "c"}, {}, {})


def test_env_layers_and_working_dir():
    cfg = build({"name": "c"}, env=[("MODE", "pod"), ("EXTRA", "1")], hostname="web")
    assert cfg.env == [("PATH", "/opt/bin:/bin"), ("HOSTNAME", "web"), ("LANG", "C"),
                       ("MODE", "pod"), ("EXTRA", "1")]
    assert cfg.working_dir == "/srv"
    assert build({"name": "c", "workingDir": "/work"}).working_dir == "/work"
    assert build({"name": "c"}, image={"Cmd": ["x"]}).env[0][0] == "PATH"


def test_resources_as_the_kubelet_computes_them():
    assert [cpu_shares(m) for m in (0, 1, 100, 250, 1000, 2500)] == [2, 2, 102, 256, 1024, 2560]
    assert [cpu_quota(m) for m in (0, 5, 250, 1500)] == [0, 1000, 25000, 150000]
    c = {"name": "c", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                                    "limits": {"cpu": "500m", "memory": "128Mi"}}}
    r = build(c, node_memory=8 << 30).resources
    assert (r.cpu_shares, r.cpu_quota, r.cpu_period, r.memory_limit) == \
        (256, 50000, 100000, 128 << 20)
    assert 3 <= r.oom_score_adj <= 999
    g = {"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                                    "limits": {"cpu": "1", "memory": "1Gi"}}}
    assert build(g).resources.oom_score_adj == -997
    assert build({"name": "c"}).resources.oom_score_adj == 1000
    lim_only = {"name": "c", "resources": {"limits": {"cpu": "2"}}}
    assert build(lim_only).resources.cpu_shares == 2048


def test_qos_cgroup_parent():
    g = {"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
    b = {"name": "c", "resources": {"requests": {"cpu": "1"}}}
    assert cgroup_parent(pod(g)) == "kubepods/podu-1"
    assert cgroup_parent(pod(b)) == "kubepods/burstable/podu-1"
    assert cgroup_parent(pod({"name": "c"})) == "kubepods/besteffort/podu-1"


def test_pod_cgroup_limits_as_upstreams_resource_config_for_pod():
    def spec(*containers, init=(), overhead=None) -> dict:
        p = {"metadata": {"uid": "u-1"}, "spec": {"containers": list(containers),
                                                   "initContainers": list(init)}}
        if overhead:
            p["spec"]["overhead"] = overhead
        return p

    def res(req: dict | None = None, lim: dict | None = None) -> dict:
        return {"name": "c", "resources": {"requests": req or {}, "limits": lim or {}}}

    full = res({"cpu": "250m", "memory": "32Mi"}, {"cpu": "250m", "memory": "32Mi"})
    r = pod_resources(spec(full, full, overhead={"cpu": "100m", "memory": "32Mi"}))
    assert (r.cpu_shares, r.cpu_quota, r.memory_limit) == (614, 60000, 96 << 20)
    # a container without a limit: the pod has no such limit (shares still summed)
    r = pod_resources(spec(full, res({"cpu": "500m"})))
    assert (r.cpu_shares, r.cpu_quota, r.memory_limit) == (768, 0, 0)
    # an init container bigger than the app containers together sets the pod's figure
    r = pod_resources(spec(full, init=[res({"cpu": "1", "memory": "64Mi"},
                                           {"cpu": "1", "memory": "64Mi"})]))
    assert (r.cpu_shares, r.cpu_quota, r.memory_limit) == (1024, 100000, 64 << 20)
    assert pod_resources(spec({"name": "c"})).cpu_shares == 2   # BestEffort


def test_security_context_merge():
    c = {"name": "c", "securityContext": {
        "runAsUser": 2000, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
        "capabilities": {"add": ["NET_ADMIN", "CAP_SYS_TIME"], "drop": ["ALL"]}}}
    p = pod(c, securityContext={"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 4000,
                                "supplementalGroups": [5000, 5001]})
    s = build(c, pod=p).security
    assert (s.run_as_user, s.run_as_group, s.supplemental_groups) == \
        (2000, 3000, [4000, 5000, 5001])
    assert s.readonly_rootfs and s.no_new_privs and not s.privileged
    assert (s.capabilities_add, s.capabilities_drop) == (["NET_ADMIN", "SYS_TIME"], ["ALL"])
    priv = {"name": "c", "securityContext": {"privileged": True}}
    s = build(priv).security
    assert s.privileged and s.masked_paths == [] and not s.no_new_privs
    assert build({"name": "c"}).security.no_new_privs is False   # unset: not forced


def test_seccomp_profile_container_over_pod():
    p = pod({"name": "c"}, securityContext={"seccompProfile": {"type": "RuntimeDefault"}})
    s = build({"name": "c"}, pod=p).security
    assert (s.seccomp_profile_type, s.seccomp_localhost_profile) == ("RuntimeDefault", "")
    c = {"name": "c", "securityContext": {"seccompProfile": {
        "type": "Localhost", "localhostProfile": "profiles/audit.json"}}}
    s = build(c, pod=pod(c, securityContext={"seccompProfile": {"type": "RuntimeDefault"}}))
    assert (s.security.seccomp_profile_type, s.security.seccomp_localhost_profile) == \
        ("Localhost", "profiles/audit.json")
    assert build({"name": "c"}).security.seccomp_profile_type == ""   # Unconfined


@pytest.mark.parametrize("user, uid, gid", [
    ("", 0, None), ("1000", 1000, 1000), ("4242", 4242, None), ("1000:50", 1000, 50),
    ("nginx", 101, 102), ("nginx:www", 101, 33),
])
def test_image_user(user, uid, gid):
    s = build({"name": "c"}, image={**IMAGE, "User": user}).security
    assert (s.run_as_user, s.run_as_group) == (uid, gid)


def test_image_user_errors_and_run_as_non_root():
    with pytest.raises(ConfigError, match="unable to find user ghost: no matching entries"):
        build({"name": "c"}, image={**IMAGE, "User": "ghost"})
    nonroot = {"name": "c", "securityContext": {"runAsNonRoot": True}}
    with pytest.raises(ConfigError) as e:
        build(nonroot)
    assert str(e.value) == ('container has runAsNonRoot and image will run as root '
                            '(pod: "web_ns(u-1)", container: c)')
    assert e.value.reason == "CreateContainerConfigError"
    with pytest.raises(ConfigError, match=r"image has non-numeric user \(nginx\), cannot verify"):
        build(nonroot, image={**IMAGE, "User": "nginx"})
    assert build(nonroot, image={**IMAGE, "User": "1000"}).security.run_as_user == 1000
    root = {"name": "c", "securityContext": {"runAsNonRoot": True, "runAsUser": 0}}
    with pytest.raises(ConfigError, match="container's runAsUser breaks non-root policy"):
        build(root)


def test_mounts(tmp_path):
    vol = tmp_path / "data"
    vol.mkdir()
    c = {"name": "app", "volumeMounts": [
        {"name": "data", "mountPath": "/data"},
        {"name": "data", "mountPath": "/logs", "subPathExpr": "logs/$(POD)", "readOnly": True},
        {"name": "cfg", "mountPath": "/cfg", "mountPropagation": "HostToContainer"}]}
    hosts = tmp_path / "etc-hosts"
    cfg = build(c, env=[("POD", "web")], pod_dir=str(tmp_path / "pod"), etc_hosts=str(hosts),
                volumes={"data": VolumePath(str(vol)), "cfg": VolumePath("/x", readonly=True)})
    term = cfg.mounts[-1]
    assert cfg.mounts[:4] == [
        Mount(str(vol), "/data"), Mount(str(vol / "logs/web"), "/logs", readonly=True),
        Mount("/x", "/cfg", readonly=True, propagation="rslave"),
        Mount(str(hosts), "/etc/hosts")]
    assert (vol / "logs/web").is_dir()
    assert term.container_path == "/dev/termination-log" and os.path.isfile(term.host_path)
    with open(term.host_path, "w") as f:
        f.write("x" * 5000 + "bye")
    assert read_termination_message(term.host_path).endswith("bye")
    assert len(read_termination_message(term.host_path)) == 4096
    with pytest.raises(ConfigError, match='cannot find volume "nope"'):
        build({"name": "c", "volumeMounts": [{"name": "nope", "mountPath": "/n"}]})
    bad = {"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/d",
                                          "subPathExpr": "$(X)"}]}
    with pytest.raises(ConfigError, match="must be a relative path"):
        build(bad, env=[("X", "../../etc")], volumes={"data": VolumePath(str(vol))})


def test_labels_annotations_and_log_path():
    c = {"name": "app", "ports": [{"containerPort": 80}]}
    cfg = build(c, attempt=3)
    assert cfg.labels[LABEL_NAME] == "app" and cfg.log_path == "app/3.log"
    assert cfg.annotations["io.kubernetes.container.restartCount"] == "3"
    assert cfg.annotations[ANN_HASH] != build({**c, "image": "other"}).annotations[ANN_HASH]
    assert cfg.image_ref == "sha256:abc" and cfg.attempt == 3
