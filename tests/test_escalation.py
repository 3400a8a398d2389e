"""Escalation steps, acknowledgement timeouts, reminder schedules: tests/cases/escalation.yaml,
and today's policies (engine.yaml) written as steps producing the same notifications."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_alerting.config import load_config
from fleet_alerting.core import actions, escalation
from fleet_alerting.core.incidents import Escalation, Incident, Notification, State
from fleet_alerting.core.policy import PolicyConfig, cause_changes, default_policies, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.notifiers.slack_webhook import render

CASES_DIR = Path(__file__).parent / "cases"
CASES = yaml.safe_load((CASES_DIR / "escalation.yaml").read_text())
ENGINE_CASES = yaml.safe_load((CASES_DIR / "engine.yaml").read_text())
T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def observe(
    fail: bool, severity: Severity, since: datetime | None = None, cause: str = ""
) -> Signal:
    summary = "api down" if fail else "api up"
    labels = {"cause": cause} if cause else {}
    target = "http://api/healthz"
    return Signal("k", "test", fail, severity, summary, target=target, since=since, labels=labels)


def act(incident: Incident, step: dict[str, Any], policy: PolicyConfig, now: datetime):
    until = T0 + timedelta(seconds=step["until"]) if "until" in step else None
    channels = policy.channels()
    if step["act"] == "ack":
        return actions.acknowledge(incident, "ana", now, channels)
    if step["act"] == "silence":
        return actions.silence(incident, "ana", now, until, channels)
    if step["act"] == "unsilence":
        return actions.unsilence(incident, "ana", now, channels)
    assert until is not None
    return actions.snooze(incident, "ana", now, until)


def play(steps: list[dict[str, Any]], policy: PolicyConfig, severity: Severity) -> None:
    incidents: dict[str, Incident] = {}
    ids: list[str] = []  # the store ignores a notification whose id it has seen: none may repeat
    for step in steps:
        now = T0 + timedelta(seconds=step["at"])
        where = f"at {step['at']}s"
        sent: list[Notification]
        if "act" in step:
            change = act(incidents["k"], step, policy, now)
            assert change.refused is None, where
            incidents["k"], sent = change.incident, change.notifications
        else:
            since = T0 + timedelta(seconds=step["since"]) if "since" in step else None
            signal = observe(step["fail"], severity, since, step.get("cause", ""))
            result = evaluate([signal], incidents, lambda _s: policy, now)
            result = cause_changes(incidents, result, lambda _s: policy, now, sources={"test"})
            incidents.update({i.key: i for i in result.incidents})
            sent = result.notifications
        assert [f"{n.channel}:{n.kind}" for n in sent] == step["send"], where
        repeated = {n.id for n in sent} & set(ids)
        assert not repeated, f"{where}: ids of earlier notifications {sorted(repeated)}"
        ids += [n.id for n in sent]
        if "state" in step:
            assert incidents["k"].state == step["state"], where
        if "step" in step:
            assert incidents["k"].escalation.step == step["step"], where


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_escalation_table(case: dict[str, Any]) -> None:
    policy = PolicyConfig.model_validate(case["policy"])
    play(case["steps"], policy, Severity(case.get("severity", "critical")))


def as_steps(policy: PolicyConfig) -> PolicyConfig:
    """The same policy written as escalation steps."""
    data = policy.model_dump(exclude={"notify", "page", "page_after", "steps"})
    steps = [{"after": "0s", "to": list(policy.notify)}] if policy.notify else []
    if policy.page:
        steps.append({"after": policy.page_after, "to": list(policy.page)})
    return PolicyConfig.model_validate(data | {"steps": steps}) if steps else policy


@pytest.mark.parametrize("case", ENGINE_CASES, ids=[c["name"] for c in ENGINE_CASES])
def test_todays_policies_are_their_one_and_two_step_case(case: dict[str, Any]) -> None:
    severity = Severity(case["severity"])
    base = default_policies()[severity].model_dump()
    policy = PolicyConfig.model_validate(base | case.get("policy", {}))
    assert policy.stages() == as_steps(policy).stages()
    if policy.notify or policy.page:
        play(case["steps"], as_steps(policy), severity)


def test_messages_say_the_step_who_was_paged_and_what_comes_next() -> None:
    policy = PolicyConfig.model_validate(CASES[0]["policy"])
    incidents: dict[str, Incident] = {}
    told = []
    for seconds in (0, 300):
        now = T0 + timedelta(seconds=seconds)
        result = evaluate([observe(True, Severity.critical)], incidents, lambda _s: policy, now)
        incidents.update({i.key: i for i in result.incidents})
        told += [n for n in result.notifications if n.channel == "slack"]
    assert escalation.lines(told[0].incident) == [
        "Escalation step 1 of 3",
        "Next: step 2 (pagerduty) at 03:05:00 UTC",
    ]
    (paged,) = [n for n in result.notifications if n.channel == "slack"]
    assert escalation.lines(paged.incident) == [
        "Escalation step 2 of 3",
        "Paged: pagerduty 03:05:00 UTC",
        "Next: step 3 (pagerduty_secondary + slack) at 03:20:00 UTC",
    ]
    acked = actions.acknowledge(incidents["k"], "ana", T0 + timedelta(minutes=6), ["slack"])
    assert escalation.lines(acked.incident)[-1] == (
        "Next: if still failing at 03:36:00 UTC, step 2 again"
    )


def _failing_through(policy: PolicyConfig, minutes: Sequence[int]) -> dict[str, Incident]:
    """The incident of a failure observed at these minutes."""
    incidents: dict[str, Incident] = {}
    for minute in minutes:
        now = T0 + timedelta(minutes=minute)
        result = evaluate([observe(True, Severity.critical)], incidents, lambda _s: policy, now)
        incidents.update({i.key: i for i in result.incidents})
    return incidents


def test_an_acknowledgement_on_a_step_that_only_tells_slack_says_which_step_pages_again() -> None:
    (case,) = [c for c in CASES if "only tells Slack - the last paging step" in c["name"]]
    incidents = _failing_through(PolicyConfig.model_validate(case["policy"]), (0, 5, 15))
    assert incidents["k"].escalation.step == 3
    acked = actions.acknowledge(incidents["k"], "ana", T0 + timedelta(minutes=16), ["slack"])
    assert escalation.lines(acked.incident)[-1] == (
        "Next: if still failing at 03:46:00 UTC, step 2 again"
    )


def test_an_acknowledgement_that_timed_out_says_why() -> None:
    policy = PolicyConfig.model_validate(CASES[0]["policy"])
    incidents: dict[str, Incident] = {}
    result = evaluate([observe(True, Severity.critical)], incidents, lambda _s: policy, T0)
    incidents.update({i.key: i for i in result.incidents})
    incidents["k"] = actions.acknowledge(incidents["k"], "ana", T0, ["slack"]).incident
    later = T0 + timedelta(minutes=30)
    result = evaluate([observe(True, Severity.critical)], incidents, lambda _s: policy, later)
    (told,) = result.notifications
    assert escalation.lines(told.incident)[0] == (
        "Escalation step 1 of 3: acknowledged by ana at 03:00 UTC, still failing 30m later: "
        "escalating again"
    )
    assert told.incident.acts.acked_by is None  # a new acknowledgement is possible
    assert render(told)["text"].startswith(
        "[CRITICAL] Acknowledged by ana at 03:00 UTC, still failing 30m later: escalating again: "
        "failing for 30m00s: api down"
    )


def test_a_partial_policy_with_steps_replaces_only_notify_and_page(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    steps = "[{after: 0s, to: [slack]}, {after: 2m, to: [oncall]}]"
    path.write_text(f"notify: {{dry_run: true}}\npolicies:\n  critical: {{steps: {steps}}}\n")
    critical = load_config(path).policy(Severity.critical)
    assert (critical.repeat, critical.mirror) == (timedelta(minutes=30), True)  # the defaults'
    assert [(s.offset, s.destinations) for s in critical.stages()] == [
        (timedelta(0), ("slack", "slack_mirror")),
        (timedelta(minutes=2), ("oncall",)),
    ]


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        ({"steps": [{"after": "5m", "to": ["slack"]}], "page": ["pagerduty"]}, "not both"),
        ({"ack_timeout": "30m", "ack_holds_page": "10m"}, "give one of them"),
        ({"steps": [{"to": ["slack"]}]}, "give one of after"),
        ({"steps": [{"after": "5m", "after_previous": "1m", "to": ["slack"]}]}, "give one of"),
        ({"steps": [{"after": "5m", "to": ["slack"]}, {"after": "1m", "to": ["oncall"]}]}, "order"),
        ({"steps": [{"after": "0s", "to": ["email"]}]}, "should match pattern"),
        ({"steps": [{"after": "0s", "to": ["pagerduty"], "mention": "S01"}]}, "add slack"),
        ({"page": ["slack"]}, "not a pager"),
        ({"repeat": "10m, 0s"}, "greater than 0"),
        ({"repeat": []}, "1 to 20 intervals"),
    ],
)
def test_bad_escalation_settings_are_refused(policy: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        PolicyConfig.model_validate(policy)


@pytest.mark.parametrize("state", ["firing", "paged"])
def test_an_open_incident_stored_before_escalation_steps_is_not_told_again(state: str) -> None:
    policy = default_policies()[Severity.critical]
    first = evaluate([observe(True, Severity.critical)], {}, lambda _s: policy, T0)
    then = T0 + timedelta(minutes=5)
    incidents = {i.key: i for i in first.incidents}
    if state == "paged":
        incidents.update(
            (i.key, i)
            for i in evaluate(
                [observe(True, Severity.critical)], incidents, lambda _s: policy, then
            ).incidents
        )
    # as today's code stored it: no escalation record
    stored = replace(incidents["k"], escalation=Escalation(), state=State(state), opened_at=T0)
    later = T0 + timedelta(minutes=6 if state == "paged" else 4)
    result = evaluate([observe(True, Severity.critical)], {"k": stored}, lambda _s: policy, later)
    assert result.notifications == []


def test_named_pagers_get_a_notifier_and_a_lease(tmp_path: Path) -> None:
    from fleet_alerting.delivery.channels import build_notifiers, lease_for

    (tmp_path / "pd.key").write_text("P" * 32)
    (tmp_path / "pd2.key").write_text("S" * 32)
    steps = "[{after: 0s, to: [slack]}, {after: 5m, to: [pagerduty_secondary, oncall_night]}]"
    text = (
        "notify:\n  dry_run: DRY\n  pagerduty:\n    routing_key: {file: pd.key}\n"
        "    routing_keys: {secondary: {file: pd2.key}}\n"
        f"policies:\n  critical: {{steps: {steps}}}\n"
    )
    path = tmp_path / "c.yaml"
    path.write_text(text.replace("DRY", "true"))
    dry = build_notifiers(load_config(path), client=None)  # type: ignore[arg-type]
    assert {"pagerduty_secondary", "oncall_night"} <= set(dry)
    assert "dry run" in dry["oncall_night"].name
    real_steps = "[{after: 0s, to: [pagerduty]}, {after: 5m, to: [pagerduty_secondary]}]"
    path.write_text(
        text.replace("DRY", "false").replace(steps, real_steps) + "  warning: {notify: []}\n"
    )
    config = load_config(path)
    real = build_notifiers(config, client=None)  # type: ignore[arg-type]
    assert sorted(real) == ["pagerduty", "pagerduty_secondary"]
    assert lease_for(config, 30.0)["pagerduty_secondary"] == lease_for(config, 30.0)["pagerduty"]


def test_a_copy_with_another_page_after_pages_at_its_own_time() -> None:
    policy = default_policies()[Severity.critical]
    assert policy.stages()[1].offset == timedelta(minutes=5)
    copy = policy.model_copy(update={"page_after": timedelta(minutes=1)})
    assert copy.stages()[1].offset == timedelta(minutes=1)


def test_paged_again_after_the_timeout_names_each_pager_once_and_says_why() -> None:
    policy = PolicyConfig.model_validate(CASES[0]["policy"])
    incidents: dict[str, Incident] = {}
    for minute in (0, 5):
        now = T0 + timedelta(minutes=minute)
        result = evaluate([observe(True, Severity.critical)], incidents, lambda _s: policy, now)
        incidents.update({i.key: i for i in result.incidents})
    six = T0 + timedelta(minutes=6)
    incidents["k"] = actions.acknowledge(incidents["k"], "ana", six, ["slack"]).incident
    later = T0 + timedelta(minutes=36)
    result = evaluate([observe(True, Severity.critical)], incidents, lambda _s: policy, later)
    (slack,) = [n for n in result.notifications if n.channel == "slack"]
    assert render(slack)["text"].startswith("[CRITICAL] Paged pagerduty: failing for 36m00s")
    assert escalation.lines(slack.incident)[:2] == [
        "Escalation step 2 of 3: acknowledged by ana at 03:06 UTC, still failing 30m later: "
        "escalating again",
        "Paged: pagerduty 03:05:00 UTC, pagerduty 03:36:00 UTC",
    ]


def test_an_ack_that_times_out_after_a_reload_shortened_the_steps_escalates_on_the_last() -> None:
    """The config reloaded with fewer steps than the incident had reached: the run goes on (it
    failed on an index out of range), the escalation starts again from the last step there is."""
    incidents = _failing_through(PolicyConfig.model_validate(CASES[0]["policy"]), (0, 5, 20))
    assert incidents["k"].escalation.step == 3
    acked = T0 + timedelta(minutes=21)
    incidents["k"] = actions.acknowledge(incidents["k"], "ana", acked, ["slack"]).incident
    shorter = PolicyConfig.model_validate(
        CASES[0]["policy"] | {"steps": CASES[0]["policy"]["steps"][:2]}
    )
    later = acked + timedelta(minutes=30)
    result = evaluate([observe(True, Severity.critical)], incidents, lambda _s: shorter, later)
    assert {n.channel for n in result.notifications} >= {"pagerduty"}
    assert result.incidents[0].escalation.step == 2


@pytest.mark.parametrize(
    ("settings", "next_line"),
    [
        (
            {"ack_holds_page": "10m"},
            "Next: step 2 (pagerduty) at 03:12:00 UTC (held by the acknowledgement)",
        ),
        ({}, "Next: held by the acknowledgement"),
        ({"ack_timeout": "1h"}, "Next: if still failing at 04:02:00 UTC, step 1 again"),
    ],
)
def test_what_an_acknowledgement_before_the_page_does_is_said(
    settings: dict[str, Any], next_line: str
) -> None:
    policy = PolicyConfig.model_validate({"open_after": 1, "page": ["pagerduty"]} | settings)
    opened = evaluate([observe(True, Severity.critical)], {}, lambda _s: policy, T0).incidents[0]
    acked = actions.acknowledge(opened, "ana", T0 + timedelta(minutes=2), ["slack"]).incident
    assert escalation.lines(acked)[-1] == next_line
    silenced = actions.silence(opened, "ana", T0, T0 + timedelta(hours=1), ["slack"]).incident
    assert escalation.lines(silenced)[-1] == "Next: held by the silence until 04:00:00 UTC"


def test_a_step_mention_takes_the_place_of_the_page_mention_and_the_mirror_mentions_nobody() -> (
    None
):
    policy = PolicyConfig.model_validate(CASES[0]["policy"] | {"mirror": True})
    incidents: dict[str, Incident] = {}
    told: dict[tuple[int, str], Notification] = {}
    for minute in (0, 5, 20):
        now = T0 + timedelta(minutes=minute)
        result = evaluate([observe(True, Severity.critical)], incidents, lambda _s: policy, now)
        incidents.update({i.key: i for i in result.incidents})
        told |= {(minute, n.channel): n for n in result.notifications}

    def lead(minute: int, channel: str) -> str:
        text = render(told[minute, channel], page_mention="S0PAGE")["text"]
        return text.split(" [CRITICAL]")[0] if not text.startswith("[") else ""

    assert lead(0, "slack") == ""  # opened: nobody
    assert lead(5, "slack") == "<!subteam^S0PAGE>"  # paged, the step names nobody
    assert lead(20, "slack") == "<!subteam^S0ONCALL>"  # the step's own, in place of it
    assert lead(20, "slack_mirror") == ""
