"""Alertmanager's time-interval grammar (`timeinterval/timeinterval.go`): `times`, `weekdays`,
`days_of_month` (negatives count from the month's end), `months`, `years` and `location`, and
whether an instant falls inside. Shared by the audit's routing tree (alertmanager/routing.py) and
the engine's maintenance windows (core/muting.py). Pure: no clock reads.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class TimeIntervalError(ValueError):
    """A time interval Alertmanager would refuse (its own wording)."""


_WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
_MONTHS = [m.lower() for m in calendar.month_name]  # index 1 = january
_HHMM_RE = re.compile(r"(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)\Z")


@dataclass(frozen=True)
class TimeInterval:
    times: tuple[tuple[int, int], ...] | None = None  # [start, end) minutes of the day
    weekdays: tuple[tuple[int, int], ...] | None = None  # 0 = Sunday
    days_of_month: tuple[tuple[int, int], ...] | None = None  # negatives from month end
    months: tuple[tuple[int, int], ...] | None = None
    years: tuple[tuple[int, int], ...] | None = None
    location: str | None = None

    def contains(self, t: datetime) -> bool:
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        t = _wall_clock(t, self.location)
        minute = t.hour * 60 + t.minute
        if self.times is not None and not any(s <= minute < e for s, e in self.times):
            return False
        if self.days_of_month is not None and not self._in_days_of_month(t):
            return False
        if self.months is not None and not any(b <= t.month <= e for b, e in self.months):
            return False
        weekday = (t.weekday() + 1) % 7  # Python: Monday=0; Go: Sunday=0
        if self.weekdays is not None and not any(b <= weekday <= e for b, e in self.weekdays):
            return False
        return self.years is None or any(b <= t.year <= e for b, e in self.years)

    def _in_days_of_month(self, t: datetime) -> bool:
        dim = calendar.monthrange(t.year, t.month)[1]
        for b, e in self.days_of_month or ():
            begin = dim + b + 1 if b < 0 else b
            end = dim + e + 1 if e < 0 else e
            if begin > dim:
                continue
            begin, end = max(-dim, min(begin, dim)), max(-dim, min(end, dim))
            if begin <= t.day <= end:
                return True
        return False


MINUTE = timedelta(minutes=1)
DAY = 1440  # minutes


def next_change(intervals: Iterable[TimeInterval], t: datetime) -> datetime:
    """The first whole minute after `t` (a whole minute) at which whether `intervals` contain the
    time may differ from `t`: one of their `times` bounds or midnight on the wall clock of their
    zone, or a change of its UTC offset (daylight saving), whichever comes first — until then
    only the minute within a span of `times` moves. A window's next start or end is then found
    in a few steps, not one per minute of the week ahead."""
    bounds: dict[str | None, set[int]] = {}
    for interval in intervals:
        bounds.setdefault(interval.location, {0}).update(
            m % DAY for span in interval.times or () for m in span
        )
    step = DAY
    for location, minutes in bounds.items():
        local = _wall_clock(t, location)
        now = local.hour * 60 + local.minute
        step = min(step, *(((b - now) % DAY) or DAY for b in minutes))
    after = t + step * MINUTE
    for location in bounds:
        offset = _wall_clock(t, location).utcoffset()
        if location is not None and _wall_clock(after, location).utcoffset() != offset:
            before = t  # the offset changes in (before, after]: find its minute
            while after - before > MINUTE:
                middle = before + (after - before) // MINUTE // 2 * MINUTE
                if _wall_clock(middle, location).utcoffset() == offset:
                    before = middle
                else:
                    after = middle
    return after


def _wall_clock(t: datetime, location: str | None) -> datetime:
    """`t` as `TimeInterval.contains` reads it in `location`."""
    if location is None:
        return t
    return t.astimezone() if location == "Local" else t.astimezone(zone(location))


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo("UTC" if name == "" else name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TimeIntervalError(f"unknown time zone {name!r}") from exc


def _range(s: Any, member: Any) -> tuple[int, int]:
    parts = str(s).lower().split(":")
    if len(parts) not in (1, 2):
        raise TimeIntervalError(f"couldn't parse range {s!r}, invalid format")
    begin, end = member(parts[0]), member(parts[-1])
    return begin, end


def _int(s: str) -> int:
    try:
        return int(s)
    except ValueError as exc:
        raise TimeIntervalError(f"{s} is not a valid number") from exc


def _weekday(s: str) -> int:
    if s not in _WEEKDAYS:
        raise TimeIntervalError(f"{s} is not a valid weekday")
    return _WEEKDAYS.index(s)


def _month(s: str) -> int:
    if s in _MONTHS[1:]:
        return _MONTHS.index(s)
    try:
        number = int(s)
    except ValueError:
        number = 0
    if not 1 <= number <= 12:
        raise TimeIntervalError(f"{s} is not a valid month")
    return number


def _minutes(s: Any) -> int:
    s = str(s)
    if not _HHMM_RE.match(s):
        raise TimeIntervalError(f"couldn't parse timestamp {s}, invalid format")
    h, m = s.split(":")
    return int(h) * 60 + int(m)


def _ranges(values: Any, member: Any) -> tuple[tuple[int, int], ...] | None:
    if values is None:
        return None
    if isinstance(values, str | bytes) or not isinstance(values, list | tuple):
        raise TimeIntervalError(f"expected a list of ranges, not {values!r}")
    return tuple(_range(v, member) for v in values)


def parse_time_interval(d: Mapping[str, Any]) -> TimeInterval:
    """One entry of a named interval's `time_intervals` list, validated as Alertmanager does."""
    if not isinstance(d, Mapping):
        raise TimeIntervalError("a time interval must be a mapping")
    return TimeInterval(
        times=_times(d.get("times")),
        weekdays=_weekdays(d.get("weekdays")),
        days_of_month=_days_of_month(d.get("days_of_month")),
        months=_months(d.get("months")),
        years=_years(d.get("years")),
        location=_location(d.get("location", d.get("time_zone"))),
    )


