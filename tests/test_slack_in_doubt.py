"""The Slack Web API closes the crash window: a message a killed drainer may have posted (its
lease expired, so the next claim is *in doubt*) is looked for in the channel by its metadata
before it is posted again. Real store, real drain, the fake Slack API on loopback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from fleet_alerting.core.incidents import Incident
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.drain import DrainReport, drain
from fleet_alerting.delivery.notifiers import slack_api
from fleet_alerting.delivery.notifiers.slack_api import EVENT_TYPE, SlackApi, snapshot_message
from fleet_alerting.delivery.notifiers.slack_webhook import Pacer, render
from fleet_alerting.store.database import Store
from fleet_alerting.store.outbox import OutboxItem
from tests.fakes.http import Response
from tests.fakes.slack_api import SlackApiServer

BOT = "xoxb-in-doubt-test-token"
LEASE = timedelta(seconds=30)
TELL = PolicyConfig(open_after=1)  # Slack only, no mirror, no page


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per process: channel ids learned from answers, problems already reported."""
    monkeypatch.setattr(slack_api, "_learned_ids", {})
    monkeypatch.setattr(slack_api, "_warned", set())


def incident_signal(target: str = "pi-01", firing: bool = True) -> Signal:
    return Signal(
        f"blackbox:url=http://{target}/healthz",
        "blackbox",
        firing,
        Severity.warning,
        f"{target} /healthz failed",
        target=target,
    )


async def snapshot(incident: Incident, _at: datetime) -> dict:
    return snapshot_message(incident, [], "test", lambda _e: None)


def notifier(
    client: httpx.AsyncClient, api: SlackApiServer, store: Store | None, channel: str = "C0OPS"
) -> SlackApi:
    return SlackApi(
        client,
        SecretStr(BOT),
        channel,
        api_url=f"{api.url}/api",
        store=store,
        snapshot=snapshot if store else None,
        pacer=Pacer(0),
        timeout=2,
    )


def opened(tmp_path: Path) -> tuple[Store, datetime, OutboxItem]:
    """A store with one queued Slack message, claimed by a drainer that then died: returns the
    store, a moment after that claim's lease ended, and the claimed message."""
    store = Store(tmp_path / "state.sqlite")
    now = datetime.now(UTC)
    store.record(evaluate([incident_signal()], {}, lambda _s: TELL, now), now)
    item = store.queue.claim_next("slack", "killed-drainer", now, LEASE)
    assert item is not None and not item.in_doubt
    return store, now + LEASE + timedelta(seconds=1), item


def drain_once(store: Store, api: SlackApiServer, at: datetime, threads: bool) -> DrainReport:
    async def go() -> DrainReport:
        async with httpx.AsyncClient() as client:
            slack = notifier(client, api, store if threads else None)
            return await drain(store, {"slack": slack}, lambda: at, lease=LEASE)

    return asyncio.run(go())


def posted_by_the_killed_drainer(api: SlackApiServer, item: OutboxItem, threads: bool) -> str:
    """What the dead drainer did before its kill: post (with metadata), nothing recorded."""

    async def go() -> str:
        async with httpx.AsyncClient() as client:
            slack = notifier(client, api, None)
            answer = await slack.post(render(item.notification), n=item.notification)
            return str(answer["ts"])

    return asyncio.run(go())


def test_a_message_posted_before_the_kill_is_found_and_marked_sent_not_reposted(
    tmp_path: Path,
) -> None:
    store, later, item = opened(tmp_path)
    with SlackApiServer(BOT) as api:
        ts = posted_by_the_killed_drainer(api, item, threads=False)
        report = drain_once(store, api, later, threads=False)
        assert len(api.posted) == 1  # not posted again
        (look,) = api.looked
    assert look.path == "/api/conversations.history"
    assert look.query["channel"] == ["C0OPS"] and look.query["include_all_metadata"] == ["true"]
    assert float(look.query["oldest"][0]) <= item.created_at.timestamp()
    ((sent, receipt),) = report.sent
    assert sent.id == item.id and f"found ts={ts}" in receipt
    (row,) = store.outbox(("sent",))
    assert row.receipt == receipt and store.outbox(("queued", "dead")) == []
    metadata = api.posted[0].body["metadata"]
    assert metadata == {
        "event_type": EVENT_TYPE,
        "event_payload": {"notification_id": item.notification.id, "part": "message"},
    }


