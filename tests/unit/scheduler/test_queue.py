import asyncio

from pybernetes.scheduler.queue import SchedulingQueue

from tests.unit.scheduler.helpers import pod


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


async def test_priority_then_arrival_order():
    clock = Clock()
    q = SchedulingQueue(clock=clock)
    for name, prio in (("low", 1), ("high", 100), ("low2", 1)):
        q.add(pod(name, priority=prio), f"default/{name}")
        clock.t += 1
    got = [(await q.pop()).key for _ in range(3)]
    assert got == ["default/high", "default/low", "default/low2"]


async def test_backoff_doubles_to_ten_seconds():
    clock = Clock()
    q = SchedulingQueue(clock=clock)
    q.add(pod("p"), "default/p")
    delays = []
    for _ in range(6):
        qp = await q.pop()
        delays.append(q.backoff_for(qp))
        q.failed(qp.key, unschedulable=False)
        q.flush()
        assert not q.in_active           # not ready yet
        clock.t += delays[-1]
    assert delays == [1, 2, 4, 8, 10, 10]


async def test_unschedulable_waits_for_an_event():
    clock = Clock()
    q = SchedulingQueue(clock=clock)
    q.add(pod("p"), "default/p")
    qp = await q.pop()
    q.failed(qp.key)
    clock.t += 100
    q.flush()
    assert q.unschedulable == {"default/p"} and not q.in_active
    q.move_all()                           # e.g. a node was added
    assert (await q.pop()).key == "default/p"


async def test_event_during_the_attempt_means_backoff_not_unschedulable():
    clock = Clock()
    q = SchedulingQueue(clock=clock)
    q.add(pod("p"), "default/p")
    qp = await q.pop()
    q.move_all()                           # a node arrives while we were filtering
    q.failed(qp.key)
    assert not q.unschedulable and q.in_backoff == {"default/p"}
    clock.t += 1
    assert (await asyncio.wait_for(q.pop(), 1)).key == "default/p"


async def test_moved_pod_still_backing_off_waits_its_turn():
    clock = Clock()
    q = SchedulingQueue(clock=clock)
    q.add(pod("p"), "default/p")
    q.failed((await q.pop()).key)
    q.move_all()
    assert q.in_backoff == {"default/p"}


async def test_deleted_pod_is_never_popped_and_shutdown_ends_pop():
    q = SchedulingQueue()
    q.add(pod("gone"), "default/gone")
    q.delete("default/gone")
    assert len(q) == 0
    waiter = asyncio.ensure_future(q.pop())
    await asyncio.sleep(0.01)
    q.shutdown()
    assert await asyncio.wait_for(waiter, 1) is None


async def test_status_only_update_does_not_requeue():
    q = SchedulingQueue()
    q.add(pod("p"), "default/p")
    q.failed((await q.pop()).key)
    q.update(pod("p"), "default/p", relevant=False)
    assert q.unschedulable == {"default/p"}
    q.update(pod("p", cpu="1"), "default/p", relevant=True)
    assert not q.unschedulable and "default/p" in q.in_active


async def test_unschedulable_pods_are_retried_after_five_minutes_anyway():
    clock = Clock()
    q = SchedulingQueue(clock=clock)
    q.add(pod("p"), "default/p")
    q.failed((await q.pop()).key)
    clock.t += 299
    q.flush()
    assert q.unschedulable == {"default/p"}
    clock.t += 2
    q.flush()
    assert not q.unschedulable and "default/p" in q.in_active
