"""Store + outbox: atomic recording, replay after a crash, retries, dead letters, ordering; on
SQLite and on PostgreSQL (`state_db`)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from fleet_alerting.core.policy import Evaluation, PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.drain import DrainReport, Notifier, Unavailable, drain
from fleet_alerting.delivery.notifiers.pagerduty import PagerDutyEvents
from fleet_alerting.delivery.notifiers.slack_webhook import SlackWebhook
from fleet_alerting.store.database import Store
from fleet_alerting.store.outbox import Outbox
from tests.fakes.http import Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
ROUTING_KEY = "R" * 32
PAGE_AT_ONCE = PolicyConfig(open_after=1, page=["pagerduty"], page_after=timedelta(0))


def outage(key: str = "blackbox:url=http://api/healthz", fail: bool = True) -> Signal:
    return Signal(key, "blackbox", fail, Severity.critical, "API /api/healthz failed: HTTP 500")


def opened(store: Store, policy: PolicyConfig = PAGE_AT_ONCE, now: datetime = T0) -> Evaluation:
    evaluation = evaluate([outage()], store.unresolved(), lambda _s: policy, now)
    store.record(evaluation, now)
    return evaluation


async def no_sleep(_seconds: float) -> None:
    return None


def run_drain(store: Store, notifiers: dict[str, Notifier], now: datetime = T0, **kw: object):
    return asyncio.run(drain(store, notifiers, lambda: now, sleep=no_sleep, **kw))


@pytest.fixture
def store(state_db: str) -> Store:
    return Store(state_db)


def pagerduty_and_slack(pd_url: str, slack_url: str, client: httpx.AsyncClient):
    return {
        "pagerduty": PagerDutyEvents(client, SecretStr(ROUTING_KEY), f"{pd_url}/v2/enqueue"),
        "slack": SlackWebhook(client, SecretStr(f"{slack_url}/services/T/B/x"), "Slack"),
    }


def deliver_all(store: Store, pd: PagerDutyServer, slack: SlackWebhookServer, now=T0):
    async def go():
        async with httpx.AsyncClient() as client:
            return await drain(
                store, pagerduty_and_slack(pd.url, slack.url, client), lambda: now, sleep=no_sleep
            )

    return asyncio.run(go())


def test_recording_the_same_evaluation_twice_queues_once(store: Store) -> None:
    evaluation = opened(store)
    assert store.record(evaluation, T0) == 0
    assert [i.notification.channel for i in store.outbox()] == ["slack", "pagerduty", "slack"]


def test_crash_between_commit_and_delivery_replays_exactly_once(state_db: str) -> None:
    db = state_db
    crashing = textwrap.dedent(f"""
        import os
        from datetime import datetime, timedelta
        from fleet_alerting.core.policy import PolicyConfig
        from fleet_alerting.core.policy import evaluate
        from fleet_alerting.store.database import Store
        from tests.test_store_delivery import outage, PAGE_AT_ONCE, T0
        store = Store({db!r})
        store.record(evaluate([outage()], {{}}, lambda _s: PAGE_AT_ONCE, T0), T0)
        os._exit(9)  # killed after the commit, before any delivery
    """)
    proc = subprocess.run([sys.executable, "-c", crashing], cwd=Path(__file__).parents[1])
    assert proc.returncode == 9
    store = Store(db)
    with PagerDutyServer() as pd, SlackWebhookServer() as slack:
        first = deliver_all(store, pd, slack)
        second = deliver_all(store, pd, slack, now=T0 + timedelta(minutes=1))
    assert len(first.sent) == 3 and second.sent == []
    assert [e["event_action"] for e in pd.events] == ["trigger"]
    assert pd.events[0]["dedup_key"] == "blackbox:url=http://api/healthz"
    assert len(slack.messages) == 2


def test_the_same_incident_always_pages_with_the_same_dedup_key(store: Store) -> None:
    opened(store)
    with PagerDutyServer() as pd, SlackWebhookServer() as slack:
        deliver_all(store, pd, slack)
        # the source keeps failing; nothing new is paged
        later = T0 + timedelta(minutes=3)
        evaluation = evaluate([outage()], store.unresolved(), lambda _s: PAGE_AT_ONCE, later)
        store.record(evaluation, later)
        deliver_all(store, pd, slack, now=later)
        for minute in (4, 5):
            now = T0 + timedelta(minutes=minute)
            ev = evaluate([outage(fail=False)], store.unresolved(), lambda _s: PAGE_AT_ONCE, now)
            store.record(ev, now)
            deliver_all(store, pd, slack, now=now)
    assert [e["event_action"] for e in pd.events] == ["trigger", "resolve"]
    assert {e["dedup_key"] for e in pd.events} == {"blackbox:url=http://api/healthz"}
    assert pd.triggers_while_open == {} and pd.open == set()


def test_429_with_retry_after_then_202_delivers_once(store: Store) -> None:
    opened(store)
    waits: list[float] = []

    async def record_sleep(seconds: float) -> None:
        waits.append(seconds)

    with PagerDutyServer() as pd, SlackWebhookServer() as slack:
        pd.fail_next = [Response(429, {"status": "throttle"}, {"Retry-After": "2"})]

        async def go():
            async with httpx.AsyncClient() as client:
                notifiers = pagerduty_and_slack(pd.url, slack.url, client)
                return await drain(store, notifiers, lambda: T0, sleep=record_sleep)

        report = asyncio.run(go())
    assert len(pd.events) == 1
    assert waits == [2.0]
    (page,) = [item for item, _ in report.sent if item.notification.channel == "pagerduty"]
    assert store.outbox(("sent",))[1].attempts == 2 and page.notification.kind == "paged"


def test_400_becomes_a_dead_letter_with_the_reason(store: Store) -> None:
    opened(store)
    with PagerDutyServer() as pd, SlackWebhookServer() as slack:
        slack.fail_next = [Response(400, "invalid_payload")]
        report = deliver_all(store, pd, slack)
    (dead,) = store.outbox(("dead",))
    assert dead.notification.channel == "slack"
    assert dead.last_error == "permanent: Slack answered HTTP 400: invalid_payload"
    assert dead.attempts == 1
    assert [r for _, r in report.dead] == ["Slack answered HTTP 400: invalid_payload"]
    assert len(pd.events) == 1  # other channels are unaffected


def test_5xx_stays_queued_across_runs_and_keeps_the_incident_order(store: Store) -> None:
    opened(store)
    with PagerDutyServer() as pd, SlackWebhookServer() as slack:
        slack.fail_next = [Response(503, "service unavailable")] * 3
        report = deliver_all(store, pd, slack)
        # the failed "opened" blocks the later "paged" message of the same incident and channel
        assert len(report.retrying) == 1 and len(report.held) == 1
        queued = store.outbox(("queued",))
        assert [q.notification.kind for q in queued] == ["opened", "paged"]
        assert queued[0].attempts == 3 and queued[0].next_attempt_at > T0
        too_early = deliver_all(store, pd, slack, now=T0 + timedelta(seconds=5))
        assert too_early.sent == []
        later = deliver_all(store, pd, slack, now=T0 + timedelta(minutes=5))
    assert [item.notification.kind for item, _ in later.sent] == ["opened", "paged"]
    assert [m["text"].split("]")[0] for m in slack.messages] == ["[CRITICAL", "[CRITICAL"]
    assert "Paged pagerduty" in slack.messages[1]["text"]


def test_retryable_failures_give_up_after_the_configured_age(store: Store) -> None:
    opened(store)
    broken = {"slack": Unavailable("slack", "x"), "pagerduty": Unavailable("pagerduty", "y")}
    run_drain(store, broken, now=T0)
    report = run_drain(store, broken, now=T0 + timedelta(days=2), give_up_after=timedelta(days=1))
    assert len(report.dead) == 2
    assert report.warnings == [
        "PAGING FAILED via pagerduty: pagerduty: y (incident blackbox:url=http://api/healthz)"
    ]
    # Slack failed again, so it backs off: its "paged" message goes in a later run
    later = T0 + timedelta(days=2, hours=1)
    report = run_drain(store, broken, now=later, give_up_after=timedelta(days=1))
    assert len(report.dead) == 1 and store.outbox(("queued",)) == []
    # the third waited behind the first (same incident, same channel) and had one run's attempts
    reasons = [d.last_error for d in store.outbox(("dead",))]
    assert reasons == [
        "gave up after 6 attempts: slack: x",
        "gave up after 6 attempts: pagerduty: y",
        "gave up after 3 attempts: slack: x",
    ]


def test_incidents_stored_before_the_rename_of_last_seen_still_load(store: Store) -> None:
    opened(store)
    with store.engine.begin() as conn:
        (data,) = conn.exec_driver_sql("SELECT data FROM incidents").one()
        conn.execute(
            sa.text("UPDATE incidents SET data = :data"),
            {"data": data.replace('"changed_at"', '"last_seen"')},
        )
    (incident,) = store.unresolved().values()
    assert incident.changed_at == T0


@pytest.mark.parametrize(
    ("source", "flag", "one_off"),
    [
        ("fleet-events", None, True),
        ("notify-test", None, True),
        ("blackbox", None, False),
        ("fleet-events", False, False),  # written with the flag: as written
    ],
)
def test_outbox_rows_queued_before_the_one_off_flag_read_as_their_source_meant(
    store: Store, source: str, flag: bool | None, one_off: bool
) -> None:
    opened(store)
    with store.engine.begin() as conn:
        for row_id, data in conn.exec_driver_sql("SELECT id, data FROM outbox").all():
            data = data.replace('"source":"blackbox"', f'"source":"{source}"')
            if flag is None:
                assert ',"one_off":false' in data
                data = data.replace(',"one_off":false', "")
            conn.execute(
                sa.text("UPDATE outbox SET data = :data WHERE id = :id"),
                {"data": data, "id": row_id},
            )
    items = store.queue.items()
    assert items and {i.notification.one_off for i in items} == {one_off}


class WatchedOutbox(Outbox):
    """The store's own outbox, remembering what each renewal of a claim answered."""

    def __init__(self, engine: sa.Engine):
        super().__init__(engine)
        self.renewals: list[bool] = []

    def renew(self, item_id: int, owner: str, until: datetime) -> bool:
        held = super().renew(item_id, owner, until)
        self.renewals.append(held)
        return held


