"""Images against a real local registry (Debian's docker-registry on 127.0.0.1):
build a busybox image from busybox-static, push it, pull it through the store,
look at it through overlayfs, import it from a `docker save` tarball, and drive
`pybernetes images`. Fakes only where the real registry cannot misbehave (corrupt
blobs) or has no token auth (a small in-process token server in front of it)."""
from __future__ import annotations

import asyncio
import base64
import gzip
import os
import subprocess
import sys
from pathlib import Path
from typing import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web

from pybernetes.kubelet.images import ImageStore
from pybernetes.kubelet.images.errors import (
    AccessDenied, DigestMismatch, NeverPull, NotFound)
from pybernetes.kubelet.images.manifest import Platform
from pybernetes.kubelet.images.registries import RegistryConfig
from tests.conftest import free_port
from tests.oci_images import (
    BUSYBOX, Registry, busybox_image, digest, docker_archive, have_registry, oci_archive,
    push_image, push_index, registry_fixture)

pytestmark = pytest.mark.skipif(not have_registry(),
                                reason="needs docker-registry and busybox-static (apt)")
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from registry_fixture(tmp_path_factory.mktemp("registry"), free_port())


@pytest.fixture(scope="module")
def pushed(registry: Registry) -> dict[str, str]:
    """busybox:1.35 (one manifest), multi:latest (amd64 + arm64 list), library/busybox
    (for the mirror test) and other:1 (shares the base layer)."""
    return {
        "single": push_image(registry.url, "busybox", "1.35", busybox_image()),
        "list": push_index(registry.url, "multi", "latest",
                           {"amd64": busybox_image("amd64"), "arm64": busybox_image("arm64")}),
        "oci-index": push_index(registry.url, "multi-oci", "v1",
                                {"amd64": busybox_image("amd64", oci=True),
                                 "arm64": busybox_image("arm64", oci=True)}, oci=True),
        "hub": push_image(registry.url, "library/busybox", "latest", busybox_image()),
        "other": push_image(registry.url, "other", "1",
                            busybox_image("other", top_extra=bytes(range(256)) * 4096)),
    }


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(str(tmp_path / "images"))


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybernetes.cli.main", "images", *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)


def _ingest_is_empty(store: ImageStore) -> bool:
    return os.listdir(store.ingest_dir) == [] and not [
        n for n in os.listdir(store.layer_dir) if n.startswith(".tmp-")]


# ---- pulling from the real registry ---------------------------------------------------
async def test_pull_a_single_manifest_image(registry: Registry, pushed: dict,
                                            store: ImageStore) -> None:
    rec = await store.pull(f"{registry.host}/busybox:1.35")
    assert rec.repo_tags == [f"{registry.host}/busybox:1.35"]
    assert rec.repo_digests == [f"{registry.host}/busybox@{pushed['single']}"]
    assert rec.id == busybox_image().config_digest
    assert rec.config["Cmd"] == ["sh"] and rec.config["ExposedPorts"] == {"80/tcp": {}}
    base, top = (Path(d) for d in rec.layer_dirs)
    assert (base / "bin/busybox").read_bytes() == Path(BUSYBOX).read_bytes()
    assert os.readlink(base / "bin/sh") == "busybox"
    assert (top / "data/new.txt").read_text() == "from layer 2\n"
    assert store.get("busybox") is None  # that would be docker.io's
    assert store.get(f"{registry.host}/busybox:1.35") == rec
    assert store.get(rec.id[7:20]) == rec
    assert _ingest_is_empty(store)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting overlayfs needs root")
