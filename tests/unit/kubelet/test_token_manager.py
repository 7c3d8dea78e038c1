"""The kubelet's token cache: one TokenRequest per pod token until 80% of its life."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from pybernetes.kubelet.token_manager import CachedToken, TokenKey, TokenManager, needs_refresh

KEY = TokenKey("ns1", "default", "", 3607, "web", "pod-uid")


class FakeServer:
    """Answers TokenRequests like the API server (token n, expiring after the lifetime)."""

    def __init__(self, clock: list[float]):
        self.clock, self.bodies, self.down = clock, [], False

    async def __call__(self, namespace: str, sa: str, body: dict) -> dict:
        if self.down:
            raise ConnectionError("API server unreachable")
        self.bodies.append((namespace, sa, body))
        seconds = body["spec"]["expirationSeconds"]
        exp = datetime.fromtimestamp(self.clock[0] + seconds, timezone.utc)
        return {"spec": dict(body["spec"]),
                "status": {"token": f"token-{len(self.bodies)}",
                           "expirationTimestamp": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}}


def test_refresh_rule_is_80_percent_of_the_lifetime_or_a_day():
    t = CachedToken("t", expires=1000 + 3600, lifetime=3600)
    assert not needs_refresh(t, 1000 + 0.79 * 3600, jitter=0)
    assert needs_refresh(t, 1000 + 0.81 * 3600, jitter=0)
    year = CachedToken("t", expires=1000 + 365 * 86400, lifetime=365 * 86400)
    assert needs_refresh(year, 1000 + 86400 + 1, jitter=0)


def test_tokens_are_reused_then_refreshed_and_bound_to_the_pod():
    clock = [1_000_000.0]
    server = FakeServer(clock)
    tokens = TokenManager(server, clock=lambda: clock[0])
    assert asyncio.run(tokens.get(KEY)) == "token-1"
    clock[0] += 60
    assert asyncio.run(tokens.get(KEY)) == "token-1"
    assert len(server.bodies) == 1
    ns, sa, body = server.bodies[0]
    assert (ns, sa) == ("ns1", "default")
    assert body["spec"] == {"audiences": [], "expirationSeconds": 3607, "boundObjectRef": {
        "apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "pod-uid"}}
    clock[0] += 0.8 * 3607
    assert asyncio.run(tokens.get(KEY)) == "token-2"


def test_a_valid_token_is_served_while_the_server_is_away():
    clock = [1_000_000.0]
    server = FakeServer(clock)
    tokens = TokenManager(server, clock=lambda: clock[0])
    asyncio.run(tokens.get(KEY))
    server.down = True
    clock[0] += 0.9 * 3607
    assert asyncio.run(tokens.get(KEY)) == "token-1"
    clock[0] += 3607
    with pytest.raises(ConnectionError):
        asyncio.run(tokens.get(KEY))


def test_forget_pod_drops_its_tokens():
    clock = [1_000_000.0]
    server = FakeServer(clock)
    tokens = TokenManager(server, clock=lambda: clock[0])
    asyncio.run(tokens.get(KEY))
    tokens.forget_pod("pod-uid")
    assert asyncio.run(tokens.get(KEY)) == "token-2"
