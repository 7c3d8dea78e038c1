"""Tests of the kubelet benchmark's own pieces (no node, no root):
`.venv/bin/python -m pytest bench/test_kubelet_harness.py -q` (not in the default suite)."""
from __future__ import annotations

from bench.kubelet_bench import all_running, cpu_used, judge, memory_rows, quantile, table


def test_quantiles_are_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert quantile(values, 0.5) == 50.0 and quantile(values, 0.99) == 99.0
    assert quantile([3.0], 0.99) == 3.0 and quantile([], 0.5) is None


def test_a_pod_counts_once_every_container_runs() -> None:
    spec = {"containers": [{"name": "a"}, {"name": "b"}]}
    one = {"spec": spec, "status": {"containerStatuses": [{"state": {"running": {}}}]}}
    both = {"spec": spec, "status": {"containerStatuses": [{"state": {"running": {}}}] * 2}}
    waiting = {"spec": spec, "status": {"containerStatuses": [
        {"state": {"running": {}}}, {"state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    assert all_running(both) and not all_running(one) and not all_running(waiting)
    assert not all_running({"spec": spec})


def result() -> dict:
    mem = lambda k, m: {"kubelet_rss_mib": k, "monitors": m, "monitors_rss_mib": 11.0 * m}  # noqa
    run = {"pods": 100, "rate_per_s": 2.0, "p50_s": 0.8, "p90_s": 1.5, "p99_s": 3.0,
           "max_s": 3.2, "wall_s": 55.0, "latencies_s": [0.8] * 100,
           "machine_cpu_pct": {"busy": 90.0, "idle": 9.0, "steal": 1.0},
           "memory": {"100": mem(63.0, 100), "50": mem(61.0, 50)},
           "cpu_s_per_pod": {"kubelet": 0.08, "kubelet_tools": 0.18, "apiserver": 0.07}}
    return {"date": "2026-12-01T00:00:00+00:00", "git": {"commit": "0123456789abc", "dirty": False},
            "machine": {"cpus": 2, "cpu": "x", "mem_gib": 24.0}, "startup": [run],
            "idle": mem(59.0, 0), "after_delete": mem(70.0, 0)}


def test_the_verdict_and_the_table() -> None:
    r = result()
    r["verdict"] = judge(r)
    paced = r["verdict"]["startup_p99_s_paced"]
    assert paced["value"] == 3.0 and not paced["met"] and paced["kubernetes_slo_met"]
    assert "startup_p99_s_all_at_once" not in r["verdict"]   # no such run
    assert r["verdict"]["kubelet_rss_mib_50_pods"] == {"value": 61.0, "goal": "< 100.0",
                                                       "met": True}
    assert [label for label, _ in memory_rows(r)] == ["idle", "50 pods", "100 pods",
                                                      "all deleted"]
    text = table(r)
    assert "| 100 at 2.0/s | 0.8 s | 1.5 s | 3.0 s | 3.2 s | 55.0 s | 90.0% (1.0%) | " \
        "0.08 + 0.18 / 0.07 |" in text
    assert "| 50 pods | 61.0 MiB | 50 | 550.0 MiB |" in text
    assert "startup p99 (paced) 3.0 s vs < 1 s: missed (Kubernetes SLO 5 s: met)" in text


def test_cpu_is_counted_per_pod() -> None:
    before = {"kubelet": 10.0, "kubelet_tools": 2.0, "apiserver": 30.0}
    after = {"kubelet": 18.0, "kubelet_tools": 20.0, "apiserver": 37.5}
    assert cpu_used(before, after, 100) == {"kubelet": 0.08, "kubelet_tools": 0.18,
                                            "apiserver": 0.075}
