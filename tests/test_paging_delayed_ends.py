"""How a Slack message told PAGING DELAYED ends: its follow-up tells its own episode's page
(not the next episode's; one resolved before PagerDuty answered was withdrawn: "Not paged"), a
refused page is told at once even while another is delayed, a resolved incident's follow-up
says so (no "failing for", no mention, the thread's top stays Resolved), the retry time shown
is never past, and an idle drain neither reads nor writes more for it. Real drains on a SQLite
store, the PagerDuty / Slack / OnCall protocol fakes, a clock moved by hand."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa
from pydantic import SecretStr, TypeAdapter

from fleet_alerting.core.incidents import Incident, Kind, Notification
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.channels import Notifier
from fleet_alerting.delivery.drain import drain
from fleet_alerting.delivery.notifiers.slack_webhook import SlackWebhook
from fleet_alerting.delivery.stages import paging_ended
from fleet_alerting.store.database import Store, outbox_table
from fleet_alerting.store.outbox import Outbox, OutboxItem, Page, requeue
from fleet_alerting.surfaces.listings import retell_page
from tests.fakes.http import Request, Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.test_paging_delayed import (
    INVALID_EVENT,
    T0,
    UNAVAILABLE,
    Fleet,
    api,
    pagerduty,
    policy,
    sqlite,
    web_api_outage,
)


class PagerDuty(PagerDutyServer):
    """503 while `down`; once back, the triggers numbered in `refuse` (0: the first it sees)
    answer 400, and while `later_down` every trigger answers 503."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.triggers = 0  # triggers taken or refused since back
        self.refuse: set[int] = set()
        self.later_down = False

    def handle(self, request: Request) -> Response:
        if self.down:
            return UNAVAILABLE
        if request.json().get("event_action") == "trigger":
            if self.later_down:
                return UNAVAILABLE
            self.triggers += 1
            if self.triggers - 1 in self.refuse:
                return INVALID_EVENT
        return super().handle(request)


def reopened(tmp_path: Path, refuse_second: bool = False, second_down_until: int = 0) -> list[str]:
    """Incident 1 opens at minute 0 while PagerDuty is down (PAGING DELAYED at 5) and resolves
    at 10 (its page is withdrawn: no trigger); the same alert fires again at 12 (incident 2, a
    page of its own); PagerDuty is back at 30 (incident 2's trigger refused if `refuse_second`,
    or answered 503 until `second_down_until`). What Slack heard by minute 120."""
    with SlackWebhookServer() as slack, PagerDuty() as pd:
        fleet = Fleet(sqlite(tmp_path), slack, pd, "pagerduty")
        fleet.step(True, 0)
        for minute in range(120):
            if minute == 10:
                fleet.step(False, 10)
            if minute == 12:
                fleet.step(True, 12)
            if minute == 30:
                pd.down = False
                pd.refuse = {0} if refuse_second else set()  # incident 2's: the only trigger
                pd.later_down = second_down_until > minute
            if minute == second_down_until:
                pd.later_down = False
            fleet.drain(minute)
        return fleet.texts()


def count(texts: list[str], news: str) -> int:
    return sum(news in t for t in texts)


def test_each_episodes_follow_up_tells_its_own_page(tmp_path: Path) -> None:
    texts = reopened(tmp_path)
    assert count(texts, "PAGING DELAYED") == 2 and count(texts, "Paged after all") == 1, texts
    # incident 1's, told after it resolved (its page withdrawn); incident 2's, still failing
    assert texts[-2] == (
        "[CRITICAL] Not paged: resolved before pagerduty answered; resolved after 10m00s: "
        "api /healthz failed"
    ), texts
    assert texts[-1].startswith("[CRITICAL] Paged after all: pagerduty took the page, failing")


