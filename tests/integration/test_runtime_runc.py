"""The runc runtime as the kubelet drives it: pods as sandboxes of real, isolated
containers over a busybox image layer. Needs root and runc (CI installs runc)."""
from __future__ import annotations

import asyncio
import json
import dataclasses
import os
import secrets
import shutil
from pathlib import Path

import pytest

from pybernetes.kubelet.runtime.base import (
    ContainerRuntimeError, DNSConfig, Mount, Resources, Security,
)
from pybernetes.kubelet.runtime.runc import ALL_CAPS, DEFAULT_CAPS, RuncRuntime, cgroup_dirs, \
    cgroup_v2_only

from .runtime_helpers import (
    busybox_layer, container_config, log_entries, pid_running, processes_mentioning,
    remove_everything, sandbox_config, wait_log, wait_state,
)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the runc runtime needs root"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed"),
    pytest.mark.skipif(shutil.which("conmon") is None, reason="conmon is not installed"),
    pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="busybox-static missing"),
]


# nc's stdin is a fifo nobody writes: it never hits EOF, so nc only ends (exit 0)
# when the client closes, after copying what the client sent to stdout.
NC_SERVER = "mkfifo /tmp/in; nc -l -p 8080 <> /tmp/in"


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> str:
    return busybox_layer(tmp_path_factory.mktemp("layer") / "fs")


@pytest.fixture
async def node(tmp_path):
    """A runtime on a fresh root; afterwards every sandbox and container it made is
    removed by id, and anything left (mounts, processes) is cleaned and reported."""
    root = tmp_path / "kubelet"
    rt = RuncRuntime(str(root))
    yield rt, root, tmp_path / "logs"
    # a new runtime: the test may have "restarted the kubelet"
    assert not await remove_everything(RuncRuntime(str(root)), root)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


def cap_mask(names: list[str]) -> int:
    return sum(1 << ALL_CAPS.index(n) for n in names)


def cap_eff(output: bytes) -> int:
    for line in output.decode().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    raise AssertionError(output)


async def run_to_exit(rt, sid, cfg, layer):
    cid = await rt.create_container(sid, cfg, [layer])
    await rt.start_container(cid)
    return cid, await wait_state(rt, cid, "exited")


async def test_logs_exit_code_and_hostname(node, layer):
    rt, _, logs = node
    assert (await rt.version()).startswith("runc://1.")
    sid = await rt.run_pod_sandbox(sandbox_config("web-0", logs))
    script = ("echo to-out; echo to-err >&2; hostname; cat /etc/hostname;"
              "head -c 20000 /dev/zero | tr '\\0' a; echo; printf no-newline; exit 3")
    _, st = await run_to_exit(rt, sid, container_config("app", script), layer)
    assert (st.state, st.exit_code, st.reason) == ("exited", 3, "Error")
    assert st.finished_at >= st.started_at > 0
    assert st.log_path == os.path.join(logs, "default_web-0_" + (
        await rt.pod_sandbox_status(sid)).config.pod_uid, "app", "0.log")
    entries = log_entries(st.log_path)
    assert ("stdout", "F", b"to-out") in entries and ("stderr", "F", b"to-err") in entries
    out = [(tag, text) for stream, tag, text in entries if stream == "stdout"]
    assert out[1:3] == [("F", b"web-0"), ("F", b"web-0")]
    # a long line is logged in P pieces (conmon's read size) ended by an F piece
    end = next(i for i, (tag, _) in enumerate(out) if i >= 3 and tag == "F")
    assert {tag for tag, _ in out[3:end]} == {"P"}
    assert b"".join(text for _, text in out[3:end + 1]) == b"a" * 20000
    assert [text for _, text in out[end + 1:]] == [b"no-newline"]

    _, ok = await run_to_exit(rt, sid, container_config("done", "true"), layer)
    assert (ok.exit_code, ok.reason) == (0, "Completed")


