"""PAGING DELAYED after an operator's requeue: a retold message waits for the requeued
page (not made from the follow-up, which names only the pagers that took the page and waits for
none); a new round on the same step after an acknowledgement timed out keeps its pagers in the
thread's top; each escalation step's PAGING DELAYED message is followed up."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from fleet_alerting.core.incidents import Kind
from fleet_alerting.core.incidents import Page as EscPage
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.delivery.channels import Notifier
from fleet_alerting.delivery.notifiers.slack_api import current_status
from fleet_alerting.delivery.stages import paging_ended
from fleet_alerting.store import outbox as box
from fleet_alerting.store.outbox import Page
from fleet_alerting.surfaces.listings import retell_page
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.test_paging_delayed import INVALID_EVENT, T0, UNAVAILABLE, Fleet, api, sqlite
from tests.test_paging_delayed_ends import Wider, pagerduty
from tests.test_paging_delayed_followups import delayed, the_page


# a requeue while the follow-up is the latest "paged" row -------------------------------------
def requeued_while_pd_still_down(tmp_path: Path, recover_at: int | None) -> tuple[list[str], int]:
    """PAGING DELAYED, then PagerDuty refuses the page (dead letter; its PAGING FAILED follow-up
    is queued, and goes out); the operator requeues the page; PagerDuty answers 503 until
    `recover_at` (None: never). Slack's texts, and how many triggers PagerDuty took."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Fleet(sqlite(tmp_path), slack, pd, "pagerduty")
        delayed(fleet, pd)
        pd.fail_next = [INVALID_EVENT]
        minute = 8
        while not fleet.store.outbox(("dead",)):
            fleet.drain(minute)
            minute += 1
        fleet.drain(minute)  # the PAGING FAILED follow-up goes out
        minute += 1
        page = the_page(fleet, "dead")
        now = T0 + timedelta(minutes=minute, seconds=30)
        pd.fail_next = [UNAVAILABLE] * 10_000
        assert box.requeue(fleet.store.queue, page.id, now)
        retell_page(fleet.store, page, now)
        for later in range(minute + 1, minute + 12):
            if later == recover_at:
                pd.fail_next = []
            fleet.drain(later)
        taken = sum(e["event_action"] == "trigger" for e in pd.events)
        return fleet.texts(), taken


def test_a_retold_message_waits_for_the_requeued_page(tmp_path: Path) -> None:
    """PagerDuty has not taken the requeued page: Slack does not say "Paged after all" (the
    message told again is the PAGING DELAYED one the follow-up followed, waiting for the page)."""
    texts, taken = requeued_while_pd_still_down(tmp_path, recover_at=None)
    assert taken == 0
    assert not any("Paged after all" in t for t in texts), texts


