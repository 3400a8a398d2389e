"""A Slack "paged" message whose page the pager lane of this run is still sending goes out in
this run. A pager answering 429 with `Retry-After: 1`, then 202 (or 400): the lane waits the
second and the page is taken (or refused) in this run; the Slack lane looking during that second
(the destination resting) still waits for it, and says "paged" (or PAGING FAILED) in this run.
Real drain, real clock, SQLite, protocol-speaking fakes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.drain import drain
from fleet_alerting.delivery.notifiers.pagerduty import PagerDutyEvents
from fleet_alerting.delivery.notifiers.slack_webhook import SlackWebhook
from fleet_alerting.store.database import Store
from tests.fakes.http import Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer

KEY = "R" * 32


def now() -> datetime:
    return datetime.now(UTC)


def queue_page(store: Store, pager: str) -> None:
    policy = PolicyConfig(open_after=1, page=[pager], page_after=timedelta(0))
    signal = Signal("blackbox:url=http://api/healthz", "blackbox", True, Severity.critical,
                    "api /healthz failed", target="api")  # fmt: skip
    at = now()
    store.record(evaluate([signal], store.unresolved(), lambda _s: policy, at), at)


def run_once(store: Store, pager: str, slack: str, pd: str) -> None:
    async def go() -> None:
        async with httpx.AsyncClient() as client:
            notifiers = {
                "slack": SlackWebhook(client, SecretStr(f"{slack}/s"), "Slack"),
                pager: PagerDutyEvents(client, SecretStr(KEY), f"{pd}/v2/enqueue"),
            }
            await drain(store, notifiers, now, paged_wait=30.0)

    asyncio.run(go())


@pytest.mark.parametrize("pager", ["pagerduty", "pagerduty_secondary"])
@pytest.mark.parametrize("throttled_first", [False, True], ids=["control", "429-then-202"])
def test_a_page_accepted_in_this_run_is_said_paged_in_this_run(
    tmp_path: Path, pager: str, throttled_first: bool
) -> None:
    store = Store(tmp_path / "s.sqlite")
    queue_page(store, pager)
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        if throttled_first:
            pd.fail_next = [Response(429, {"status": "throttled"}, headers={"Retry-After": "1"})]
        run_once(store, pager, slack.url, pd.url)
    assert [e["event_action"] for e in pd.events] == ["trigger"]  # accepted in this run
    texts = [m["text"] for m in slack.messages]
    assert any(f"Paged {pager}" in t for t in texts), texts
    assert store.outbox(("queued",)) == []


INVALID = Response(400, {"status": "invalid event", "message": "Event is invalid"})


@pytest.mark.parametrize("throttled_first", [False, True], ids=["control", "429-then-400"])
def test_a_page_refused_in_this_run_is_said_paging_failed_in_this_run(
    tmp_path: Path, throttled_first: bool
) -> None:
    store = Store(tmp_path / "s.sqlite")
    queue_page(store, "pagerduty")
    throttled = Response(429, {"status": "throttled"}, headers={"Retry-After": "1"})
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        pd.fail_next = [throttled, INVALID] if throttled_first else [INVALID]
        run_once(store, "pagerduty", slack.url, pd.url)
    assert [d.notification.channel for d in store.outbox(("dead",))] == ["pagerduty"]
    texts = [m["text"] for m in slack.messages]
    assert any("PAGING FAILED via pagerduty" in t for t in texts), texts
