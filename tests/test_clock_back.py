"""This machine's clock steps back (an NTP step, a VM restored from a snapshot) while incidents
are open and messages queued: nothing waits for the clock to catch up. The engine through a real
store (the briefs' steady path included), and the drain against the PagerDuty and Slack fakes on
both backends (`state_db`). Table cases of the engine alone: tests/cases/escalation.yaml."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.drain import DrainReport, drain
from fleet_alerting.delivery.notifiers.pagerduty import PagerDutyEvents
from fleet_alerting.delivery.notifiers.slack_webhook import SlackWebhook
from fleet_alerting.store.database import Store
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.fakes.http import Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
BACK = timedelta(hours=1)
DOWN = Signal(
    "blackbox:url=https://fleet/api/healthz", "blackbox", True, Severity.critical, "API down"
)
STEPS = PolicyConfig.model_validate(
    {
        "open_after": 2,
        "steps": [
            {"after": "0s", "to": ["slack"]},
            {"after": "5m", "to": ["pagerduty"]},
            {"after": "2h", "to": ["pagerduty_secondary"]},
        ],
    }
)


def minutes_paged(store: Store, policy: PolicyConfig, step_at: int, runs: int) -> dict[str, int]:
    """One failing run a minute (real time); from run `step_at` on, the clock reads an hour
    less. The run (minute) each pager was first paged in."""
    paged: dict[str, int] = {}
    for minute in range(runs):
        now = T0 + timedelta(minutes=minute) - (BACK if minute >= step_at else timedelta(0))
        evaluation, _ = evaluate_and_record(store, [DOWN], lambda _s: policy, now)
        for n in evaluation.notifications:
            if n.kind == "paged" and n.channel.startswith("pagerduty"):
                paged.setdefault(n.channel, minute)
    return paged


def clock_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "clock went back" in r.getMessage()]


def test_a_clock_stepping_back_holds_no_step_and_says_so_once(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    """Paged at 5 min; the clock steps back an hour at 10 min. The step at 2 h comes 2 h after
    the failure began, plus the 5 minutes between the record's last change (the page) and the
    step, which the record cannot tell — not an hour later, also once the clock has passed the
    onset again and the run reads the incident's brief alone."""
    caplog.set_level(logging.WARNING)
    with Store(tmp_path / "state.sqlite") as store:
        paged = minutes_paged(store, STEPS, step_at=10, runs=130)
    assert paged == {"pagerduty": 5, "pagerduty_secondary": 125}
    assert clock_warnings(caplog) == [
        "this machine's clock went back 0:55:00 since it last wrote the open incidents (an NTP "
        "step? a restored snapshot?): their escalation steps, reminders and acknowledgement "
        "timeouts keep the time that had passed instead of waiting for the clock"
    ]


def test_a_clock_stepping_back_before_the_incident_opens_holds_no_page(tmp_path) -> None:
    """Pending (known from its brief alone) when the clock steps back: the page comes 5 min
    after the step, not an hour later."""
    policy = STEPS.model_copy(update={"open_after": 3})
    with Store(tmp_path / "state.sqlite") as store:
        paged = minutes_paged(store, policy, step_at=2, runs=12)
    assert paged == {"pagerduty": 7}


def test_a_steady_clock_pages_on_time(tmp_path) -> None:
    with Store(tmp_path / "state.sqlite") as store:
        paged = minutes_paged(store, STEPS, step_at=1000, runs=121)
    assert paged == {"pagerduty": 5, "pagerduty_secondary": 120}


# the outbox: a retry, a destination's backoff and a lease are instants on the clock ------------
PAGE_AT_ONCE = PolicyConfig(open_after=1, page=["pagerduty"], page_after=timedelta(0))
ROUTING_KEY = "R" * 32


@pytest.fixture
def store(state_db: str) -> Store:
    with Store(state_db) as opened:
        opened.record(evaluate([DOWN], {}, lambda _s: PAGE_AT_ONCE, T0), T0)
        yield opened


