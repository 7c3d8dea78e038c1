"""Pod volumes on disk: AtomicWriter projections, configMap/secret/downwardAPI/projected
contents, hostPath types, PVCs, emptyDir; updates that reach a running pod's files."""
import base64
import os
import socket
import stat

import pytest

from pybernetes.kubelet.env import PodContext, dict_lookup
from pybernetes.kubelet.volumes import AtomicWriter, FileProjection, PodVolumes, VolumeError
from pybernetes.kubelet.volumes.atomic_writer import PayloadError
from pybernetes.kubelet.volumes.local import check_host_path


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writer_layout_and_swap(tmp_path):
    target = tmp_path / "vol"
    w = AtomicWriter(str(target))
    assert w.write({"a.conf": FileProjection(b"one"), "dir/b": FileProjection(b"two", 0o600)})
    first = os.readlink(target / "..data")
    assert first.startswith("..") and (target / first).is_dir()
    assert os.readlink(target / "a.conf") == "..data/a.conf"
    assert os.readlink(target / "dir") == "..data/dir"
    assert (target / "dir/b").read_bytes() == b"two" and mode(target / "dir/b") == 0o600
    assert not w.write({"a.conf": FileProjection(b"one"), "dir/b": FileProjection(b"two", 0o600)})
    assert os.readlink(target / "..data") == first               # unchanged: no rewrite
    assert w.write({"a.conf": FileProjection(b"uno")})
    second = os.readlink(target / "..data")
    assert second != first and not (target / first).exists()    # old version removed
    assert (target / "a.conf").read_bytes() == b"uno"
    assert not os.path.lexists(target / "dir")                    # stale link removed
    assert sorted(os.listdir(target)) == sorted(["..data", second, "a.conf"])
    assert w.write({"a.conf": FileProjection(b"uno", 0o400)})     # a mode change rewrites
    for bad in ("/abs", "../up", "a/../../b", "..hidden"):
        with pytest.raises(PayloadError):
            w.write({bad: FileProjection(b"")})


def pod(volumes, **spec):
    return {"metadata": {"name": "web", "namespace": "shop", "uid": "u-7",
                         "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "resources": {
                "limits": {"memory": "64Mi"}}}], "volumes": volumes, **spec}}


def objects():
    return {
        ("configmap", "shop", "cfg"): {"data": {"app.conf": "x=1", "other": "o"},
                                       "binaryData": {"logo.bin": b64("\x00\x01")}},
        ("secret", "shop", "creds"): {"data": {"password": b64("s3cret"), "user": b64("me")}},
        ("persistentvolumeclaim", "shop", "data"): {
            "metadata": {"uid": "pvc-1"}, "spec": {"volumeName": "pv-1"},
            "status": {"phase": "Bound"}},
        ("persistentvolumeclaim", "shop", "pending"): {"spec": {}, "status": {
            "phase": "Pending"}},
    }


async def test_config_map_secret_downward_and_projected(tmp_path):
    objs = objects()
    tokens = []

    async def token(audience, seconds):
        tokens.append((audience, seconds))
        return f"tok-{len(tokens)}"
    vols = [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "items", "configMap": {"name": "cfg", "defaultMode": 0o600, "items": [
            {"key": "app.conf", "path": "conf/app.conf", "mode": 0o640}]}},
        {"name": "sec", "secret": {"secretName": "creds", "defaultMode": 0o400}},
        {"name": "maybe", "secret": {"secretName": "nope", "optional": True}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "app",
                                                 "resource": "limits.memory",
                                                 "divisor": "1Mi"}}]}},
        {"name": "all", "projected": {"sources": [
            {"configMap": {"name": "cfg", "items": [{"key": "other", "path": "o.txt"}]}},
            {"secret": {"name": "creds", "items": [{"key": "user", "path": "user"}]}},
            {"downwardAPI": {"items": [{"path": "name", "fieldRef": {
                "fieldPath": "metadata.name"}}]}},
            {"serviceAccountToken": {"path": "token", "audience": "vault",
                                     "expirationSeconds": 600}}]}},
    ]
    pv = PodVolumes(pod(vols), str(tmp_path / "pod"), dict_lookup(objs),
                    ctx=PodContext(), tokens=token, use_tmpfs=False)
    paths = await pv.setup()
    root = tmp_path / "pod/volumes"
    assert paths["cfg"].host_path == str(root / "kubernetes.io~configmap/cfg")
    assert all(p.readonly for p in paths.values())
    cfg = root / "kubernetes.io~configmap/cfg"
    assert (cfg / "app.conf").read_text() == "x=1" and (cfg / "logo.bin").read_bytes() == \
        b"\x00\x01" and mode(cfg / "app.conf") == 0o644
    items = root / "kubernetes.io~configmap/items"
    assert sorted(p for p in os.listdir(items) if not p.startswith("..")) == ["conf"]
    assert mode(items / "conf/app.conf") == 0o640
    sec = root / "kubernetes.io~secret/sec"
    assert (sec / "password").read_text() == "s3cret" and mode(sec / "password") == 0o400
    maybe = root / "kubernetes.io~secret/maybe"
    assert sorted(os.listdir(maybe)) == sorted(["..data", os.readlink(maybe / "..data")])
    info = root / "kubernetes.io~downward-api/info"
    assert (info / "labels").read_text() == 'app="web"' and (info / "mem").read_text() == "64"
    allv = root / "kubernetes.io~projected/all"
    assert {n: (allv / n).read_text() for n in ("o.txt", "user", "name", "token")} == \
        {"o.txt": "o", "user": "me", "name": "web", "token": "tok-1"}
    assert tokens == [("vault", 600)]
    assert [(t.volume, t.path, t.audience, t.expiration_seconds) for t in pv.tokens] == \
        [("all", "token", "vault", 600)]

    # a ConfigMap change reaches the files; unchanged volumes are not rewritten
    objs[("configmap", "shop", "cfg")]["data"]["app.conf"] = "x=2"
    changed = await pv.update()
    assert "cfg" in changed and "items" in changed and "sec" not in changed
    assert (cfg / "app.conf").read_text() == "x=2"
    pv.teardown()
    assert not root.exists()


