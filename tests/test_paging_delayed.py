"""A pager outage must not silence Slack: once an incident's page has been owed for
STUCK_PAGE_AFTER and is not being sent in this run, the Slack "paged" message goes out saying
PAGING DELAYED (so the incident's later messages flow again), and once the page ends Slack is
told how — "Paged after all" or PAGING FAILED — once. Real drains on a SQLite store, the
PagerDuty and Slack protocol fakes, a clock moved by hand."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from fleet_alerting.config import Config
from fleet_alerting.core.heartbeat import STUCK_PAGE_AFTER
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.channels import Notifier
from fleet_alerting.delivery.drain import drain
from fleet_alerting.delivery.notifiers.pagerduty import PagerDutyEvents
from fleet_alerting.delivery.notifiers.slack_webhook import SlackWebhook
from fleet_alerting.delivery.stages import DrainReport
from fleet_alerting.store.database import Store
from tests.drainer import ROUTING_KEY
from tests.fakes.fleet_api import FleetApiServer
from tests.fakes.http import Response
from tests.fakes.oncall import OnCallServer
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.fakes.slack_api import SlackApiServer
from tests.test_slack_api import BOT, FLEET_TOKEN, ONCALL_TOKEN, write_config
from tests.test_slack_api import T0 as ONSET
from tests.test_slack_api import step as evaluate_and_drain
from tests.test_slack_limits import validate

T0 = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
UNAVAILABLE = Response(503, {"status": "unavailable", "message": "try again later"})
INVALID_EVENT = Response(400, {"status": "invalid event", "message": "Event is invalid"})
KEY = "blackbox:url=http://api/healthz"


def sqlite(tmp_path: Path) -> str:
    return str(tmp_path / "state.sqlite")


def policy(pager: str) -> PolicyConfig:
    return PolicyConfig(open_after=1, resolve_after=1, page=[pager], page_after=timedelta(0))


def api(firing: bool = True) -> Signal:
    return Signal(KEY, "blackbox", firing, Severity.critical, "api /healthz failed", target="api")


def pagerduty(client: httpx.AsyncClient, server: PagerDutyServer) -> PagerDutyEvents:
    return PagerDutyEvents(client, SecretStr(ROUTING_KEY), f"{server.url}/v2/enqueue")


class Fleet:
    """One incident's life on a store, drained to the fakes a minute at a time."""

    def __init__(self, state: str, slack: SlackWebhookServer, pd: PagerDutyServer, pager: str):
        self.store = Store(state)
        self.slack, self.pd, self.pager = slack, pd, pager

    def step(self, firing: bool, minute: float) -> None:
        now = T0 + timedelta(minutes=minute)
        evaluation = evaluate([api(firing)], self.store.unresolved(), self._policy, now)
        self.store.record(evaluation, now)

    def _policy(self, _signal: Signal) -> PolicyConfig:
        return policy(self.pager)

    def drain(self, minute: float, owners: Iterable[str] = ("one",)) -> list[DrainReport]:
        now = T0 + timedelta(minutes=minute)

        async def go() -> list[DrainReport]:
            async with httpx.AsyncClient() as client:
                notifiers = self.notifiers(client)
                # each drainer's clock a second apart: what one queues must not depend on it
                drains = (
                    self._drain(notifiers, now + timedelta(seconds=i), owner)
                    for i, owner in enumerate(owners)
                )
                return list(await asyncio.gather(*drains))

        return asyncio.run(go())

    def notifiers(self, client: httpx.AsyncClient) -> dict[str, Notifier]:
        return {
            "slack": SlackWebhook(client, SecretStr(f"{self.slack.url}/s"), "Slack"),
            self.pager: pagerduty(client, self.pd),
        }

    async def _drain(self, notifiers: dict, now: datetime, owner: str) -> DrainReport:
        async def no_sleep(_seconds: float) -> None:
            return None

        return await drain(
            self.store, notifiers, lambda: now, sleep=no_sleep, paged_wait=1.0, owner=owner
        )

    def down_then(self, answers: list[Response], owners: Iterable[str] = ("one",)) -> list[str]:
        """PagerDuty answers 503 from minute 0 (the incident opens and pages) to 6, then gives
        `answers` first; drained a minute at a time up to minute 90. What Slack heard."""
        self.pd.fail_next = [UNAVAILABLE] * 1000
        self.step(True, 0)
        for minute in range(90):
            if minute == 7:
                self.pd.fail_next = list(answers)
            self.drain(minute, owners)
        for message in self.slack.messages:
            validate(message)
        return self.texts()

    def texts(self) -> list[str]:
        return [m["text"].split(" | target ")[0] for m in self.slack.messages]


