"""Cron schedules: fields, names, macros, OR-ed day fields, time zones."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from pybernetes.controllers.cron_schedule import Schedule
from pybernetes.controllers.cronjob import job_name


def ts(s: str) -> float:
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize("spec,after,want", [
    ("* * * * *", "2024-01-01 10:00:30", "2024-01-01 10:01"),
    ("*/15 * * * *", "2024-01-01 10:01:00", "2024-01-01 10:15"),
    ("0 9-17/4 * * *", "2024-01-01 10:00:00", "2024-01-01 13:00"),
    ("30 2 * * MON", "2024-01-01 03:00:00", "2024-01-08 02:30"),      # 2024-01-01 is a Monday
    ("0 0 1 JAN,jul *", "2024-02-01 00:00:00", "2024-07-01 00:00"),
    ("@hourly", "2024-01-01 10:59:00", "2024-01-01 11:00"),
    ("@monthly", "2024-01-31 23:59:00", "2024-02-01 00:00"),
    ("0 0 13 * 5", "2024-01-01 00:00:00", "2024-01-05 00:00"),        # 13th OR Friday
    ("0 0 29 2 *", "2024-03-01 00:00:00", "2028-02-29 00:00"),
    ("0 12 * * 7", "2024-01-01 00:00:00", "2024-01-07 12:00"),        # 7 is Sunday too
])
def test_next(spec, after, want):
    assert iso(Schedule(spec).next(ts(after))) == want


def test_time_zone():
    # 09:00 in New York in January is 14:00 UTC
    s = Schedule("0 9 * * *", "America/New_York")
    assert iso(s.next(ts("2024-01-01 00:00:00"))) == "2024-01-01 14:00"


@pytest.mark.parametrize("bad", ["* * * *", "60 * * * *", "* * 0 * *", "*/0 * * * *", "x * * * *"])
def test_invalid(bad):
    with pytest.raises((ValueError, KeyError)):
        Schedule(bad)


def test_last_due_counts_missed_runs():
    s = Schedule("*/10 * * * *")
    last, missed = s.last_due(ts("2024-01-01 10:00:00"), ts("2024-01-01 10:35:00"))
    assert iso(last) == "2024-01-01 10:30" and missed == 3
    assert s.last_due(ts("2024-01-01 10:30:00"), ts("2024-01-01 10:35:00")) == (None, 0)


def test_job_name_is_scheduled_minutes():
    assert job_name("hello", ts("2024-01-01 10:30:00")) == f"hello-{int(ts('2024-01-01 10:30:00') // 60)}"
