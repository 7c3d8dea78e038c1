"""Pods asking for the same ConfigMap at once share one GET; the answer (a 404 too)
is reused for a moment, then asked again; an error reaches every asker and is not kept."""
import asyncio

import pytest

from pybernetes.kubelet.recent_objects import RecentObjects


class Api:
    def __init__(self) -> None:
        self.gets: list[tuple[str, str, str]] = []
        self.objects = {("configmap", "default", "kube-root-ca.crt"): {"data": {"ca.crt": "x"}}}
        self.fail = False

    async def fetch(self, kind: str, namespace: str, name: str) -> dict | None:
        self.gets.append((kind, namespace, name))
        await asyncio.sleep(0.01)
        if self.fail:
            raise RuntimeError("API server unavailable")
        return self.objects.get((kind, namespace, name))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_a_burst_of_pods_shares_one_get_per_object():
    api = Api()

    async def scenario():
        cache = RecentObjects(api.fetch, ttl=60)
        answers = await asyncio.gather(*(cache.get("configmap", "default", "kube-root-ca.crt")
                                         for _ in range(100)))
        missing = await asyncio.gather(*(cache.get("secret", "default", "nope")
                                         for _ in range(10)))
        again = await cache.get("configmap", "default", "kube-root-ca.crt")
        return answers, missing, again

    answers, missing, again = run(scenario())
    assert all(a == {"data": {"ca.crt": "x"}} for a in answers) and again == answers[0]
    assert missing == [None] * 10
    assert api.gets == [("configmap", "default", "kube-root-ca.crt"),
                        ("secret", "default", "nope")]


def test_a_change_is_seen_once_the_answer_is_older_than_the_ttl():
    api = Api()

    async def scenario():
        cache = RecentObjects(api.fetch, ttl=0.05)
        first = await cache.get("configmap", "default", "kube-root-ca.crt")
        api.objects[("configmap", "default", "kube-root-ca.crt")] = {"data": {"ca.crt": "y"}}
        await asyncio.sleep(0.1)
        return first, await cache.get("configmap", "default", "kube-root-ca.crt")

    first, later = run(scenario())
    assert (first["data"], later["data"]) == ({"ca.crt": "x"}, {"ca.crt": "y"})
    assert len(api.gets) == 2


def test_an_error_reaches_every_asker_and_the_next_ask_retries():
    api = Api()
    api.fail = True

    async def scenario():
        cache = RecentObjects(api.fetch, ttl=60)
        results = await asyncio.gather(*(cache.get("configmap", "default", "kube-root-ca.crt")
                                         for _ in range(3)), return_exceptions=True)
        api.fail = False
        return results, await cache.get("configmap", "default", "kube-root-ca.crt")

    results, after = run(scenario())
    assert all(isinstance(r, RuntimeError) for r in results)
    assert after == {"data": {"ca.crt": "x"}} and len(api.gets) == 2


def test_one_asker_cancelled_does_not_fail_the_others():
    api = Api()

    async def scenario():
        cache = RecentObjects(api.fetch, ttl=60)
        first = asyncio.create_task(cache.get("configmap", "default", "kube-root-ca.crt"))
        second = asyncio.create_task(cache.get("configmap", "default", "kube-root-ca.crt"))
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        return await second

    assert run(scenario()) == {"data": {"ca.crt": "x"}}
