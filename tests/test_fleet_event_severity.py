"""A Fleet API event's `severity` as other loggers spell it (`fatal`, `err`, `emergency`), with
spaces, or a word no logger uses: judged by what it means, and an unknown word as error — told,
never dropped as if it were info. Pure: the page as the client parses it, then the judge's
`alerting` with the shipped defaults (alert_severity error)."""

from __future__ import annotations

import pytest

from fleet_alerting.config.schema import FleetApiConfig
from fleet_alerting.sources.fleet_events.client import parse_events
from fleet_alerting.sources.fleet_events.judge import alerting

FLEET = FleetApiConfig(url="http://127.0.0.1:9")


def page(severity: object) -> dict:
    event = {
        "timestamp": "2026-12-07T06:00:00Z",
        "type": "command.failed",
        "target": "pi-audio-01",
        "message": "reboot failed",
        "severity": severity,
    }
    return {"events": [event], "count": 1}


@pytest.mark.parametrize(
    ("said", "meant", "told"),
    [
        ("error", "error", True),
        ("ERROR", "error", True),
        ("critical", "error", True),
        ("error ", "error", True),
        ("fatal", "error", True),
        ("err", "error", True),
        ("emergency", "error", True),
        ("kaputt", "error", True),
        ("warning", "warn", False),
        (" Warn", "warn", False),
        ("notice", "info", False),
        ("Information", "info", False),
        ("informational", "info", False),
        ("INF", "info", False),
        ("WRN", "warn", False),
        ("DBG", "debug", False),
        ("FTL", "error", True),
        ("trace", "debug", False),
        ("", "info", False),
    ],
)
def test_a_severity_is_judged_by_what_it_means(said: object, meant: str, told: bool) -> None:
    (event,), _cursor, malformed = parse_events(page(said))
    assert not malformed
    assert event.severity == meant
    assert bool(alerting([event], FLEET)) is told
