"""The replay's stepping (changes, counts, timers, inhibition causes; ok observations without an
incident left out) decides exactly what evaluating every recorded run with every observation
decides: random days of three watches through policies with escalation steps, reminder
schedules, grouping, inhibition, maintenance windows and silences."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_alerting.audit.whatif import replay
from fleet_alerting.config import load_config
from fleet_alerting.core.history import Change, History, RunSegment
from fleet_alerting.core.muting import Silence
from fleet_alerting.core.signals import Severity, Signal

DAY = datetime(2026, 11, 2, tzinfo=UTC)
SILENCES = [
    Silence("s1", ('source="zigbee"',), DAY + timedelta(hours=5), DAY + timedelta(hours=9), "ana"),
    Silence(
        "s2",
        ('device=~"pi-[0-3]"',),
        DAY + timedelta(hours=13, minutes=7),
        DAY + timedelta(hours=13, minutes=50),
        "ivo",
    ),
]
WATCHES = {"blackbox": "blackbox", "prometheus/RoleAgentStale": "prometheus", "zigbee": "zigbee"}
CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "steps, reminder schedule, grouping after 3 min": {
        "policies": {
            "critical": {
                "steps": [
                    {"after": "0s", "to": ["slack"]},
                    {"after": "7m", "to": ["pagerduty"]},
                    {"after_previous": "13m", "to": ["oncall", "slack"]},
                ],
                "repeat": ["10m", "25m"],
            },
            "warning": {"open_after": 3, "resolve_after": 3, "repeat": "17m", "mirror": True},
        },
        "grouping": {"group_wait": "3m", "group_interval": "4m", "min_size": 2},
    },
    "a maintenance window and a silence": {
        "maintenance": {
            "windows": [
                {
                    "name": "nightly",
                    "time_intervals": [{"times": [{"start_time": "02:00", "end_time": "04:30"}]}],
                }
            ],
            "mute": [{"matchers": ['source="blackbox"'], "mute_time_intervals": ["nightly"]}],
        },
        "policies": {"warning": {"repeat": "20m"}},
    },
    "no inhibition, page warnings": {
        "inhibit_rules": [],
        "policies": {"warning": {"page": ["pagerduty"], "page_after": "11m"}},
    },
}


def random_day(seed: int, every: timedelta) -> History:
    rng = random.Random(seed)
    changes = []
    for source, stream in WATCHES.items():
        for n in range(8):
            key = f"{source}:device=pi-{n}"
            severity = Severity.critical if n == 0 else Severity.warning
            minute, firing = 0, False
            while minute < 1440:
                signal = Signal(
                    key, source, firing, severity, f"pi-{n}", labels={"device": f"pi-{n}"}
                )
                changes.append(Change(DAY + timedelta(minutes=minute), stream, key, signal))
                minute += rng.choice([1, 2, 3, 7, 15, 40, 90]) if firing else rng.randint(5, 300)
                minute -= minute % int(every.total_seconds() // 60)
                minute += int(every.total_seconds() // 60) * (not firing)
                firing = not firing
    runs = [RunSegment(s, DAY, every, int(timedelta(days=1) / every)) for s in WATCHES.values()]
    return History(DAY, DAY + timedelta(days=1), changes, runs)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stepping_decides_what_every_run_decides(name: str, seed: int, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"notify": {"dry_run": True}} | CONFIGS[name]))
    config = load_config(path)
    history = random_day(seed, timedelta(minutes=1))
    stepped = replay(history, config, silences=SILENCES)
    reference = replay(history, config, every_run=True, silences=SILENCES)
    assert reference.evaluations == 3 * 1440
    assert len(reference.sent) > 50
    assert sorted(s.minute for s in stepped.sent) == sorted(s.minute for s in reference.sent)
    assert stepped.evaluations < reference.evaluations / 2