def test_a_follow_up_does_not_wait_for_the_next_episodes_page(tmp_path: Path) -> None:
    """Incident 1's page is withdrawn once its pager lane comes to it, incident 2's is taken
    only after minute 80: incident 1's follow-up goes out then, not behind incident 2's page."""
    texts = reopened(tmp_path, second_down_until=80)
    assert count(texts, "PAGING DELAYED") == 2 and count(texts, "Paged after all") == 1, texts
    assert texts[5].startswith("[CRITICAL] Not paged") and "resolved after 10m00s" in texts[5]
    assert texts[6].startswith("[CRITICAL] Paged after all") and "for 1h12m" in texts[6], texts


def test_the_next_episodes_refused_page_is_not_told_as_this_ones(tmp_path: Path) -> None:
    """Incident 1's page is withdrawn, incident 2's refused: each follow-up tells its own."""
    texts = reopened(tmp_path, refuse_second=True)
    assert count(texts, "Not paged") == 1 and count(texts, "Paged after all") == 0, texts
    assert count(texts, "PAGING FAILED") == 1, texts
    (failed,) = [t for t in texts if "PAGING FAILED" in t]
    assert "failing for" in failed and "dead letter #7" in failed, failed


def test_paging_delayed_names_a_retry_time_still_to_come(tmp_path: Path) -> None:
    """Incident 2's page, queued at 06:12 behind a resting pager, was never tried: its PAGING
    DELAYED gives the pager's error and a next attempt no earlier than when it is sent, nor
    than incident 1's page queued to the pager before it (sent first, retried at 06:18)."""
    texts = reopened(tmp_path)
    (second,) = [t for t in texts if "PAGING DELAYED" in t and "outbox #7" in t]
    assert "not sent yet, pagerduty resting after: PagerDuty Events API answered HTTP 503" in (
        second
    )
    # told at 06:12: the pager has been failing since 06:00 (known down: no 5 minutes more)
    assert "(next 06:18:00Z, outbox #7)" in second, second


class Wider(Fleet):
    """The incident under `config`, with `more` destinations than Slack and `pagerduty`."""

    def __init__(
        self, state: str, slack: SlackWebhookServer, pd: PagerDutyServer, config: PolicyConfig,
        more: Callable[[httpx.AsyncClient], dict[str, Notifier]],
    ):  # fmt: skip
        super().__init__(state, slack, pd, "pagerduty")
        self.config, self.more = config, more

    def _policy(self, _signal: Signal) -> PolicyConfig:
        return self.config

    def notifiers(self, client: httpx.AsyncClient) -> dict[str, Notifier]:
        return super().notifiers(client) | self.more(client)


def paging_two(
    tmp_path: Path, slack: SlackWebhookServer, pd: PagerDutyServer, pd2: PagerDutyServer
) -> Wider:
    """The incident pages `pagerduty` (`pd`) and `pagerduty_secondary` (`pd2`) at once."""
    pagers = ["pagerduty", "pagerduty_secondary"]
    config = PolicyConfig(open_after=1, resolve_after=1, page=pagers, page_after=timedelta(0))

    def secondary(client: httpx.AsyncClient) -> dict[str, Notifier]:
        return {"pagerduty_secondary": pagerduty(client, pd2)}

    return Wider(sqlite(tmp_path), slack, pd, config, secondary)


def two_pagers(tmp_path: Path, refused: bool) -> list[str]:
    """`pagerduty` refuses the page (400) if `refused`, else takes it; `pagerduty_secondary`
    answers 503 throughout. What Slack heard in 20 minutes."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd, PagerDutyServer() as pd2:
        fleet = paging_two(tmp_path, slack, pd, pd2)
        pd.fail_next = [INVALID_EVENT] if refused else []
        pd2.fail_next = [UNAVAILABLE] * 1000
        fleet.step(True, 0)
        for minute in range(20):
            fleet.drain(minute)
        return fleet.texts()


def test_one_pager_took_the_page_the_other_is_down(tmp_path: Path) -> None:
    texts = two_pagers(tmp_path, refused=False)
    assert texts[1].startswith("[CRITICAL] Paged pagerduty; PAGING DELAYED via pagerduty_second")
    assert "not paged by it yet: failing for 5m00s" in texts[1], texts


def test_a_refused_page_is_told_at_once_with_the_delayed_one(tmp_path: Path) -> None:
    """A dead letter (page the on-call by hand) is told in the first run, beside the other
    pager's delay: never held back until that page ends."""
    texts = two_pagers(tmp_path, refused=True)
    assert len(texts) == 2, texts
    assert texts[1].startswith("[CRITICAL] PAGING FAILED via pagerduty: "), texts[1]
    assert "(dead letter #2: page the on-call by hand" in texts[1]
    assert "PAGING DELAYED via pagerduty_secondary: " in texts[1]
    assert "failing for 0m00s" in texts[1] or "failing for 0s" in texts[1], texts[1]


