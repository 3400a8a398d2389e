"""review-page (2026-12-07): failing tests for the silence-ack merge — an operator's silence
acknowledges a PagerDuty page, its end pages again. Real store, engine passes, Slack app actions
(incident_actions.perform), the outbox drained into the tests' local Slack / PagerDuty servers."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from fleet_alerting.config import Config
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.policy import evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.drain import build_notifiers, drain
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.incident_actions import perform
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.fakes.slack_api import SlackApiServer
from tests.servers import free_port
from tests.test_group_acts_flow import GROUP, POLICY, runs
from tests.test_group_acts_flow import fakes as fakes
from tests.test_inhibition_end_texts import T0 as T1
from tests.test_inhibition_end_texts import run as inhibition_run
from tests.test_inhibition_end_texts import signal as spec_signal
from tests.test_inhibition_end_texts import write_config as inhibition_config
from tests.test_metrics_muted import device, open_states
from tests.test_self_watch import make_config
from tests.test_silence_acknowledges_page import actions_of, paged
from tests.test_silence_flows import KEY as ONE
from tests.test_silence_flows import T0, probe, write_config
from tests.test_silence_flows import run as one_run
from tests.test_slack_actions import KEY, World
from tests.test_slack_actions import world as world

MEMBER = "blackbox:pi-0"


def act(config, key, action, minute, duration=None):
    now = T0 + timedelta(minutes=minute)
    out = asyncio.run(
        perform(config, key, action, actor="U0ANA", via="slack", now=now, duration=duration)
    )
    assert out.ok, out.message
    return out


def group_paged(
    fakes: tuple[SlackApiServer, PagerDutyServer], tmp_path: Path
) -> tuple[Config, PagerDutyServer]:
    """The group opened at 0 and paged PagerDuty at 5 (its dedup key); 7 minutes in."""
    slack, pagerduty = fakes
    config = write_config(tmp_path, slack.url, pagerduty.url, policies={"critical": POLICY})
    runs(config, range(0, 7))
    return config, pagerduty


def test_silencing_and_unsilencing_a_group_member_pages_nobody_under_its_own_key(
    fakes: tuple[SlackApiServer, PagerDutyServer], tmp_path: Path
) -> None:
    config, pagerduty = group_paged(fakes, tmp_path)
    assert [(e["event_action"], e["dedup_key"]) for e in pagerduty.events] == [("trigger", GROUP)]
    with Store(config.state) as store:
        member = store.incident(MEMBER)
    assert member is not None and member.group == GROUP
    act(config, MEMBER, "silence", 7, timedelta(hours=1))
    act(config, MEMBER, "unsilence", 8)
    runs(config, (9,))
    events = [(e["event_action"], e["dedup_key"]) for e in pagerduty.events]
    # the member was never paged under its own key: nothing may go to PagerDuty for it
    assert events == [("trigger", GROUP)], (events, dict(pagerduty.incidents))


def test_a_member_unsilenced_then_resolved_leaves_no_pagerduty_incident_open(
    fakes: tuple[SlackApiServer, PagerDutyServer], tmp_path: Path
) -> None:
    config, pagerduty = group_paged(fakes, tmp_path)
    act(config, MEMBER, "silence", 7, timedelta(hours=1))
    act(config, MEMBER, "unsilence", 8)
    runs(config, (9, 10))
    runs(config, (11, 12, 13), firing=False)  # every member passes: the group resolves
    assert pagerduty.open == set(), [(e["event_action"], e["dedup_key"]) for e in pagerduty.events]


def passes(world: World, now: datetime, onset: datetime) -> None:
    """One blackbox run in which the API answers again (resolve_after 2: not resolved yet)."""
    signal = Signal(KEY, "blackbox", False, Severity.critical, "Fleet API answers", since=onset)
    with world.store() as store:
        result = evaluate([signal], store.unresolved(), world.config.policy, now)
        store.record(result, now)

        async def deliver() -> None:
            async with httpx.AsyncClient() as http:
                await drain(store, build_notifiers(world.config, http, store), lambda: now)

        asyncio.run(deliver())


def test_unsilence_of_a_recovering_incident_does_not_page_it_again(world: World) -> None:
    now, onset = paged(world)
    assert world.click("silence", "1h").status_code == 200
    passes(world, now + timedelta(minutes=2), onset)  # passing, not resolved yet
    assert world.incident().consecutive_successes == 1
    told = len(world.slack.messages)
    assert world.click("unsilence").status_code == 200
    said = [m["text"][:80] for m in world.slack.messages[told:]]
    # the check passes: no page again, and Slack must not say "still failing"
    assert actions_of(world) == ["trigger", "acknowledge"], (actions_of(world), said)


def test_a_member_silence_that_runs_out_pages_nobody_again(
    fakes: tuple[SlackApiServer, PagerDutyServer], tmp_path: Path
) -> None:
    config, pagerduty = group_paged(fakes, tmp_path)
    act(config, MEMBER, "silence", 7, timedelta(minutes=5))  # until 12
    runs(config, range(8, 16))
    events = [(e["event_action"], e["dedup_key"]) for e in pagerduty.events]
    assert events == [("trigger", GROUP)], (events, dict(pagerduty.incidents))


def test_an_inhibition_that_ends_under_an_operators_silence_pages_nobody(tmp_path: Path) -> None:
    symptom, cause = ("api", "vps", Severity.critical), ("vps", "vps", Severity.critical)
    with SlackWebhookServer() as slack, PagerDutyServer() as pagerduty:
        config = inhibition_config(tmp_path, slack.url, pagerduty.url)
        failing = spec_signal(symptom, True)
        inhibition_run(config, [failing], 0)  # told and paged
        now = T1 + timedelta(minutes=0, seconds=30)
        out = asyncio.run(
            perform(
                config,
                failing.key,
                "silence",
                actor="U0ANA",
                via="slack",
                now=now,
                duration=timedelta(hours=4),
            )
        )
        assert out.ok, out.message
        inhibition_run(config, [spec_signal(cause, True), failing], 1)  # inhibited
        told = len(slack.messages)
        inhibition_run(config, [spec_signal(cause, False), failing], 2)  # the cause clears
        actions = [e["event_action"] for e in pagerduty.events if e["dedup_key"] == failing.key]
        texts = [m["text"][:90] for m in slack.messages[told:]]
        # silenced for 4 hours: the on-call's page stays acknowledged, Slack hears no "Paged"
        assert actions == ["trigger", "acknowledge"], (actions, texts)


def test_unsilence_after_the_ack_timed_out_under_the_silence_pages_once(tmp_path: Path) -> None:
    with SlackApiServer("xoxb-silence-flow-token") as slack, PagerDutyServer() as pagerduty:
        config = write_config(
            tmp_path,
            slack.url,
            pagerduty.url,
            policies={"critical": POLICY},
            grouping={"enabled": False},
        )
        for minute in range(0, 6):  # opened at 0, paged at 5
            one_run(config, probe(True), T0 + timedelta(minutes=minute))
        act(config, ONE, "ack", 6)
        act(config, ONE, "silence", 7, timedelta(hours=1))
        for minute in range(8, 30):  # the ack times out at 21, under the silence
            one_run(config, probe(True), T0 + timedelta(minutes=minute))
        assert [e["event_action"] for e in pagerduty.events] == ["trigger", "acknowledge"]
        act(config, ONE, "unsilence", 30)
        for minute in range(31, 34):
            one_run(config, probe(True), T0 + timedelta(minutes=minute))
        events = [e["event_action"] for e in pagerduty.events]
        # the silence's end pages again once: one new PagerDuty incident, not two
        assert pagerduty.incidents[ONE] == 2, events


def test_a_silenced_groups_members_are_not_counted_as_firing(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        metrics={"listen": f"127.0.0.1:{free_port()}"},
        policies={"critical": {"open_after": 1, "page_after": "1h"}},
    )
    now = utcnow() - timedelta(minutes=1)
    signals = [device(n) for n in ("east-1", "east-2", "east-3")]
    with Store(config.state) as store:
        evaluate_and_record(store, signals, config.policy, now, rules=config.storm_rules())
        groups = [i.key for i in store.incidents(include_resolved=False) if i.members]
    assert groups == ["group/blackbox:severity=critical"]
    outcome = asyncio.run(
        perform(
            config,
            groups[0],
            "silence",
            actor="bo",
            via="cli",
            now=now,
            duration=timedelta(hours=1),
            deliver=False,
        )
    )
    assert outcome.ok, outcome.message
    states = open_states(config)
    # the operator silenced the group: planned work, not `firing` a rule would page for
    assert "firing" not in states, states


def test_unsilence_of_a_group_whose_members_all_pass_does_not_page_it_again(
    fakes: tuple[SlackApiServer, PagerDutyServer], tmp_path: Path
) -> None:
    slack, pagerduty = fakes
    policy = dict(POLICY, resolve_after=2)
    config = write_config(tmp_path, slack.url, pagerduty.url, policies={"critical": policy})
    runs(config, range(0, 6))  # the group paged at 5
    act(config, GROUP, "silence", 6, timedelta(hours=1))
    runs(config, (7,), firing=False)  # every member passes (resolve_after 2: still open)
    act(config, GROUP, "unsilence", 8)
    actions = [e["event_action"] for e in pagerduty.events]
    assert actions == ["trigger", "acknowledge"], (actions, dict(pagerduty.incidents))
