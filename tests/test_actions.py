"""Operator actions against the engine: tests/cases/actions.yaml, plus the Alertmanager rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from fleet_alerting.core import actions
from fleet_alerting.core.durations import parse_duration
from fleet_alerting.core.incidents import Acts, Incident, State
from fleet_alerting.core.policy import PolicyConfig, default_policies, evaluate
from fleet_alerting.core.signals import Severity, Signal

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "actions.yaml").read_text())
T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
ACTOR = "U0ANA"


def observe(severity: Severity, fail: bool, source: str = "blackbox") -> Signal:
    return Signal("k", source, fail, severity, "api down" if fail else "api up")


def act(step: dict, incident: Incident, policy: PolicyConfig, now: datetime) -> actions.Change:
    channels = policy.channels()
    until = None if step.get("until_resolved") else now + parse_duration(step.get("for", "0s"))
    if step["act"] == "ack":
        return actions.acknowledge(incident, ACTOR, now, channels)
    if step["act"] == "silence":
        return actions.silence(incident, ACTOR, now, until, channels)
    if step["act"] == "unsilence":
        return actions.unsilence(incident, ACTOR, now, channels)
    assert until is not None
    return actions.snooze(incident, ACTOR, now, until)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_actions_table(case: dict) -> None:
    severity = Severity(case["severity"])
    base = default_policies()[severity].model_dump()
    if "steps" in case.get("policy", {}):  # steps replace the default's notify / page / page_after
        base = {k: v for k, v in base.items() if k not in ("notify", "page", "page_after")}
    policy = PolicyConfig.model_validate(base | case.get("policy", {}))
    incidents: dict[str, Incident] = {}
    for step in case["steps"]:
        now = T0 + timedelta(seconds=step["at"])
        if "act" in step:
            change = act(step, incidents["k"], policy, now)
            assert change.refused == step.get("refused"), f"at {step['at']}s"
            incidents["k"] = change.incident
            sent = change.notifications
        else:
            result = evaluate([observe(severity, step["fail"])], incidents, lambda _s: policy, now)
            incidents.update({i.key: i for i in result.incidents})
            sent = result.notifications
        assert [f"{n.channel}:{n.kind}" for n in sent] == step["send"], f"at {step['at']}s"
        if "state" in step:
            assert incidents["k"].state == step["state"], f"at {step['at']}s"
        assert len({n.id for n in sent}) == len(sent)


def opened(source: str) -> Incident:
    policy = PolicyConfig(open_after=1)
    (incident,) = evaluate(
        [observe(Severity.warning, True, source)], {}, lambda _s: policy, T0
    ).incidents
    return incident


def test_alertmanager_incidents_are_silenced_in_alertmanager_not_locally() -> None:
    incident = opened("alertmanager")
    later = T0 + timedelta(minutes=1)
    refused = actions.silence(incident, ACTOR, later, later + timedelta(hours=1), ["slack"])
    assert refused.refused == "an Alertmanager incident needs an Alertmanager silence"
    done = actions.silence(incident, ACTOR, later, later + timedelta(hours=1), ["slack"], "s-1")
    assert done.refused is None and done.incident.acts.silence_id == "s-1"
    assert actions.snooze(incident, ACTOR, later, later + timedelta(hours=1)).refused


def test_silence_matchers_cover_every_label_exactly() -> None:
    matchers = actions.silence_matchers({"alertname": "ApiDown", "instance": "api:443"})
    assert matchers == [
        {"name": "alertname", "value": "ApiDown", "isRegex": False, "isEqual": True},
        {"name": "instance", "value": "api:443", "isRegex": False, "isEqual": True},
    ]


def test_an_action_between_read_and_write_survives_the_evaluation() -> None:
    incident = opened("blackbox")
    later = T0 + timedelta(minutes=1)
    acked = actions.acknowledge(incident, ACTOR, later, ["slack"]).incident
    # an evaluation that read the record before the ack writes its own version afterwards
    evaluated = replace(incident, consecutive_failures=2, changed_at=later)
    (kept,) = actions.with_stored_acts([evaluated], {"k": acked})
    assert kept.acts.acked_by == ACTOR and kept.consecutive_failures == 2
    # a new episode (another onset) does not inherit the old acts
    fresh = replace(evaluated, onset=later, acts=Acts())
    assert actions.newer_acts(acked, fresh).acts == Acts()
    # nor does one with the same onset after a resolve (Alertmanager keeps startsAt)
    resolved = replace(acked, state=State.resolved)
    again = replace(evaluated, acts=Acts())
    assert actions.newer_acts(resolved, again).acts == Acts()


@pytest.mark.parametrize(
    ("mute_id", "said"),
    [
        ("silence:a5279b7b", "muted by silence a5279b7b (`silence expire a5279b7b` ends it)"),
        ("window:nightly", "muted by the maintenance window 'nightly' (config)"),
        (None, "not silenced"),
    ],
)
def test_unsilence_names_the_silence_or_window_that_mutes(mute_id: str | None, said: str) -> None:
    """An incident muted by a silence of matchers or a window is not silenced by hand: unsilence
    cannot lift it, and says what can."""
    incident = opened("blackbox")
    acts = replace(incident.acts, mute_id=mute_id, muted_by="root" if mute_id else None)
    later = T0 + timedelta(minutes=1)
    refused = actions.unsilence(replace(incident, acts=acts), ACTOR, later, ["slack"]).refused
    assert refused is not None and refused.endswith(said)
