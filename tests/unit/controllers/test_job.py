"""Job arithmetic: how many pods to run, and completedIndexes as upstream writes it."""
from __future__ import annotations

from pybernetes.controllers.job import format_indexes, wanted_active


def job(**spec):
    return {"spec": {"parallelism": 2, **spec}}


def test_completed_indexes_compress_runs():
    assert format_indexes({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert format_indexes({3}) == "3"
    assert format_indexes(set()) == ""


def test_wanted_active():
    assert wanted_active(job(completions=5), succeeded=0, indexes_left=None) == 2
    assert wanted_active(job(completions=5), succeeded=4, indexes_left=None) == 1
    assert wanted_active(job(completions=5), succeeded=5, indexes_left=None) == 0
    assert wanted_active(job(), succeeded=0, indexes_left=None) == 2   # work queue
    assert wanted_active(job(), succeeded=1, indexes_left=None) == 0
    assert wanted_active(job(completions=3), succeeded=0, indexes_left=1) == 1
    assert wanted_active(job(completions=3, parallelism=0), succeeded=0, indexes_left=None) == 0