async def test_pod_containers_share_network_and_shm(node, layer):
    rt, _, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("pair", logs))
    server = await rt.create_container(sid, container_config(
        "server", "echo from-server > /dev/shm/note; " + NC_SERVER), [layer])
    await rt.start_container(server)
    client_script = ("for i in $(seq 100); do echo ping | nc 127.0.0.1 8080 && break;"
                     " sleep 0.1; done; cat /dev/shm/note")
    _, st = await run_to_exit(rt, sid, container_config("client", client_script), layer)
    assert st.exit_code == 0
    assert ("stdout", "F", b"from-server") in log_entries(st.log_path)
    srv = await wait_state(rt, server, "exited")
    assert srv.exit_code == 0 and ("stdout", "F", b"ping") in log_entries(srv.log_path)


async def test_memory_limit_oom_killed(node, layer):
    rt, _, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("hungry", logs))
    cfg = container_config("eat", "head -c 64m /dev/zero | tail",
                           resources=Resources(memory_limit=16 * 1024 * 1024))
    _, st = await run_to_exit(rt, sid, cfg, layer)
    assert (st.exit_code, st.reason) == (137, "OOMKilled")


async def test_cpu_and_memory_limits_in_cgroup(node, layer):
    rt, _, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("limited", logs))
    res = Resources(cpu_shares=512, cpu_quota=50_000, cpu_period=100_000,
                    memory_limit=64 * 1024 * 1024, pids_limit=100)
    cid = await rt.create_container(sid, container_config("c", "sleep 60", resources=res),
                                    [layer])
    await rt.start_container(cid)
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):   # cgroup v2 only
        files = {"cpu.weight": None, "cpu.max": b"50000 100000", "memory.max": b"67108864",
                 "pids.max": b"100"}
        prefix = "/sys/fs/cgroup/"
    else:
        files = {"cpu/cpu.shares": b"512", "cpu/cpu.cfs_quota_us": b"50000",
                 "cpu/cpu.cfs_period_us": b"100000",
                 "memory/memory.limit_in_bytes": b"67108864", "pids/pids.max": b"100"}
        prefix = "/sys/fs/cgroup/"
    for name, want in files.items():
        got = await rt.exec_sync(cid, ["cat", prefix + name], timeout=10)
        assert got.exit_code == 0, got.stderr
        if want is not None:
            assert got.stdout.strip() == want, name


async def test_pod_cgroup_has_the_pods_limits_and_goes_with_the_sandbox(node, layer):
    """Upstream's pod-level cgroup: the containers' parent carries the pod's totals (here
    as the kubelet computes them for two containers of 250m/32Mi limits plus an overhead)."""
    rt, _, logs = node
    if cgroup_v2_only():
        pytest.skip("cgroup v1 files; v2 in test_runtime_runc_cgroup_v2.py")
    pod_limits = Resources(cpu_shares=614, cpu_quota=60_000, cpu_period=100_000,
                           memory_limit=96 * 1024 * 1024)
    cfg = sandbox_config("podcg", logs, resources=pod_limits)
    sid = await rt.run_pod_sandbox(cfg)
    cid = await rt.create_container(sid, container_config(
        "c", "sleep 60", resources=Resources(cpu_shares=256, cpu_quota=25_000,
                                             memory_limit=32 * 1024 * 1024)), [layer])
    await rt.start_container(cid)
    pod_dirs = cgroup_dirs(f"pybernetes/{cfg.cgroup_parent}")
    cpu = next(d for d in pod_dirs if "/cpu/" in d or "/cpu,cpuacct/" in d)
    memory = next(d for d in pod_dirs if "/memory/" in d)
    read = lambda d, f: Path(d, f).read_text().strip()   # noqa: E731
    assert (read(cpu, "cpu.shares"), read(cpu, "cpu.cfs_quota_us"),
            read(memory, "memory.limit_in_bytes")) == ("614", "60000", str(96 * 1024 * 1024))
    # the container's own cgroup is below the pod's, with its own limits
    assert read(os.path.join(cpu, cid), "cpu.cfs_quota_us") == "25000"
    await rt.remove_pod_sandbox(sid)
    assert not [d for d in pod_dirs if os.path.exists(d)]
    # a BestEffort pod: its QoS cgroup weighs as little as the kernel allows (upstream's 2)
    be = sandbox_config("besteffort", logs, resources=Resources(cpu_shares=2))
    be = dataclasses.replace(be, cgroup_parent=f"kubepods/besteffort/pod{be.pod_uid}")
    sid = await rt.run_pod_sandbox(be)
    qos = next(d for d in cgroup_dirs("pybernetes/kubepods/besteffort")
               if "/cpu/" in d or "/cpu,cpuacct/" in d)
    assert read(qos, "cpu.shares") == "2"
    await rt.remove_pod_sandbox(sid)


