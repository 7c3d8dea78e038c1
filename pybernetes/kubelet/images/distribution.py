"""An OCI distribution (registry v2 API) client: manifests and blobs, with
anonymous access, Bearer tokens from the WWW-Authenticate challenge and Basic auth."""
from __future__ import annotations

import base64
import hashlib
import logging
import re
import inspect
from typing import Any, Callable
from urllib.parse import urlencode

import aiohttp

from pybernetes.machinery.streams import read_capped
from pybernetes.kubelet.images import manifest as mf
from pybernetes.kubelet.images.digests import sha256_digest
from pybernetes.kubelet.images.errors import (
    AccessDenied, DigestMismatch, ImagePullError, NotFound)
from pybernetes.kubelet.images.reference import Reference
from pybernetes.kubelet.images.registries import Credentials, Endpoint

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], Any]  # (digest, bytes done, total)
MAX_MANIFEST = 4 << 20  # containerd's limit on a manifest's size
CHUNK = 1 << 16
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')

_DENIED_HINT = ("check the image name, and for a private registry give credentials "
                "(an imagePullSecret, or auth in the registries file)")


def timeout() -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="..."` -> ("bearer", {realm:..., service:...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _CHALLENGE_PARAM.finditer(rest)}
    return scheme.lower(), params


def basic_auth(creds: Credentials) -> str:
    pair = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(pair).decode()


class RegistryClient:
    """One repository on one endpoint. Tokens are kept for the client's life."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: Endpoint, ref: Reference,
                 creds: Credentials | None = None) -> None:
        self.session, self.endpoint, self.ref, self.creds = session, endpoint, ref, creds
        self._auth_header: str | None = None

    def _url(self, kind: str, obj: str) -> str:
        url = f"{self.endpoint.base}/v2/{self.ref.path}/{kind}/{obj}"
        if self.endpoint.is_mirror:  # tells a mirror which upstream is meant (containerd)
            url += "?" + urlencode({"ns": self.ref.domain})
        return url

    async def _get(self, url: str, accept: str | None = None) -> aiohttp.ClientResponse:
        """GET with auth: on a 401 answer the challenge once and retry."""
        for attempt in range(2):
            headers = {"Accept": accept} if accept else {}
            if self._auth_header:
                headers["Authorization"] = self._auth_header
            try:
                resp = await self.session.get(url, headers=headers, allow_redirects=True,
                                              ssl=None if self.endpoint.verify_tls else False)
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                raise ImagePullError(f'failed to do request: Get "{url}": {e or type(e).__name__}',
                                     hint="is the registry (or mirror) reachable from here?"
                                     ) from None
            if resp.status != 401 or attempt == 1:
                return resp
            challenge = resp.headers.get("WWW-Authenticate", "")
            body = await resp.read()
            resp.release()
            if not await self._answer(challenge):
                raise self._denied(body)
        raise AssertionError("unreachable")

    async def _answer(self, challenge: str) -> bool:
        """Set `_auth_header` from a challenge; False when we have nothing to answer with."""
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.creds or not self.creds.username:
                return False
            self._auth_header = basic_auth(self.creds)
            return True
        if scheme != "bearer" or "realm" not in params:
            return False
        token = await self._fetch_token(params)
        self._auth_header = f"Bearer {token}"
        return True

    async def _fetch_token(self, params: dict[str, str]) -> str:
        scope = params.get("scope") or f"repository:{self.ref.path}:pull"
        query = {"scope": scope}
        if params.get("service"):
            query["service"] = params["service"]
        realm = params["realm"]
        try:
            if self.creds and self.creds.identity_token:  # OAuth2 refresh token (docker login)
                form = dict(query, grant_type="refresh_token", client_id="pybernetes",
                            refresh_token=self.creds.identity_token)
                resp = await self.session.post(realm, data=form)
            else:
                headers = ({"Authorization": basic_auth(self.creds)}
                           if self.creds and self.creds.username else {})
                resp = await self.session.get(realm, params=query, headers=headers)
            async with resp:
                body = await resp.read()
                if resp.status in (401, 403):
                    raise self._denied(body)
                if resp.status != 200:
                    raise ImagePullError(f"failed to fetch anonymous token: unexpected status "
                                         f"from GET request to {realm}: {resp.status}")
                doc = await resp.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
            raise ImagePullError(f"failed to fetch token from {realm}: {e}") from None
        token = (doc or {}).get("token") or (doc or {}).get("access_token")
        if not token:
            raise ImagePullError(f"token server {realm} answered without a token")
        return str(token)

    def _denied(self, body: bytes) -> AccessDenied:
        detail = _server_message(body)
        return AccessDenied(f'failed to resolve reference "{self.ref}": pull access denied, '
                            f"repository does not exist or may require authorization"
                            + (f": server message: {detail}" if detail else ""),
                            hint=_DENIED_HINT)

    async def get_manifest(self, obj: str) -> tuple[str, dict[str, Any], bytes, str]:
        """(media type, document, raw bytes, digest) of the manifest/index named `obj`."""
        url = self._url("manifests", obj)
        resp = await self._get(url, accept=mf.ACCEPT)
        async with resp:
            if resp.status != 200:
                await self._raise_for(resp, url)
            body = await read_capped(resp.content, MAX_MANIFEST)
            if len(body) > MAX_MANIFEST:
                raise ImagePullError(f"manifest for {self.ref} is larger than 4 MiB")
            digest = sha256_digest(body)
            header = resp.headers.get("Docker-Content-Digest", "")
            media, doc = mf.parse_manifest(body, resp.headers.get("Content-Type", ""))
        expected = obj if obj.startswith("sha256:") else header
        if expected.startswith("sha256:") and expected != digest:
            raise DigestMismatch(f"manifest for {self.ref}: content digest {digest} does not "
                                 f"match {expected}",
                                 hint="the registry served corrupt or tampered content")
        return media, doc, body, digest

    async def fetch_blob(self, desc: mf.Descriptor, dest: str,
                         progress: Progress | None = None) -> None:
        """Download a blob to `dest` (a temp path), verifying size and sha256 as it streams."""
        if not desc.digest.startswith("sha256:"):
            raise ImagePullError(f"unsupported digest algorithm in {desc.digest}")
        url = self._url("blobs", desc.digest)
        resp = await self._get(url)
        h, done = hashlib.sha256(), 0
        async with resp:
            if resp.status != 200:
                await self._raise_for(resp, url)
            try:
                with open(dest, "wb") as f:
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        done += len(chunk)
                        if done > desc.size:
                            raise _size_mismatch(desc, done)
                        h.update(chunk)
                        f.write(chunk)
                        if progress:
                            await _call(progress, desc.digest, done, desc.size)
            except (aiohttp.ClientError, TimeoutError) as e:
                raise ImagePullError(f"failed to copy {desc.digest}: {e}") from None
        if done != desc.size:
            raise _size_mismatch(desc, done)
        actual = "sha256:" + h.hexdigest()
        if actual != desc.digest:
            raise DigestMismatch(f"failed commit on ref \"{desc.digest}\": unexpected commit "
                                 f"digest {actual}, expected {desc.digest}: failed precondition",
                                 hint="the registry served corrupt content; try again, "
                                      "or check the registry's storage")

    async def _raise_for(self, resp: aiohttp.ClientResponse, url: str) -> None:
        body = await resp.read()
        if resp.status == 404:
            raise NotFound(f'failed to resolve reference "{self.ref}": {self.ref}: not found',
                           hint="the repository or tag does not exist (or pull access is "
                                "denied): check the image name and tag, and give credentials "
                                "if the repository is private")
        if resp.status in (401, 403):
            raise self._denied(body)
        detail = _server_message(body)
        raise ImagePullError(f"unexpected status from GET request to {url}: {resp.status} "
                             f"{resp.reason}" + (f": {detail}" if detail else ""))


def _server_message(body: bytes) -> str:
    """The registry's error list (`{"errors":[{"code":..,"message":..}]}`) as one line."""
    import json
    try:
        errors = json.loads(body).get("errors") or []
    except (ValueError, AttributeError):
        return ""
    return "; ".join(f"{str(e.get('code', '')).lower()}: {e.get('message', '')}"
                     for e in errors if isinstance(e, dict))


def _size_mismatch(desc: mf.Descriptor, got: int) -> DigestMismatch:
    return DigestMismatch(f"failed to copy {desc.digest}: unexpected size {got}, "
                          f"expected {desc.size}: failed precondition",
                          hint="the registry served corrupt content")


async def _call(cb: Progress, *args: Any) -> None:
    result = cb(*args)
    if inspect.isawaitable(result):
        await result
