"""Container restart back-off: 10 s doubling to 5 min, forgotten after 10 quiet minutes."""
from pybernetes.kubelet.backoff import (RestartBackoff, backoff_event, container_key,
                                        go_duration)

POD = {"metadata": {"name": "web", "namespace": "ns", "uid": "u-1"}}


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_go_duration_wording():
    assert [go_duration(s) for s in (10, 20, 40, 80, 160, 300, 0.5, 3600)] == \
        ["10s", "20s", "40s", "1m20s", "2m40s", "5m0s", "0.5s", "1h0m0s"]


def test_first_restart_is_immediate_then_doubles_to_five_minutes():
    clock = Clock()
    b = RestartBackoff(clock=clock)
    key = container_key(POD, "app")
    assert b.check(key, finished_at=clock.t) == 0          # first crash: restart now
    delays = []
    for _ in range(8):
        clock.t += 1                                        # it crashes a second later
        finished = clock.t
        left = b.check(key, finished)
        assert left > 0                                     # must wait
        delays.append(b.delay(key))
        assert b.message(key, "app", POD) == (
            f"back-off {go_duration(b.delay(key))} restarting failed container=app "
            "pod=web_ns(u-1)")
        clock.t += left                                     # ... waits it out
        assert b.check(key, finished) == 0                  # and restarts
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


def test_long_run_resets_the_backoff():
    clock = Clock()
    b = RestartBackoff(clock=clock)
    key = container_key(POD, "app")
    for _ in range(4):
        b.next(key)
    assert b.delay(key) == 80
    clock.t += 601                                          # ran for more than 10 minutes
    assert b.check(key, clock.t) == 0                       # restarts at once
    assert b.delay(key) == 10
    clock.t += 2000
    b.gc()
    assert len(b) == 0


def test_scale_shortens_for_tests():
    clock = Clock()
    b = RestartBackoff(scale=0.01, clock=clock)
    key = container_key(POD, "app", "h1")
    b.check(key, clock.t)
    assert b.check(key, clock.t) == 0.1
    assert "back-off 0.1s restarting failed container=app" in b.message(key, "app", POD)
    assert container_key(POD, "app", "h2") != key           # a new spec starts afresh


def test_event_wording():
    assert backoff_event("app", POD) == \
        "Back-off restarting failed container app in pod web_ns(u-1)"
