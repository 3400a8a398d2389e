"""Every way a page told PAGING DELAYED can end gets Slack's follow-up, once: the operator's
`outbox drop`, a requeue while the PAGING FAILED follow-up is still queued, a PAGING DELAYED reply
found in doubt after a crash, several PAGING DELAYED messages of one episode; and the follow-up
names only the pagers that took the page. Real drains on a SQLite store, the protocol fakes."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from fleet_alerting.core.incidents import Kind, Notification
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.delivery.notifiers.slack_api import current_status
from fleet_alerting.delivery.notifiers.slack_webhook import headline
from fleet_alerting.delivery.stages import paging_ended
from fleet_alerting.store import outbox as box
from fleet_alerting.store.database import Store
from fleet_alerting.store.outbox import Outbox, Page
from fleet_alerting.surfaces.listings import retell_page
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.test_paging_delayed import (
    INVALID_EVENT,
    T0,
    UNAVAILABLE,
    Fleet,
    api,
    sqlite,
    web_api_and_oncall_down,
)
from tests.test_paging_delayed_ends import count, paging_two
from tests.test_slack_api import T0 as ONSET
from tests.test_slack_api import step as evaluate_and_drain


def delayed(fleet: Fleet, pd: PagerDutyServer, until: int = 8) -> list[str]:
    """The incident opens at 0 with PagerDuty down; PAGING DELAYED goes out at minute 5."""
    pd.fail_next = [UNAVAILABLE] * 10_000
    fleet.step(True, 0)
    for minute in range(until):
        fleet.drain(minute)
    texts = fleet.texts()
    assert count(texts, "PAGING DELAYED") == 1, texts
    return texts


def the_page(fleet: Fleet, status: str) -> box.OutboxItem:
    (page,) = [
        i for i in fleet.store.outbox((status,))
        if i.notification.channel == "pagerduty" and i.notification.kind == Kind.paged
    ]  # fmt: skip
    return page


def test_a_dropped_delayed_page_is_told_paging_failed(tmp_path: Path) -> None:
    """The operator gives up on the page (`fleet-alerting outbox drop`): a dead letter, never
    sent; the PAGING DELAYED message (which said "retrying") is followed up with PAGING FAILED,
    naming the reason given."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Fleet(sqlite(tmp_path), slack, pd, "pagerduty")
        delayed(fleet, pd)
        page = the_page(fleet, "queued")
        now = T0 + timedelta(minutes=8, seconds=30)
        tell = partial(paging_ended, now=now)
        assert box.drop(fleet.store.queue, page.id, now, "dropped by ops: PD account gone", tell)
        for minute in range(9, 20):
            fleet.drain(minute)
        texts = fleet.texts()
    assert count(texts, "PAGING FAILED") == 1, texts
    assert "PAGING FAILED via pagerduty: dropped by ops: PD account gone" in texts[-1], texts
    # the operator chose it: no advice to page the on-call by hand, only how to undo it
    undo = f"(dead letter #{page.id}: `fleet-alerting outbox requeue {page.id}` sends it after all)"
    assert undo in texts[-1], texts
    assert "page the on-call by hand" not in texts[-1], texts


def test_a_page_refused_after_the_delay_is_told_paging_failed(tmp_path: Path) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Fleet(sqlite(tmp_path), slack, pd, "pagerduty")
        delayed(fleet, pd)
        pd.fail_next = [INVALID_EVENT]
        for minute in range(8, 20):
            fleet.drain(minute)
        texts = fleet.texts()
    assert count(texts, "PAGING FAILED") == 1, texts