def test_requeued_after_paging_failed_is_told_paged_after_all_once(tmp_path: Path) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Fleet(sqlite(tmp_path), slack, pd, "pagerduty")
        texts = fleet.down_then([INVALID_EVENT])
        assert "PAGING FAILED" in texts[-1]
        (page,) = [
            i for i in fleet.store.outbox(("dead",)) if i.notification.channel == "pagerduty"
        ]
        now = T0 + timedelta(minutes=95)
        assert requeue(fleet.store.queue, page.id, now)
        retell_page(fleet.store, page, now)
        for minute in range(95, 110):
            fleet.drain(minute)
        texts = fleet.texts()
    assert len(texts) == 4 and texts[3].startswith("[CRITICAL] Paged after all"), texts


def test_the_mirror_is_told_delayed_and_after_all_once_each(tmp_path: Path) -> None:
    with SlackWebhookServer() as slack, SlackWebhookServer() as mirror, PagerDutyServer() as pd:
        config = PolicyConfig(
            open_after=1, resolve_after=1, page=["pagerduty"], page_after=timedelta(0), mirror=True
        )

        def mirrored(client: httpx.AsyncClient) -> dict[str, Notifier]:
            return {"slack_mirror": SlackWebhook(client, SecretStr(f"{mirror.url}/s"), "Slack")}

        Wider(sqlite(tmp_path), slack, pd, config, mirrored).down_then([])
        for server in (slack, mirror):
            told = [m["text"].split(":")[0] for m in server.messages]
            assert count(told, "PAGING DELAYED") == 1 and count(told, "Paged after all") == 1


class Mentioning(Fleet):
    def notifiers(self, client: httpx.AsyncClient) -> dict[str, Notifier]:
        slack = SlackWebhook(
            client, SecretStr(f"{self.slack.url}/s"), "Slack", page_mention="S0ONCALL"
        )
        return super().notifiers(client) | {"slack": slack}


def test_a_resolved_incidents_follow_up_pings_nobody(tmp_path: Path) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Mentioning(sqlite(tmp_path), slack, pd, "pagerduty")
        pd.fail_next = [UNAVAILABLE] * 1000
        fleet.step(True, 0)
        for minute in range(60):
            if minute == 10:
                fleet.step(False, 10)
            if minute == 30:
                pd.fail_next = []
            fleet.drain(minute)
        texts = [m["text"] for m in slack.messages]
    assert "RESOLVED" in texts[2] and "Not paged" in texts[3], texts
    assert "S0ONCALL" in texts[1]  # PAGING DELAYED calls the on-call
    assert "S0ONCALL" not in texts[3], texts[3]


def test_a_follow_up_leaves_a_resolved_threads_top_message_resolved(tmp_path: Path) -> None:
    """Slack's Web API: PAGING DELAYED at minute 10, the incident resolves at 12; the follow-up
    reply (its page withdrawn: "Not paged") leaves the thread's top saying Resolved."""
    tops, replies = web_api_outage(tmp_path, resolves_at=12)
    top = tops[-1]
    assert any("Not paged" in r and "resolved after" in r for r in replies), replies
    assert top.startswith("Resolved"), top


# --- what an idle drain costs --------------------------------------------------------------------


def idle_drain_ms(store: Store, runs: int = 15) -> float:
    """The median time of a drain with nothing queued, at T0."""

    def once() -> float:
        started = time.perf_counter()
        asyncio.run(drain(store, {}, lambda: T0))
        return time.perf_counter() - started

    once()
    return statistics.median(once() for _ in range(runs)) * 1000


