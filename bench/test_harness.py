"""Tests of the benchmark harness itself:
`.venv/bin/python -m pytest bench/test_harness.py -q` (not in the default suite)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import load
from bench.apiserver_bench import Runner, judge, run_scenarios, summarize_stacks
from bench.procs import CpuMeter, cpu_seconds, start_server, stop_process


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert load.percentile(values, 50) == 50.0
    assert load.percentile(values, 99) == 99.0
    assert load.percentile(values, 100) == 100.0
    assert load.percentile([7.0], 99) == 7.0
    assert load.percentile([], 50) is None
    assert load.latency_summary([0.001, 0.002]) == {"p50_ms": 1.0, "p99_ms": 2.0, "max_ms": 2.0}


def test_cpu_meter_sees_a_busy_process() -> None:
    busy = subprocess.Popen([sys.executable, "-c",
                             "import time\nt=time.time()\nwhile time.time()-t<1.5: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    try:
        time.sleep(0.2)  # past interpreter start-up
        meter = CpuMeter({"busy": busy.pid, "idle": idle.pid})
        meter.start()
        time.sleep(0.8)
        cpu = meter.stop()
        # The machine is shared (other test runs, hypervisor steal): loose bounds.
        assert cpu["busy"] > 25, cpu
        assert cpu["idle"] < 10, cpu
        assert cpu_seconds(busy.pid) > 0.2
        share = meter.machine
        assert 99 <= share["busy"] + share["idle"] + share["steal"] <= 101, share
        assert share["busy"] >= 20, share  # at least our busy loop, of 2 CPUs
    finally:
        busy.wait(5)
        idle.wait(5)


def test_summarize_py_spy_raw_stacks(tmp_path: Path) -> None:
    raw = tmp_path / "p.txt"
    raw.write_text("main (a.py:1);handle (b.py:10);encode (c.py:5) 30\n"
                   "main (a.py:1);handle (b.py:10) 10\n"
                   "main (a.py:1);poll (d.py:2) 60\n")
    summary = summarize_stacks(raw, top=10)
    assert summary["samples"] == 100
    assert summary["self_pct"] == {"poll (d.py:2)": 60.0, "encode (c.py:5)": 30.0,
                                   "handle (b.py:10)": 10.0}
    assert summary["inclusive_pct"]["main (a.py:1)"] == 100.0
    assert summary["inclusive_pct"]["handle (b.py:10)"] == 40.0


def test_judge_against_goals() -> None:
    verdicts = judge({"create": {"per_s": 1200.0}, "get": {"per_s": 100.0, "p99_ms": 60.0}})
    assert verdicts["create_per_s"]["met"] is True
    assert verdicts["get_per_s"]["met"] is False
    assert verdicts["get_p99_ms"]["met"] is False
    assert verdicts["watch_p99_ms"] == {"value": None, "goal": "< 100", "met": None}


def test_small_run_against_a_real_server(tmp_path: Path) -> None:
    """Every scenario end to end with tiny counts, on whatever the server serves."""
    server = start_server(tmp_path / "server", "sqlite")
    runner = None
    try:
        resource = "pods" if _serves_pods(server) else "clusterroles"
        runner = Runner(server, None, resource)
        sizes = {"creates": 60, "gets": 200, "list_pods": 120, "watchers": 5, "updates": 10}
        out: dict = {}
        run_scenarios(runner, sizes, lambda msg: None, out)
    finally:
        if runner:
            runner.close()
        stop_process(server.proc)
    assert out["create"]["created"] == 60 and out["create"]["errors"] == 0
    assert out["get"]["ok"] == 200 and out["get"]["p99_ms"] > 0
    assert out["list"]["json"]["items"] >= 120 and out["list"]["table"]["kind"] == "Table"
    watch = out["watch"]
    assert watch["events_received"] == 5 * 10 and watch["events_missing"] == 0, watch
    for step in ("create", "get", "watch"):
        assert set(out[step]["cpu_pct"]) == {"apiserver", "client"}
    assert out["create"]["cpu_pct"]["apiserver"] > 0


def _serves_pods(server) -> bool:
    import urllib.request
    try:
        with urllib.request.urlopen(server.url + "/api/v1", context=server.ssl_context(),
                                    timeout=5) as r:
            return b'"pods"' in r.read()
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