def test_a_thread_started_before_the_kill_is_recorded_and_its_snapshot_posted_in_it(
    tmp_path: Path,
) -> None:
    """Killed after chat.postMessage answered and before the thread was stored: the message is
    found, its ts becomes the incident's thread, and the missing snapshot reply goes into it."""
    store, later, item = opened(tmp_path)
    with SlackApiServer(BOT) as api:
        ts = posted_by_the_killed_drainer(api, item, threads=True)
        report = drain_once(store, api, later, threads=True)
        posts = list(api.posted)
        looks = [r.path for r in api.looked]
    assert [p.thread_ts for p in posts] == [None, ts]  # the snapshot, as a reply in that thread
    assert posts[1].body["metadata"]["event_payload"]["part"] == "snapshot"
    assert looks == ["/api/conversations.history", "/api/conversations.replies"]
    incident = store.incident(item.notification.incident.key)
    assert incident is not None and (incident.thread_channel, incident.thread_ts) == ("C0OPS", ts)
    ((_, receipt),) = report.sent
    assert f"thread found ts={ts}" in receipt and "snapshot ts=" in receipt


def test_an_in_doubt_reply_already_in_the_thread_is_not_posted_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite")
    now = datetime.now(UTC)
    store.record(evaluate([incident_signal()], {}, lambda _s: TELL, now), now)
    with SlackApiServer(BOT) as api:
        drain_once(store, api, now, threads=True)  # opened: thread + snapshot
        thread = api.posted[0].ts
        resolved = evaluate(
            [incident_signal(firing=False)],
            store.unresolved(),
            lambda _s: PolicyConfig(open_after=1, resolve_after=1),
            now,
        )
        store.record(resolved, now)
        item = store.queue.claim_next("slack", "killed-drainer", now, LEASE)
        assert item is not None and item.notification.kind == "resolved"

        async def reply_then_die() -> None:
            async with httpx.AsyncClient() as client:
                slack = notifier(client, api, store)
                body = render(item.notification) | {"thread_ts": thread}
                await slack.post(body, channel="C0OPS", n=item.notification)

        asyncio.run(reply_then_die())
        report = drain_once(store, api, now + LEASE + timedelta(seconds=1), threads=True)
        posts, looks = list(api.posted), list(api.looked)
    assert len(posts) == 3  # opened, snapshot, the one resolved reply
    (look,) = looks
    assert look.path == "/api/conversations.replies" and look.query["ts"] == [thread]
    ((_, receipt),) = report.sent
    assert f"reply found ts={posts[2].ts} in thread {thread}" in receipt


def test_an_in_doubt_message_not_in_slack_is_posted_once(tmp_path: Path) -> None:
    store, later, item = opened(tmp_path)  # killed before its post left
    with SlackApiServer(BOT) as api:
        report = drain_once(store, api, later, threads=True)
        assert len(api.looked) == 2  # the channel, then (thread started) the snapshot's thread
        assert len(api.top_level()) == 1 and len(api.replies(api.posted[0].ts)) == 1
    ((sent, receipt),) = report.sent
    assert sent.id == item.id and "thread started" in receipt and report.warnings == []


