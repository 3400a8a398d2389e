"""An operator's silence of a PAGED incident, from every surface (a Slack button, the CLI, MCP),
acknowledges its PagerDuty page as a window's mute does — else PagerDuty's own escalation keeps
ringing the on-call for what operators silenced — and its end, by time or by hand, pages again
(resolve, then trigger with the same dedup_key). PagerDuty and Slack are the tests' local servers
(tests/fakes/saas.py), the Slack app is driven with signed requests (tests/test_slack_actions)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from fleet_alerting.core.incidents import State
from fleet_alerting.surfaces.cli import main
from fleet_alerting.surfaces.mcp_server import build_server
from tests.test_slack_actions import KEY, ROUTING_KEY, World, kinds
from tests.test_slack_actions import world as world  # the fixture


def paged(world: World) -> tuple[datetime, datetime]:
    """The API down 6 minutes: opened and paged (page_after 5m). (now, onset)"""
    now = datetime.now(UTC)
    onset = now - timedelta(minutes=6)
    assert kinds(world.observe(now, onset)) == ["slack:opened", "pagerduty:paged", "slack:paged"]
    assert [e["event_action"] for e in world.pagerduty.events] == ["trigger"]
    return now, onset


def actions_of(world: World) -> list[str]:
    return [e["event_action"] for e in world.pagerduty.events]


def test_a_silence_from_slack_acknowledges_the_page_and_its_end_pages_again(world: World) -> None:
    now, onset = paged(world)
    assert world.click("silence", "1h").status_code == 200
    assert actions_of(world) == ["trigger", "acknowledge"]
    ack = world.pagerduty.events[-1]
    assert (ack["dedup_key"], ack["routing_key"]) == (KEY, ROUTING_KEY)
    assert KEY in world.pagerduty.acknowledged  # PagerDuty's escalation stops ringing
    assert world.observe(now + timedelta(minutes=30), onset) == []  # muted: no reminder, no page

    until = world.incident().acts.silenced_until
    assert until is not None
    told = len(world.slack.messages)
    ended = world.observe(until + timedelta(seconds=1), onset)
    assert kinds(ended) == ["pagerduty:resolved", "pagerduty:paged", "slack:paged"]
    # PagerDuty folds a trigger into an acknowledged alert: resolved first, a new incident rings
    assert actions_of(world) == ["trigger", "acknowledge", "resolve", "trigger"]
    assert world.pagerduty.incidents[KEY] == 2 and KEY not in world.pagerduty.acknowledged
    (said,) = world.slack.messages[told:]
    assert said["text"].startswith(
        "[CRITICAL] Silence ended, still failing after 1h06m; paged pagerduty again: Fleet API down"
    )
    assert world.incident().state == State.paged
    assert world.observe(until + timedelta(minutes=1), onset) == []  # told once


def test_a_silence_from_the_cli_acknowledges_and_unsilence_from_mcp_pages_again(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    paged(world)
    config = str(world.config.state.path.parent / "config.yaml")
    assert main(["silence", KEY, "--for", "4h", "--config", config, "--as", "ana"]) == 0
    capsys.readouterr()
    assert actions_of(world) == ["trigger", "acknowledge"]

    server = build_server(world.config, write=True, trigger=lambda *_a: asyncio.sleep(0, 0))
    result = asyncio.run(server.call_tool("unsilence_incident", {"key": KEY, "actor": "claude"}))
    blocks = result[0] if isinstance(result, tuple) else result.content
    assert blocks[0].text.startswith("Silence lifted by mcp:claude")
    assert actions_of(world) == ["trigger", "acknowledge", "resolve", "trigger"]
    assert world.pagerduty.incidents[KEY] == 2
    assert "paged pagerduty again" in world.slack.messages[-1]["text"]


def test_a_silence_of_an_acknowledged_page_leaves_it_to_the_operator(world: World) -> None:
    _now, onset = paged(world)
    assert world.click("ack").status_code == 200
    assert world.click("silence", "1h").status_code == 200
    assert actions_of(world) == ["trigger", "acknowledge"]  # one acknowledge: the operator's
    until = world.incident().acts.silenced_until
    assert until is not None
    assert kinds(world.observe(until + timedelta(seconds=1), onset)) == ["slack:silence_expired"]
    assert actions_of(world) == ["trigger", "acknowledge"]  # an operator's ack holds: no page again