async def test_the_merged_view_honours_whiteouts(registry: Registry, pushed: dict,
                                                 store: ImageStore, tmp_path: Path) -> None:
    rec = await store.pull(f"{registry.host}/busybox:1.35")
    merged = tmp_path / "merged"
    merged.mkdir()
    lower = ":".join(reversed(rec.layer_dirs))  # overlayfs wants the top layer first
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={lower}",
                    str(merged)], check=True, timeout=10)
    try:
        assert (merged / "bin/busybox").exists()
        assert (merged / "etc/passwd").exists()
        assert not (merged / "etc/remove-me").exists()          # whited out
        assert sorted(os.listdir(merged / "data")) == ["new.txt"]  # opaque: old.txt hidden
        out = subprocess.run([str(merged / "bin/busybox"), "echo", "hello"],
                             capture_output=True, text=True, timeout=10)
        assert out.stdout == "hello\n"
    finally:
        subprocess.run(["umount", str(merged)], check=True, timeout=10)
    assert str(merged) not in Path("/proc/self/mountinfo").read_text()


async def test_manifest_lists_pick_this_machines_platform(registry: Registry, pushed: dict,
                                                          tmp_path: Path) -> None:
    here = ImageStore(str(tmp_path / "here"))
    rec = await here.pull(f"{registry.host}/multi:latest")
    assert rec.repo_digests == [f"{registry.host}/multi@{pushed['list']}"]  # the list's digest
    arch = (Path(rec.layer_dirs[1]) / "etc/arch").read_text()
    assert arch == here.platform.architecture

    arm = ImageStore(str(tmp_path / "arm"), platform=Platform("linux", "arm64", "v8"))
    for ref in (f"{registry.host}/multi:latest", f"{registry.host}/multi-oci:v1"):
        rec = await arm.pull(ref)
        assert (Path(rec.layer_dirs[1]) / "etc/arch").read_text() == "arm64"
        assert rec.id == busybox_image("arm64", oci="oci" in ref).config_digest
    by_digest = await arm.pull(f"{registry.host}/multi@{pushed['list']}")
    assert by_digest.id == busybox_image("arm64").config_digest
    platform_manifest = digest(busybox_image("arm64").manifest())
    assert arm.get(f"{registry.host}/multi@{platform_manifest}") == by_digest
    assert arm.get(f"{registry.host}/elsewhere@{platform_manifest}") is None


async def test_concurrent_pulls_share_the_work(registry: Registry, pushed: dict,
                                               store: ImageStore) -> None:
    refs = [f"{registry.host}/busybox:1.35"] * 3 + [f"{registry.host}/multi:latest",
                                                    f"{registry.host}/other:1"]
    seen: list[str] = []
    recs = await asyncio.gather(*(store.pull(r, progress=lambda d, done, total:
                                             seen.append(d) if done == total else None)
                                  for r in refs))
    assert len({r.id for r in recs[:4]}) == 1  # multi's amd64 image is the same image
    # the base layer is shared by all three images: unpacked once, in one directory
    assert len(os.listdir(store.layer_dir)) == 3
    # multi's amd64 manifest is busybox's: 2 manifests, 1 list, 2 configs, 3 layers
    assert len(os.listdir(store.blob_dir)) == 2 + 1 + 2 + 3
    assert _ingest_is_empty(store)


async def test_pull_policies(registry: Registry, pushed: dict, store: ImageStore) -> None:
    ref = f"{registry.host}/busybox:1.35"
    with pytest.raises(NeverPull, match="is not present with pull policy of Never"):
        await store.pull(ref, pull_policy="Never")
    first = await store.pull(ref, pull_policy="IfNotPresent")
    assert await store.pull(ref, pull_policy="Never") == first
    again = await store.pull(ref, pull_policy="Always")
    assert again.id == first.id and again.last_used >= first.last_used


async def test_unknown_images_say_not_found(registry: Registry, store: ImageStore) -> None:
    with pytest.raises(NotFound) as e:
        await store.pull(f"{registry.host}/busybox:no-such-tag")
    assert e.value.reason == "ErrImagePull"
    assert str(e.value) == (f'failed to resolve reference "{registry.host}/busybox:no-such-tag"'
                            f': {registry.host}/busybox:no-such-tag: not found')
    with pytest.raises(NotFound):
        await store.pull(f"{registry.host}/no-such-repo:1")


