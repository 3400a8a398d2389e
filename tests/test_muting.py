"""Table-driven tests of silences by matchers and maintenance windows (core.muting) as the engine
applies them: tests/cases/muting.yaml feeds runs of signals, states what each run sends."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_alerting.core.grouping import GroupingConfig
from fleet_alerting.core.incidents import Incident, State
from fleet_alerting.core.muting import MaintenanceConfig, Muting, Silence, mute_changes
from fleet_alerting.core.policy import Evaluation, PolicyConfig
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.core.storms import StormRules, decide
from fleet_alerting.store.database import Store
from tests.test_storms import act_on

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "muting.yaml").read_text())
T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
POLICIES = {
    Severity.critical: PolicyConfig(page=["pagerduty"], mirror=True),
    Severity.warning: PolicyConfig(),
    Severity.info: PolicyConfig(notify=[]),
}


def signal(spec: dict[str, Any]) -> Signal:
    return Signal(
        key=f"{spec['source']}:{spec['target']}",
        source=spec["source"],
        firing=spec["fail"],
        severity=Severity(spec.get("severity", "warning")),
        summary=f"{spec['target']} {'down' if spec['fail'] else 'up'}",
        target=spec["target"],
        labels=dict(spec.get("labels", {})),
    )


def silences_of(case: dict[str, Any], start: datetime) -> list[Silence]:
    return [
        Silence(
            id=s["id"],
            matchers=tuple(s["matchers"]),
            starts_at=start + timedelta(seconds=s["from"]),
            ends_at=start + timedelta(seconds=s["to"]),
            author=s["author"],
            comment=s.get("comment", ""),
        )
        for s in case.get("silences", [])
    ]


@pytest.mark.parametrize("stored", [False, True], ids=["in-memory", "through-the-store"])
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_muting_table(case: dict[str, Any], stored: bool, tmp_path: Path) -> None:
    start = datetime.fromisoformat(case["start"]) if "start" in case else T0
    maintenance = MaintenanceConfig.model_validate(case.get("maintenance", {}))
    policy_windows = {
        Severity(severity): POLICIES[Severity(severity)].model_copy(update=windows)
        for severity, windows in case.get("policy_windows", {}).items()
    }
    windows = maintenance.with_policies(policy_windows)
    silences = silences_of(case, start)
    policies = POLICIES | {
        Severity(severity): PolicyConfig.model_validate(policy)
        for severity, policy in case.get("policies", {}).items()
    }
    rules = StormRules(grouping=GroupingConfig.model_validate(case.get("grouping", {})))
    records: dict[str, Incident] = {}
    real = Store(tmp_path / "state.sqlite") if stored else None
    ids: set[str] = set()  # the outbox ignores an id it has seen: none may repeat
    for step in case["steps"]:
        now = start + timedelta(seconds=step["at"])
        for key, act in step.get("act", {}).items():  # an operator's action before the run
            records[key] = act_on(real, records, key, act, now)
        signals = [signal(spec) for spec in step["signals"]]
        listed = step.get("listed", [s.id for s in silences])  # the silences still listed
        muting = Muting([s for s in silences if s.id in listed], windows)
        unresolved = {k: i for k, i in records.items() if i.state != State.resolved}

        trail: list[str] = []  # the mutes begun and ended, as the actions trail records them

        def run(
            current: Mapping[str, Incident],
            signals: list[Signal] = signals,
            now: datetime = now,
            muting: Muting = muting,
            trail: list[str] = trail,
        ) -> Evaluation:
            evaluation = decide(signals, current, policies.__getitem__, rules, now, None, muting)
            trail[:] = [
                f"{c.action} by {c.by}: {c.outcome}" for c in mute_changes(current, evaluation)
            ]
            return evaluation

        result = real.evaluate(run, now)[0] if real else run(unresolved)
        records.update({i.key: i for i in result.incidents})
        where = f"at {step['at']}s"
        fresh = [n.id for n in result.notifications]
        assert len(set(fresh)) == len(fresh) and not ids & set(fresh), f"{where}: an id again"
        ids |= set(fresh)
        sent = sorted(f"{n.channel}:{n.kind}:{n.incident.key}" for n in result.notifications)
        assert sent == sorted(step["send"]), f"{where}: {sent}"
        said = [f"{n.channel}:{n.kind}:{n.incident.key}" for n in result.notifications]
        in_order = step.get("in_order", [])
        assert [s for s in said if s in in_order] == in_order, where
        for text in step.get("says", []):
            said = [
                f"{n.incident.signal.summary} {n.incident.acts.muted_by}"
                for n in result.notifications
            ]
            assert any(text in s for s in said), f"{where}: no message says {text!r}: {said}"
        for text in step.get("never_says", []):
            said = [n.incident.signal.summary for n in result.notifications]
            assert not any(text in s for s in said), f"{where}: a message says {text!r}: {said}"
        if "trail" in step:
            assert trail == step["trail"], where
        for key, state in step.get("state", {}).items():
            assert records[key].state == state, f"{where}: {key}"
        for key, mute_id in step.get("muted", {}).items():
            assert records[key].acts.mute_id == mute_id, f"{where}: {key}"
        for key, until in step.get("until", {}).items():
            assert records[key].acts.muted_until == datetime.fromisoformat(until), where


def test_closing_words_say_what_muted_the_incident() -> None:
    from dataclasses import replace

    from fleet_alerting.core.incidents import Acts, Kind, Notification
    from fleet_alerting.delivery.notifiers.slack_api import top_message
    from fleet_alerting.delivery.notifiers.slack_webhook import headline

    base = Incident(
        key="blackbox:pi-0",
        source="blackbox",
        severity=Severity.warning,
        state=State.firing,
        onset=T0,
        changed_at=T0,
        signal=signal({"source": "blackbox", "target": "pi-0", "fail": True}),
    )
    inhibited = replace(base, inhibited_by="blackbox:service=fleet-api")
    said = Notification("n1", "slack", Kind.muted, T0, inhibited)
    assert headline(said) == "[WARNING] Inhibited by blackbox:service=fleet-api: pi-0 down"
    assert top_message(said)["text"].startswith("Inhibited by blackbox:service=fleet-api: ")
    window = replace(
        base,
        acts=Acts(
            mute_id="window:yard-night",
            muted_by="muted by window yard-night",
            muted_until=T0 + timedelta(hours=3),
        ),
    )
    said = Notification("n2", "slack_mirror", Kind.muted, T0, window)
    assert headline(said) == "[WARNING] Muted by window yard-night until 06:00 UTC: pi-0 down"
    resolved = replace(window, state=State.resolved, resolved_at=T0 + timedelta(minutes=7))
    top = top_message(Notification("n3", "slack", Kind.resolved, T0, resolved))
    assert top["text"].startswith("Resolved after 7m00s: [WARNING] pi-0 down")


SCHEDULES = yaml.safe_load((Path(__file__).parent / "cases" / "window_schedules.yaml").read_text())


@pytest.mark.parametrize("case", SCHEDULES, ids=[c["name"] for c in SCHEDULES])
def test_window_schedule_table(case: dict[str, Any]) -> None:
    maintenance = MaintenanceConfig.model_validate(
        {
            "windows": [{"name": n, "time_intervals": t} for n, t in case["windows"].items()],
            "mute": case["mute"],
        }
    ).with_policies(
        {
            severity: PolicyConfig(mute_time_intervals=[window])
            for severity, window in case.get("policies", {}).items()
        }
    )
    now = datetime.fromisoformat(case["now"]).replace(tzinfo=UTC)
    assert [s.describe() for s in Muting((), maintenance).schedules(now)] == case["says"]
