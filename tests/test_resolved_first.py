"""A page whose incident resolved before its pager answered wakes nobody (the operator's
PagerDuty-outage walkthrough, W3): the page and the acknowledges queued behind it are
withdrawn, the resolve goes only if an attempt at the page may have reached the pager, Slack
says "Not paged", a later episode's page still goes, and a drainer killed inside the withdrawal
loses nothing. Real drains on a store, the PagerDuty / OnCall / Slack protocol fakes, a clock
moved by hand."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from fleet_alerting.core import actions
from fleet_alerting.core.incidents import Kind
from fleet_alerting.delivery.channels import Notifier
from fleet_alerting.delivery.drain import SHORT_LEASE
from fleet_alerting.delivery.notifiers.oncall import OnCallWebhook
from fleet_alerting.delivery.stages import DrainReport, paging_ended
from fleet_alerting.store.actions import apply
from fleet_alerting.store.outbox import WITHDRAWN, OutboxItem, drop
from fleet_alerting.surfaces.cli import main
from flows.common import notifications_markdown, undelivered
from tests.fakes.http import Response
from tests.fakes.oncall import OnCallServer
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.test_paging_delayed import KEY, T0, UNAVAILABLE, Fleet, sqlite

RATE_LIMITED = Response(429, {"status": "throttle event", "message": "Requests throttled"})
NOT_PAGED = "[CRITICAL] Not paged: resolved before pagerduty answered; resolved after"
STATUSES = ("queued", "sent", "dead", WITHDRAWN)


class Walkthrough(Fleet):
    """The incident opens and pages at minute 0 while the pager fails with `answer`, is
    acknowledged in Slack at minute 2, resolves at `resolves_at` (fires again at `again_at`);
    the pager is back at `back_at`. Drained a minute at a time to minute 60."""

    def ack(self, minute: float) -> None:
        now = T0 + timedelta(minutes=minute)
        apply(
            self.store, KEY, lambda i: actions.acknowledge(i, "U0ANA", now, ["slack"]),
            action="ack", actor="U0ANA", via="slack", now=now,
        )  # fmt: skip

    def run(
        self, answer: Response, resolves_at: int, back_at: int = 30, again_at: int | None = None,
        owners: Iterable[str] = ("one",), start: int = 0, stop: int = 60,
    ) -> list[DrainReport]:  # fmt: skip
        self.fail_with(answer)
        reports = []
        for minute in range(start, stop):
            if minute == 0:
                self.step(True, 0)
            if minute == 2:
                self.ack(2)
            if minute == resolves_at:
                self.step(False, resolves_at)
            if minute == again_at:
                self.step(True, again_at)
            if minute == back_at:
                self.fail_with(None)
            reports += self.drain(minute, owners)
        return reports

    def fail_with(self, answer: Response | None) -> None:
        self.pd.fail_next = [answer] * 1000 if answer else []

    def rows(self, channel: str) -> list[OutboxItem]:
        return [i for i in self.store.outbox(STATUSES) if i.notification.channel == channel]


def actions_sent(pd: PagerDutyServer) -> list[str]:
    return [e["event_action"] for e in pd.events]


def test_a_page_resolved_during_a_pagerduty_outage_wakes_nobody(tmp_path: Path) -> None:
    """503s (each may have reached PagerDuty): no trigger, no acknowledge; the resolve goes (it
    closes what a trigger that got through opened; PagerDuty drops a resolve of no open alert).
    Slack's "paged" message, still waiting for its page, says nobody was paged."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Walkthrough(sqlite(tmp_path), slack, pd, "pagerduty")
        reports = fleet.run(UNAVAILABLE, resolves_at=4)
        assert actions_sent(pd) == ["resolve"], pd.events
        assert not pd.incidents  # nobody notified
        texts = fleet.texts()
        assert [t.split(":")[0] for t in texts] == [
            "[CRITICAL] api /healthz failed",
            "[CRITICAL] Not paged",
            "[CRITICAL] Acknowledged by U0ANA 06",
            "[RESOLVED after 4m00s] api /healthz failed — now",
        ], texts
        assert texts[1] == f"{NOT_PAGED} 4m00s: api /healthz failed", texts
        page, ack, resolve = fleet.rows("pagerduty")
        assert (page.notification.kind, page.status) == (Kind.paged, WITHDRAWN)
        assert page.last_error == "not paged: resolved before pagerduty answered"
        assert (ack.notification.kind, ack.status) == (Kind.acknowledged, WITHDRAWN)
        assert (resolve.notification.kind, resolve.status) == (Kind.resolved, "sent")
    (back,) = [r for r in reports if r.withdrawn]  # at minute 4: the Slack lane saw it resolved
    assert [(i.id, why) for i, why in back.withdrawn] == [
        (page.id, "not paged: resolved before pagerduty answered"),
        (ack.id, "not sent: its page was withdrawn (not paged: resolved before pagerduty "
         "answered)"),
    ]  # fmt: skip
    assert undelivered(back) == [] and not back.dead  # the run ends green: nothing is owed


