"""The kubelet's cache of ServiceAccount tokens for projected volumes (upstream's
pkg/kubelet/token manager, in our own words).

Each pod's token is requested once (TokenRequest bound to the pod) and reused until it
needs refreshing: past 80% of its requested lifetime, or older than 24 hours, minus a few
seconds of jitter so that many pods do not all refresh in the same second. When the API
server cannot be reached, a token that is still valid keeps being served. Expired
entries are dropped on the way (pods come and go; nothing else removes them).
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Awaitable, Callable

log = logging.getLogger(__name__)

MAX_TTL = 24 * 3600.0
MAX_JITTER = 10.0
REFRESH_FRACTION = 0.2  # refresh once less than 20% of the lifetime is left

# (namespace, service account, TokenRequest body) -> the TokenRequest the server returned
RequestToken = Callable[[str, str, dict], Awaitable[dict]]


@dataclass(frozen=True)
class TokenKey:
    namespace: str
    service_account: str
    audience: str
    expiration_seconds: int
    pod_name: str
    pod_uid: str


@dataclass
class CachedToken:
    token: str
    expires: float     # status.expirationTimestamp, epoch seconds
    lifetime: float    # the expirationSeconds the server granted

    @property
    def issued(self) -> float:
        return self.expires - self.lifetime


def needs_refresh(t: CachedToken, now: float, jitter: float) -> bool:
    """Upstream's rule: older than 24h, or within 20% (plus jitter) of its expiry."""
    if now > t.issued + MAX_TTL - jitter:
        return True
    return now > t.expires - t.lifetime * REFRESH_FRACTION - jitter


def _epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


class TokenManager:
    def __init__(self, request: RequestToken, clock: Callable[[], float] = time.time):
        self.request, self.clock = request, clock
        self.cache: dict[TokenKey, CachedToken] = {}

    async def get(self, key: TokenKey) -> str:
        """A current token for `key`, from the cache or a new TokenRequest."""
        now = self.clock()
        self._prune(now)
        cached = self.cache.get(key)
        if cached is not None and not needs_refresh(cached, now, random.random() * MAX_JITTER):
            return cached.token
        try:
            fresh = await self._request(key)
        except Exception as e:
            if cached is not None and now < cached.expires:
                log.warning("refreshing the token of pod %s/%s failed, serving the current "
                            "one: %s", key.namespace, key.pod_name, e)
                return cached.token
            raise
        self.cache[key] = fresh
        return fresh.token

    def forget_pod(self, uid: str) -> None:
        for key in [k for k in self.cache if k.pod_uid == uid]:
            del self.cache[key]

    def _prune(self, now: float) -> None:
        for key in [k for k, t in self.cache.items() if now >= t.expires]:
            del self.cache[key]

    async def _request(self, key: TokenKey) -> CachedToken:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": [key.audience] if key.audience else [],
                         "expirationSeconds": key.expiration_seconds,
                         "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                            "name": key.pod_name, "uid": key.pod_uid}}}
        out = await self.request(key.namespace, key.service_account, body)
        status, spec = out.get("status") or {}, out.get("spec") or {}
        token = status.get("token") or ""
        if not token or not status.get("expirationTimestamp"):
            raise ValueError("the TokenRequest came back without a token")
        lifetime = float(spec.get("expirationSeconds") or key.expiration_seconds)
        return CachedToken(token, _epoch(status["expirationTimestamp"]), lifetime)