def test_control_a_requeue_after_a_plain_paging_failed_waits_for_the_page(tmp_path: Path) -> None:
    """The same requeue with no follow-up involved (PagerDuty refused at once: the "paged"
    message itself said PAGING FAILED): the retold message waits for the page."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Fleet(sqlite(tmp_path), slack, pd, "pagerduty")
        pd.fail_next = [INVALID_EVENT]
        fleet.step(True, 0)
        for minute in range(3):
            fleet.drain(minute)
        assert any("PAGING FAILED" in t for t in fleet.texts()), fleet.texts()
        page = the_page(fleet, "dead")
        now = T0 + timedelta(minutes=3, seconds=30)
        pd.fail_next = [UNAVAILABLE] * 10_000
        assert box.requeue(fleet.store.queue, page.id, now)
        assert retell_page(fleet.store, page, now) == 1
        for minute in range(4, 15):
            fleet.drain(minute)
        texts = fleet.texts()
    assert not any("Paged after all" in t for t in texts), texts


# the same step of a later round (an acknowledgement timed out) --------------------------------
def follow_up_after_a_new_round() -> str:
    """Round 1 of step 1: pagerduty refused (dead letter #2), pagerduty_secondary took it.
    The ack timed out; the escalation restarted on the same step (round 2), paging both again,
    and pagerduty took that page. The old round's follow-up, as the thread's top shows it."""
    pagers = ["pagerduty", "pagerduty_secondary"]
    config = PolicyConfig(open_after=1, resolve_after=1, page=pagers, page_after=timedelta(0))
    opened = evaluate([api()], {}, lambda _s: config, T0).notifications
    n = next(x for x in opened if x.channel == "slack" and x.kind == Kind.paged)
    told = replace(
        n,
        paging_failed="pagerduty: HTTP 400 (dead letter #2: page the on-call by hand)",
        paging_delayed="pagerduty_secondary: HTTP 503 — retrying (next 06:07:00Z, outbox #3)",
    )
    pages = [
        Page("pagerduty", "dead", "permanent: HTTP 400", T0, None, None, 2, T0),
        Page("pagerduty_secondary", "sent", None, T0, None, None, 3, T0),
    ]
    esc = n.incident.escalation
    later = T0 + timedelta(minutes=40)
    round2 = tuple(EscPage(p, later, esc.step) for p in pagers)
    episode = replace(
        n.incident, escalation=replace(esc, rounds=esc.rounds + 1, pages=esc.pages + round2)
    )
    return current_status(paging_ended(told, pages, episode, later + timedelta(minutes=5)))


def test_a_new_round_on_the_same_step_keeps_its_pagers() -> None:
    status = follow_up_after_a_new_round()
    assert "pagerduty," in status or status.endswith("pagerduty"), status


# two escalation steps, each PAGING DELAYED on its own pager --------------------------------------
def two_steps_delayed(tmp_path: Path) -> list[str]:
    """Step 1 pages `pagerduty` at 0, step 2 `pagerduty_secondary` at 10; both answer 503 (each
    step's "paged" message goes out PAGING DELAYED); pagerduty comes back at 20, the secondary
    at 26. What Slack heard by minute 90."""

    from tests.test_paging_delayed import pagerduty

    config = PolicyConfig.model_validate(
        {
            "open_after": 1,
            "resolve_after": 1,
            "steps": [
                {"after": "0s", "to": ["pagerduty", "slack"]},
                {"after": "10m", "to": ["pagerduty_secondary", "slack"]},
            ],
        }
    )
    with SlackWebhookServer() as slack, PagerDutyServer() as pd, PagerDutyServer() as pd2:

        def secondary(client: httpx.AsyncClient) -> dict:
            return {"pagerduty_secondary": pagerduty(client, pd2)}

        fleet = Wider(sqlite(tmp_path), slack, pd, config, secondary)
        pd.fail_next = [UNAVAILABLE] * 10_000
        pd2.fail_next = [UNAVAILABLE] * 10_000
        for minute in range(90):
            if minute == 20:
                pd.fail_next = []
            if minute == 26:
                pd2.fail_next = []
            fleet.step(True, minute)
            fleet.drain(minute)
        return fleet.texts()


def test_control_each_steps_delayed_message_is_followed_up(tmp_path: Path) -> None:
    texts = two_steps_delayed(tmp_path)
    after_all = [t for t in texts if "Paged after all" in t]
    assert sum("PAGING DELAYED" in t for t in texts) == 2, texts
    assert len(after_all) == 2, texts
    assert any("Paged after all: pagerduty took" in t for t in after_all), after_all
    assert any("Paged after all: pagerduty_secondary took" in t for t in after_all), after_all


def tell_at(now: datetime) -> Any:
    from functools import partial

    return partial(paging_ended, now=now)


# a requeue retells the message that waited for that page ---------------------------------------
def requeued_step_two_page(tmp_path: Path) -> tuple[list[str], int]:
    """Step 1 pages `pagerduty` (503 throughout: PAGING DELAYED, then the operator drops it —
    PAGING FAILED, the incident's latest Slack "paged" message); step 2, at 2 min, pages
    `pagerduty_secondary`, which refuses it (400: PAGING FAILED); the operator requeues that
    dead page and the secondary takes it. What Slack heard after the requeue, and the row id."""
    steps = [
        {"after": "0s", "to": ["slack", "pagerduty"]},
        {"after": "2m", "to": ["slack", "pagerduty_secondary"]},
    ]
    config = PolicyConfig.model_validate({"open_after": 1, "resolve_after": 1, "steps": steps})
    with SlackWebhookServer() as slack, PagerDutyServer() as pd, PagerDutyServer() as pd2:

        def secondary(client: httpx.AsyncClient) -> dict[str, Notifier]:
            return {"pagerduty_secondary": pagerduty(client, pd2)}

        fleet = Wider(sqlite(tmp_path), slack, pd, config, secondary)
        pd.fail_next = [UNAVAILABLE] * 10_000
        pd2.fail_next = [INVALID_EVENT]
        for minute in range(8):
            fleet.step(True, minute)
            fleet.drain(minute)
        queued = fleet.store.outbox(("queued",))
        (primary,) = [i for i in queued if i.notification.channel == "pagerduty"]
        now = T0 + timedelta(minutes=8)
        assert box.drop(fleet.store.queue, primary.id, now, "dropped by ana: phoned", tell_at(now))
        fleet.drain(8)
        (refused,) = [
            i for i in fleet.store.outbox(("dead",))
            if i.notification.channel == "pagerduty_secondary"
        ]  # fmt: skip
        told = len(slack.messages)
        now = T0 + timedelta(minutes=9)
        assert box.requeue(fleet.store.queue, refused.id, now)
        retell_page(fleet.store, refused, now)
        for minute in range(9, 14):
            fleet.drain(minute)
        return fleet.texts()[told:], refused.id


def test_a_requeue_retells_the_message_that_waited_for_that_page(tmp_path: Path) -> None:
    """Not the incident's latest "paged" message (the dropped step-1 page's PAGING FAILED): the
    step-2 message that waited for the requeued page, told again, says the secondary took it."""
    after, _ = requeued_step_two_page(tmp_path)
    assert not any("dropped by ana" in t for t in after), after
    assert any("Paged after all: pagerduty_secondary took the page" in t for t in after), after