async def test_a_mirror_serves_docker_hub_names(registry: Registry, pushed: dict,
                                                tmp_path: Path) -> None:
    path = tmp_path / "registries.yaml"
    path.write_text(f'mirrors:\n  "docker.io":\n    endpoint:\n      - "{registry.url}"\n')
    store = ImageStore(str(tmp_path / "images"), RegistryConfig.load(str(path)))
    rec = await store.pull("busybox")
    assert rec.repo_tags == ["docker.io/library/busybox:latest"]
    assert rec.repo_digests == [f"docker.io/library/busybox@{pushed['hub']}"]
    assert store.get("busybox:latest") == rec and store.get("docker.io/library/busybox") == rec


# ---- what a broken or guarded registry does -------------------------------------------
class FakeRegistry:
    """In-process: serves one image, with a blob that can be corrupted."""

    def __init__(self) -> None:
        self.image = busybox_image(extra=b"served by the fake\n")
        self.blobs = {layer.digest: layer.blob for layer in self.image.layers}
        self.blobs[self.image.config_digest] = self.image.config_bytes
        self.manifest = self.image.manifest()

    def corrupt(self, truncate: bool = False) -> str:
        d = self.image.layers[0].digest
        good = self.blobs[d]
        self.blobs[d] = good[:-10] if truncate else good[:-1] + bytes([good[-1] ^ 0xFF])
        return d

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v2/{repo:.+}/manifests/{ref}", self.get_manifest)
        app.router.add_get("/v2/{repo:.+}/blobs/{digest}", self.get_blob)
        return app

    async def get_manifest(self, req: web.Request) -> web.Response:
        return web.Response(body=self.manifest, content_type=self.image.media_type)

    async def get_blob(self, req: web.Request) -> web.StreamResponse:
        if req.match_info["digest"] not in self.blobs:
            raise web.HTTPNotFound()
        return web.Response(body=self.blobs[req.match_info["digest"]],
                            content_type="application/octet-stream")


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"127.0.0.1:{port}"


@pytest.fixture
async def fake_registry() -> AsyncIterator[tuple[FakeRegistry, str]]:
    fake = FakeRegistry()
    runner, host = await _serve(fake.app())
    try:
        yield fake, host
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("truncate", [False, True], ids=["flipped-byte", "truncated"])
async def test_corrupt_blobs_are_refused(fake_registry: tuple[FakeRegistry, str],
                                         store: ImageStore, truncate: bool) -> None:
    fake, host = fake_registry
    bad = fake.corrupt(truncate)
    with pytest.raises(DigestMismatch) as e:
        await store.pull(f"{host}/app:1")
    assert ("unexpected commit digest" if not truncate else "unexpected size") in str(e.value)
    assert not os.path.exists(store.blob_path(bad))  # never became visible
    assert store.list() == [] and _ingest_is_empty(store)
    assert os.listdir(store.layer_dir) == []


async def test_a_tampered_manifest_is_refused(fake_registry: tuple[FakeRegistry, str],
                                              store: ImageStore) -> None:
    fake, host = fake_registry
    wanted = digest(fake.manifest)
    fake.manifest = fake.manifest.replace(b'"schemaVersion": 2', b'"schemaVersion":2')
    with pytest.raises(DigestMismatch, match="does not match"):
        await store.pull(f"{host}/app@{wanted}")