async def test_security_context(node, layer):
    rt, _, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("secure", logs))
    cases = {
        "user": (Security(run_as_user=1000), "id -u; id -g; id -G"),
        "group": (Security(run_as_user=1000, run_as_group=3000, supplemental_groups=[4000]),
                  "id -g; id -G"),
        "readonly": (Security(readonly_rootfs=True),
                     "touch /rootfile || echo denied; touch /dev/shm/ok && echo shm-ok"),
        "nocaps": (Security(capabilities_drop=["ALL"]), "grep CapEff /proc/self/status"),
        "default": (Security(), "grep CapEff /proc/self/status"),
        "addcap": (Security(capabilities_add=["NET_ADMIN"], capabilities_drop=["KILL"]),
                   "grep CapEff /proc/self/status"),
        "privileged": (Security(privileged=True),
                       "grep CapEff /proc/self/status; ls /proc/keys && echo unmasked"),
        "nnp": (Security(no_new_privs=True), "grep NoNewPrivs /proc/self/status"),
        "masked": (Security(), ("cat /proc/keys | wc -c;"
                                " echo x > /proc/sys/vm/swappiness || echo ro-proc")),
    }
    out = {}
    for name, (sec, script) in cases.items():
        _, st = await run_to_exit(rt, sid, container_config(name, script, security=sec), layer)
        out[name] = b"\n".join(text for stream, _, text in log_entries(st.log_path)
                                if stream == "stdout")
    assert out["user"].split() == [b"1000", b"1000", b"1000", b"2000"]
    assert out["group"].split() == [b"3000", b"3000", b"2000", b"4000"]
    assert out["readonly"].split(b"\n") == [b"denied", b"shm-ok"]
    assert cap_eff(out["nocaps"]) == 0
    assert cap_eff(out["default"]) == cap_mask(DEFAULT_CAPS)
    assert cap_eff(out["addcap"]) == cap_mask(
        [c for c in DEFAULT_CAPS if c != "KILL"] + ["NET_ADMIN"])
    assert cap_eff(out["privileged"]) == cap_eff(Path("/proc/self/status").read_bytes())
    assert b"unmasked" in out["privileged"]
    assert out["masked"].split(b"\n") == [b"0", b"ro-proc"]
    assert out["nnp"].split() == [b"NoNewPrivs:", b"1"]


async def test_seccomp_profiles(node, layer):
    """RuntimeDefault refuses namespaces (unshare -U needs no capability, so only the
    filter stops it); a granted CAP_SYS_ADMIN lifts the ban on mount; Unconfined and
    privileged containers have no filter; a Localhost profile comes from the runtime
    root's seccomp dir; a missing one fails the create."""
    rt, root, logs = node
    (root / "seccomp").mkdir()
    (root / "seccomp" / "no-mkdir.json").write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    sid = await rt.run_pod_sandbox(sandbox_config("seccomp", logs))
    userns = "unshare -U true && echo userns-ok || echo userns-denied"
    cases = {
        "unconfined": (Security(), userns),
        "default": (Security(seccomp_profile_type="RuntimeDefault"), userns),
        "default-admin": (Security(seccomp_profile_type="RuntimeDefault",
                                   capabilities_add=["SYS_ADMIN"]),
                          "mount -t tmpfs none /tmp && echo mount-ok"),
        "privileged": (Security(seccomp_profile_type="RuntimeDefault", privileged=True),
                       "grep Seccomp: /proc/self/status"),
        "local": (Security(seccomp_profile_type="Localhost",
                           seccomp_localhost_profile="no-mkdir.json"),
                  "mkdir /tmp/d 2>&1 || echo mkdir-denied; grep Seccomp: /proc/self/status"),
    }
    out = {}
    for name, (sec, script) in cases.items():
        _, st = await run_to_exit(rt, sid, container_config(name, script, security=sec), layer)
        out[name] = [text for stream, _, text in log_entries(st.log_path) if stream == "stdout"]
    assert out["unconfined"] == [b"userns-ok"]
    assert out["default"] == [b"userns-denied"]
    assert out["default-admin"] == [b"mount-ok"]
    assert out["privileged"] == [b"Seccomp:\t0"]
    assert out["local"][-2:] == [b"mkdir-denied", b"Seccomp:\t2"]
    for bad in ("missing.json", "../no-mkdir.json", ""):
        with pytest.raises(ContainerRuntimeError) as err:
            await rt.create_container(sid, container_config("bad", "true", security=Security(
                seccomp_profile_type="Localhost", seccomp_localhost_profile=bad)), [layer])
        assert err.value.reason == "CreateContainerError"


