"""A Retry-After header never dead-letters a message and never rests a destination for longer than
an hour: an HTTP date far ahead, a number too large for a timedelta, digits that are not ASCII,
garbage — each answered once by the Slack webhook, the Slack Web API and the PagerDuty fakes,
then the destination is healthy again and everything is delivered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.drain import drain
from fleet_alerting.delivery.notifiers.pagerduty import PagerDutyEvents
from fleet_alerting.delivery.notifiers.slack_api import SlackApi
from fleet_alerting.delivery.notifiers.slack_webhook import SlackWebhook
from fleet_alerting.http.errors import MAX_RETRY_AFTER, retry_after_seconds
from fleet_alerting.store.database import Store
from tests.drainer import BOT_TOKEN, ROUTING_KEY
from tests.fakes.http import FakeServer, Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.fakes.slack_api import SlackApiServer

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
HEADERS = {
    "date in 2099": ("Wed, 21 Oct 2099 07:28:00 GMT", MAX_RETRY_AFTER),
    "overflowing seconds": ("100000000000000", MAX_RETRY_AFTER),
    "superscript two": ("\u00b2", None),
    "arabic-indic digits": ("\u0661\u0662", None),
    "negative": ("-5", None),
    "fraction": ("1.5", None),
    "garbage": ("soon, please", None),
    "date without zone": ("Wed, 21 Oct 2026 07:28:00", None),
    "year 99999": ("Wed, 21 Oct 99999 07:28:00 GMT", None),
    "date in the past": ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    "two minutes": ("120", 120.0),
}


@pytest.mark.parametrize(("header", "seconds"), HEADERS.values(), ids=HEADERS.keys())
def test_retry_after_is_parsed_safely_and_capped(header: str, seconds: float | None) -> None:
    assert retry_after_seconds(header, T0) == seconds


async def no_sleep(_seconds: float) -> None:
    return None


def queue_one(store: Store, channel: str) -> None:
    """One notification, to `channel` only: Slack's "opened", or the page."""
    if channel == "slack":
        policy = PolicyConfig(open_after=1)
    else:
        policy = PolicyConfig(open_after=1, notify=[], page=["pagerduty"], page_after=timedelta(0))
    signal = Signal("blackbox:url=http://api/healthz", "blackbox", True, Severity.critical, "down")
    store.record(evaluate([signal], {}, lambda _s: policy, T0), T0)


def slack_webhook(client: httpx.AsyncClient, server: FakeServer) -> SlackWebhook:
    return SlackWebhook(client, SecretStr(f"{server.url}/s"), "Slack")


def slack_api(client: httpx.AsyncClient, server: FakeServer) -> SlackApi:
    return SlackApi(client, SecretStr(BOT_TOKEN), "C0OPS", api_url=f"{server.url}/api")


def pagerduty(client: httpx.AsyncClient, server: FakeServer) -> PagerDutyEvents:
    return PagerDutyEvents(client, SecretStr(ROUTING_KEY), f"{server.url}/v2/enqueue")


FAKES: dict[str, tuple[str, Callable[[], FakeServer], Callable, object]] = {
    "slack webhook": ("slack", SlackWebhookServer, slack_webhook, "rate_limited"),
    "slack web api": (
        "slack",
        lambda: SlackApiServer(BOT_TOKEN),
        slack_api,
        {"ok": False, "error": "ratelimited"},
    ),
    "pagerduty": ("pagerduty", PagerDutyServer, pagerduty, {"status": "throttled"}),
}


def delivered(server: FakeServer) -> int:
    return len(getattr(server, "messages", None) or getattr(server, "posted", None) or []) + len(
        getattr(server, "events", [])
    )


@pytest.mark.parametrize("fake", FAKES.keys())
@pytest.mark.parametrize("header", [h for h, _s in HEADERS.values()], ids=HEADERS.keys())
def test_no_retry_after_dead_letters_or_blocks_past_the_cap(
    tmp_path: Path, fake: str, header: str
) -> None:
    channel, make_server, make_notifier, answer = FAKES[fake]
    store = Store(tmp_path / "state.sqlite")
    queue_one(store, channel)

    async def run(server: FakeServer, now: datetime):
        async with httpx.AsyncClient() as client:
            notifiers = {channel: make_notifier(client, server)}
            return await drain(store, notifiers, lambda: now, sleep=no_sleep, paged_wait=0)

    with make_server() as server:
        server.fail_next = [Response(429, answer, {"Retry-After": header})] * 3
        for run_no in range(4):  # a run every 61 minutes: a capped rest has ended by the next
            now = T0 + run_no * timedelta(minutes=61)
            report = asyncio.run(run(server, now))
            assert report.dead == [], report.dead
            blocked = store.queue.destination(channel).blocked_until
            assert blocked is None or blocked <= now + timedelta(seconds=MAX_RETRY_AFTER)
        assert delivered(server) == 1  # Slack or PagerDuty healthy again: delivered, once
    assert store.outbox(("queued", "dead")) == []


def test_a_rest_recorded_past_the_cap_is_ignored(tmp_path: Path) -> None:
    """A store written before the cap may say 2099: the destination is not blocked until then."""
    store = Store(tmp_path / "state.sqlite")
    queue_one(store, "slack")
    year_2099 = datetime(2099, 10, 21, 7, 28, tzinfo=UTC)
    store.queue.destination_blocked("slack", T0, year_2099, "Slack answered HTTP 429")
    with SlackWebhookServer() as server:

        async def go():
            async with httpx.AsyncClient() as client:
                notifiers = {"slack": slack_webhook(client, server)}
                return await drain(store, notifiers, lambda: T0, sleep=no_sleep)

        report = asyncio.run(go())
        assert len(report.sent) == 1 and len(server.messages) == 1
