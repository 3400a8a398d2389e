"""Each delivery stage alone (gate → in-doubt check → send with retry → record), against the real
SQLite store and the protocol-speaking fakes; test_delivery_lanes.py runs them together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from pydantic import SecretStr

from fleet_alerting.core.incidents import Kind
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.notifiers.pagerduty import PagerDutyEvents
from fleet_alerting.delivery.notifiers.slack_api import SlackApi
from fleet_alerting.delivery.stages import (
    MAX_WAIT,
    DestinationState,
    DrainReport,
    Failed,
    Gate,
    LaneSettings,
    Record,
    Send,
    Sent,
    Stop,
    TakenOver,
    page_outcome,
    send_once,
)
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.store.database import Store
from fleet_alerting.store.outbox import OutboxItem
from tests.fakes.http import Response
from tests.fakes.saas import PagerDutyServer
from tests.fakes.slack_api import SlackApiServer

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
ROUTING_KEY = "R" * 32
BOT = "xoxb-stage-test-token"
OWNER = "stage-test"
PAGE_AT_ONCE = PolicyConfig(open_after=1, page=["pagerduty"], page_after=timedelta(0))
T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def go() -> T:
        return await coro

    return asyncio.run(go())


async def no_sleep(_seconds: float) -> None:
    return None


def settings(now: datetime = T0, *, paged_wait: float = 0.0, park_after: int = 3) -> LaneSettings:
    lease = timedelta(minutes=3)
    return LaneSettings(
        attempts_per_run=3, give_up_after=timedelta(hours=24), sleep=no_sleep, lease=lease,
        park_after=park_after, paged_wait=paged_wait, now=lambda: now, claim=lease, renews=False,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An incident opened and paged at once: slack "opened", pagerduty "paged", slack "paged"."""
    store = Store(str(tmp_path / "state.sqlite"))
    signal = Signal("blackbox:url=http://api/healthz", "blackbox", True, Severity.critical, "down")
    store.record(evaluate([signal], store.unresolved(), lambda _s: PAGE_AT_ONCE, T0), T0)
    return store


def queued(store: Store, channel: str, kind: Kind) -> OutboxItem:
    (item,) = [
        i
        for i in store.outbox(("queued",))
        if i.notification.channel == channel and i.notification.kind == kind
    ]
    return item


def gate(
    store: Store,
    channel: str,
    report: DrainReport,
    running: tuple[str, ...] = ("slack", "pagerduty"),
    **kw: float,
) -> Gate:
    s = settings(**kw)
    destination = DestinationState(store.queue, channel, s)
    return Gate(store.queue, channel, OWNER, s, destination, report.held, running, report.withdrawn)


# -- stage 1: the gate -------------------------------------------------------------------------


def test_gate_claims_the_oldest_message_and_none_behind_it(store: Store) -> None:
    report = DrainReport()
    slack = gate(store, "slack", report)
    item, n = run(slack.next())
    assert n.kind == Kind.opened and item.notification == n
    # the Slack "paged" message waits behind the claimed, still queued "opened"
    assert run(slack.next()) is None
    assert report.held == []


def test_gate_holds_a_paged_slack_message_while_its_page_is_queued(store: Store) -> None:
    store.queue.mark_sent(queued(store, "slack", Kind.opened).id, None, 1, "ok")
    report = DrainReport()
    assert run(gate(store, "slack", report).next()) is None  # paged_wait 0: not waited on
    assert [i.notification.kind for i in report.held] == [Kind.paged]
    assert queued(store, "slack", Kind.paged).id == report.held[0].id  # released, still queued


def test_page_outcome_after_a_refused_page_says_paging_failed(store: Store) -> None:
    page = queued(store, "pagerduty", Kind.paged)
    store.queue.mark_dead(page.id, None, 1, "permanent: HTTP 400 invalid event")
    paged = queued(store, "slack", Kind.paged)
    n = run(page_outcome(store.queue, paged, OWNER, T0, ()))
    assert not isinstance(n, str)
    assert n.paging_failed == (
        f"pagerduty: HTTP 400 invalid event (dead letter #{page.id}: page the on-call by hand; "
        f"once the cause is fixed, `fleet-alerting outbox requeue {page.id}` sends the page again)"
    )
    assert n.incident.paged_via == ()


