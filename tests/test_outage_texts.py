"""What Slack and the CLI say during a PagerDuty outage (an operator's walkthrough): a pager
already known down is told PAGING DELAYED at once on a later step's page (a healthy pager's short
503 blip never is), an operator's `outbox drop` is followed up without pinging anyone, `outbox
--sent` shows when a message was sent, and a text sent late says as of when it was true. Real
drains on a SQLite store, the PagerDuty / Slack protocol fakes, a clock moved by hand."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from fleet_alerting.core.escalation import StepConfig
from fleet_alerting.core.incidents import Kind, Notification
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Signal
from fleet_alerting.delivery.channels import Notifier
from fleet_alerting.delivery.notifiers.slack_webhook import SlackWebhook
from fleet_alerting.delivery.stages import page_outcome, paging_ended
from fleet_alerting.store import outbox as box
from fleet_alerting.store.backend import dispose_engines
from fleet_alerting.store.database import Store
from tests import test_delivery_stages as stages
from tests.fakes.http import Request, Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.stores import raw_engine
from tests.test_paging_delayed import T0, UNAVAILABLE, Fleet, api, sqlite
from tests.test_paging_delayed_ends import count
from tests.test_paging_delayed_followups import delayed, the_page
from tests.test_slack_limits import validate


class Mentioning(Fleet):
    """The paging step mentions `@here`; the primary channel's on-call is S0ONCALL."""

    def _policy(self, _signal: Signal) -> PolicyConfig:
        step = StepConfig(after=timedelta(0), to=["slack", self.pager], mention="here")
        return PolicyConfig(open_after=1, resolve_after=1, steps=[step])

    def notifiers(self, client: httpx.AsyncClient) -> dict[str, Notifier]:
        url = SecretStr(f"{self.slack.url}/s")
        slack = SlackWebhook(client, url, "Slack", page_mention="S0ONCALL")
        return super().notifiers(client) | {"slack": slack}


def test_an_operators_drop_is_followed_up_without_pinging_anyone(tmp_path: Path) -> None:
    """PagerDuty down: PAGING DELAYED at minute 5 calls @here; the operator drops the page at
    8 — its PAGING FAILED follow-up is their own choice told back, and pings nobody."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Mentioning(sqlite(tmp_path), slack, pd, "pagerduty")
        delayed(fleet, pd)
        page, now = the_page(fleet, "queued"), T0 + timedelta(minutes=8, seconds=30)
        dropping = partial(box.drop, fleet.store.queue, page.id, now, "dropped by ana: on phone")
        assert dropping(partial(paging_ended, now=now))
        for minute in range(9, 15):
            fleet.drain(minute)
        for message in slack.messages:
            validate(message)
        texts = [m["text"] for m in slack.messages]
    told = next(t for t in texts if "PAGING DELAYED" in t)
    assert told.startswith("<!here> "), told  # the outage itself still calls the step
    assert count(texts, "PAGING FAILED") == 1 and "dropped by ana: on phone" in texts[-1], texts
    assert "<!here>" not in texts[-1] and "S0ONCALL" not in texts[-1], texts[-1]


class SlackDown(SlackWebhookServer):
    """Answers 503 while `down`."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def handle(self, request: Request) -> Response:
        return UNAVAILABLE if self.down else super().handle(request)


class Reminding(Fleet):
    def _policy(self, _signal: Signal) -> PolicyConfig:
        return PolicyConfig(
            open_after=1, resolve_after=1, page=[self.pager], page_after=timedelta(0), repeat="2m"
        )


def test_messages_sent_late_say_as_of_when_they_were_true(tmp_path: Path) -> None:
    """Slack is down from minute 0 to 7 while the incident pages at once and is reminded every
    2 minutes; Slack's backoff sends the backlog at minute 17: each of those says as of when its
    "failing for" was true (beside the next one it would read backwards), and what goes out on
    time after that says nothing more."""
    with SlackDown() as slack, PagerDutyServer() as pd:
        fleet = Reminding(sqlite(tmp_path), slack, pd, "pagerduty")
        for minute in range(30):
            slack.down = minute < 7
            fleet.step(True, minute)
            fleet.drain(minute)
        for message in slack.messages:
            validate(message)
        texts = fleet.texts()
    assert texts[:3] == [
        "[CRITICAL] api /healthz failed",
        "[CRITICAL] Paged pagerduty: failing for 0s as of 06:00:00 UTC: api /healthz failed",
        "[CRITICAL] Still failing after 2m00s as of 06:02:00 UTC: api /healthz failed",
    ], texts
    assert texts[-1] == "[CRITICAL] Still failing after 28m00s: api /healthz failed", texts


