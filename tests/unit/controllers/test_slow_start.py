"""ReplicaSet creates in doubling batches and stops at the first failing batch, so a
template the API rejects costs one request, not N; expectations never wedge."""
from __future__ import annotations

from pybernetes.controllers.base import SharedInformers
from pybernetes.controllers.replicaset import ReplicaSetController
from pybernetes.machinery.errors import StatusError


class RejectingAfter:
    """A client whose pod creates succeed `ok` times, then fail (fault injection:
    the real API server cannot be told to fail on cue)."""

    def __init__(self, ok: int):
        self.ok, self.calls = ok, 0

    async def create(self, res, obj, namespace=None):
        self.calls += 1
        if self.calls > self.ok:
            raise StatusError(403, "Forbidden", 'pods "x" is forbidden: exceeded quota')
        return {**obj, "metadata": {**obj["metadata"], "name": f"web-{self.calls}"}}


class Events:
    def __init__(self):
        self.seen: list[tuple[str, str]] = []

    def event(self, obj, type_, reason, message):
        self.seen.append((reason, message))


RS = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
      "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
      "spec": {"replicas": 10, "selector": {"matchLabels": {"app": "web"}},
               "template": {"metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


def controller(client):
    events = Events()
    c = ReplicaSetController(client, SharedInformers(client), events)
    return c, events


async def test_all_batches_when_creates_succeed():
    client = RejectingAfter(ok=100)
    c, events = controller(client)
    assert await c._create_pods("default/web", RS, 10) == ""
    assert client.calls == 10
    assert [r for r, _ in events.seen] == ["SuccessfulCreate"] * 10
    assert events.seen[0][1] == "Created pod: web-1"
    assert not c.expectations.satisfied("default/web")  # until the watch shows them


async def test_a_failing_batch_stops_the_rest():
    client = RejectingAfter(ok=3)  # batches 1, 2 succeed; the batch of 4 fails
    c, events = controller(client)
    err = await c._create_pods("default/web", RS, 10)
    assert "exceeded quota" in err
    assert client.calls == 1 + 2 + 4  # the last batch of 3 never sent
    failed = [m for r, m in events.seen if r == "FailedCreate"]
    assert len(failed) == 4 and failed[0].startswith("Error creating: ")
    for _ in range(3):  # the watch shows the 3 that were made
        c.expectations.creation_observed("default/web")
    assert c.expectations.satisfied("default/web")


async def test_first_failure_costs_one_request():
    client = RejectingAfter(ok=0)
    c, _ = controller(client)
    assert await c._create_pods("default/web", RS, 50)
    assert client.calls == 1
    assert c.expectations.satisfied("default/web")
