"""Alertmanager's time-interval semantics (core.time_intervals), as its own tests state them,
plus DST transitions in Europe/Zagreb: tests/cases/time_intervals.yaml."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_alerting.core.time_intervals import (
    TimeInterval,
    TimeIntervalError,
    parse_time_interval,
)

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "time_intervals.yaml").read_text())


def instant(text: str) -> datetime:
    """Go's RFC822Z ("02 Jan 06 15:04 +0000") or ISO 8601."""
    try:
        return datetime.strptime(text, "%d %b %y %H:%M %z")
    except ValueError:
        return datetime.fromisoformat(text)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_time_interval_table(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(TimeIntervalError) as refused:
            for interval in case["intervals"]:
                parse_time_interval(interval)
        assert str(refused.value) == case["error"]
        return
    if "built" in case:
        ranges = {k: tuple(tuple(r) for r in v) for k, v in case["built"].items()}
        intervals = [TimeInterval(**ranges)]
    else:
        intervals = [parse_time_interval(i) for i in case["intervals"]]
    for text in case.get("contains", []):
        assert any(i.contains(instant(text)) for i in intervals), f"should contain {text}"
    for text in case.get("excludes", []):
        assert not any(i.contains(instant(text)) for i in intervals), f"should exclude {text}"


# when a window next starts or ends: found by next_change in a few steps, as by every minute --
WINDOWS = [
    [{"times": [{"start_time": "02:30", "end_time": "03:15"}], "location": "Europe/Zagreb"}],
    [{"times": [{"start_time": "01:30", "end_time": "01:45"}], "location": "America/New_York"}],
    [{"weekdays": ["sunday"], "location": "Europe/Zagreb"}],
    [{"days_of_month": ["-1"], "times": [{"start_time": "23:00", "end_time": "24:00"}]}],
    [{"months": ["april"], "location": "Asia/Tokyo"}],  # none within the look-ahead
    [{"times": [{"start_time": "09:00", "end_time": "17:00"}], "location": "Local"}],
    [
        {"times": [{"start_time": "00:00", "end_time": "00:01"}], "location": "Asia/Kolkata"},
        {"weekdays": ["monday:friday"], "times": [{"start_time": "22:10", "end_time": "23:50"}]},
    ],
]
STARTS = [
    "2026-03-28T23:59:00+00:00",  # the night Zagreb skips 02:00-03:00
    "2026-10-24T22:00:00+00:00",  # the night Zagreb repeats 02:00-03:00
    "2026-10-31T12:00:00+00:00",  # New York repeats 01:00-02:00 next morning
    "2026-12-07T17:13:00+00:00",
]


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("window", WINDOWS, ids=range(len(WINDOWS)))
def test_next_change_finds_what_a_scan_of_every_minute_finds(start: str, window: list) -> None:
    from functools import partial

    from fleet_alerting.core.muting import first_minute
    from fleet_alerting.core.time_intervals import next_change

    intervals = [parse_time_interval(i) for i in window]
    asked: list[datetime] = []

    def inside(t: datetime) -> bool:
        asked.append(t)
        return any(i.contains(t) for i in intervals)

    def outside(t: datetime) -> bool:
        return not inside(t)

    changes = partial(next_change, intervals)
    moment = datetime.fromisoformat(start)
    asked.clear()
    first_minute(inside, moment, changes=changes)
    assert len(asked) <= 2 * 9 * 4  # a few bounds a day over the 8-day look-ahead, not 11,520
    for _ in range(3):  # the next start, its end, the start after
        found = {c: first_minute(c, moment, changes=changes) for c in (inside, outside)}
        for condition, at in found.items():
            assert at == first_minute(condition, moment)  # every minute of 8 days asked
        if found[inside] is None:
            break
        moment = max(at for at in found.values() if at is not None)
