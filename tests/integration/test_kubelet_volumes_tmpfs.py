"""Memory-backed volumes as root: emptyDir medium Memory is a tmpfs of sizeLimit,
secret/projected volumes are tmpfs too, and teardown leaves no mount behind."""
import base64
import os

import pytest

from pybernetes.kubelet.env import dict_lookup
from pybernetes.kubelet.volumes import PodVolumes
from pybernetes.kubelet.volumes.mounts import mounts_under

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting tmpfs needs root")


def tmpfs_size(path: str) -> int:
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize


async def test_memory_volumes_are_tmpfs_and_torn_down(tmp_path):
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
           "spec": {"containers": [{"name": "c"}], "volumes": [
               {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
               {"name": "big", "emptyDir": {"medium": "Memory"}},
               {"name": "disk", "emptyDir": {}},
               {"name": "sec", "secret": {"secretName": "s"}}]}}
    lookup = dict_lookup({("secret", "ns", "s"): {
        "data": {"k": base64.b64encode(b"v").decode()}}})
    vols = PodVolumes(pod, str(tmp_path / "pod"), lookup, node_memory=16 << 20,
                      use_tmpfs=True)
    try:
        paths = await vols.setup()
        cache, big = paths["cache"].host_path, paths["big"].host_path
        sec, disk = paths["sec"].host_path, paths["disk"].host_path
        assert sorted(mounts_under(str(tmp_path))) == sorted([cache, big, sec])
        assert tmpfs_size(cache) == 8 << 20 and tmpfs_size(big) == 16 << 20
        assert open(os.path.join(sec, "k")).read() == "v"
        with open(os.path.join(cache, "f"), "w") as f:
            f.write("x")
        assert await vols.setup()                      # a second setup mounts nothing twice
        assert len(mounts_under(str(tmp_path))) == 3
        assert disk not in mounts_under(str(tmp_path))
    finally:
        vols.teardown()
    assert mounts_under(str(tmp_path)) == []
    assert not (tmp_path / "pod/volumes").exists()


async def test_teardown_from_disk_after_restart(tmp_path):
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
           "spec": {"containers": [{"name": "c"}], "volumes": [
               {"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]}}
    first = PodVolumes(pod, str(tmp_path / "pod"), dict_lookup({}), use_tmpfs=True)
    try:
        await first.setup()
        assert len(mounts_under(str(tmp_path))) == 1
        # a restarted kubelet knows only the pod dir
        PodVolumes(pod, str(tmp_path / "pod"), dict_lookup({}), use_tmpfs=True).teardown()
        assert mounts_under(str(tmp_path)) == []
    finally:
        first.teardown()