def deliver(store: Store, pd: PagerDutyServer, slack: SlackWebhookServer, now: datetime):
    async def no_sleep(_seconds: float) -> None:
        return None

    async def go() -> DrainReport:
        async with httpx.AsyncClient() as client:
            notifiers = {
                "pagerduty": PagerDutyEvents(
                    client, SecretStr(ROUTING_KEY), f"{pd.url}/v2/enqueue"
                ),
                "slack": SlackWebhook(client, SecretStr(f"{slack.url}/services/T/B/x"), "Slack"),
            }
            lease = timedelta(minutes=3)
            return await drain(store, notifiers, lambda: now, sleep=no_sleep, lease=lease)

    return asyncio.run(go())


def triggers(pd: PagerDutyServer) -> int:
    return sum(1 for e in pd.events if e["event_action"] == "trigger")


def test_a_page_refused_once_is_retried_after_the_clock_steps_back(store: Store) -> None:
    """PagerDuty refused the page (HTTP 500, each attempt of the run): due again in 30 s,
    PagerDuty rested 30 s. The clock steps back an hour; the drain 5 minutes later pages."""
    with PagerDutyServer() as pd, SlackWebhookServer() as slack:
        pd.fail_next = [Response(500, {"status": "error"})] * 10
        refused = deliver(store, pd, slack, T0)
        assert [item.notification.channel for item, _ in refused.retrying] == ["pagerduty"]
        pd.fail_next.clear()
        deliver(store, pd, slack, T0 + timedelta(seconds=10))  # not due yet: nothing
        assert triggers(pd) == 0
        deliver(store, pd, slack, T0 - BACK + timedelta(minutes=5))
    assert triggers(pd) == 1


def test_a_lease_left_before_the_clock_stepped_back_does_not_hold_the_page(store: Store) -> None:
    """A drainer claimed the page for its 3-minute send and died; the clock steps back an hour.
    The next drain a minute later takes it up (in doubt) instead of waiting an hour."""
    item = store.queue.claim_next("pagerduty", "gone", T0, timedelta(minutes=3))
    assert item is not None and store.queue.renew(item.id, "gone", T0 + timedelta(minutes=3))
    with PagerDutyServer() as pd, SlackWebhookServer() as slack:
        deliver(store, pd, slack, T0 + timedelta(minutes=1))  # its lease is live: not taken
        assert triggers(pd) == 0
        deliver(store, pd, slack, T0 - BACK + timedelta(minutes=1))
    assert triggers(pd) == 1


def test_a_destination_refusing_again_after_the_step_rests_by_the_clock_now(store: Store) -> None:
    """Refused before the step (PagerDuty rests until 30 s later on the old clock) and again
    after it: the new rest counts from the clock now, not from the stale one."""
    with PagerDutyServer() as pd, SlackWebhookServer() as slack:
        pd.fail_next = [Response(500, {"status": "error"})] * 20
        deliver(store, pd, slack, T0)
        stepped_back = T0 - BACK + timedelta(minutes=5)
        assert deliver(store, pd, slack, stepped_back).retrying  # refused again
        pd.fail_next.clear()
        (page,) = [i for i in store.outbox(("queued",)) if i.notification.channel == "pagerduty"]
        assert page.next_attempt_at < T0  # due again before the clock reaches the old rest
        deliver(store, pd, slack, page.next_attempt_at)
    assert triggers(pd) == 1


@pytest.mark.parametrize("back", [timedelta(0), timedelta(minutes=10), BACK])
def test_a_page_due_as_it_opens_comes_with_the_opening(tmp_path, back: timedelta) -> None:
    """Pending as the clock steps back by a fraction of a second past whole minutes: the rebased
    record lies exactly at now (not rounded to the second past it), so `after: 0s` is due."""
    policy = PolicyConfig.model_validate(
        {"open_after": 2, "steps": [{"after": "0s", "to": ["slack", "pagerduty"]}]}
    )
    opening_at = T0 + timedelta(seconds=60.6) - back
    with Store(tmp_path / "state.sqlite") as store:
        evaluate_and_record(store, [DOWN], lambda _s: policy, T0)  # pending
        opening, _ = evaluate_and_record(store, [DOWN], lambda _s: policy, opening_at)
    assert ("pagerduty", "paged") in [(n.channel, n.kind.value) for n in opening.notifications]