class TokenGate:
    """A token server and an authenticating front for the real registry, as Docker
    Hub is: 401 + `WWW-Authenticate: Bearer realm=...` until a token is shown."""

    def __init__(self, upstream: str, user: str, password: str) -> None:
        self.upstream, self.user, self.password = upstream, user, password
        self.host = ""
        self.token_requests: list[dict[str, str]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/token", self.token)
        app.router.add_get("/v2/{tail:.*}", self.proxy)
        return app

    async def token(self, req: web.Request) -> web.Response:
        self.token_requests.append(dict(req.query))
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if req.headers.get("Authorization") != expected:
            return web.json_response({"details": "incorrect username or password"}, status=401)
        return web.json_response({"token": "t0ken", "expires_in": 300})

    async def proxy(self, req: web.Request) -> web.StreamResponse:
        if req.headers.get("Authorization") != "Bearer t0ken":
            repo = req.match_info["tail"].split("/manifests/")[0].split("/blobs/")[0]
            return web.json_response(
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                status=401, headers={"WWW-Authenticate":
                                     f'Bearer realm="http://{self.host}/token",service="gate",'
                                     f'scope="repository:{repo}:pull"'})
        headers = {"Accept": req.headers.get("Accept", "*/*")}
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{self.upstream}{req.path}", headers=headers) as up:
                body = await up.read()
                keep = {k: v for k, v in up.headers.items()
                        if k in ("Content-Type", "Docker-Content-Digest")}
                return web.Response(status=up.status, body=body, headers=keep)


async def test_token_auth_with_pull_secret_credentials(registry: Registry, pushed: dict,
                                                       tmp_path: Path) -> None:
    gate = TokenGate(registry.url, "alice", "s3cret")
    runner, gate.host = await _serve(gate.app())
    try:
        ref = f"{gate.host}/busybox:1.35"
        anonymous = ImageStore(str(tmp_path / "a"))
        with pytest.raises(AccessDenied) as e:
            await anonymous.pull(ref)
        assert "pull access denied, repository does not exist or may require authorization" \
            in str(e.value)
        wrong = {"auths": {gate.host: {"username": "alice", "password": "nope"}}}
        with pytest.raises(AccessDenied):
            await anonymous.pull(ref, auth=wrong)
        secret = {"auths": {gate.host: {
            "auth": base64.b64encode(b"alice:s3cret").decode()}}}
        rec = await ImageStore(str(tmp_path / "b")).pull(ref, auth=[secret])
        assert rec.id == busybox_image().config_digest
        assert gate.token_requests[-1] == {"scope": "repository:busybox:pull",
                                           "service": "gate"}
    finally:
        await runner.cleanup()


# ---- import, GC, remove -----------------------------------------------------------------
async def test_docker_archive_and_oci_layout_import(tmp_path: Path, store: ImageStore) -> None:
    image = busybox_image(extra=b"imported\n")
    tar = docker_archive(image, ["busybox:imported"], tmp_path / "busybox.tar")
    [rec] = await store.import_archive(str(tar))
    assert rec.id == image.config_digest
    assert rec.repo_tags == ["docker.io/library/busybox:imported"] and rec.repo_digests == []
    assert (Path(rec.layer_dirs[0]) / "etc/extra").read_text() == "imported\n"
    assert await store.pull("busybox:imported", pull_policy="IfNotPresent") == rec

    oci = busybox_image("amd64", oci=True, extra=b"oci\n")
    [rec2] = await store.import_archive(str(oci_archive(oci, "example.com/app:v2",
                                                        tmp_path / "oci.tar")))
    assert rec2.repo_tags == ["example.com/app:v2"]
    assert rec2.repo_digests == [f"example.com/app@{digest(oci.manifest())}"]
    assert _ingest_is_empty(store)


async def test_a_corrupt_archive_layer_is_refused(tmp_path: Path, store: ImageStore) -> None:
    image = busybox_image()
    image.layers[1].blob = gzip.compress(b"\0" * 1024)  # the config's diffID no longer fits
    tar = docker_archive(image, ["broken:1"], tmp_path / "broken.tar")
    with pytest.raises(DigestMismatch, match="diffID mismatch"):
        await store.import_archive(str(tar))
    assert store.get("broken:1") is None and _ingest_is_empty(store)


async def test_gc_removes_least_recently_used_unused_images(registry: Registry, pushed: dict,
                                                            tmp_path: Path) -> None:
    capacity = 100 << 20

    def fs_stats() -> tuple[int, int]:  # a 100 MiB disk holding only the store
        return capacity, capacity - store.disk_usage()[0]
    store = ImageStore(str(tmp_path / "images"), fs_stats=fs_stats)
    busybox = await store.pull(f"{registry.host}/busybox:1.35")
    other = await store.pull(f"{registry.host}/other:1")
    used = store.image_fs_usage().used_bytes
    assert store.image_fs_usage().capacity_bytes == capacity

    assert store.gc(85, 80, set()).removed == []  # far under the threshold: nothing to do
    capacity = int(used * 100 / 90)  # now 90% full
    store.touch(busybox.id)  # busybox was used last, other is the LRU one
    assert store.gc(85, 80, set(), min_age_seconds=3600).removed == []  # both just pulled
    result = store.gc(85, 80, set())
    assert result.removed == [other.id] and not result.error
    assert store.get(f"{registry.host}/other:1") is None
    assert os.path.isdir(busybox.layer_dirs[0]) and os.path.isdir(busybox.layer_dirs[1])
    assert not os.path.exists(other.layer_dirs[1])  # its own layer went, the shared one not

    capacity = int(store.image_fs_usage().used_bytes * 100 / 90)
    result = store.gc(85, 80, {busybox.id})  # in use: may not be removed
    assert result.removed == [] and "Failed to garbage collect required amount" in result.error


async def test_remove_drops_unshared_content(registry: Registry, pushed: dict,
                                             store: ImageStore) -> None:
    a = await store.pull(f"{registry.host}/busybox:1.35")
    b = await store.pull(f"{registry.host}/other:1")
    assert store.remove(f"{registry.host}/other:1").id == b.id
    assert [r.id for r in store.list()] == [a.id]
    assert sorted(os.listdir(store.layer_dir)) == sorted(os.path.basename(d)
                                                         for d in a.layer_dirs)
    for d in [a.id] + a.layer_digests + a.manifest_digests:
        assert os.path.exists(store.blob_path(d))
    assert len(os.listdir(store.blob_dir)) == 4
    store.remove(a.id)
    assert store.list() == [] and os.listdir(store.blob_dir) == []


# ---- the CLI ---------------------------------------------------------------------------
def test_cli_pull_import_ls_rm(registry: Registry, pushed: dict, tmp_path: Path) -> None:
    root = str(tmp_path / "images")
    out = _run_cli("pull", "--root", root, f"{registry.host}/busybox:1.35")
    assert out.returncode == 0, out.stderr
    image_id = busybox_image().config_digest
    assert out.stdout == f"Image is up to date for {image_id}\n"
    assert f"pulling {registry.host}/busybox:1.35" in out.stderr and "done (" in out.stderr

    tar = docker_archive(busybox_image(extra=b"x"), ["app:v1"], tmp_path / "app.tar")
    out = _run_cli("import", "--root", root, str(tar))
    assert out.returncode == 0 and "imported docker.io/library/app:v1" in out.stdout

    out = _run_cli("ls", "--root", root)
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    rows = [line.split() for line in lines[1:]]
    assert [r[:3] for r in rows] == [[f"{registry.host}/busybox", "1.35", image_id[7:20]],
                                     ["docker.io/library/app", "v1",
                                      busybox_image(extra=b"x").config_digest[7:20]]]
    assert rows[0][3].endswith("MB")
    assert lines[0].index("TAG") == lines[1].index("1.35")  # a table, columns aligned

    out = _run_cli("rm", "--root", root, "app:v1")
    assert out.returncode == 0 and out.stdout == "Deleted: docker.io/library/app:v1\n"
    assert _run_cli("ls", "-q", "--root", root).stdout == f"{image_id}\n"


def test_cli_errors_say_what_to_do(registry: Registry, tmp_path: Path) -> None:
    root = str(tmp_path / "images")
    out = _run_cli("pull", "--root", root, f"{registry.host}/nothing-here:1")
    assert out.returncode == 1
    assert f"{registry.host}/nothing-here:1: not found" in out.stderr
    assert "hint: the repository or tag does not exist (or pull access is denied)" in out.stderr
    out = _run_cli("pull", "--root", root, "Bad:Name")
    assert out.returncode == 1 and "invalid reference format" in out.stderr
    out = _run_cli("rm", "--root", root, "busybox")
    assert out.returncode == 1 and "no such image" in out.stderr
    out = _run_cli("import", "--root", root, str(tmp_path / "missing.tar"))
    assert out.returncode == 1 and "no such file" in out.stderr