def test_the_outbox_keeps_when_a_message_was_sent_on_a_store_of_before(state_db: str) -> None:
    """A store of schema 7, before sent times were kept (no `sent_at`), its incident's opening
    message sent by that code: opened again, the column is added in place (SQLite and
    PostgreSQL alike); the old row has no sent time, and what goes out now keeps its own."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        Fleet(state_db, slack, pd, "pagerduty").step(True, 0)
        with raw_engine(state_db).begin() as raw:
            raw.exec_driver_sql("ALTER TABLE outbox DROP COLUMN sent_at")
            raw.exec_driver_sql("ALTER TABLE destinations DROP COLUMN failing_since")
            for key, value in (("schema_version", "7"), ("schema_fingerprint", "old")):
                meta = f"UPDATE store_meta SET value = '{value}' WHERE key = '{key}'"
                raw.exec_driver_sql(meta)
            raw.exec_driver_sql("UPDATE outbox SET status = 'sent' WHERE kind = 'opened'")
        dispose_engines()
        fleet = Fleet(state_db, slack, pd, "pagerduty")
        assert fleet.store.upgraded_from == 7
        fleet.drain(7)  # the page and the Slack "paged" message go out at 06:07
        items = fleet.store.outbox(("sent",))
        sent = {(i.notification.channel, i.notification.kind): i for i in items}
    assert sent["slack", Kind.opened].sent_at is None
    assert sent["slack", Kind.paged].sent_at == T0 + timedelta(minutes=7)
    assert sent["pagerduty", Kind.paged].sent_at == T0 + timedelta(minutes=7)
    assert sent["slack", Kind.paged].created_at == T0


# -- a pager already known down: a later page's Slack message says PAGING DELAYED at once ------


@dataclass(frozen=True)
class Case:
    name: str
    pager_failing_for: timedelta | None  # None: healthy (no failures in a row)
    pager_rests_for: timedelta = timedelta(0)  # from now
    page_retries_in: timedelta | None = None  # the page failed itself (None: due, never tried)
    page_owed_for: timedelta = timedelta(seconds=10)  # since it was queued
    pager_lane_running: bool = True
    held_by_another_drainer: bool = False
    expected: str = "hold"  # hold | wait | delayed


MINUTE, SECOND = timedelta(minutes=1), timedelta(seconds=1)
DOWN = 6 * MINUTE  # failing for longer than STUCK_PAGE_AFTER: known down
CASES = [
    Case("healthy pager, its lane done in this run", None, pager_lane_running=False),
    Case("healthy pager, its lane sends the page now", None, expected="wait"),
    Case(
        "a healthy pager's 503 blip 20 s ago: the page retries in 10 s",
        20 * SECOND, 10 * SECOND, page_retries_in=10 * SECOND, page_owed_for=20 * SECOND,
    ),
    Case("failing for 4m50s, resting: not known down yet", 4 * MINUTE + 50 * SECOND, 2 * MINUTE),
    Case("known down, resting: a new page", DOWN, 2 * MINUTE, expected="delayed"),
    Case("known down, the page held by another drainer", DOWN, held_by_another_drainer=True,
         expected="delayed"),
    Case("known down, its rest ends in 5 s: the lane tries it", DOWN, 5 * SECOND, expected="wait"),
    Case("the page itself owed 5 min, the pager healthy", None, pager_lane_running=False,
         page_owed_for=5 * MINUTE, expected="delayed"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_page_to_a_pager_known_down_is_told_delayed_at_once(tmp_path: Path, case: Case) -> None:
    store = Store(str(tmp_path / "state.sqlite"))
    now = stages.T0 + case.page_owed_for
    record = evaluate([api()], store.unresolved(), lambda _s: stages.PAGE_AT_ONCE, stages.T0)
    store.record(record, stages.T0)
    page = stages.queued(store, "pagerduty", Kind.paged)
    paged = stages.queued(store, "slack", Kind.paged)
    if case.pager_failing_for is not None:
        since = now - case.pager_failing_for
        store.queue.destination_failed("pagerduty", since, since + 30 * SECOND, "HTTP 503")
        store.queue.destination_blocked("pagerduty", now, now + case.pager_rests_for, "HTTP 503")
    if case.page_retries_in is not None:
        store.queue.mark_retry(page.id, None, 3, now + case.page_retries_in, "HTTP 503")
    if case.held_by_another_drainer:
        assert store.queue.claim_next("pagerduty", "another", now, MINUTE).id == page.id
    running = ("slack", "pagerduty") if case.pager_lane_running else ("slack",)
    outcome = asyncio.run(page_outcome(store.queue, paged, stages.OWNER, now, running))
    if isinstance(outcome, Notification):
        assert outcome.paging_delayed.startswith("pagerduty: "), outcome.paging_delayed
        outcome = "delayed"
    assert outcome == case.expected


# a blip long ago that no success cleared (its page withdrawn) is no pager known down
def _held_outcome(
    tmp_path: Path, blip_ago: timedelta, held_by_another: bool, failures: int = 1
) -> str:
    store = Store(str(tmp_path / "state.sqlite"))
    now = stages.T0 + 10 * SECOND
    record = evaluate([api()], store.unresolved(), lambda _s: stages.PAGE_AT_ONCE, stages.T0)
    store.record(record, stages.T0)
    page = stages.queued(store, "pagerduty", Kind.paged)
    paged = stages.queued(store, "slack", Kind.paged)
    blip = now - blip_ago
    for _ in range(failures):  # a blip long ago: its 30 s rest long over, nothing sent since
        store.queue.destination_failed("pagerduty", blip, blip + 30 * SECOND, "HTTP 503")
    if held_by_another:
        assert store.queue.claim_next("pagerduty", "another", now, MINUTE).id == page.id
    running = ("slack", "pagerduty") if not held_by_another else ("slack",)
    outcome = asyncio.run(page_outcome(store.queue, paged, stages.OWNER, now, running))
    return "delayed" if isinstance(outcome, Notification) else outcome


def test_a_blip_hours_ago_does_not_make_a_healthy_pager_known_down(tmp_path: Path) -> None:
    # the same page held 10 s, a pager with no trouble recorded: "hold" (the table's own case)
    assert (
        _held_outcome(tmp_path / "a", 6 * 60 * MINUTE, held_by_another=True, failures=0) == "hold"
    )
    # one 503 six hours ago, its rest over for hours: the pager is not "known down"
    assert _held_outcome(tmp_path / "b", 6 * 60 * MINUTE, held_by_another=True) == "hold"


class Escalating(Fleet):
    """Step 1 pages PagerDuty at once; step 2, 10 minutes on, pages it again and calls @here."""

    def _policy(self, _signal: Signal) -> PolicyConfig:
        steps = [
            StepConfig(after=timedelta(0), to=["slack", self.pager]),
            StepConfig(after=10 * MINUTE, to=["slack", self.pager], mention="here"),
        ]
        return PolicyConfig(open_after=1, resolve_after=1, steps=steps)


def test_a_later_steps_page_to_a_pager_known_down_is_told_delayed_at_once(tmp_path: Path) -> None:
    """PagerDuty is down from minute 0 (step 1's page told PAGING DELAYED at 5); step 2 pages it
    again at 10: its message says PAGING DELAYED in that run, not 5 minutes later."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Escalating(sqlite(tmp_path), slack, pd, "pagerduty")
        pd.fail_next = [UNAVAILABLE] * 10_000
        told: dict[int, list[str]] = {}
        for minute in range(13):
            fleet.step(True, minute)
            fleet.drain(minute)
            told[minute] = [t for t in fleet.texts() if "PAGING DELAYED" in t]
        for message in slack.messages:
            validate(message)
    assert len(told[4]) == 0 and len(told[5]) == 1, told
    assert len(told[10]) == 2, told[10]  # step 2's, at once
    # its page goes after step 1's, retried at 06:18: not "next 06:10"
    assert "retrying (next 06:18:00Z, outbox #4)" in told[10][1], told[10][1]
    assert "Escalation step 2" in str(slack.messages[-1]["blocks"]), slack.messages[-1]
