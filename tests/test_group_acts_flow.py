"""A group incident's acknowledgement that times out and its silences that end, end to end: the
store (SQLite), the storm passes, operators' actions as the Slack app performs them, the outbox
drained into the Slack Web API and PagerDuty fakes. Time is a parameter: each run gets its `now`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from fleet_alerting.config import Config
from fleet_alerting.core.actions import Action
from fleet_alerting.core.signals import Signal
from fleet_alerting.surfaces.incident_actions import perform
from tests.fakes.saas import PagerDutyServer
from tests.fakes.slack_api import SlackApiServer
from tests.test_silence_flows import BOT, T0, probe, run, silence, write_config

GROUP = "group/blackbox:severity=critical"
POLICY = {
    "open_after": 1,
    "resolve_after": 1,
    "mirror": False,
    "ack_timeout": "15m",
    "steps": [{"after": "0s", "to": ["slack"]}, {"after": "5m", "to": ["pagerduty"]}],
}


@pytest.fixture
def fakes() -> Iterator[tuple[SlackApiServer, PagerDutyServer]]:
    with SlackApiServer(BOT) as slack, PagerDutyServer() as pagerduty:
        yield slack, pagerduty


def devices(firing: bool) -> list[Signal]:
    return [probe(firing, f"pi-{i}") for i in range(3)]


def runs(config: Config, minutes: range | tuple[int, ...], firing: bool = True) -> None:
    for minute in minutes:
        run(config, devices(firing), T0 + timedelta(minutes=minute))


def act(config: Config, action: Action, minute: int, duration: timedelta | None = None) -> None:
    now = T0 + timedelta(minutes=minute)
    outcome = asyncio.run(
        perform(config, GROUP, action, actor="U0ANA", via="slack", now=now, duration=duration)
    )
    assert outcome.ok, outcome.message


def paged_and_acked(slack: SlackApiServer, pagerduty: PagerDutyServer, tmp_path: Path) -> Config:
    """The group opened at 0, paged at 5, acknowledged from Slack at 6."""
    config = write_config(tmp_path, slack.url, pagerduty.url, policies={"critical": POLICY})
    runs(config, range(0, 6))
    act(config, "ack", 6)
    return config


def test_a_group_pages_again_once_after_its_ack_times_out_and_after_a_silence_ends(
    fakes: tuple[SlackApiServer, PagerDutyServer], tmp_path: Path
) -> None:
    slack, pagerduty = fakes
    config = paged_and_acked(slack, pagerduty, tmp_path)
    runs(config, range(7, 21))
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "acknowledge"]
    runs(config, range(21, 24))  # the ack timed out at 21
    events = [(e["event_action"], e["dedup_key"]) for e in pagerduty.events]
    assert events == [(a, GROUP) for a in ("trigger", "acknowledge", "resolve", "trigger")]
    assert pagerduty.incidents[GROUP] == 2  # the on-call is notified again, once
    assert pagerduty.open == {GROUP} and pagerduty.acknowledged == set()

    act(config, "silence", 24, timedelta(minutes=10))  # the Slack button: until 34
    runs(config, range(25, 37))
    silence(config, ['instance=~"pi-.*"'], T0 + timedelta(minutes=37), hours=0.25)  # until 52
    runs(config, range(38, 55))
    runs(config, (55, 56), firing=False)

    actions = [e["event_action"] for e in pagerduty.events]
    # held by the button's silence, paged again as it ends; held by the one by matchers, again
    assert actions[4:] == [
        "acknowledge", "resolve", "trigger", "acknowledge", "resolve", "trigger", "resolve"
    ]  # fmt: skip
    assert pagerduty.incidents[GROUP] == 4 and pagerduty.open == set()
    assert {e["dedup_key"] for e in pagerduty.events} == {GROUP}  # members never page
    (top,) = slack.top_level("C0OPS")  # one message, one thread
    replies = [r.body["text"] for r in slack.replies(top.ts)]
    paged = [r for r in slack.replies(top.ts) if r.body["text"].startswith("[CRITICAL] Paged")]
    assert len(paged) == 2, replies  # at 5, and when the ack timed out
    assert "Acknowledged by U0ANA at 03:06 UTC, still failing 15m later: escalating again" in str(
        paged[1].body["blocks"]
    )
    ended = [t for t in replies if "Silence ended, still failing" in t]
    assert len(ended) == 2, replies  # the button's silence, then the one by matchers
    assert "was silenced by ana (silence" in ended[1]
    assert sum(t.startswith("[RESOLVED") for t in replies) == 1


def test_a_silenced_group_whose_ack_times_out_is_paged_again_only_as_the_silence_ends(
    fakes: tuple[SlackApiServer, PagerDutyServer], tmp_path: Path
) -> None:
    slack, pagerduty = fakes
    config = paged_and_acked(slack, pagerduty, tmp_path)
    act(config, "silence", 7, timedelta(hours=1))  # the Slack button: until 67
    runs(config, range(8, 30))  # the ack is 15 minutes old at 21
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "acknowledge"]
    assert pagerduty.incidents[GROUP] == 1, "the on-call was paged during the silence"
    runs(config, (66, 67, 68))  # the silence ends at 67: the ack, long timed out, with it
    events = [e["event_action"] for e in pagerduty.events]
    assert events == ["trigger", "acknowledge", "resolve", "trigger"]
    assert pagerduty.incidents[GROUP] == 2 and pagerduty.open == {GROUP}
    (top,) = slack.top_level("C0OPS")
    replies = [r.body["text"] for r in slack.replies(top.ts)]
    assert sum("Silence ended, still failing" in t for t in replies) == 1, replies