def test_a_page_whose_claim_was_taken_over_is_not_tried_again(state_db: str) -> None:
    """Drainer A's page gets a 500 and waits to retry; its short claim lapses (A hung), drainer
    B takes the page over, delivers it and, the outage over, its resolve. A's next renewal
    fails: A makes no further attempt, so no late trigger re-opens the resolved page."""
    pager_only = PolicyConfig(
        open_after=1, resolve_after=1, notify=[], page=["pagerduty"], page_after=timedelta(0)
    )
    first, second = Store(state_db), Store(state_db)
    opened(first, pager_only)
    watched = WatchedOutbox(first.queue.engine)

    async def until_the_claim_is_lost(_seconds: float) -> None:  # A's wait before its retry
        deadline = time.monotonic() + 30
        while False not in watched.renewals:  # renewed every SHORT_LEASE / 4 while sending
            assert time.monotonic() < deadline, "drainer A never tried to renew its claim"
            await asyncio.sleep(0.05)

    async def scenario(pd: PagerDutyServer) -> tuple[DrainReport, DrainReport, DrainReport]:
        async with httpx.AsyncClient() as client:
            pager = {
                "pagerduty": PagerDutyEvents(client, SecretStr(ROUTING_KEY), pd.url + "/v2/enqueue")
            }
            hung = asyncio.create_task(
                drain(watched, pager, lambda: T0, sleep=until_the_claim_is_lost, owner="A")
            )
            deadline = time.monotonic() + 30
            while not pd.requests:  # A's first attempt got its 500
                assert time.monotonic() < deadline, "drainer A never sent the page"
                await asyncio.sleep(0.02)
            later = T0 + timedelta(minutes=1)  # A's 20 s claim has lapsed by then
            took = await drain(second, pager, lambda: later, sleep=no_sleep, owner="B")
            evaluation = evaluate(
                [outage(fail=False)], second.unresolved(), lambda _s: pager_only, later
            )
            second.record(evaluation, later)
            resolved = await drain(second, pager, lambda: later, sleep=no_sleep, owner="B")
            return await asyncio.wait_for(hung, 60), took, resolved

    with PagerDutyServer() as pd:
        pd.fail_next = [Response(500, {"status": "error"})]
        hung, took, resolved = asyncio.run(scenario(pd))
    first.close()
    second.close()
    assert len(took.sent) == 1 and len(resolved.sent) == 1
    assert hung.sent == [] and hung.retrying == [] and hung.dead == []  # A left it to B
    assert watched.renewals[-1] is False
    assert len(pd.requests) == 3  # A's one attempt (500), B's trigger, B's resolve: nothing after
    assert [e["event_action"] for e in pd.events] == ["trigger", "resolve"]
    assert pd.open == set()