@pytest.mark.parametrize("vol, message", [
    ({"configMap": {"name": "missing"}}, 'configmap "missing" not found'),
    ({"secret": {"secretName": "gone"}}, 'secret "gone" not found'),
    ({"configMap": {"name": "cfg", "items": [{"key": "k", "path": "k"}]}},
     "configmap references non-existent config key: k"),
    ({"secret": {"secretName": "creds", "items": [{"key": "k", "path": "k"}]}},
     "references non-existent secret key: k"),
    ({"persistentVolumeClaim": {"claimName": "absent"}},
     'persistentvolumeclaim "absent" not found'),
    ({"persistentVolumeClaim": {"claimName": "pending"}},
     "PVC shop/pending has non-bound phase ('Pending') or empty pvc.Spec.VolumeName ('')"),
    ({"hostPath": {"path": "/nonexistent-pyb", "type": "Directory"}},
     "hostPath type check failed: /nonexistent-pyb is not a directory"),
])
async def test_setup_errors_are_failed_mount_events(tmp_path, vol, message):
    pv = PodVolumes(pod([{"name": "v", **vol}]), str(tmp_path), dict_lookup(objects()),
                    use_tmpfs=False)
    with pytest.raises(VolumeError) as e:
        await pv.setup()
    assert str(e.value) == message
    assert e.value.event_message == f'MountVolume.SetUp failed for volume "v" : {message}'


def test_host_path_types(tmp_path):
    d, f = tmp_path / "dir", tmp_path / "file"
    check_host_path("v", str(d / "a/b"), "DirectoryOrCreate")
    assert (d / "a/b").is_dir() and mode(d / "a/b") & 0o755 == 0o755
    check_host_path("v", str(f), "FileOrCreate")
    assert f.is_file() and f.read_bytes() == b""
    with pytest.raises(VolumeError, match=r"^open .*/file: no such file or directory$"):
        check_host_path("v", str(tmp_path / "missing-parent/file"), "FileOrCreate")
    sock_path = str(tmp_path / "s.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(sock_path)
    try:
        check_host_path("v", sock_path, "Socket")
    finally:
        s.close()
    check_host_path("v", "/dev/null", "CharDevice")
    check_host_path("v", str(tmp_path), "")
    cases = [(str(f), "Directory", "is not a directory"), (str(d), "File", "is not a file"),
             (str(d), "FileOrCreate", "is not a file"), (str(f), "DirectoryOrCreate",
                                                         "is not a directory"),
             (str(f), "Socket", "is not a socket file"),
             (str(f), "CharDevice", "is not a character device"),
             ("/dev/null", "BlockDevice", "is not a block device")]
    for path, type_, words in cases:
        with pytest.raises(VolumeError) as e:
            check_host_path("v", path, type_)
        assert str(e.value) == f"hostPath type check failed: {path} {words}"
    with pytest.raises(VolumeError, match="Bogus is an invalid volume type"):
        check_host_path("v", str(f), "Bogus")


async def test_pvc_empty_dir_and_host_path(tmp_path):
    data = tmp_path / "pv-data"
    data.mkdir()
    objs = objects()
    objs[("persistentvolume", "", "pv-1")] = {"spec": {
        "claimRef": {"uid": "pvc-1"}, "accessModes": ["ReadWriteOnce"],
        "hostPath": {"path": str(data), "type": "Directory"}}}
    vols = [{"name": "d", "persistentVolumeClaim": {"claimName": "data", "readOnly": True}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "host", "hostPath": {"path": str(tmp_path / "h"),
                                          "type": "DirectoryOrCreate"}}]
    pv = PodVolumes(pod(vols, securityContext={"fsGroup": os.getgid()}),
                    str(tmp_path / "pod"), dict_lookup(objs), use_tmpfs=False)
    paths = await pv.setup()
    assert paths["d"].host_path == str(data) and paths["d"].readonly
    scratch = tmp_path / "pod/volumes/kubernetes.io~empty-dir/scratch"
    assert paths["scratch"].host_path == str(scratch) and mode(scratch) == 0o2777
    assert paths["host"].host_path == str(tmp_path / "h") and not paths["host"].readonly
    (scratch / "file").write_text("x")
    pv.teardown()
    assert not (tmp_path / "pod/volumes").exists()
    assert data.exists() and (tmp_path / "h").exists()      # host paths are left alone
    objs[("persistentvolume", "", "pv-1")]["spec"]["claimRef"] = {
        "uid": "other", "namespace": "x", "name": "y"}
    with pytest.raises(VolumeError, match="bound to a different PVC x/y"):
        await PodVolumes(pod(vols[:1]), str(tmp_path / "p2"), dict_lookup(objs),
                         use_tmpfs=False).setup()
