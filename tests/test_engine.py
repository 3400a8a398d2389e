"""Table-driven engine tests: tests/cases/engine.yaml feeds observations, states expectations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.incidents import Incident, Kind, State
from fleet_alerting.core.policy import PolicyConfig, cause_changes, default_policies, evaluate
from fleet_alerting.core.policy import recover_unseen as vanished
from fleet_alerting.core.signals import Severity, Signal

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "engine.yaml").read_text())
T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def observe(
    key: str, severity: Severity, fail: bool, since: datetime | None = None, cause: str = ""
) -> Signal:
    return Signal(
        key=key,
        source="test",
        firing=fail,
        severity=severity,
        summary="api down" if fail else "api up",
        target="http://api/healthz",
        since=since,
        labels={"cause": cause} if cause else {},
    )


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_engine_table(case: dict) -> None:
    severity = Severity(case["severity"])
    base = default_policies()[severity].model_dump()
    policy = PolicyConfig.model_validate(base | case.get("policy", {}))
    incidents: dict[str, Incident] = {}
    ids: list[str] = []  # the store ignores a notification whose id it has seen: none may repeat
    for step in case["steps"]:
        now = T0 + timedelta(seconds=step["at"])
        since = T0 + timedelta(seconds=step["since"]) if "since" in step else None
        signal = observe("k", severity, step["fail"], since, step.get("cause", ""))
        # as a watch whose signals name their cause passes it (`announce`)
        result = cause_changes(
            incidents,
            evaluate([signal], incidents, lambda _s: policy, now),
            lambda _s: policy,
            now,
            sources={"test"},
        )
        incidents.update({i.key: i for i in result.incidents})
        sent = [f"{n.channel}:{n.kind}" for n in result.notifications]
        assert sent == step["send"], f"at {step['at']}s"
        repeated = {n.id for n in result.notifications} & set(ids)
        assert not repeated, f"at {step['at']}s: ids of earlier notifications {sorted(repeated)}"
        ids += [n.id for n in result.notifications]
        assert incidents["k"].state == step["state"], f"at {step['at']}s"


def test_resolved_message_carries_the_duration_from_onset() -> None:
    policy = PolicyConfig(open_after=1, resolve_after=1, notify=["slack"])
    first = evaluate([observe("k", Severity.warning, True)], {}, lambda _s: policy, T0)
    incidents = {i.key: i for i in first.incidents}
    later = T0 + timedelta(minutes=7, seconds=12)
    done = evaluate([observe("k", Severity.warning, False)], incidents, lambda _s: policy, later)
    (note,) = done.notifications
    assert note.kind == Kind.resolved
    assert format_duration(note.incident.duration(note.at)) == "7m12s"


def test_notification_ids_are_stable_for_the_same_event() -> None:
    policy = PolicyConfig(open_after=1)
    one = evaluate([observe("k", Severity.warning, True)], {}, lambda _s: policy, T0)
    two = evaluate([observe("k", Severity.warning, True)], {}, lambda _s: policy, T0)
    assert [n.id for n in one.notifications] == [n.id for n in two.notifications]


def test_vanished_keys_recover_only_their_own_source() -> None:
    policy = PolicyConfig(open_after=1, resolve_after=1)
    opened = evaluate(
        [observe("a", Severity.warning, True), observe("b", Severity.warning, True)],
        {},
        lambda _s: policy,
        T0,
    )
    incidents = {i.key: i for i in opened.incidents}
    still = [observe("a", Severity.warning, True)]
    gone = vanished(still, incidents.values(), "test", "no longer reported")
    assert [(s.key, s.firing, s.summary) for s in gone] == [("b", False, "no longer reported")]
    assert vanished(still, incidents.values(), "other-source", "x") == []
    result = evaluate(still + gone, incidents, lambda _s: policy, T0 + timedelta(minutes=1))
    # "a" fails on unchanged, so there is nothing to store for it
    assert [(i.key, i.state) for i in result.incidents] == [("b", State.resolved)]
    assert result.incidents[0].resolution == "no longer reported"


def test_a_steady_failure_leaves_the_record_alone_until_something_changes() -> None:
    policy = PolicyConfig(open_after=2, repeat=timedelta(minutes=30))
    incidents: dict[str, Incident] = {}
    stored_at = []
    for minute in range(0, 40):
        now = T0 + timedelta(minutes=minute)
        result = evaluate([observe("k", Severity.warning, True)], incidents, lambda _s: policy, now)
        incidents.update({i.key: i for i in result.incidents})
        if result.incidents:
            stored_at.append(minute)
    # pending, opened, then only the reminder at 31 minutes (30 after the opening message)
    assert stored_at == [0, 1, 31]
    different = Signal("k", "test", True, Severity.warning, "api down: now HTTP 502")
    later = T0 + timedelta(minutes=41)
    changed = evaluate([different], incidents, lambda _s: policy, later).incidents
    assert [i.signal.summary for i in changed] == ["api down: now HTTP 502"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (432, "7m12s"), (3900, "1h05m"), (2 * 86400 + 3 * 3600, "2d3h")],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
