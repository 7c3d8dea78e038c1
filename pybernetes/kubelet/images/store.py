"""The image service: a content-addressed store shared by all pods.

Layout under `root`:
  blobs/sha256/<hex>     manifests, configs and layer blobs, each verified on write
  layers/<chainid hex>/  unpacked layers, ready as overlayfs lowerdirs
  ingest/                downloads in progress (temp files, renamed when verified)
  images.json            records: id (config digest) -> tags, digests, layers, last use

Nothing partial becomes visible: blobs and layer dirs appear by rename only.
Concurrent pulls share work: one download per blob, one unpack per layer."""
from __future__ import annotations

import asyncio
import contextlib
import copy
import fcntl
import json
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from pybernetes.kubelet.images import manifest as mf
from pybernetes.kubelet.images.digests import sha256_digest, temp_name
from pybernetes.kubelet.images.errors import (
    ImageError, ImageNotKnown, ImagePullError, NeverPull)
from pybernetes.kubelet.images.reference import (
    DEFAULT_TAG, Reference, is_image_id, parse_reference)
from pybernetes.kubelet.images.registries import (
    Credentials, Endpoint, RegistryConfig, docker_config_credentials)
from pybernetes.kubelet.images.unpack import unpack_layer

if TYPE_CHECKING:  # the network client is imported only when a pull needs it
    from pybernetes.kubelet.images.distribution import Progress, RegistryClient

log = logging.getLogger(__name__)

PULL_POLICIES = ("Always", "IfNotPresent", "Never")
CONFIG_KEYS = ("Entrypoint", "Cmd", "Env", "User", "WorkingDir", "ExposedPorts", "StopSignal",
               "Labels", "Volumes")
_SHA256 = re.compile(r"^sha256:[a-f0-9]{64}$")
_PARALLEL_LAYERS = 3
TOUCH_PERIOD = 60.0   # seconds: how stale an image's last_used may be


@dataclass
class ImageRecord:
    id: str                                  # the config digest, "sha256:..."
    repo_tags: list[str]                     # docker.io/library/busybox:latest
    repo_digests: list[str]                  # docker.io/library/busybox@sha256:...
    size: int                                # config + compressed layers, as crictl shows
    layer_dirs: list[str]                    # unpacked layers, lowest first
    config: dict[str, Any]                   # the image config's "config" (Entrypoint, Cmd..)
    manifest_digests: list[str] = field(default_factory=list)  # index and image manifest
    layer_digests: list[str] = field(default_factory=list)
    chain_ids: list[str] = field(default_factory=list)
    created: float = 0.0                     # when it came into this store
    last_used: float = 0.0


@dataclass
class FsUsage:
    used_bytes: int        # bytes held by the image store
    inodes_used: int
    capacity_bytes: int    # of the filesystem the store lives on
    available_bytes: int


@dataclass
class GCResult:
    removed: list[str]
    freed_bytes: int
    wanted_bytes: int

    @property
    def error(self) -> str:
        """Upstream kubelet's complaint when unused images could not free enough."""
        if self.freed_bytes >= self.wanted_bytes:
            return ""
        return (f"Failed to garbage collect required amount of images. Attempted to free "
                f"{self.wanted_bytes} bytes, but only found {self.freed_bytes} bytes eligible "
                f"to free.")