def requeued(tmp_path: Path, follow_up_sent_first: bool) -> list[str]:
    """PAGING DELAYED, then PagerDuty refuses the page (a dead letter; its PAGING FAILED
    follow-up is queued in that run, sent in the next); the operator requeues the page before
    (or, if `follow_up_sent_first`, after) the next run, and PagerDuty takes it."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Fleet(sqlite(tmp_path), slack, pd, "pagerduty")
        delayed(fleet, pd)
        pd.fail_next = [INVALID_EVENT]  # the page dies when PagerDuty is tried next
        minute = 8
        while not fleet.store.outbox(("dead",)):
            fleet.drain(minute)
            minute += 1
        if follow_up_sent_first:
            fleet.drain(minute)
            minute += 1
        page = the_page(fleet, "dead")
        now = T0 + timedelta(minutes=minute, seconds=30)
        assert box.requeue(fleet.store.queue, page.id, now)  # `fleet-alerting outbox requeue`
        retell_page(fleet.store, page, now)
        for later in range(minute + 1, minute + 40):
            fleet.drain(later)
        assert [e["event_action"] for e in pd.events] == ["trigger"]  # the page was taken
        return fleet.texts()


def test_a_requeue_while_the_follow_up_is_queued_is_told_paged_after_all(tmp_path: Path) -> None:
    """The queued PAGING FAILED follow-up goes out, then, once PagerDuty takes the requeued
    page, "Paged after all": Slack's last word is the page's last end."""
    texts = requeued(tmp_path, follow_up_sent_first=False)
    assert count(texts, "PAGING FAILED") == 1, texts
    assert count(texts, "Paged after all") == 1 and "Paged after all" in texts[-1], texts


def test_a_requeue_after_the_follow_up_went_out_is_told_paged_after_all(tmp_path: Path) -> None:
    texts = requeued(tmp_path, follow_up_sent_first=True)
    assert count(texts, "Paged after all") == 1 and "Paged after all" in texts[-1], texts


class Killed(BaseException):
    """kill -9: the drainer is gone (nothing after this runs)."""


def killed_after_delayed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kill: bool) -> list[str]:
    """Slack's Web API; OnCall answers 503 until minute 16. The drainer that posts the PAGING
    DELAYED reply (minute 10) dies before recording it (if `kill`) and another drainer records
    the page taken; the next run finds the reply in doubt. The thread's replies."""
    real = Outbox.mark_delayed_sent
    kills = [kill]

    def dies_once(self: Outbox, *args: object, **kwargs: object) -> bool:
        if kills.pop() if kills else False:
            raise Killed
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Outbox, "mark_delayed_sent", dies_once)
    with web_api_and_oncall_down(tmp_path) as (slack, oncall, config):
        store = Store(config.state.path)
        for minute in range(40):
            if minute == 16:
                oncall.fail_next = []
            try:
                evaluate_and_drain(store, config, True, ONSET + timedelta(minutes=minute))
            except Killed:
                store = Store(config.state.path)  # a new process
                now = ONSET + timedelta(minutes=minute, seconds=30)
                another_drainer_took_the_page(store, now)
        (parent,) = slack.top_level()
        return [r.body["text"].split(" | ")[0] for r in slack.replies(parent.ts)]


def another_drainer_took_the_page(store: Store, now: datetime) -> None:
    """Another drainer's OnCall lane gets the page through and records it (as Record.sent)."""
    queue = store.queue
    (page,) = [i for i in queue.items(("queued",)) if i.notification.channel == "oncall"]
    sent = {"status": "sent", "attempts": 1, "receipt": "200", "last_error": None}
    tell = partial(paging_ended, now=now)
    assert queue.end_page(page.id, None, page.notification, tell, now, **sent)


def test_a_delayed_reply_found_in_doubt_is_still_followed_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PAGING DELAYED reply carries its own notification id: the retry in doubt, which
    would now say "Paged oncall", does not take that reply for its own and posts it: Slack's
    last word is that OnCall took the page, said once."""
    replies = killed_after_delayed(tmp_path, monkeypatch, kill=True)
    assert count(replies, "PAGING DELAYED") == 1, replies
    assert count(replies, "Paged after all") + count(replies, "Paged oncall") == 1, replies
    assert "Paged" in replies[-1] and "DELAYED" not in replies[-1], replies


def test_a_delayed_reply_recorded_is_followed_up_paged_after_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replies = killed_after_delayed(tmp_path, monkeypatch, kill=False)
    assert count(replies, "PAGING DELAYED") == 1 and count(replies, "Paged after all") == 1


def two_pagers_requeued(tmp_path: Path, requeue_at: int | None) -> list[str]:
    """`pagerduty` refuses the page at minute 0 (dead letter #2, told at once beside
    PAGING DELAYED via `pagerduty_secondary`, which answers 503 until minute 15); the operator
    requeues #2 at `requeue_at` and PagerDuty takes it. What Slack heard by minute 40."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd, PagerDutyServer() as pd2:
        fleet = paging_two(tmp_path, slack, pd, pd2)
        pd.fail_next = [INVALID_EVENT]
        pd2.fail_next = [UNAVAILABLE] * 1000
        fleet.step(True, 0)
        for minute in range(40):
            if minute == 15:
                pd2.fail_next = []
            if minute == requeue_at:
                page = the_page(fleet, "dead")
                now = T0 + timedelta(minutes=minute)
                assert box.requeue(fleet.store.queue, page.id, now)
                retell_page(fleet.store, page, now)
            fleet.drain(minute)
        return fleet.texts()


