"""The kubelet's start gate: at most N pods starting at once, first come first served;
waiting that is not CPU work (image pulls, hooks) gives the slot away."""
import asyncio

import pytest

from pybernetes.kubelet.start_gate import StartGate, default_slots


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_at_most_n_pods_start_at_once_in_arrival_order():
    async def scenario():
        gate, inside, most, order = StartGate(2), set(), 0, []

        async def start(uid: str) -> None:
            nonlocal most
            async with gate.hold(uid):
                inside.add(uid)
                most = max(most, len(inside))
                order.append(uid)
                await asyncio.sleep(0.01)
                inside.discard(uid)

        await asyncio.gather(*(start(f"pod-{i}") for i in range(6)))
        return most, order

    most, order = run(scenario())
    assert most == 2
    assert order == [f"pod-{i}" for i in range(6)]


def test_a_pull_gives_the_slot_to_the_next_pod():
    async def scenario():
        gate, events = StartGate(1), []
        pulled = asyncio.Event()

        async def slow_pull() -> None:
            async with gate.hold("a"):
                async with gate.released("a"):
                    events.append("a pulls")
                    await pulled.wait()
                events.append("a starts")

        async def cached() -> None:
            await asyncio.sleep(0.01)
            async with gate.hold("b"):
                events.append("b starts")
            pulled.set()

        await asyncio.gather(slow_pull(), cached())
        return events

    assert run(scenario()) == ["a pulls", "b starts", "a starts"]


def test_slot_returns_after_an_error_or_a_cancel():
    async def scenario():
        gate = StartGate(1)
        with pytest.raises(RuntimeError):
            async with gate.hold("a"):
                raise RuntimeError("sandbox failed")

        async def stuck() -> None:
            async with gate.hold("b"):
                await asyncio.sleep(60)
        task = asyncio.create_task(stuck())
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        async with gate.hold("c"):
            return "c got the slot"

    assert run(scenario()) == "c got the slot"


def test_zero_means_no_bound_and_the_default_scales_with_cpus():
    async def scenario():
        gate, inside, most = StartGate(0), 0, 0

        async def start(uid: str) -> None:
            nonlocal inside, most
            async with gate.hold(uid):
                async with gate.released(uid):   # a no-op without a bound
                    pass
                inside += 1
                most = max(most, inside)
                await asyncio.sleep(0.01)
                inside -= 1

        await asyncio.gather(*(start(str(i)) for i in range(20)))
        return most

    assert run(scenario()) == 20
    assert default_slots() >= 4