def default_pull_policy(ref: Reference) -> str:
    """The API's default: Always for :latest (or no tag), IfNotPresent otherwise."""
    return "Always" if ref.tag == DEFAULT_TAG and not ref.digest else "IfNotPresent"


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI chain IDs: the first is the diffID, then sha256(parent + " " + diffID)."""
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else sha256_digest(f"{out[-1]} {d}".encode()))
    return out


def _hex(digest: str) -> str:
    if not _SHA256.match(digest):
        raise ImagePullError(f"invalid or unsupported digest {digest!r}")
    return digest.split(":", 1)[1]


def _rmtree(path: str) -> None:
    """Remove a tree even when it holds read-only directories (non-root)."""
    def fix(func: Callable[..., Any], p: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
        func(p)
    shutil.rmtree(path, onerror=fix)


def _du(path: str) -> tuple[int, int]:
    """(bytes, inodes) under `path`, hard links counted once."""
    seen: set[tuple[int, int]] = set()
    total = inodes = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
            inodes += 1
    return total, inodes


class ImageStore:
    def __init__(self, root: str, registries: RegistryConfig | None = None,
                 platform: mf.Platform | None = None,
                 fs_stats: Callable[[], tuple[int, int]] | None = None) -> None:
        self.root = os.path.abspath(root)
        self.registries = registries or RegistryConfig()
        self.platform = platform or mf.host_platform()
        self._fs_stats = fs_stats or self._statvfs
        self.blob_dir = os.path.join(self.root, "blobs", "sha256")
        self.layer_dir = os.path.join(self.root, "layers")
        self.ingest_dir = os.path.join(self.root, "ingest")
        for d in (self.blob_dir, self.layer_dir, self.ingest_dir):
            os.makedirs(d, exist_ok=True)
        self._db_path = os.path.join(self.root, "images.json")
        self._locks: dict[str, asyncio.Lock] = {}
        self._inflight: dict[str, asyncio.Future[ImageRecord]] = {}
        self._pinned: dict[str, int] = {}  # digests/chain ids a pull in progress needs
        self._pin_lock = threading.Lock()  # gc()/remove() may run in a worker thread
        self._db_cache: tuple[tuple[int, int, int], dict[str, Any]] | None = None
        self._touched: dict[str, float] = {}   # image id -> last touch() written

    # ---- records -------------------------------------------------------------------
    @contextlib.contextmanager
    def _db(self, write: bool = False) -> Iterator[dict[str, Any]]:
        """The records, under a file lock so a CLI and a kubelet can share the store."""
        with open(os.path.join(self.root, ".lock"), "a+") as lockf:
            fcntl.flock(lockf, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            db = self._load_db(write)
            yield db
            if write:
                tmp = self._db_path + f".tmp-{os.getpid()}"
                with open(tmp, "w") as f:
                    json.dump(db, f, indent=1, sort_keys=True)
                    f.flush()
                    os.fsync(f.fileno())
                os.rename(tmp, self._db_path)

    def _load_db(self, write: bool) -> dict[str, Any]:
        """The records file, parsed. Readers share one parse while the file is the same
        (every write replaces it by rename: a new inode), so a pod start costs a stat,
        not a JSON parse; writers always get their own copy to change."""
        try:
            with open(self._db_path) as f:
                st = os.fstat(f.fileno())
                ident = (st.st_ino, st.st_mtime_ns, st.st_size)
                if not write and self._db_cache is not None and self._db_cache[0] == ident:
                    return self._db_cache[1]
                db = json.load(f)
        except FileNotFoundError:
            return {"images": {}}
        if not write:
            self._db_cache = (ident, db)
        return db

    def _record(self, raw: dict[str, Any]) -> ImageRecord:
        raw = copy.deepcopy(raw)    # never hand out the shared parse of the records
        rec = ImageRecord(**{k: v for k, v in raw.items() if k != "layer_dirs"},
                          layer_dirs=[])
        rec.layer_dirs = [os.path.join(self.layer_dir, _hex(c)) for c in rec.chain_ids]
        return rec

    def list(self) -> list[ImageRecord]:
        with self._db() as db:
            return [self._record(r) for r in db["images"].values()]

    def get(self, ref_or_id: str) -> ImageRecord | None:
        with self._db() as db:
            key = self._find(db, ref_or_id)
            return self._record(db["images"][key]) if key else None

    def _find(self, db: dict[str, Any], ref_or_id: str) -> str | None:
        images = db["images"]
        if is_image_id(ref_or_id):
            key = ref_or_id if ref_or_id.startswith("sha256:") else f"sha256:{ref_or_id}"
            if key in images:
                return key
        try:
            ref = parse_reference(ref_or_id)
        except ImageError:
            ref = None
        if ref is not None:
            for key, img in images.items():
                if ref.digest and (f"{ref.repository}@{ref.digest}" in img["repo_digests"]
                                   or _same_repo_manifest(img, ref)):
                    return key
                if not ref.digest and str(ref) in img["repo_tags"]:
                    return key
        # an id prefix, as crictl and docker accept (at least 4 hex digits, unambiguous)
        prefix = ref_or_id.removeprefix("sha256:")
        if re.fullmatch(r"[a-f0-9]{4,64}", prefix):
            hits = [k for k in images if k[7:].startswith(prefix)]
            if len(hits) == 1:
                return hits[0]
        return None

    def touch(self, image_id: str) -> None:
        """Mark an image used now (a container started from it): GC removes it last.
        At most once a TOUCH_PERIOD per image and process: each is a rewrite of the
        records, and a burst of pods from one image would otherwise queue up on it
        (GC's order does not need it finer; upstream's image GC notes use every 5 min)."""
        now = time.time()
        if now - self._touched.get(image_id, 0.0) < TOUCH_PERIOD:
            return
        self._touched[image_id] = now
        with self._db(write=True) as db:
            if image_id in db["images"]:
                db["images"][image_id]["last_used"] = now

    # ---- pull ----------------------------------------------------------------------
    async def pull(self, ref: str, pull_policy: str | None = None, auth: Any = None,
                   progress: Progress | None = None) -> ImageRecord:
        """Make `ref` present and return it. `auth` is docker config JSON
        ({"auths": {...}}) or a list of them (imagePullSecrets)."""
        r = parse_reference(ref)
        policy = pull_policy or default_pull_policy(r)
        if policy not in PULL_POLICIES:
            raise ImageError(f"unknown pull policy {policy!r}; want one of "
                             f"{', '.join(PULL_POLICIES)}")
        existing = self.get(str(r))
        if policy == "Never":
            if existing:
                return existing
            raise NeverPull(f'Container image "{ref}" is not present with pull policy of Never',
                            hint="pull or import the image first, or change imagePullPolicy")
        if policy == "IfNotPresent" and existing:
            return existing
        key = str(r)
        task = self._inflight.get(key)
        if task is None:  # one pull per reference; later callers wait for it
            task = asyncio.ensure_future(self._pull_or_explain(r, auth, progress))
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def _pull_or_explain(self, r: Reference, auth: Any,
                               progress: Progress | None) -> ImageRecord:
        try:
            return await self._pull(r, auth, progress)
        except OSError as e:  # a full disk, a removal racing us: an image error all the same
            raise ImagePullError(f'failed to pull and unpack image "{r}": {e}',
                                 hint="check the image store's disk, then pull again") from e

    async def _pull(self, r: Reference, auth: Any, progress: Progress | None) -> ImageRecord:
        import aiohttp

        from pybernetes.kubelet.images.distribution import timeout
        async with aiohttp.ClientSession(timeout=timeout()) as session:
            client, media, doc, body, digest = await self._resolve(session, r, auth)
            top = digest
            manifest_digests = [digest]
            self._put_bytes(body, digest)
            if media in mf.INDEX_TYPES:
                desc = mf.select_platform(doc, self.platform)
                media, doc, body, digest = await client.get_manifest(desc.digest)
                if media in mf.INDEX_TYPES:
                    raise ImagePullError(f"{r}: nested image indexes are not supported")
                self._put_bytes(body, digest)
                manifest_digests.append(digest)
            config_desc, layers = _image_manifest(doc)
            with self._pin([config_desc.digest] + [d.digest for d in layers]):
                await self._fetch(client, config_desc, None)
                config = self._read_config(config_desc.digest, len(layers))
                chains = chain_ids(config["rootfs"]["diff_ids"])
                with self._pin(chains):
                    await self._fetch_and_unpack(client, layers, config, chains, progress)
                    repo_digests = [f"{r.repository}@{top}"]
                    tags = [str(r)] if r.tag and not r.digest else []
                    rec = self._commit(config_desc, layers, config, chains, tags,
                                       repo_digests, manifest_digests)
        log.info("pulled image %s (%s, %d bytes)", r, rec.id, rec.size)
        return rec

    async def _resolve(self, session: Any, r: Reference, auth: Any
                       ) -> tuple[RegistryClient, str, dict[str, Any], bytes, str]:
        """Ask each endpoint (mirrors first) for the manifest; the first answer wins."""
        from pybernetes.kubelet.images.distribution import RegistryClient
        endpoints = self.registries.endpoints(r.domain)
        last: ImageError | None = None
        for ep in endpoints:
            client = RegistryClient(session, ep, r, self._credentials(ep, r, auth))
            try:
                media, doc, body, digest = await client.get_manifest(r.object)
                return client, media, doc, body, digest
            except ImageError as e:
                if ep.is_mirror:
                    log.info("mirror %s for %s: %s; trying the next endpoint", ep.base, r, e)
                last = e
        assert last is not None
        raise last

    def _credentials(self, ep: Endpoint, r: Reference, auth: Any) -> Credentials | None:
        creds = self.registries.credentials(ep.host)
        if creds is None and auth:
            creds = docker_config_credentials(auth, ep.host)
            if creds is None and not ep.is_mirror:
                creds = docker_config_credentials(auth, r.domain)
        return creds

    async def _fetch_and_unpack(self, client: RegistryClient, layers: list[mf.Descriptor],
                                config: dict[str, Any], chains: list[str],
                                progress: Progress | None) -> None:
        diff_ids = config["rootfs"]["diff_ids"]
        gate = asyncio.Semaphore(_PARALLEL_LAYERS)

        async def one(i: int) -> None:
            async with gate:
                if os.path.isdir(self._layer_path(chains[i])):
                    if progress:  # already unpacked: nothing to download
                        await _report(progress, layers[i].digest, layers[i].size,
                                      layers[i].size)
                    return
                await self._fetch(client, layers[i], progress)
                await self._unpack(layers[i].digest, diff_ids[i], chains[i])
        tasks = [asyncio.ensure_future(one(i)) for i in range(len(layers))]
        try:
            await asyncio.gather(*tasks)
        except BaseException:  # stop the siblings, and let them clean up, before reporting
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    # ---- blobs and layers ----------------------------------------------------------
    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    @contextlib.contextmanager
    def _pin(self, keys: list[str]) -> Iterator[None]:
        with self._pin_lock:
            for k in keys:
                self._pinned[k] = self._pinned.get(k, 0) + 1
        try:
            yield
        finally:
            with self._pin_lock:
                for k in keys:
                    self._pinned[k] -= 1
                    if not self._pinned[k]:
                        del self._pinned[k]

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blob_dir, _hex(digest))

    def _layer_path(self, chain_id: str) -> str:
        return os.path.join(self.layer_dir, _hex(chain_id))

    def _put_bytes(self, data: bytes, digest: str) -> None:
        path = self.blob_path(digest)
        if os.path.exists(path):
            return
        tmp = temp_name(self.ingest_dir, digest)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, path)

    async def _fetch(self, client: RegistryClient, desc: mf.Descriptor,
                     progress: Progress | None) -> None:
        path = self.blob_path(desc.digest)
        async with self._lock(desc.digest):
            if os.path.exists(path) and os.path.getsize(path) == desc.size:
                if progress:
                    await _report(progress, desc.digest, desc.size, desc.size)
                return
            tmp = temp_name(self.ingest_dir, desc.digest)
            try:
                await client.fetch_blob(desc, tmp, progress)
                os.rename(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    async def _unpack(self, blob_digest: str, diff_id: str, chain_id: str) -> None:
        dest = self._layer_path(chain_id)
        async with self._lock(f"layer:{chain_id}"):
            if os.path.isdir(dest):
                return
            tmp = temp_name(self.layer_dir, chain_id)
            os.mkdir(tmp, 0o755)
            work = asyncio.ensure_future(
                asyncio.to_thread(unpack_layer, self.blob_path(blob_digest), tmp, diff_id))
            try:
                try:
                    await asyncio.shield(work)
                except asyncio.CancelledError:  # the thread runs on: wait before cleaning up
                    await asyncio.gather(work, return_exceptions=True)
                    raise
                os.rename(tmp, dest)
            except OSError:
                if not os.path.isdir(dest):  # not a lost race with another process
                    raise
            finally:
                if os.path.lexists(tmp):
                    _rmtree(tmp)

    def _read_config(self, digest: str, n_layers: int) -> dict[str, Any]:
        try:
            with open(self.blob_path(digest), "rb") as f:
                config = json.load(f)
            diff_ids = config["rootfs"]["diff_ids"]
        except (ValueError, KeyError, TypeError):
            raise ImagePullError(f"image config {digest} is not a valid image config") from None
        if not isinstance(diff_ids, list) or len(diff_ids) != n_layers:
            raise ImagePullError(f"image config {digest} lists {len(diff_ids)} layers, the "
                                 f"manifest {n_layers}")
        for d in diff_ids:
            _hex(d)
        return config

    def _commit(self, config_desc: mf.Descriptor, layers: list[mf.Descriptor],
                config: dict[str, Any], chains: list[str], tags: list[str],
                repo_digests: list[str], manifest_digests: list[str]) -> ImageRecord:
        image_id = config_desc.digest
        now = time.time()
        with self._db(write=True) as db:
            images = db["images"]
            for other in images.values():  # a tag names one image: move it here
                other["repo_tags"] = [t for t in other["repo_tags"] if t not in tags]
            old = images.get(image_id, {})
            rec = ImageRecord(
                id=image_id,
                repo_tags=_merge(old.get("repo_tags", []), tags),
                repo_digests=_merge(old.get("repo_digests", []), repo_digests),
                size=config_desc.size + sum(d.size for d in layers),
                layer_dirs=[],
                config={k: v for k, v in (config.get("config") or {}).items()
                        if k in CONFIG_KEYS},
                manifest_digests=_merge(old.get("manifest_digests", []), manifest_digests),
                layer_digests=[d.digest for d in layers], chain_ids=chains,
                created=old.get("created", now), last_used=now)
            raw = asdict(rec)
            del raw["layer_dirs"]
            images[image_id] = raw
        return self._record(raw)

    # ---- import --------------------------------------------------------------------
    async def import_archive(self, path: str) -> list[ImageRecord]:
        """Load a docker-archive (`docker save`) or OCI-layout tarball."""
        from pybernetes.kubelet.images.archive import read_archive
        records = []
        tmp = temp_name(self.ingest_dir, "import")
        os.mkdir(tmp, 0o700)
        try:
            for img in await asyncio.to_thread(read_archive, path, tmp):
                records.append(await self._install_local(img))
        finally:
            _rmtree(tmp)
        return records

    async def _install_local(self, img: Any) -> ImageRecord:
        """Move an archive's verified blobs into the store, unpack, record."""
        for digest, src in img.blobs.items():
            dest = self.blob_path(digest)
            if not os.path.exists(dest):
                os.rename(src, dest)
        config = self._read_config(img.config.digest, len(img.layers))
        chains = chain_ids(config["rootfs"]["diff_ids"])
        with self._pin([img.config.digest] + [d.digest for d in img.layers] + chains):
            for desc, diff_id, chain in zip(img.layers, config["rootfs"]["diff_ids"], chains):
                await self._unpack(desc.digest, diff_id, chain)
            return self._commit(img.config, img.layers, config, chains, img.tags,
                                img.repo_digests, img.manifest_digests)

    # ---- remove and GC -------------------------------------------------------------
    def remove(self, ref_or_id: str) -> ImageRecord:
        """Remove an image (all its tags, as CRI RemoveImage) and content no other
        image uses. Raises ImageNotKnown."""
        with self._db(write=True) as db:
            key = self._find(db, ref_or_id)
            if key is None:
                raise ImageNotKnown(f"no such image: {ref_or_id!r}",
                                    hint="`pybernetes images ls` lists the images")
            rec = self._record(db["images"].pop(key))
        self._sweep()
        return rec

    def _referenced(self) -> tuple[set[str], set[str]]:
        with self._pin_lock:
            blobs: set[str] = set(self._pinned)
        layers = set(blobs)
        for img in self.list():
            blobs.update(img.manifest_digests, img.layer_digests, [img.id])
            layers.update(img.chain_ids)
        return {d.split(":")[-1] for d in blobs}, {c.split(":")[-1] for c in layers}

    def _sweep(self) -> int:
        """Delete unreferenced blobs and layer dirs; returns the bytes freed."""
        blobs, layers = self._referenced()
        freed = 0
        for name in os.listdir(self.blob_dir):
            if name not in blobs and not name.startswith(".tmp-"):
                path = os.path.join(self.blob_dir, name)
                freed += os.lstat(path).st_blocks * 512
                os.unlink(path)
        for name in os.listdir(self.layer_dir):
            if name not in layers and not name.startswith(".tmp-"):
                path = os.path.join(self.layer_dir, name)
                freed += _du(path)[0]
                _rmtree(path)
        return freed

    def disk_usage(self) -> tuple[int, int]:
        """(bytes, inodes) the store holds on disk."""
        return _du(self.root)

    def image_fs_usage(self) -> FsUsage:
        used, inodes = self.disk_usage()
        capacity, available = self._fs_stats()
        return FsUsage(used, inodes, capacity, available)

    def _statvfs(self) -> tuple[int, int]:
        st = os.statvfs(self.root)
        return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize

    def gc(self, high_percent: float = 85, low_percent: float = 80,
           in_use: set[str] | frozenset[str] = frozenset(),
           min_age_seconds: float = 0.0) -> GCResult:
        """Upstream kubelet image GC: once the image filesystem is `high_percent` full,
        remove unused images, least recently used first, until it is under
        `low_percent`. `in_use`: ids (or names) of images that containers use."""
        capacity, available = self._fs_stats()
        used = capacity - available
        if capacity <= 0 or used * 100 < high_percent * capacity:
            return GCResult([], 0, 0)
        wanted = int(used - capacity * low_percent / 100)
        now = time.time()
        candidates = sorted((img for img in self.list() if not _in_use(img, in_use)
                             and now - img.created >= min_age_seconds),
                            key=lambda img: (img.last_used, img.created))
        result = GCResult([], 0, wanted)
        for img in candidates:
            if result.freed_bytes >= wanted:
                break
            with self._db(write=True) as db:
                db["images"].pop(img.id, None)
            result.freed_bytes += self._sweep()
            result.removed.append(img.id)
            log.info("image GC removed %s (%s)", img.id, ", ".join(img.repo_tags) or "<none>")
        return result