def test_a_requeued_page_and_a_delayed_one_are_told_paged_after_all_once(tmp_path: Path) -> None:
    """The requeue retells the PAGING FAILED + PAGING DELAYED message, which goes out saying
    PAGING DELAYED again (the secondary is still down); once both pages are taken only that
    latest PAGING DELAYED message of the episode is followed up: "Paged after all" once."""
    texts = two_pagers_requeued(tmp_path, requeue_at=2)
    assert "PAGING FAILED via pagerduty" in texts[1] and "PAGING DELAYED" in texts[1], texts
    assert count(texts, "Paged after all") == 1, texts
    assert "Paged after all: pagerduty, pagerduty_secondary took the page" in texts[-1], texts


def test_not_requeued_the_secondary_is_told_paged_after_all_once(tmp_path: Path) -> None:
    texts = two_pagers_requeued(tmp_path, requeue_at=None)
    assert count(texts, "Paged after all") == 1, texts


def follow_up_of_refused_and_taken(escalated: bool = False) -> Notification:
    """PagerDuty refused (dead letter #2, told with PAGING DELAYED), the secondary took it;
    if `escalated`, the episode as stored is on the next step by then, which paged oncall."""
    pagers = ["pagerduty", "pagerduty_secondary"]
    config = PolicyConfig(open_after=1, resolve_after=1, page=pagers, page_after=timedelta(0))
    opened = evaluate([api()], {}, lambda _s: config, T0).notifications
    n = next(x for x in opened if x.channel == "slack" and x.kind == Kind.paged)
    assert n.incident.paged_via == tuple(pagers)  # as stored: both were asked to page
    told = replace(
        n,
        paging_failed="pagerduty: HTTP 400 (dead letter #2: page the on-call by hand)",
        paging_delayed="pagerduty_secondary: HTTP 503 — retrying (next 06:07:00Z, outbox #3)",
    )
    later = T0 + timedelta(minutes=20)
    pages = [
        Page("pagerduty", "dead", "permanent: HTTP 400", T0, None, None, 2, T0),
        Page("pagerduty_secondary", "sent", None, T0, None, None, 3, T0),
    ]
    episode = n.incident
    if escalated:
        step = replace(episode.escalation, step=episode.escalation.step + 1)
        episode = replace(episode, paged_via=(*pagers, "oncall"), escalation=step)
    return paging_ended(told, pages, episode, later)


def test_the_threads_top_after_paged_after_all_names_only_the_pager_that_took_it() -> None:
    """The follow-up updates the Web API thread's top message: it names the pager that took
    the page, not the one that refused it."""
    status = current_status(follow_up_of_refused_and_taken())
    assert status == "Paged pagerduty_secondary", status


def test_the_follow_ups_reply_names_only_the_pager_that_took_it() -> None:
    text = headline(follow_up_of_refused_and_taken())
    assert text.startswith("[CRITICAL] Paged after all: pagerduty_secondary took the page"), text


def test_escalated_meanwhile_the_threads_top_keeps_the_episodes_pagers() -> None:
    """The pages told were an earlier step's: the top message names the episode's pagers as
    stored, the next step's included."""
    status = current_status(follow_up_of_refused_and_taken(escalated=True))
    assert status == "Paged pagerduty, pagerduty_secondary, oncall", status
