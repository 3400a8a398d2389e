"""Every way a page told PAGING DELAYED can end gets Slack's follow-up, once: the operator's
`outbox drop`, a requeue while the PAGING FAILED follow-up is still queued, a PAGING DELAYED reply
found in doubt after a crash, several PAGING DELAYED messages of one episode; and the follow-up
names only the pagers that took the page. Real drains on a SQLite store, the protocol fakes."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from pathlib import Path

from fleet_alerting.core.incidents import Kind
from fleet_alerting.delivery.stages import paging_ended
from fleet_alerting.store import outbox as box
from fleet_alerting.surfaces.listings import retell_page
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.test_paging_delayed import INVALID_EVENT, T0, UNAVAILABLE, Fleet, sqlite
from tests.test_paging_delayed_ends import count


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