def test_page_outcome_waits_for_a_due_page_and_passes_an_accepted_one(store: Store) -> None:
    paged = queued(store, "slack", Kind.paged)
    assert run(page_outcome(store.queue, paged, OWNER, T0, ("pagerduty",))) == "wait"
    store.queue.mark_sent(queued(store, "pagerduty", Kind.paged).id, None, 1, "202")
    assert run(page_outcome(store.queue, paged, OWNER, T0, ())) == paged.notification


def test_page_outcome_does_not_wait_once_this_runs_pager_lane_is_done(store: Store) -> None:
    """A drainer that died holding the page: its claim runs out after this run's pager lane
    looked and left it. Nobody in this run will send the page, so the "paged" message is held
    for the next run rather than waiting `paged_wait` (CI saw a run wait 30 s, the page 50 s)."""
    paged = queued(store, "slack", Kind.paged)
    assert run(page_outcome(store.queue, paged, OWNER, T0, ("slack",))) == "hold"


def test_gate_holds_a_paged_message_at_once_when_no_pager_lane_is_left(store: Store) -> None:
    store.queue.mark_sent(queued(store, "slack", Kind.opened).id, None, 1, "ok")
    report = DrainReport()
    slack = gate(store, "slack", report, running=("slack",), paged_wait=30.0)
    assert run(asyncio.wait_for(slack.next(), 5)) is None
    assert [i.notification.kind for i in report.held] == [Kind.paged]


def test_a_destination_resting_past_a_run_stops_the_lane(store: Store) -> None:
    store.queue.destination_failed("slack", T0, T0 + timedelta(seconds=MAX_WAIT + 60), "HTTP 503")
    destination = DestinationState(store.queue, "slack", settings())
    with pytest.raises(Stop):
        run(destination.wait())


# -- stage 2: the in-doubt check ---------------------------------------------------------------


def test_in_doubt_a_confirming_notifier_looks_before_posting_again(store: Store) -> None:
    n = queued(store, "slack", Kind.opened).notification
    with SlackApiServer(BOT) as slack:

        async def twice() -> tuple[str, str]:
            async with httpx.AsyncClient() as client:
                api = SlackApi(client, SecretStr(BOT), "C0OPS", api_url=f"{slack.url}/api")
                first = await send_once(api, n, False, T0)
                return first, await send_once(api, n, True, T0)

        first, again = run(twice())
    assert "posted" in first and "found" in again
    assert len(slack.top_level()) == 1


def test_in_doubt_a_pager_sends_again(store: Store) -> None:
    n = queued(store, "pagerduty", Kind.paged).notification
    with PagerDutyServer() as pd:

        async def twice() -> None:
            async with httpx.AsyncClient() as client:
                events = PagerDutyEvents(client, SecretStr(ROUTING_KEY), f"{pd.url}/v2/enqueue")
                await send_once(events, n, False, T0)
                await send_once(events, n, True, T0)

        run(twice())
    assert [e["event_action"] for e in pd.events] == ["trigger", "trigger"]  # one dedup_key


# -- stage 3: send with retry ------------------------------------------------------------------


def sending(
    store: Store, pd: PagerDutyServer, refused: list[AdapterError], lost: bool = False
) -> Callable[[httpx.AsyncClient], Awaitable[object]]:
    item = queued(store, "pagerduty", Kind.paged)

    async def tell(error: AdapterError) -> None:
        refused.append(error)

    async def go(client: httpx.AsyncClient) -> object:
        events = PagerDutyEvents(client, SecretStr(ROUTING_KEY), f"{pd.url}/v2/enqueue")
        send = Send(events, item.notification, item, settings(), tell)
        if lost:
            send.claim_lost.set()
        return await send.run(asyncio.timeout(60))

    return go


def send_with(store: Store, answers: list[Response], lost: bool = False) -> tuple[object, list]:
    refused: list[AdapterError] = []
    with PagerDutyServer() as pd:
        pd.fail_next.extend(answers)

        async def go() -> object:
            async with httpx.AsyncClient() as client:
                return await sending(store, pd, refused, lost)(client)

        outcome = run(go())
    return outcome, refused


