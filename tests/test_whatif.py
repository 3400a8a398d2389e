"""What-if replays, table-driven (tests/cases/whatif.yaml): a day of observations replayed
through a current and a proposed configuration; pages, lost, delayed and gained pages, the gate."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_alerting.audit.whatif import Comparison, Replay, Sent, Shift, replay
from fleet_alerting.audit.whatif_report import build, figures, per_alert, per_pager, render
from fleet_alerting.config import Config, load_config
from fleet_alerting.core.durations import format_duration, parse_duration
from fleet_alerting.core.history import Change, History, RunSegment
from fleet_alerting.core.signals import Severity, Signal

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "whatif.yaml").read_text())
DAY = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday


def scripted_day(case: dict[str, Any]) -> History:
    """The history the hook records for these scripted observations: a change where a key
    starts or stops failing, one run segment for the day."""
    every = parse_duration(case["every"])
    changes = []
    for key, seen in case["observed"].items():
        minutes = [(0, False)]
        for a, b in seen["down"]:
            minutes += [(a, True), (b, False)]
        for minute, firing in minutes:
            signal = Signal(
                key=key,
                source="blackbox",
                firing=firing,
                severity=Severity(seen["severity"]),
                summary=f"{key} {'down' if firing else 'up'}",
                labels={"url": key.split("=", 1)[1]},
            )
            changes.append(Change(DAY + timedelta(minutes=minute), "blackbox", key, signal))
    runs = [RunSegment("blackbox", DAY, every, int(timedelta(days=1) / every))]
    return History(DAY, DAY + timedelta(days=1), changes, runs)


def config(tmp_path: Path, name: str, overrides: dict[str, Any]) -> Config:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"notify": {"dry_run": True}} | overrides))
    return load_config(path)


def named(shift: Shift) -> str:
    return f"{shift.episode.key}@{(shift.episode.onset - DAY) // timedelta(minutes=1)}"


def compare(case: dict[str, Any], tmp_path: Path) -> Comparison:
    history = scripted_day(case)
    return Comparison.of(
        replay(history, config(tmp_path, "current", case["current"]), "current.yaml"),
        replay(history, config(tmp_path, "proposed", case["proposed"]), "proposed.yaml"),
    )


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_what_if(case: dict[str, Any], tmp_path: Path) -> None:
    comparison = compare(case, tmp_path)
    expect = case["expect"]
    hours = load_config_hours(tmp_path)
    pages = {
        "current": figures(comparison.current, hours)["pages"],
        "proposed": figures(comparison.proposed, hours)["pages"],
    }
    assert pages == expect["pages"]
    assert [named(s) for s in comparison.lost()] == expect["lost"]
    delayed = {
        named(s): format_duration(s.delay, exact=True) for s in comparison.delayed() if s.delay
    }
    assert delayed == expect["delayed"]
    assert [named(s) for s in comparison.gained()] == expect["gained"]
    assert [s.episode.key for s in comparison.blocking([])] == expect["gate"]
    assert comparison.blocking(expect["gate"]) == []  # accepted as intended
    if "per_pager" in expect:
        table = per_pager(comparison).set_index("pager")
        assert {pager: list(row) for pager, row in table.iterrows()} == expect["per_pager"]


def load_config_hours(tmp_path: Path) -> list:
    return config(tmp_path, "hours", {}).review.business_hours


def test_the_report_names_the_delays_and_the_gate(tmp_path: Path) -> None:
    comparison = compare(CASES[0], tmp_path)
    markdown, _html = render(
        build(comparison, load_config_hours(tmp_path), DAY, DAY + timedelta(days=1), [], False),
        "What-if",
    )
    assert "**Gate: 1 critical incident(s) paged under the current" in markdown
    later = markdown.split("## Would page later", 1)[1].split("## Would page now", 1)[0]
    assert "| `blackbox:url=http://api/healthz` | critical | 2026-11-02 03:20 |" in later
    assert "| 10m |" in later
    assert "| pages | 12 | 4 |" in markdown


def test_replay_steps_through_changes_not_every_run(tmp_path: Path) -> None:
    result: Replay = compare(CASES[0], tmp_path).current
    assert result.runs == 1440
    assert result.evaluations < result.runs / 4


def test_a_median_of_no_pages_reads_as_a_dash_not_zero(tmp_path: Path) -> None:
    """An alert that only told Slack has no median onset → page: `—` in its row (beside an
    alert that paged), and in the totals when nothing paged at all."""
    onset = DAY + timedelta(hours=3)
    told = Sent(onset, "group/blackbox", onset, "opened", "slack", "warning", "group/blackbox", "")
    api = "blackbox:url=http://api/healthz"
    paged = Sent(onset + timedelta(minutes=2), api, onset, "paged", "pagerduty", "critical", "", "")
    sent = [told, replace(paged, alert="blackbox")]
    comparison = Comparison.of(Replay("current.yaml", sent, 1, 1), Replay("proposed", sent, 1, 1))
    table = per_alert(comparison, load_config_hours(tmp_path)).set_index("alert")
    assert table.loc["blackbox", "median onset → page, min (current)"] == "2"
    quiet = table.loc["group/blackbox"]
    assert quiet["pages (current)"] == 0 and quiet["pages (proposed)"] == 0
    assert quiet["median onset → page, min (current)"] == "—"
    assert quiet["median onset → page, min (proposed)"] == "—"
    nothing = Comparison.of(Replay("current.yaml", [told], 1, 1), Replay("proposed", [], 1, 1))
    markdown, _html = render(
        build(nothing, load_config_hours(tmp_path), DAY, DAY + timedelta(days=1), [], False),
        "What-if",
    )
    assert "| median onset → page, min | — | — |" in markdown
