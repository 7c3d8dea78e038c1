"""Standard 5-field cron schedules (as robfig/cron's standard parser that upstream
uses): lists, ranges, steps, month/weekday names, `?`, and the @hourly-style
macros; day-of-month and day-of-week are OR-ed when both are restricted."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
          "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@hourly": "0 * * * *"}
MONTHS = {m: i + 1 for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split())}
DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
BOUNDS = ((0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, MONTHS), (0, 7, DAYS))  # 7 is Sunday too


def _value(s: str, names: dict) -> int:
    return names[s.lower()] if s.lower() in names else int(s)


def _field(text: str, lo: int, hi: int, names: dict) -> tuple[set[int], bool]:
    """The values a field allows, and whether it was a wildcard."""
    out: set[int] = set()
    star = False
    for part in text.split(","):
        rng, _, step_s = part.partition("/")
        step = int(step_s) if step_s else 1
        if step <= 0:
            raise ValueError(f"invalid step in {part!r}")
        if rng in ("*", "?"):
            start, end = lo, hi
            star = star or not step_s
        elif "-" in rng:
            a, b = rng.split("-", 1)
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(rng, names)
            end = hi if step_s else start
        if not (lo <= start <= hi and lo <= end <= hi and start <= end):
            raise ValueError(f"value out of range in {part!r}")
        out.update(range(start, end + 1, step))
    return out, star


class Schedule:
    def __init__(self, spec: str, tz: str | None = None):
        text = MACROS.get(spec.strip(), spec.strip())
        fields = text.split()
        if len(fields) != 5:
            raise ValueError(f"expected exactly 5 fields, found {len(fields)}: {spec!r}")
        parsed = [_field(f, lo, hi, names) for f, (lo, hi, names) in zip(fields, BOUNDS)]
        (self.minutes, _), (self.hours, _), (self.dom, self.dom_star), (self.months, _), \
            (self.dow, self.dow_star) = parsed
        if 7 in self.dow:
            self.dow = (self.dow - {7}) | {0}
        self.tz = ZoneInfo(tz) if tz else timezone.utc

    def _day_ok(self, t: datetime) -> bool:
        dom_ok = t.day in self.dom
        dow_ok = (t.isoweekday() % 7) in self.dow
        if self.dom_star or self.dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def next(self, after: float) -> float:
        """The first scheduled instant strictly after `after` (epoch seconds)."""
        t = datetime.fromtimestamp(after, self.tz).replace(second=0, microsecond=0, tzinfo=None)
        t += timedelta(minutes=1)
        for _ in range(100000):
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif not self._day_ok(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                return t.replace(tzinfo=self.tz).timestamp()
        raise ValueError("schedule never fires")

    def last_due(self, since: float, now: float, cap: int = 1000) -> tuple[float | None, int]:
        """The latest scheduled instant in (since, now] and how many were missed."""
        last, n, t = None, 0, self.next(since)
        while t <= now and n < cap:
            last, n = t, n + 1
            t = self.next(t)
        return last, n