def _times(value: Any) -> tuple[tuple[int, int], ...] | None:
    if value is None:
        return None
    times = []
    for tr in value:
        if not isinstance(tr, Mapping) or not tr.get("start_time") or not tr.get("end_time"):
            raise TimeIntervalError("both start and end times must be provided")
        start, end = _minutes(tr["start_time"]), _minutes(tr["end_time"])
        if start >= end:
            raise TimeIntervalError("start time cannot be equal or greater than end time")
        times.append((start, end))
    return tuple(times)


def _weekdays(value: Any) -> tuple[tuple[int, int], ...] | None:
    weekdays = _ranges(value, _weekday)
    for b, e in weekdays or ():
        if b > e:
            raise TimeIntervalError("start day cannot be before end day")
    return weekdays


def _days_of_month(value: Any) -> tuple[tuple[int, int], ...] | None:
    dom = _ranges(value, _int)
    for b, e in dom or ():
        for v in (b, e):
            if v == 0 or not -31 <= v <= 31:
                raise TimeIntervalError(f"{v} is not a valid day of the month: out of range")
        if b < 0 < e:
            raise TimeIntervalError("end day must be negative if start day is negative")
        if (28 + b if b < 0 else b) > (28 + e if e < 0 else e):
            raise TimeIntervalError(f"end day {e} is always before start day {b}")
    return dom


def _months(value: Any) -> tuple[tuple[int, int], ...] | None:
    return _ascending(_ranges(value, _month), "month", _MONTHS.__getitem__)


def _years(value: Any) -> tuple[tuple[int, int], ...] | None:
    return _ascending(_ranges(value, _int), "year", str)


def _ascending(
    ranges: tuple[tuple[int, int], ...] | None, unit: str, name: Callable[[int], str]
) -> tuple[tuple[int, int], ...] | None:
    for b, e in ranges or ():
        if b > e:
            raise TimeIntervalError(f"end {unit} {name(e)} is before start {unit} {name(b)}")
    return ranges


def _location(value: Any) -> str | None:
    if value is None:
        return None
    if value != "Local":
        zone(str(value))
    return str(value)