async def test_pod_files_and_volume_mounts(node, layer, tmp_path):
    rt, _, logs = node
    cfg = sandbox_config("files", logs, extra_hosts=[("10.9.8.7", ["db", "db.local"])],
                         dns=DNSConfig(servers=["10.43.0.10"], options=["ndots:5"],
                                       searches=["default.svc.cluster.local", "svc.cluster.local"]))
    sid = await rt.run_pod_sandbox(cfg)
    config_dir, out_dir = tmp_path / "config", tmp_path / "out"
    config_dir.mkdir()
    out_dir.mkdir()
    (config_dir / "setting").write_text("on\n")
    mounts = [Mount(str(config_dir), "/etc/app", readonly=True),
              Mount(str(out_dir), "/var/out")]
    script = ("cat /etc/resolv.conf; grep -v '^#' /etc/hosts | grep db; cat /etc/app/setting;"
              " echo x > /etc/app/new || echo ro-volume; echo written > /var/out/result")
    _, st = await run_to_exit(rt, sid, container_config("c", script, mounts=mounts), layer)
    out = [t for s, _, t in log_entries(st.log_path) if s == "stdout"]
    assert out == [b"search default.svc.cluster.local svc.cluster.local",
                   b"nameserver 10.43.0.10", b"options ndots:5", b"10.9.8.7\tdb\tdb.local",
                   b"on", b"ro-volume"]
    assert (out_dir / "result").read_text() == "written\n"
    assert not (config_dir / "new").exists()


async def test_stop_sends_sigterm_then_sigkill(node, layer):
    rt, _, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("stopper", logs))
    stubborn = "trap 'echo got-TERM' TERM; echo ready; while true; do sleep 0.1; done"
    polite = "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done"
    ids = {}
    for name, script in (("stubborn", stubborn), ("polite", polite)):
        ids[name] = await rt.create_container(sid, container_config(name, script), [layer])
        await rt.start_container(ids[name])
    for cid in ids.values():
        st = await rt.container_status(cid)
        assert b"ready" in await wait_log(st.log_path, b"ready")
    await rt.stop_container(ids["polite"], 30)
    polite_st = await rt.container_status(ids["polite"])
    assert (polite_st.state, polite_st.exit_code) == ("exited", 0)
    assert ("stdout", "F", b"bye") in log_entries(polite_st.log_path)

    await rt.stop_container(ids["stubborn"], 1)
    st = await rt.container_status(ids["stubborn"])
    assert (st.state, st.exit_code, st.reason) == ("exited", 137, "Error")
    assert ("stdout", "F", b"got-TERM") in log_entries(st.log_path)


async def test_log_reopen_after_rotation(node, layer):
    """The kubelet renames the log away and asks for a new one (ReopenContainerLog):
    conmon reopens its log path on a message to its control fifo."""
    rt, _, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("rotating", logs))
    script = "echo first; while [ ! -f /dev/shm/go ]; do sleep 0.1; done; echo second"
    cid = await rt.create_container(sid, container_config("c", script), [layer])
    await rt.start_container(cid)
    st = await rt.container_status(cid)
    await wait_log(st.log_path, b"first")
    os.rename(st.log_path, st.log_path + ".1")
    await rt.reopen_container_log(cid)
    assert os.path.exists(st.log_path)
    await rt.exec_sync(cid, ["touch", "/dev/shm/go"], 10)
    st = await wait_state(rt, cid, "exited")
    assert [t for _, _, t in log_entries(st.log_path + ".1")] == [b"first"]
    assert [t for _, _, t in log_entries(st.log_path)] == [b"second"]