def test_resolved_after_paging_delayed_is_followed_by_not_paged(tmp_path: Path) -> None:
    """Slack was told PAGING DELAYED: its follow-up says "Not paged", not "Paged after all"."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Walkthrough(sqlite(tmp_path), slack, pd, "pagerduty")
        fleet.run(UNAVAILABLE, resolves_at=10)
        assert actions_sent(pd) == ["resolve"] and not pd.incidents, pd.events
        texts = fleet.texts()
    assert [t.split(":")[0] for t in texts] == [
        "[CRITICAL] api /healthz failed",
        "[CRITICAL] PAGING DELAYED via pagerduty",
        "[CRITICAL] Acknowledged by U0ANA 06",
        "[RESOLVED after 10m00s] api /healthz failed — now",
        "[CRITICAL] Not paged",
    ], texts
    assert texts[-1] == f"{NOT_PAGED} 10m00s: api /healthz failed"


def test_a_page_that_cannot_have_reached_pagerduty_is_not_resolved_either(
    tmp_path: Path,
) -> None:
    """429 (throttled: the event was not taken): nothing of the incident goes to PagerDuty."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Walkthrough(sqlite(tmp_path), slack, pd, "pagerduty")
        fleet.run(RATE_LIMITED, resolves_at=4)
        assert pd.events == []
        assert {i.status for i in fleet.rows("pagerduty")} == {WITHDRAWN}
        resolve = fleet.rows("pagerduty")[-1]
        assert resolve.last_error == (
            "not sent: no page reached pagerduty (not paged: resolved before pagerduty answered)"
        )
        assert fleet.texts()[1] == f"{NOT_PAGED} 4m00s: api /healthz failed"


class OnCallFleet(Walkthrough):
    def __init__(self, state: str, slack: SlackWebhookServer, oncall: OnCallServer):
        super().__init__(state, slack, PagerDutyServer(), "oncall")
        self.oncall = oncall

    def notifiers(self, client: httpx.AsyncClient) -> dict[str, Notifier]:
        return super().notifiers(client) | {
            "oncall": OnCallWebhook(client, SecretStr(self.oncall.webhook_url))
        }

    def fail_with(self, answer: Response | None) -> None:
        self.oncall.fail_next = [answer] * 1000 if answer else []


@pytest.mark.parametrize(("answer", "states"), [(UNAVAILABLE, ["ok"]), (RATE_LIMITED, [])])
def test_oncall_hears_no_alerting_for_a_resolved_incident(
    tmp_path: Path, answer: Response, states: list[str]
) -> None:
    """OnCall's formatted webhook opens an alert group for an `ok` of an unknown alert_uid
    (resolved at once): the `ok` goes only when the `alerting` may have arrived."""
    with SlackWebhookServer() as slack, OnCallServer() as oncall:
        fleet = OnCallFleet(sqlite(tmp_path), slack, oncall)
        fleet.run(answer, resolves_at=4)
        assert [a["state"] for a in oncall.alerts] == states
        assert fleet.texts()[1].startswith("[CRITICAL] Not paged: resolved before oncall answered")