def outage(
    tmp_path: Path, pager: str = "pagerduty", minutes: range = range(31)
) -> tuple[list[str], list[str]]:
    """PagerDuty answers 503 from minute 0 to 30 while the incident opens, pages and resolves at
    minute 10; then PagerDuty is back. What Slack heard during the outage, and in all."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Fleet(sqlite(tmp_path), slack, pd, pager)
        pd.fail_next = [UNAVAILABLE] * 1000
        fleet.step(True, 0)
        during: list[str] = []
        for minute in range(120):
            if minute == minutes.stop:
                during, pd.fail_next = fleet.texts(), []
            if minute == 10:
                fleet.step(False, 10)
            fleet.drain(minute)
        for message in slack.messages:
            validate(message)
        actions = [e["event_action"] for e in pd.events]
        # resolved during the outage, its page is withdrawn: no trigger, the resolve (a 503 may
        # have been taken) closes what a trigger that got through opened
        assert actions == (["resolve"] if minutes.stop > 10 else ["trigger", "resolve"]), actions
        return during, fleet.texts()


def test_a_pager_outage_tells_slack_paging_delayed_then_the_rest_then_not_paged(
    tmp_path: Path,
) -> None:
    """Resolved while PagerDuty is down: its page is withdrawn when the pager lane comes to it
    (no need to wait for PagerDuty), and Slack hears that nobody was paged."""
    during, texts = outage(tmp_path)
    # opened, DELAYED, RESOLVED, Not paged: all told while PagerDuty is down
    assert texts == during and len(texts) == 4, texts
    opened, delayed, resolved, not_paged = texts
    assert opened == "[CRITICAL] api /healthz failed"
    assert delayed.startswith(
        "[CRITICAL] PAGING DELAYED via pagerduty: PagerDuty Events API answered HTTP 503"
    ), delayed
    assert "— retrying (next " in delayed and "Z, outbox #" in delayed
    assert "nobody was paged yet: failing for 5m00s: api /healthz failed" in delayed
    assert resolved.startswith("[RESOLVED after 10m00s] api /healthz failed")
    # told after RESOLVED: how long it failed, not "failing for"
    assert not_paged == (
        "[CRITICAL] Not paged: resolved before pagerduty answered; resolved after 10m00s: "
        "api /healthz failed"
    ), not_paged


def test_a_named_pager_outage_is_told_the_same_way(tmp_path: Path) -> None:
    during, texts = outage(tmp_path, "pagerduty_secondary")
    assert len(during) == 4 and [t.split(":")[0] for t in texts] == [
        "[CRITICAL] api /healthz failed",
        "[CRITICAL] PAGING DELAYED via pagerduty_secondary",
        "[RESOLVED after 10m00s] api /healthz failed — now",
        "[CRITICAL] Not paged",
    ], texts


def test_a_page_refused_after_the_delay_is_told_paging_failed_once(tmp_path: Path) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        texts = Fleet(sqlite(tmp_path), slack, pd, "pagerduty").down_then([INVALID_EVENT])
    assert [t.split(" via ")[0] for t in texts[:2]] == [
        "[CRITICAL] api /healthz failed",
        "[CRITICAL] PAGING DELAYED",
    ]
    assert len(texts) == 3, texts
    assert texts[2].startswith("[CRITICAL] PAGING FAILED via pagerduty: "), texts[2]
    assert "dead letter #" in texts[2] and "nobody was paged by it" in texts[2]


def test_a_page_that_waited_less_than_five_minutes_is_told_paged_not_delayed(
    tmp_path: Path,
) -> None:
    # PagerDuty refuses the first run's attempts only: the page goes at minute 2
    _during, texts = outage(tmp_path, minutes=range(1))
    assert not any("DELAYED" in t or "after all" in t for t in texts), texts
    assert texts[1].startswith("[CRITICAL] Paged pagerduty: failing for "), texts


def test_a_page_owed_long_but_sent_in_this_run_is_told_paged_not_delayed(tmp_path: Path) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Fleet(sqlite(tmp_path), slack, pd, "pagerduty")
        fleet.step(True, 0)
        fleet.drain(STUCK_PAGE_AFTER.total_seconds() / 60 + 3)  # the first drain, 8 min later
        texts = fleet.texts()
    assert texts[1].startswith("[CRITICAL] Paged pagerduty: failing for "), texts
    assert len(texts) == 2


def test_two_drainers_on_one_store_tell_the_end_of_a_delayed_page_once(state_db: str) -> None:
    """On SQLite and on PostgreSQL."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Fleet(state_db, slack, pd, "pagerduty")
        told = fleet.down_then([], owners=("one", "two"))
        assert [t.split(":")[0] for t in told] == [
            "[CRITICAL] api /healthz failed",
            "[CRITICAL] PAGING DELAYED via pagerduty",
            "[CRITICAL] Paged after all",
        ], told

        fleet.drain(120)  # a later drain tells nothing more
        assert fleet.texts() == told


