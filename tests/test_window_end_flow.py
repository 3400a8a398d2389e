"""A maintenance night end to end (a tester's): a window mutes site="east" 14:33–14:45 on an
incident paged on two routing keys before it; still failing as it ends, both are paged again.
The config loader, the pipeline's evaluation (muting, the audit trail), the store, the drain and
the PagerDuty and Slack fakes; a run a minute on a virtual clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from slack_sdk.models.blocks import Block, ContextBlock, SectionBlock

from fleet_alerting.config import load_config
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.channels import build_notifiers
from fleet_alerting.delivery.drain import drain
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.cli import main
from tasks.pipeline import evaluate_and_record
from tests.fakes.http import Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.test_escalation_flow import PRIMARY, SECONDARY, no_sleep
from tests.test_escalation_flow import write_config as escalation_config

ONSET = datetime(2026, 12, 7, 14, 23, 5, tzinfo=UTC)
KEY = "blackbox:pi-east-04"
ENDED = "pi-east-04 down (was muted by window east-maint, which has ended)"


def write_config(folder: Path, slack: str, pd: str) -> Path:
    """The escalation flow's Slack and two PagerDuty routing keys, with the tester's policy."""
    path = escalation_config(folder, slack, pd)
    config = yaml.safe_load(path.read_text())
    config |= {
        "policies": {
            "critical": {"mirror": False},
            "warning": {
                "open_after": 1,
                "mirror": False,
                "repeat": "5m",
                "ack_timeout": "30m",
                "steps": [
                    {"after": "0s", "to": ["slack"]},
                    {"after": "2m", "to": ["pagerduty"]},
                    {"after": "4m", "to": ["pagerduty_secondary", "slack"], "mention": "here"},
                ],
            },
        },
        "maintenance": {
            "windows": [
                {
                    "name": "east-maint",
                    "time_intervals": [{"times": [{"start_time": "14:33", "end_time": "14:45"}]}],
                }
            ],
            "mute": [{"matchers": ['site="east"'], "mute_time_intervals": ["east-maint"]}],
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def run(config_path: Path, store: Store, now: datetime) -> None:
    """One watch run at `now` through the pipeline's evaluation, then a drain of what it queued."""
    config = load_config(config_path)
    summary, labels = "pi-east-04 down", {"site": "east"}
    signal = Signal(KEY, "blackbox", True, Severity.warning, summary, labels=labels)
    evaluate_and_record(
        store, [signal], config.policy, now, rules=config.storm_rules(),
        maintenance=config.maintenance_rules(),
    )  # fmt: skip

    async def deliver() -> None:
        async with httpx.AsyncClient() as client:
            await drain(store, build_notifiers(config, client), lambda: now, sleep=no_sleep)

    asyncio.run(deliver())


def night(config_path: Path, minutes: range) -> Path:
    """Failing since ONSET: a run at each of these minutes after it."""
    with Store(config_path.parent / "state.sqlite") as store:
        for minute in minutes:
            run(config_path, store, ONSET + timedelta(minutes=minute))
    return config_path


def texts(message: dict[str, Any]) -> tuple[str, list[str]]:
    """A Slack message as slack_sdk reads it: its headline section and its context lines."""
    blocks = [Block.parse(b) for b in message["blocks"]]
    head = next(b for b in blocks if isinstance(b, SectionBlock))
    context = next(b for b in blocks if isinstance(b, ContextBlock))
    return head.text.text, [e.text for e in context.elements]


def show(config_path: Path, capsys: pytest.CaptureFixture) -> list[str]:
    capsys.readouterr()
    assert main(["incidents", "--show", KEY, "--config", str(config_path)]) == 0
    return [line.strip() for line in capsys.readouterr().out.splitlines()]


def test_the_window_end_that_pages_again_says_whom_and_when(tmp_path: Path) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        night(write_config(tmp_path, slack.url, pd.url), range(24))  # to 14:46:05
    at_end = [e for e in pd.events if e["event_action"] in ("resolve", "trigger")][-4:]
    assert sorted((e["routing_key"], e["event_action"]) for e in at_end) == sorted(
        [(k, a) for k in (PRIMARY, SECONDARY) for a in ("resolve", "trigger")]
    )
    ended = [m for m in slack.messages if ENDED in m["text"]]
    assert len(ended) == 1, [m["text"] for m in slack.messages]
    head, context = texts(ended[0])
    assert ended[0]["text"].startswith(
        "<!here> [WARNING] Silence ended, still failing after 22m00s; "
        f"paged pagerduty, pagerduty_secondary again: {ENDED}"
    ), ended[0]["text"]
    assert "paged pagerduty, pagerduty_secondary again" in head
    paged = (
        "Paged: pagerduty 14:25:05 UTC, pagerduty_secondary 14:27:05 UTC, "
        "pagerduty 14:45:05 UTC, pagerduty_secondary 14:45:05 UTC"
    )
    assert paged in context
    assert "Next: no further step; reminders every 5m" in context


def test_show_gives_each_pager_its_times_and_the_window_in_the_trail(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        config_path = night(write_config(tmp_path, slack.url, pd.url), range(24))  # to 14:46:05
        shown = show(config_path, capsys)
    assert (
        "paged pagerduty at 14:25:05Z and 14:45:05Z, pagerduty_secondary at 14:27:05Z and 14:45:05Z"
    ) in shown
    trail = shown[shown.index("actions:") :]
    assert (
        "2026-12-07 14:33:05Z muted by window east-maint via evaluation: until 2026-12-07 14:45:00Z"
    ) in trail
    assert (
        "2026-12-07 14:45:05Z unmuted by window east-maint via evaluation: "
        "still failing: paged pagerduty, pagerduty_secondary again"
    ) in trail


def test_the_last_step_says_the_reminders_that_follow(tmp_path: Path) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        night(write_config(tmp_path, slack.url, pd.url), range(5))  # to 14:27:05: the last step
    _head, context = texts(slack.messages[-1])
    assert "Escalation step 3 of 3" in context
    assert "Next: no further step; reminders every 5m" in context


def test_a_window_end_whose_pages_fail_says_paging_failed(tmp_path: Path) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        config_path = night(write_config(tmp_path, slack.url, pd.url), range(22))  # in the window
        refused = Response(400, {"status": "invalid event", "message": "Event object is invalid"})
        pd.fail_next = [refused] * 4  # the window's end: both resolves and both triggers
        night(config_path, range(22, 23))  # 14:45:05
    ended = [m["text"] for m in slack.messages if ENDED in m["text"]]
    assert len(ended) == 1, [m["text"] for m in slack.messages]
    assert "PAGING FAILED via pagerduty" in ended[0], ended[0]