def test_the_next_episodes_page_still_goes(tmp_path: Path) -> None:
    """Resolved at 3, failing again at 6 (a new episode, its own page): the first episode's
    page is withdrawn, the second's is sent once PagerDuty is back."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Walkthrough(sqlite(tmp_path), slack, pd, "pagerduty")
        fleet.run(UNAVAILABLE, resolves_at=3, again_at=6)
        assert actions_sent(pd) == ["resolve", "trigger"], pd.events
        assert pd.incidents[KEY] == 1
        texts = fleet.texts()
    assert texts[1] == f"{NOT_PAGED} 3m00s: api /healthz failed", texts
    assert texts[-1].startswith("[CRITICAL] Paged after all: pagerduty took the page, failing")


def test_a_page_whose_resolve_an_operator_dropped_is_sent(tmp_path: Path) -> None:
    """No resolve queued behind it (`outbox drop`): the page is never lost, it goes."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Walkthrough(sqlite(tmp_path), slack, pd, "pagerduty")
        fleet.run(UNAVAILABLE, resolves_at=-1, stop=1)
        fleet.step(False, 1)
        resolve = fleet.rows("pagerduty")[-1]
        assert resolve.notification.kind == Kind.resolved
        now = T0 + timedelta(minutes=1)
        tell = partial(paging_ended, now=now)
        assert drop(fleet.store.queue, resolve.id, now, "dropped by ana: test", tell)
        fleet.run(UNAVAILABLE, resolves_at=-1, back_at=1, start=1, stop=10)
        assert actions_sent(pd) == ["trigger"], pd.events


class Killed(Exception):
    """The drainer dies inside the withdrawal, before its follow-up is queued."""


def test_a_drainer_killed_inside_the_withdrawal_loses_nothing(state_db: str) -> None:
    """The withdrawal and the PAGING DELAYED follow-up are one transaction: a drainer dying in
    between leaves the page queued (claimed), and two drainers later withdraw it and tell
    Slack once (on SQLite and on PostgreSQL)."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Walkthrough(state_db, slack, pd, "pagerduty")
        fleet.run(UNAVAILABLE, resolves_at=10, stop=10)
        fleet.step(False, 10)
        now = T0 + timedelta(minutes=10)
        queue = fleet.store.queue
        page = fleet.rows("pagerduty")[0]
        assert page.notification.kind == Kind.paged
        assert queue.claim(page.id, "killed", now, SHORT_LEASE)

        def dies(*_told: object) -> None:
            raise Killed

        with pytest.raises(Killed):
            queue.withdraw_resolved_page(page.id, "killed", dies, now)
        assert {i.status for i in fleet.rows("pagerduty")} == {"queued"}
        fleet.run(UNAVAILABLE, resolves_at=-1, start=10, owners=("one", "two"))
        assert actions_sent(pd) == ["resolve"] and not pd.incidents, pd.events
        texts = fleet.texts()
    assert sum(t.startswith(NOT_PAGED) for t in texts) == 1, texts
    assert not any("Paged after all" in t for t in texts), texts


def test_an_operator_sees_withdrawn_pages_with_what_was_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`outbox --sent` lists them beside what was delivered, with why; the plain listing (what
    is owed or needs a hand) does not; the run's table says so."""
    config = tmp_path / "config.yaml"
    config.write_text("state: {path: state.sqlite}\nnotify: {dry_run: true}\n")
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Walkthrough(str(tmp_path / "state.sqlite"), slack, pd, "pagerduty")
        reports = fleet.run(RATE_LIMITED, resolves_at=4)
    (back,) = [r for r in reports if r.withdrawn]
    assert "| withdrawn (resolved before the pager answered) | pagerduty | paged | `" in (
        notifications_markdown(back)
    )
    assert main(["outbox", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "nothing queued, no dead letters\n"
    assert main(["outbox", "--sent", "--config", str(config)]) == 0
    withdrawn = [line for line in capsys.readouterr().out.splitlines() if "withdrawn" in line]
    assert [line.split(f" {KEY} → ")[0] for line in withdrawn] == [
        "withdrawn 2026-12-07 06:00:00Z paged    ",
        "withdrawn 2026-12-07 06:02:00Z acknowledged",
        "withdrawn 2026-12-07 06:04:00Z resolved ",
    ]
    assert withdrawn[0].endswith(": not paged: resolved before pagerduty answered")
