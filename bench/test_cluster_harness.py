"""Tests of the control plane benchmark's own pieces (no cluster):
`.venv/bin/python -m pytest bench/test_cluster_harness.py -q` (not in the default suite)."""
from __future__ import annotations

import os
import subprocess
import sys

from bench.cluster_bench import DeploymentWatch, Sampler, available, component_pids, curve, \
    judge, rolled_out
from bench.cluster_report import table


def test_curve_counts_cumulatively_per_step() -> None:
    assert curve([]) == []
    assert curve([0.1, 0.2, 0.9, 1.6], step=0.5) == [[0.0, 0], [0.5, 2], [1.0, 3], [1.5, 3],
                                                     [2.0, 4]]


def test_a_rollout_counts_only_once_the_new_generation_is_observed() -> None:
    dw = DeploymentWatch("web", rolled_out(3))
    done = {"replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}
    old = {"metadata": {"name": "web", "generation": 1},
           "status": {**done, "observedGeneration": 1}}
    assert not dw.seen("ADDED", old)          # before the change: never done
    dw.min_generation = 2
    new = {"metadata": {"name": "web", "generation": 2},
           "status": {**done, "observedGeneration": 1}}
    assert not dw.seen("MODIFIED", new)       # the controller has not seen it yet
    surging = {**new, "status": {**done, "replicas": 4, "observedGeneration": 2}}
    assert not dw.seen("MODIFIED", surging)   # an old pod still terminating
    assert dw.seen("MODIFIED", {**new, "status": {**done, "observedGeneration": 2}})
    assert not DeploymentWatch("other", available(1)).seen("ADDED", new)


def test_judge_against_the_goal() -> None:
    assert judge({"pods": {"pods_bound_per_s": 310.0}})["pods_bound_per_s"]["met"] is True
    assert judge({"pods": {"pods_bound_per_s": 80.0}})["pods_bound_per_s"]["met"] is False
    assert judge({})["pods_bound_per_s"]["met"] is None


def test_component_pids_reads_children_cmdlines() -> None:
    parent = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys, time\n"
                               "subprocess.Popen([sys.executable, '-c', 'import time; "
                               "time.sleep(5)', 'pybernetes.cli.main', 'scheduler'])\n"
                               "time.sleep(5)"])
    try:
        for _ in range(50):
            found = component_pids(parent.pid)
            if found:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert list(found) == ["scheduler"]
    finally:
        for pid in component_pids(parent.pid).values():
            os.kill(pid, 9)
        parent.kill()
        parent.wait(5)


def test_sampler_measures_its_own_process() -> None:
    s = Sampler({"me": os.getpid()})
    s.begin()
    sum(i * i for i in range(300_000))
    out = s.end()
    assert out["cpu_seconds"]["me"] >= 0 and out["peak_rss_mib"]["me"] > 1


def test_table_renders_a_partial_result() -> None:
    text = table({"sizes": {"nodes": 3}, "date": "2026-12-01", "scenarios": {},
                  "goals": judge({})})
    assert "3 fake nodes" in text and "n/a" in text