async def test_exec_sync_and_timeout(node, layer):
    rt, _, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("execs", logs))
    cid = await rt.create_container(sid, container_config(
        "c", "sleep 60", env=[("GREETING", "hello")], working_dir="/tmp"), [layer])
    await rt.start_container(cid)
    res = await rt.exec_sync(cid, ["sh", "-c", "echo $GREETING; pwd; echo oops >&2; exit 4"], 10)
    assert (res.exit_code, res.stdout, res.stderr) == (4, b"hello\n/tmp\n", b"oops\n")
    with pytest.raises(TimeoutError):
        await rt.exec_sync(cid, ["sleep", "30.5"], timeout=0.5)
    left = [p for p in processes_mentioning("30.5")
            if Path(f"/proc/{p}/cmdline").read_bytes() == b"sleep\x0030.5\x00"]
    assert not [p for p in left if pid_running(p)]


async def test_kubelet_restart_finds_running_containers(node, layer):
    rt, root, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("survivor", logs))
    script = "echo started; while [ ! -f /dev/shm/stop ]; do sleep 0.1; done; echo stopping; exit 7"
    cid = await rt.create_container(sid, container_config("c", script), [layer])
    await rt.start_container(cid)
    before = await wait_state(rt, cid, "running")
    del rt   # the kubelet goes away; its monitors do not

    rt2 = RuncRuntime(str(root))
    [sandbox] = await rt2.list_pod_sandboxes()
    assert (sandbox.id, sandbox.state) == (sid, "ready")
    [found] = await rt2.list_containers(sid)
    assert (found.id, found.state, found.pid) == (cid, "running", before.pid)
    assert pid_running(found.pid)
    res = await rt2.exec_sync(cid, ["touch", "/dev/shm/stop"], 10)
    assert res.exit_code == 0
    st = await wait_state(rt2, cid, "exited")
    assert (st.exit_code, st.reason) == (7, "Error")
    assert [t for _, _, t in log_entries(st.log_path)] == [b"started", b"stopping"]


async def test_kubelet_stopped_half_way_through_a_start(node, layer):
    """A kubelet stopped after `runc start` but before it recorded the start: the next
    one adopts the running container. Stopped before `runc start`: the container left
    created is killed and reported as a failed start (the kubelet makes a new one)."""
    rt, root, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("interrupted", logs))
    cid = await rt.create_container(sid, container_config("runs", "sleep 60"), [layer])
    await rt.start_container(cid)
    before = await wait_state(rt, cid, "running")
    (root / "runc" / "containers" / cid / "monitor.json").unlink()   # never written
    st = await RuncRuntime(str(root)).container_status(cid)
    assert (st.state, st.pid) == ("running", before.pid)

    cid = await rt.create_container(sid, container_config("created", "sleep 60"), [layer])
    runc = rt._runc

    async def stopped_at_start(rec, *args, **kw):   # the kubelet goes away right here
        if args[0] == "start":
            raise asyncio.CancelledError
        return await runc(rec, *args, **kw)
    rt._runc = stopped_at_start
    with pytest.raises(asyncio.CancelledError):
        await rt.start_container(cid)
    pid = int((root / "runc" / "containers" / cid / "pid").read_text())
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "runc:[2:INIT]"
    st = await RuncRuntime(str(root)).container_status(cid)
    assert (st.state, st.reason) == ("exited", "StartError")
    for _ in range(100):
        if not pid_running(pid):
            break
        await asyncio.sleep(0.05)
    assert not pid_running(pid)