def _same_repo_manifest(img: dict[str, Any], ref: Reference) -> bool:
    """`ref` names, by digest, this image's platform manifest in a repository it came from."""
    return ref.digest in img.get("manifest_digests", []) and any(
        d.startswith(f"{ref.repository}@") for d in img["repo_digests"])


def _in_use(img: ImageRecord, in_use: set[str] | frozenset[str]) -> bool:
    return img.id in in_use or any(n in in_use for n in img.repo_tags + img.repo_digests)


def _merge(old: list[str], new: list[str]) -> list[str]:
    return old + [x for x in new if x not in old]


def _image_manifest(doc: dict[str, Any]) -> tuple[mf.Descriptor, list[mf.Descriptor]]:
    try:
        config = mf.Descriptor.from_json(doc["config"])
        layers = [mf.Descriptor.from_json(d) for d in doc["layers"]]
    except (KeyError, TypeError):
        raise ImagePullError("invalid image manifest: no config or layers") from None
    for d in [config] + layers:
        _hex(d.digest)
        if d in layers and d.media_type and d.media_type not in (
                mf.GZIP_LAYERS + mf.UNCOMPRESSED_LAYERS):
            raise ImagePullError(f"unsupported layer media type {d.media_type}")
    return config, layers


async def _report(progress: Progress, *args: Any) -> None:
    import inspect
    result = progress(*args)
    if inspect.isawaitable(result):
        await result