def test_send_retries_a_5xx_within_the_run(store: Store) -> None:
    outcome, refused = send_with(store, [Response(500, {"status": "error"})])
    assert isinstance(outcome, Sent) and outcome.attempts == 2
    assert [e.permanent for e in refused] == [False]


def test_send_stops_at_a_permanent_refusal(store: Store) -> None:
    outcome, refused = send_with(store, [Response(400, {"status": "invalid event"})])
    assert isinstance(outcome, Failed) and outcome.attempts == 1
    assert outcome.error.permanent and not outcome.doubt and len(refused) == 1


def test_send_after_a_long_retry_after_tries_no_more_this_run(store: Store) -> None:
    retry_after = {"retry-after": str(int(MAX_WAIT) + 30)}
    outcome, _ = send_with(store, [Response(429, {"status": "throttled"}, retry_after)])
    assert isinstance(outcome, Failed) and outcome.attempts == 1
    assert outcome.error.retry_after == MAX_WAIT + 30


def test_send_with_its_claim_lost_sends_nothing(store: Store) -> None:
    outcome, refused = send_with(store, [], lost=True)
    assert isinstance(outcome, TakenOver) and refused == []


# -- stage 4: record ---------------------------------------------------------------------------


def claimed(store: Store, channel: str, now: datetime = T0) -> OutboxItem:
    item = store.queue.claim_next(channel, OWNER, now, timedelta(minutes=3))
    assert item is not None
    return item


def recorder(store: Store, channel: str, report: DrainReport, **kw: int) -> Record:
    s = settings(**kw)
    destination = DestinationState(store.queue, channel, s)
    return Record(store.queue, channel, OWNER, s, "test notifier", destination, report)


def test_record_sent_marks_it_and_clears_the_destination(store: Store) -> None:
    store.queue.destination_failed("pagerduty", T0, T0, "HTTP 500")
    item = claimed(store, "pagerduty")
    report = DrainReport()
    run(recorder(store, "pagerduty", report)(item, Sent("202 accepted", 2)))
    assert [i.id for i, _ in report.sent] == [item.id]
    assert all(i.id != item.id for i in store.outbox(("queued",)))
    assert store.queue.destination("pagerduty").failures == 0


def test_record_a_retryable_failure_keeps_it_queued_and_rests_the_lane(store: Store) -> None:
    item = claimed(store, "pagerduty")
    report = DrainReport()
    error = AdapterError("HTTP 503", permanent=False, maybe_sent=True)
    with pytest.raises(Stop):
        run(recorder(store, "pagerduty", report)(item, Failed(error, 3, True)))
    again = queued(store, "pagerduty", Kind.paged)
    assert again.attempts == 3 and again.next_attempt_at == T0 + timedelta(minutes=2)
    assert again.in_doubt and store.queue.destination("pagerduty").failures == 1
    assert [why for _, why in report.retrying] == ["HTTP 503"]


def test_record_a_refused_page_is_a_dead_letter_and_a_loud_warning(store: Store) -> None:
    item = claimed(store, "pagerduty")
    report = DrainReport()
    error = AdapterError("HTTP 400 invalid event", permanent=True)
    run(recorder(store, "pagerduty", report)(item, Failed(error, 1, False)))
    (dead,) = store.outbox(("dead",))
    assert dead.id == item.id and dead.last_error == "permanent: HTTP 400 invalid event"
    assert report.warnings == [
        "PAGING FAILED via pagerduty: HTTP 400 invalid event "
        "(incident blackbox:url=http://api/healthz)"
    ]


def test_record_parks_a_message_after_repeated_unexpected_errors(store: Store) -> None:
    report = DrainReport()
    record = recorder(store, "slack", report, park_after=2)
    run(record(claimed(store, "slack"), Failed(OSError("disk full"), 1, True)))
    assert queued(store, "slack", Kind.opened).in_doubt  # it may have come after a post
    again = claimed(store, "slack", T0 + timedelta(minutes=1))
    assert again.errors == 1
    run(record(again, Failed(OSError("disk full"), 2, True)))
    assert [why for _, why in report.dead] == [
        "parked after 2 unexpected errors: OSError: disk full"
    ]
