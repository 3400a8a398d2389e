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