def test_a_message_not_in_doubt_is_posted_without_looking(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite")
    now = datetime.now(UTC)
    store.record(evaluate([incident_signal()], {}, lambda _s: TELL, now), now)
    with SlackApiServer(BOT) as api:
        drain_once(store, api, now, threads=False)
        assert len(api.posted) == 1 and api.looked == []


def test_a_failed_look_posts_anyway(tmp_path: Path) -> None:
    """At least once stays the floor: a look that fails (Slack 500, a timeout) posts again."""
    store, later, item = opened(tmp_path)
    with SlackApiServer(BOT) as api:
        posted_by_the_killed_drainer(api, item, threads=False)
        api.fail_history = [Response(500, {"ok": False, "error": "internal_error"})]
        report = drain_once(store, api, later, threads=False)
        assert len(api.posted) == 2  # a duplicate rather than a loss
    assert [i.id for i, _ in report.sent] == [item.id]
    (warning,) = report.warnings
    assert "could not check for an earlier copy" in warning and "HTTP 500" in warning


def test_a_look_that_times_out_posts_anyway(tmp_path: Path) -> None:
    store, later, item = opened(tmp_path)
    with SlackApiServer(BOT) as api:
        api.fail_history = [Response(200, {"ok": True, "messages": []}, delay=3)]  # timeout 2 s
        report = drain_once(store, api, later, threads=False)
        assert len(api.posted) == 1
    assert [i.id for i, _ in report.sent] == [item.id]
    assert "timed out" in report.warnings[0]


def test_a_missing_history_scope_posts_anyway_and_says_so_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite")
    now = datetime.now(UTC)
    signals = [incident_signal("pi-01"), incident_signal("pi-02")]
    store.record(evaluate(signals, {}, lambda _s: TELL, now), now)
    for _ in signals:
        assert store.queue.claim_next("slack", "killed-drainer", now, LEASE)
    with SlackApiServer(BOT, scopes=frozenset({"chat:write"})) as api:
        report = drain_once(store, api, now + LEASE + timedelta(seconds=1), threads=False)
        assert len(api.posted) == 2 and len(api.looked) == 2
    assert len(report.sent) == 2
    (warning,) = report.warnings  # once, not per message
    assert "missing_scope" in warning and "channels:history" in warning
    assert BOT not in warning


def test_a_channel_given_by_name_cannot_be_looked_in_until_posted_to(tmp_path: Path) -> None:
    """Slack's history methods take channel ids; with a name (and no post from this process
    yet to learn its id from) the message is posted again, and the warning says what to do."""
    store, later, item = opened(tmp_path)

    async def go(api: SlackApiServer) -> DrainReport:
        async with httpx.AsyncClient() as client:
            slack = notifier(client, api, None, channel="#operations")
            return await drain(store, {"slack": slack}, lambda: later, lease=LEASE)

    with SlackApiServer(BOT) as api:
        report = asyncio.run(go(api))
        assert len(api.posted) == 1 and api.looked == []
    assert [i.id for i, _ in report.sent] == [item.id]
    assert "channel id" in report.warnings[0]


def test_a_post_that_timed_out_but_arrived_is_found_by_the_retry(tmp_path: Path) -> None:
    """A timed-out chat.postMessage may have posted: the retry looks first, and finds it."""
    store = Store(tmp_path / "state.sqlite")
    now = datetime.now(UTC)
    store.record(evaluate([incident_signal()], {}, lambda _s: TELL, now), now)
    with SlackApiServer(BOT) as api:
        api.delay = 3  # posts, then answers after the client's 2 s timeout
        report = drain_once(store, api, now, threads=False)
        assert len(api.posted) == 1 and len(api.looked) == 1
    ((_, receipt),) = report.sent
    assert f"found ts={api.posted[0].ts}" in receipt


def test_a_post_answered_with_a_5xx_that_arrived_is_found_by_the_retry(tmp_path: Path) -> None:
    """A 5xx may come from a proxy after Slack posted: the retry looks first, and finds it."""
    store = Store(tmp_path / "state.sqlite")
    now = datetime.now(UTC)
    store.record(evaluate([incident_signal()], {}, lambda _s: TELL, now), now)
    with SlackApiServer(BOT) as api:
        api.fail_after_post.append(Response(502, "Bad Gateway"))
        report = drain_once(store, api, now, threads=False)
        assert len(api.posted) == 1 and len(api.looked) == 1
    ((_, receipt),) = report.sent
    assert f"found ts={api.posted[0].ts}" in receipt


def test_a_thread_posted_but_not_recorded_is_found_not_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails right after the opening post (locked past its timeout): the message is
    in doubt, and the next drain finds the thread instead of starting a second one."""
    store = Store(tmp_path / "state.sqlite")
    now = datetime.now(UTC)
    store.record(evaluate([incident_signal()], {}, lambda _s: TELL, now), now)
    record_thread = store.set_thread
    failures = [OSError("database is locked")]

    def set_thread(*args: object) -> bool:
        if failures:
            raise failures.pop()
        return record_thread(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "set_thread", set_thread)
    with SlackApiServer(BOT) as api:
        first = drain_once(store, api, now, threads=True)
        assert [r for _, r in first.retrying] and len(api.posted) == 1
        (row,) = store.outbox(("queued",))
        assert row.in_doubt
        later = now + timedelta(minutes=5)
        second = drain_once(store, api, later, threads=True)
        assert len(api.top_level()) == 1  # one thread
        thread = api.top_level()[0].ts
        assert [p.thread_ts for p in api.posted] == [None, thread]  # and its snapshot
    ((_, receipt),) = second.sent
    assert f"thread found ts={thread}" in receipt
    incident = store.incident(incident_signal().key)
    assert incident is not None and incident.thread_ts == thread


def test_a_send_stops_before_its_claim_runs_out_and_the_retry_finds_it(tmp_path: Path) -> None:
    """A send still waiting for Slack when 90 % of its claim has passed stops (another drainer
    may take the message over after that); the message is in doubt, and is found, not reposted."""
    store = Store(tmp_path / "state.sqlite")
    now = datetime.now(UTC)
    store.record(evaluate([incident_signal()], {}, lambda _s: TELL, now), now)
    with SlackApiServer(BOT) as api:
        api.delay = 3  # posts at once, answers after 3 s: past 90 % of a 2 s claim

        async def short_claim() -> DrainReport:
            async with httpx.AsyncClient() as client:
                slack = notifier(client, api, None)
                slack.timeout = 10  # the notifier would wait: the claim decides
                lease = {"slack": timedelta(seconds=2)}  # per lane, as lease_for gives them
                return await drain(store, {"slack": slack}, lambda: now, lease=lease)

        first = asyncio.run(short_claim())
        ((_, reason),) = first.retrying
        assert "still sending when 90% of its claim had passed" in reason
        (row,) = store.outbox(("queued",))
        assert row.in_doubt
        api.delay = 0
        second = drain_once(store, api, now + timedelta(minutes=5), threads=False)
        assert len(api.posted) == 1
    ((_, receipt),) = second.sent
    assert f"found ts={api.posted[0].ts}" in receipt


def test_a_claim_running_out_while_waiting_to_retry_keeps_the_real_reason(tmp_path: Path) -> None:
    """Cut off between attempts (Slack said 429, wait 1.5 s): nothing is on its way, so the
    message is not in doubt and keeps Slack's answer as its reason."""
    store = Store(tmp_path / "state.sqlite")
    now = datetime.now(UTC)
    store.record(evaluate([incident_signal()], {}, lambda _s: TELL, now), now)
    with SlackApiServer(BOT) as api:
        limited = Response(429, {"ok": False, "error": "ratelimited"}, {"retry-after": "1.5"})
        api.fail_next += [limited, limited]

        async def short_claim() -> DrainReport:
            async with httpx.AsyncClient() as client:
                slack = notifier(client, api, None)
                return await drain(store, {"slack": slack}, lambda: now, lease=timedelta(seconds=1))

        report = asyncio.run(short_claim())
        assert api.posted == [] and api.looked == []
    ((_, reason),) = report.retrying
    assert "ratelimited" in reason and "claim" not in reason
    (row,) = store.outbox(("queued",))
    assert not row.in_doubt


def test_a_claim_running_out_during_a_retried_post_leaves_it_in_doubt(tmp_path: Path) -> None:
    """Slack said 429, the retry posted and its answer is slow when the claim runs out: that
    post may have arrived, so the next drain looks first and finds it."""
    store = Store(tmp_path / "state.sqlite")
    now = datetime.now(UTC)
    store.record(evaluate([incident_signal()], {}, lambda _s: TELL, now), now)
    with SlackApiServer(BOT) as api:
        api.fail_next.append(
            Response(429, {"ok": False, "error": "ratelimited"}, {"retry-after": "0.1"})
        )
        api.delay = 3  # the retry posts at once and answers after 3 s: past 90 % of 2 s

        async def short_claim() -> DrainReport:
            async with httpx.AsyncClient() as client:
                slack = notifier(client, api, None)
                slack.timeout = 10
                return await drain(store, {"slack": slack}, lambda: now, lease=timedelta(seconds=2))

        asyncio.run(short_claim())
        (row,) = store.outbox(("queued",))
        assert row.in_doubt and "still sending" in (row.last_error or "")
        api.delay = 0
        drain_once(store, api, now + timedelta(minutes=5), threads=False)
        assert len(api.posted) == 1