@contextmanager
def web_api_and_oncall_down(
    tmp_path: Path,
) -> Iterator[tuple[SlackApiServer, OnCallServer, Config]]:
    """Slack's Web API, the Fleet API, and OnCall answering 503 (until `fail_next` is emptied);
    the config sending there."""
    with (
        SlackApiServer(BOT) as slack,
        FleetApiServer(FLEET_TOKEN) as fleet,
        OnCallServer(ONCALL_TOKEN) as oncall,
    ):
        oncall.fail_next = [UNAVAILABLE] * 1000
        yield slack, oncall, write_config(tmp_path, slack.url, fleet.url, oncall.webhook_url)


def web_api_outage(tmp_path: Path, resolves_at: int | None = None) -> tuple[list[str], list[str]]:
    """Through Slack's Web API, a minute at a time to minute 40: OnCall answers 503 until minute
    16 (the page is queued at minute 5); the incident resolves at `resolves_at`. The thread's
    first message's text after each minute, and its replies."""
    with web_api_and_oncall_down(tmp_path) as (slack, oncall, config):
        store = Store(config.state.path)
        tops = []
        for minute in range(0, 40):
            if minute == 16:
                oncall.fail_next = []
            failing = resolves_at is None or minute < resolves_at
            evaluate_and_drain(store, config, failing, ONSET + timedelta(minutes=minute))
            tops.append(slack.top_level()[0].body["text"])
        (parent,) = slack.top_level()
        return tops, [r.body["text"].split(" | ")[0] for r in slack.replies(parent.ts)]


def test_the_web_api_thread_says_paging_delayed_in_a_reply_and_atop(tmp_path: Path) -> None:
    """The reply says PAGING DELAYED and the thread's first message says so too, until "Paged
    after all"."""
    texts, replies = web_api_outage(tmp_path)
    tops = [t.split(":")[0] for t in texts]
    delayed = [r for r in replies if "PAGING DELAYED" in r]
    assert len(delayed) == 1, replies
    assert delayed[0].startswith("[CRITICAL] PAGING DELAYED via oncall: "), delayed
    assert "nobody was paged yet: failing for 10m00s: Fleet API down" in delayed[0]
    assert [r.split(":")[0] for r in replies if "after all" in r] == ["[CRITICAL] Paged after all"]
    assert "Paging delayed" in tops and tops[-1] == "Paged oncall", tops


class Killed(Exception):
    """The drainer dies between recording a page's end and queuing its follow-up."""


def test_a_drainer_dying_as_it_records_the_page_loses_no_paged_after_all(state_db: str) -> None:
    """The page's end and its follow-up are one transaction: a drainer that dies between the
    two records neither, and the next drain sends the page again and tells it once (on SQLite
    and on PostgreSQL)."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Fleet(state_db, slack, pd, "pagerduty")
        pd.fail_next = [UNAVAILABLE] * 1000
        fleet.step(True, 0)
        for minute in range(7):
            fleet.drain(minute)
        (page,) = [
            i for i in fleet.store.queue.items(("queued",)) if i.notification.channel == "pagerduty"
        ]

        def dies(*_told: object) -> None:
            raise Killed

        now = T0 + timedelta(minutes=7)
        with pytest.raises(Killed):
            fleet.store.queue.end_page(page.id, None, page.notification, dies, now, status="sent")
        assert [i.id for i in fleet.store.queue.items(("queued",))] == [page.id]
        pd.fail_next = []
        for minute in range(7, 30):
            fleet.drain(minute)
        texts = fleet.texts()
    assert [t.split(":")[0] for t in texts] == [
        "[CRITICAL] api /healthz failed",
        "[CRITICAL] PAGING DELAYED via pagerduty",
        "[CRITICAL] Paged after all",
    ], texts
