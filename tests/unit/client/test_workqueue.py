"""WorkQueue and TokenBucket semantics, as client-go's rate-limited workqueue: a key is
queued once however often it is added, never handed to two workers at once, comes back
after done() if it was added meanwhile, and failed keys back off per key and overall."""
from __future__ import annotations

import asyncio

import pytest

from pybernetes.client.workqueue import TokenBucket, WorkQueue


async def get_now(q: WorkQueue) -> str | None:
    """A get() that must not block: the key is already there (or the queue is shut)."""
    return await asyncio.wait_for(q.get(), 2)


async def nothing_queued(q: WorkQueue) -> bool:
    task = asyncio.create_task(q.get())
    await asyncio.sleep(0.05)
    if task.done():
        return False
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return True


async def test_adds_of_one_key_collapse_and_order_is_kept() -> None:
    q = WorkQueue()
    for key in ("ns/a", "ns/b", "ns/a", "ns/c", "ns/b"):
        q.add(key)
    assert len(q) == 3
    assert [await get_now(q) for _ in range(3)] == ["ns/a", "ns/b", "ns/c"]
    assert await nothing_queued(q)


async def test_key_in_processing_is_not_handed_out_again_until_done() -> None:
    q = WorkQueue()
    q.add("a")
    assert await get_now(q) == "a"
    q.add("a")            # changed while a worker holds it
    q.add("a")
    assert len(q) == 0 and await nothing_queued(q)
    q.done("a")           # the worker finished: the change is processed once more
    assert len(q) == 1
    assert await get_now(q) == "a"
    q.done("a")
    assert len(q) == 0 and await nothing_queued(q)


async def test_done_without_new_add_does_not_requeue() -> None:
    q = WorkQueue()
    q.add("a")
    assert await get_now(q) == "a"
    q.done("a")
    assert await nothing_queued(q)


async def test_waiting_workers_each_get_a_different_key() -> None:
    q = WorkQueue()
    workers = [asyncio.create_task(q.get()) for _ in range(3)]
    await asyncio.sleep(0)
    for key in ("x", "y", "z"):
        q.add(key)
    got = await asyncio.wait_for(asyncio.gather(*workers), 2)
    assert sorted(got) == ["x", "y", "z"]


async def test_a_cancelled_getter_passes_its_wake_up_on() -> None:
    q = WorkQueue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("k")            # wakes `first`...
    first.cancel()        # ...which is cancelled before it runs
    await asyncio.gather(first, return_exceptions=True)
    assert await asyncio.wait_for(second, 2) == "k"


async def test_shutdown_drains_what_is_queued_then_answers_none() -> None:
    q = WorkQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shutdown()
    assert await asyncio.wait_for(waiter, 2) is None

    q = WorkQueue()
    q.add("left")
    q.shutdown()
    q.add("late")         # ignored after shutdown
    assert await get_now(q) == "left"
    assert await get_now(q) is None


async def test_shutdown_cancels_delayed_adds() -> None:
    q = WorkQueue()
    q.add_after("later", 0.05)
    q.add_rate_limited("failing")
    q.shutdown()
    await asyncio.sleep(0.1)
    assert len(q) == 0 and await get_now(q) is None


async def test_add_after_adds_once_the_delay_has_passed() -> None:
    q = WorkQueue()
    q.add_after("k", 0.05)
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 2) == "k"
    q.add_after("now", 0)
    assert len(q) == 1


async def test_repeated_add_after_keeps_one_earliest_wake_up() -> None:
    q = WorkQueue()
    q.add_after("k", 0.05)
    q.add_after("k", 0.05)
    q.add_after("k", 30)          # later than the pending one: changes nothing
    assert await asyncio.wait_for(q.get(), 2) == "k"
    q.done("k")
    assert await nothing_queued(q)
    assert not q._waiting         # no stray timers left behind

    q.add_after("j", 30)
    q.add_after("j", 0.01)        # sooner: replaces the pending one
    assert await asyncio.wait_for(q.get(), 2) == "j"
    assert not q._waiting


def _when(q: WorkQueue, key: str) -> float:
    return q._waiting[key][0]


def _pending_delay(q: WorkQueue, key: str) -> float:
    when, _ = q._waiting[key]
    return when - asyncio.get_running_loop().time()


async def test_rate_limited_retries_back_off_exponentially_per_key() -> None:
    q = WorkQueue(base_delay=1.0, max_delay=8.0, bucket=TokenBucket(qps=1000, burst=1000))
    delays = []
    for _ in range(6):
        q.add_rate_limited("bad")
        delays.append(round(_pending_delay(q, "bad")))
        q._waiting.pop("bad")[1].cancel()   # as if it ran and failed again
    assert delays == [1, 2, 4, 8, 8, 8]        # doubling, capped at max_delay
    assert q.num_requeues("bad") == 6
    q.add_rate_limited("other")                # per key: another key starts afresh
    assert round(_pending_delay(q, "other")) == 1
    q.forget("bad")
    assert q.num_requeues("bad") == 0
    q.add_rate_limited("bad")
    assert round(_pending_delay(q, "bad")) == 1
    q.shutdown()


async def test_default_first_retry_is_five_milliseconds() -> None:
    q = WorkQueue()
    q.add_rate_limited("k")
    assert await asyncio.wait_for(q.get(), 2) == "k"
    assert q.num_requeues("k") == 1


async def test_overall_bucket_spaces_retries_of_many_keys() -> None:
    # the bucket's clock stands still, so only the bucket decides the spacing
    q = WorkQueue(base_delay=0.001, bucket=TokenBucket(qps=10, burst=2, clock=lambda: 0.0))
    for key in ("a", "b", "c", "d"):
        q.add_rate_limited(key)
    # a and b ride the burst; c and d wait for tokens at 10 per second
    assert _pending_delay(q, "a") < 0.05 and _pending_delay(q, "b") < 0.05
    assert _when(q, "d") - _when(q, "c") == pytest.approx(0.1, abs=0.02)
    assert _when(q, "c") - _when(q, "a") == pytest.approx(0.1 - 0.001, abs=0.02)
    q.shutdown()


def test_token_bucket_burst_then_rate() -> None:
    now = [100.0]
    b = TokenBucket(qps=10, burst=3, clock=lambda: now[0])
    assert [b.delay() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.delay() == pytest.approx(0.1)
    assert b.delay() == pytest.approx(0.2)   # reservations queue up
    now[0] += 10                              # ten idle seconds later
    assert b.delay() == 0.0                   # refilled, but only up to burst
    assert b.tokens <= 2