async def test_remove_leaves_nothing_behind(node, layer):
    rt, root, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("ephemeral", logs))
    netns = (await rt.pod_sandbox_status(sid)).netns_path
    assert os.path.exists(netns)
    cids = []
    for name, script in (("runs", "sleep 60"), ("ends", "true")):
        cids.append(await rt.create_container(sid, container_config(name, script), [layer]))
        await rt.start_container(cids[-1])
    running = await wait_state(rt, cids[0], "running")
    await wait_state(rt, cids[1], "exited")
    parent = (await rt.pod_sandbox_status(sid)).config.cgroup_parent
    cgroups = [d for cid in cids for d in cgroup_dirs(f"/pybernetes/{parent}/{cid}")]
    assert any(os.path.isdir(d) for d in cgroups)
    assert pid_running(running.pid)

    await rt.stop_pod_sandbox(sid)
    assert (await rt.pod_sandbox_status(sid)).state == "notready"
    await rt.remove_pod_sandbox(sid)
    await rt.remove_pod_sandbox(sid)   # idempotent

    assert await rt.list_pod_sandboxes() == [] and await rt.list_containers() == []
    assert _mounts_under(root) == []
    assert not os.path.exists(netns)
    assert not [d for d in cgroups + cgroup_dirs(f"/pybernetes/{parent}") if os.path.isdir(d)]
    assert not pid_running(running.pid)
    assert not [p for cid in cids for p in processes_mentioning(cid)]
    with pytest.raises(KeyError):
        await rt.pod_sandbox_status(sid)


async def test_start_error_is_reported(node, layer):
    rt, _, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config("broken", logs))
    cfg = container_config("bad", "true")
    cfg.command = ["/no/such/binary"]
    cid = await rt.create_container(sid, cfg, [layer])
    with pytest.raises(ContainerRuntimeError) as err:
        await rt.start_container(cid)
    assert err.value.reason == "RunContainerError" and "/no/such/binary" in str(err.value)
    st = await rt.container_status(cid)
    assert (st.state, st.exit_code, st.reason) == ("exited", 128, "StartError")


async def test_host_network_pod(node, layer):
    rt, root, logs = node
    sid = await rt.run_pod_sandbox(sandbox_config(
        "hostnet", logs, host_network=True, extra_hosts=[("10.1.2.3", ["alias.local"])]))
    status = await rt.pod_sandbox_status(sid)
    assert (status.ip, status.netns_path) == ("", "")
    script = "hostname; grep -c alias.local /etc/hosts; cat /proc/net/dev | grep -c lo:"
    _, st = await run_to_exit(rt, sid, container_config("c", script), layer)
    out = [t for s, _, t in log_entries(st.log_path) if s == "stdout"]
    assert out == [os.uname().nodename.encode(), b"1", b"1"]
    assert not os.listdir(root / "netns")


CNI_BRIDGE = "/usr/lib/cni/bridge"


@pytest.mark.skipif(not os.access(CNI_BRIDGE, os.X_OK), reason="no CNI plugins")
async def test_pods_get_ips_from_the_pod_network(node, layer, tmp_path):
    from pybernetes.kubelet.network.pod_network import PodNetwork
    _, root, logs = node
    third = secrets.randbelow(200) + 20
    net = PodNetwork(pod_cidr=f"10.197.{third}.0/24", state_dir=str(tmp_path / "cni"),
                     bridge="pybr" + secrets.token_hex(4))
    rt = RuncRuntime(str(root), network=net)
    try:
        a = await rt.run_pod_sandbox(sandbox_config("net-a", logs))
        b = await rt.run_pod_sandbox(sandbox_config("net-b", logs))
        ip_a = (await rt.pod_sandbox_status(a)).ip
        assert ip_a.startswith(f"10.197.{third}.")
        server = await rt.create_container(a, container_config(
            "server", f"grep -c '^{ip_a}\tnet-a$' /etc/hosts; " + NC_SERVER), [layer])
        await rt.start_container(server)
        client_script = (f"for i in $(seq 100); do echo over-the-bridge | nc {ip_a} 8080 && "
                         "break; sleep 0.1; done")
        _, st = await run_to_exit(rt, b, container_config("client", client_script), layer)
        assert st.exit_code == 0
        srv = await wait_state(rt, server, "exited")
        assert [t for _, _, t in log_entries(srv.log_path)] == [b"1", b"over-the-bridge"]
        for sid in (a, b):
            await rt.remove_pod_sandbox(sid)
        assert not list((tmp_path / "cni" / "ipam" / net.name).glob("10.*"))   # leases
    finally:
        for s in await rt.list_pod_sandboxes():
            await rt.remove_pod_sandbox(s.id)
        await net.remove_bridge()