def test_an_idle_drain_stays_cheap_with_two_days_of_sent_messages(tmp_path: Path) -> None:
    """Two days of sent Slack messages at bench/store_history.py's rate (8,640 a day): an idle
    drain reads none of them (on this machine ~1-3 ms; a scan of them took ~40)."""
    store = Store(sqlite(tmp_path))
    template = evaluate([api()], {}, lambda _s: policy("pagerduty"), T0).incidents[0]
    dump = TypeAdapter(Notification).dump_json
    kinds, rows = list(Kind), []
    for n in range(2 * 8640):
        at = (T0 - timedelta(seconds=n * 10)).isoformat()
        note = Notification(f"history|{n}", "slack", kinds[n % 4], T0, template)
        rows.append({
            "notification_id": note.id, "channel": "slack", "kind": note.kind,
            "incident_key": f"history:{n}", "status": "sent", "attempts": 1, "created_at": at,
            "next_attempt_at": at, "receipt": "ok", "data": dump(note).decode(),
        })  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(sa.insert(outbox_table), rows)
    took = idle_drain_ms(store)
    assert took < 10, f"an idle drain takes {took:.1f} ms"


def storm_signal(n: int) -> Signal:
    return Signal(
        f"blackbox:url=http://pi-{n}/healthz", "blackbox", True, Severity.critical,
        f"pi-{n} /healthz failed", target=f"pi-{n}",
    )  # fmt: skip


def test_after_an_outage_an_idle_drain_writes_nothing(tmp_path: Path) -> None:
    """30 incidents told PAGING DELAYED, then "Paged after all": the drains after that, with
    nothing queued, write nothing to the store."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Fleet(sqlite(tmp_path), slack, pd, "pagerduty")
        pd.fail_next = [UNAVAILABLE] * 10_000
        fleet.store.record(
            evaluate([storm_signal(n) for n in range(30)], {}, fleet._policy, T0), T0
        )
        for minute in range(60):
            if minute == 7:
                pd.fail_next = []
            fleet.drain(minute)
        texts = fleet.texts()
        assert count(texts, "PAGING DELAYED") == 30 and count(texts, "Paged after all") == 30
        writes: list[str] = []

        def written(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
            if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "BEGIN")):
                writes.append(statement)

        sa.event.listen(fleet.store.queue.engine, "before_cursor_execute", written)
        for minute in range(90, 96):
            fleet.drain(minute)
        assert writes == []


def follow_ups(queue: Outbox) -> list[OutboxItem]:
    return [i for i in queue.items(("queued",)) if i.notification.paging_ended]


def test_a_page_ended_before_its_paging_delayed_message_is_recorded_is_told(
    state_db: str,
) -> None:
    """The pager lane records the page taken before the Slack lane records its PAGING DELAYED
    message sent: recording the message queues the follow-up (on SQLite and on PostgreSQL)."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = Fleet(state_db, slack, pd, "pagerduty")
        fleet.step(True, 0)
    queue, now = fleet.store.queue, T0 + timedelta(minutes=6)
    queued = {(i.notification.channel, i.notification.kind): i for i in queue.items(("queued",))}
    page, paged = queued["pagerduty", Kind.paged], queued["slack", Kind.paged]

    def tell(told: Notification, pages: list[Page], episode: Incident | None) -> Notification:
        return paging_ended(told, pages, episode, now)

    sent = {"status": "sent", "attempts": 1, "receipt": "202"}
    assert queue.end_page(page.id, None, page.notification, tell, now, **sent)
    assert not follow_ups(queue)  # its message is not out yet
    told = replace(paged.notification, paging_delayed="pagerduty: HTTP 503 — retrying")
    assert queue.mark_delayed_sent(paged.id, None, 1, "ok", told, tell, now)
    (follow_up,) = follow_ups(queue)
    assert follow_up.notification.id == f"{paged.notification.id}:paging-ended"
    assert follow_up.notification.paging_ended == "Paged after all: pagerduty took the page"
