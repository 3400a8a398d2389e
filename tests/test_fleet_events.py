"""Fleet API adapter (both event shapes, auth, correlation ids, errors) and the event cursor."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from pydantic import SecretStr

from fleet_alerting.config import Config
from fleet_alerting.config.schema import FleetApiConfig
from fleet_alerting.core.incidents import Incident, State
from fleet_alerting.core.signals import Signal
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.sources.fleet_events.client import (
    FleetApi,
    FleetEvent,
    parse_event,
    parse_events,
)
from fleet_alerting.sources.fleet_events.judge import (
    Cursor,
    advance,
    alerting,
    event_notifications,
    event_signal,
    related_events,
)
from fleet_alerting.store.database import Store
from tests.fakes.fleet_api import FleetApiServer, live_event
from tests.fakes.http import Response

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "fleet_events.yaml").read_text())
FIXTURES = Path(__file__).parent / "fixtures" / "fleet-api"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
TOKEN = "fleet-token-0123456789"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_parse_both_shapes(case: dict) -> None:
    if "error" in case:
        with pytest.raises(ValueError, match=case["error"]):
            parse_events(case["body"])
        return
    events, cursor, problems = parse_events(case["body"])
    got = [
        {
            "id": "digest" if e.id.startswith("sha1:") else e.id,
            "type": e.type,
            "target": e.target,
            "severity": e.severity,
            "correlation_id": e.correlation_id,
        }
        for e in events
    ]
    assert got == case["events"]
    assert cursor == case.get("cursor")
    assert [str(p) for p in problems] == case.get("problems", [])


def test_reference_fixture_parses() -> None:
    events, cursor, problems = parse_events(
        json.loads((FIXTURES / "events.recent.json").read_text())
    )
    assert [e.id for e in events] == ["evt-feed-001", "evt-feed-002", "evt-feed-003"]
    assert events[0].correlation_id == "14d6f1fd-4c9f-4e8d-8621-9254cb59aa81"
    assert (cursor, problems) == (None, [])


def test_synthetic_ids_are_stable_and_distinct() -> None:
    raw = {
        "timestamp": "2026-11-26T10:00:00Z",
        "type": "command.failed",
        "message": "m",
        "severity": "error",
        "metadata": {"correlationId": "c"},
    }
    assert parse_event(raw).id == parse_event(dict(raw)).id
    assert parse_event(raw).id != parse_event(raw | {"message": "other"}).id


def fetch(server: FleetApiServer, token: str = TOKEN, limit: int = 200):
    async def go():
        async with httpx.AsyncClient() as client:
            return await FleetApi(client, server.url, SecretStr(token)).recent_events(limit)

    return asyncio.run(go())


def test_adapter_sends_bearer_and_correlation_id_both_shapes() -> None:
    with FleetApiServer(TOKEN, shape="live") as server:
        server.events = [live_event(T0 + timedelta(seconds=i), i) for i in range(3)]
        page, _problems = fetch(server, limit=2)
        sent = server.requests[0].headers
    assert sent["authorization"] == f"Bearer {TOKEN}"
    assert page.correlation_id == sent["x-correlation-id"]
    assert [e.message for e in page.events] == ["event 2", "event 1"]
    with FleetApiServer(TOKEN, shape="fixture") as server:
        server.events = json.loads((FIXTURES / "events.recent.json").read_text())["items"]
        server.page_size = 2  # two pages linked by nextCursor
        page, _ = fetch(server)
        cursors = [r.query.get("cursor") for r in server.requests]
    assert sorted(e.id for e in page.events) == ["evt-feed-001", "evt-feed-002", "evt-feed-003"]
    assert cursors == [None, ["2"]]


@pytest.mark.parametrize(
    ("forced", "permanent", "text"),
    [
        (None, True, "UNAUTHORIZED: missing or invalid bearer token (hint: set FLEET_API_TOKEN)"),
        (
            Response(
                503,
                {
                    "code": "UPSTREAM_DOWN",
                    "message": "db",
                    "hint": "wait",
                    "correlationId": "srv-1",
                },
            ),
            False,
            "UPSTREAM_DOWN: db (hint: wait)",
        ),
        (
            Response(429, {"code": "RATE_LIMITED", "message": "slow down"}, {"retry-after": "7"}),
            False,
            "RATE_LIMITED: slow down",
        ),
        (Response(200, "<html>proxy</html>"), False, "answered non-JSON"),
    ],
)
def test_adapter_translates_errors(forced: Response | None, permanent: bool, text: str) -> None:
    with FleetApiServer(TOKEN) as server:
        if forced:
            server.fail_next.append(forced)
        with pytest.raises(AdapterError) as caught:
            fetch(server, token=TOKEN if forced else "wrong-token")
        sent = server.requests[0].headers["x-correlation-id"]
    assert caught.value.permanent is permanent
    assert text in str(caught.value)
    assert ("srv-1" if forced and forced.status == 503 else sent) in str(caught.value)
    if forced and forced.status == 429:
        assert caught.value.retry_after == 7


def test_unreachable_api_is_retryable() -> None:
    with FleetApiServer(TOKEN) as server:
        url = server.url

    async def go():
        async with httpx.AsyncClient(timeout=1) as client:
            return await FleetApi(client, url, None).recent_events()

    with pytest.raises(AdapterError) as caught:
        asyncio.run(go())
    assert caught.value.permanent is False and "unreachable" in str(caught.value)


# --- the cursor ---------------------------------------------------------------------------------


def event(i: int, ts: datetime, given_id: bool = False) -> FleetEvent:
    return FleetEvent(
        f"e{i}", ts, "command.failed", "error", f"event {i}", "pi-audio-01", given_id=given_id
    )


@pytest.mark.parametrize("given_id", [False, True], ids=["digest", "given id"])
def test_cursor_never_duplicates_or_drops_across_overlapping_pages_and_restarts(
    tmp_path: Path, given_id: bool
) -> None:
    """A stream of 400 events, some arriving up to 2 minutes late and several sharing a timestamp;
    polled every minute (newest 50 of what has arrived), the process restarting (cursor only from
    the store) every few polls. Every event is reported exactly once."""
    rng = random.Random(5)
    stream = []
    for i in range(400):
        ts = T0 + timedelta(seconds=15 * (i // 3))  # three events per timestamp
        arrives = ts + timedelta(seconds=rng.choice([0, 0, 0, 30, 90, 120]))
        stream.append((arrives, event(i, ts, given_id)))
    reported: list[str] = []
    store = Store(tmp_path / "state.sqlite")
    now = T0
    polls = 0
    while now <= T0 + timedelta(minutes=40):
        arrived = [e for at, e in stream if at <= now]
        page = sorted(arrived, key=lambda e: e.timestamp, reverse=True)[:50]
        if polls % 3 == 0:  # restart: nothing but the stored cursor survives
            store.close()
            store = Store(tmp_path / "state.sqlite")
        cursor = Cursor.from_json(store.get_value("cursor"))
        step = advance(cursor, page, lookback=timedelta(minutes=5), limit=50, now=now)
        assert not step.possible_gap
        reported += [e.id for e in step.new]
        store.set_value("cursor", step.cursor.to_json())
        now += timedelta(minutes=1)
        polls += 1
    store.close()
    assert len(reported) == len(set(reported)), "an event was reported twice"
    assert sorted(reported) == sorted(e.id for _, e in stream), "an event was skipped"


def test_cursor_same_page_twice_reports_nothing_new() -> None:
    page = [event(i, T0 + timedelta(seconds=i)) for i in range(5)]
    first = advance(Cursor(), page, timedelta(minutes=5), 200, T0 + timedelta(minutes=1))
    assert [e.id for e in first.new] == ["e0", "e1", "e2", "e3", "e4"]  # oldest first
    again = advance(
        Cursor.from_json(first.cursor.to_json()),
        page,
        timedelta(minutes=5),
        200,
        T0 + timedelta(minutes=2),
    )
    assert again.new == [] and again.cursor == first.cursor


def test_cursor_flags_a_full_page_that_does_not_reach_back() -> None:
    start = advance(Cursor(), [event(0, T0)], timedelta(minutes=5), 3, T0)
    later = [event(i, T0 + timedelta(minutes=10, seconds=i)) for i in range(1, 4)]
    step = advance(start.cursor, later, timedelta(minutes=5), 3, T0 + timedelta(minutes=11))
    assert step.possible_gap and [e.id for e in step.new] == ["e1", "e2", "e3"]


@pytest.mark.parametrize(
    "stamped", [T0 + timedelta(hours=1), datetime(2099, 1, 1, tzinfo=UTC)], ids=["1h", "2099"]
)
def test_an_event_stamped_ahead_of_the_clock_hides_no_later_event(
    tmp_path: Path, stamped: datetime
) -> None:
    """A device whose clock runs ahead (or local time read as UTC) sends one event; honest
    events follow every minute for longer than the window. Each is reported exactly once, the
    one stamped ahead too, though the page keeps listing it first."""
    ahead = event(0, stamped)
    arrived = [ahead]
    reported: list[str] = []
    store = Store(tmp_path / "state.sqlite")
    for minute in range(15):
        now = T0 + timedelta(minutes=minute)
        arrived.append(event(minute + 1, now))
        page = sorted(arrived, key=lambda e: e.timestamp, reverse=True)[:50]
        step = advance(
            Cursor.from_json(store.get_value("cursor")), page, timedelta(minutes=5), 50, now
        )
        reported += [e.id for e in step.new]
        assert [e.id for e in step.ahead] == (["e0"] if minute == 0 else [])
        store.set_value("cursor", step.cursor.to_json())
    store.close()
    assert sorted(reported) == sorted(e.id for e in arrived)
    assert len(reported) == len(set(reported))


@pytest.mark.parametrize("skew", [timedelta(0), timedelta(hours=1)], ids=["in-sync", "1h-ahead"])
@pytest.mark.parametrize("rate", [100, 300], ids=["pages-overlap", "pages-miss"])
def test_a_full_page_is_a_possible_gap_only_when_the_pages_do_not_overlap(
    skew: timedelta, rate: int
) -> None:
    """A busy feed (`rate` events a minute, pages of 200, a run every minute), its clock in sync
    or an hour ahead (local time without an offset on a UTC+1 host): at 100 a minute each page
    reaches back into the last one, at 300 it cannot."""
    cursor, arrived, gaps = Cursor(), [], []
    for minute in range(5):
        now = T0 + timedelta(minutes=minute)
        arrived += [
            FleetEvent(
                f"e{minute}-{i}",
                now - timedelta(seconds=60 * (rate - i) / rate) + skew,
                "command.ok",
                "info",
                "x",
            )
            for i in range(rate)
        ]
        page = sorted(arrived, key=lambda e: e.timestamp, reverse=True)[:200]
        step = advance(cursor, page, timedelta(minutes=30), 200, now)
        cursor = step.cursor
        gaps.append(step.possible_gap)
        assert step.ahead == ([] if skew < timedelta(minutes=1) else step.new)
    assert gaps == [False] + [rate * 1 > 200] * 4


def test_an_event_written_just_after_the_run_read_its_clock_is_not_a_clock_ahead() -> None:
    listed = [event(1, T0 + timedelta(milliseconds=300)), event(2, T0 + timedelta(minutes=2))]
    step = advance(Cursor(), listed, timedelta(minutes=5), 50, T0)
    assert [e.id for e in step.new] == ["e1", "e2"] and [e.id for e in step.ahead] == ["e2"]


def test_a_cursor_stored_ahead_of_the_clock_lets_honest_events_through() -> None:
    stored = Cursor(datetime(2099, 1, 1, tzinfo=UTC), {"old": "2099-01-01T00:00:00+00:00"})
    step = advance(Cursor.from_json(stored.to_json()), [event(1, T0)], timedelta(minutes=5), 50, T0)
    assert [e.id for e in step.new] == ["e1"] and step.cursor.high_water == T0
    assert "old" not in step.cursor.seen


def test_alerting_selects_types_and_severity() -> None:
    config = FleetApiConfig(url="http://fleet", alert_severity="warn")
    events = [
        FleetEvent("a", T0, "command.failed", "error", "x"),
        FleetEvent("b", T0, "audio.upload.failed", "warn", "x"),
        FleetEvent("c", T0, "audio.upload", "info", "x"),
        FleetEvent("d", T0, "device.offline", "error", "x"),
        FleetEvent("e", T0, "audio.uploader", "error", "x"),
    ]
    assert [e.id for e in alerting(events, config)] == ["a", "b"]


def test_event_notifications_carry_correlation_link_and_are_stable() -> None:
    config = Config.model_validate(
        {"fleet_api": {"url": "http://fleet"}, "links": {"grafana_url": "https://grafana.example"}}
    )
    ev = FleetEvent("a", T0, "command.failed", "error", "play failed", "pi-audio-01", "c-42")
    one = event_notifications([ev], config, T0)
    two = event_notifications([ev], config, T0 + timedelta(minutes=1))
    assert [n.channel for n in one.notifications] == ["slack", "slack_mirror"]  # critical policy
    assert [n.id for n in one.notifications] == [n.id for n in two.notifications]
    signal = one.incidents[0].signal
    assert signal.correlation_ids == ("c-42",)
    assert "c-42" in signal.links[0].url and signal.links[0].url.startswith(
        "https://grafana.example/explore?"
    )
    assert one.incidents[0].state == State.resolved  # a one-off, never lingering as open


def test_related_events_prefer_the_incident_target() -> None:
    signal = Signal("k", "alertmanager", True, "critical", "down", target="pi-audio-01:8081")
    incident = Incident("k", "alertmanager", "critical", State.firing, T0, T0, signal)
    events = [
        FleetEvent("a", T0 - timedelta(minutes=1), "x", "error", "m", "pi-audio-01"),
        FleetEvent("b", T0 - timedelta(minutes=2), "x", "error", "m", "pi-video-01"),
        FleetEvent("c", T0 - timedelta(hours=2), "x", "error", "m", ""),
    ]
    mine, scope = related_events(events, incident, T0, 15, 20)
    assert [e.id for e in mine] == ["a"] and scope == "events for pi-audio-01"
    other = Incident(
        "k",
        "alertmanager",
        "critical",
        State.firing,
        T0,
        T0,
        Signal("k", "alertmanager", True, "critical", "down", target="fleet-api"),
    )
    recent, scope = related_events(events, other, T0, 15, 20)
    assert [e.id for e in recent] == ["a", "b"] and scope == "all events of the last 15 min"


def test_an_id_the_api_hands_out_again_is_another_event() -> None:
    """The API's counter restarted: `e1` nine minutes later is a new event, told under its own
    key (the first one's notification ids are in the outbox for 30 days)."""
    first, again = event(1, T0, given_id=True), event(1, T0 + timedelta(minutes=9), given_id=True)
    step = advance(Cursor(), [first], timedelta(minutes=30), 50, T0)
    later = advance(step.cursor, [again, first], timedelta(minutes=30), 50, again.timestamp)
    assert later.new == [again]
    assert event_signal(again, Config()).key != event_signal(first, Config()).key


def test_a_cursor_that_remembered_given_ids_alone_reports_nothing_twice() -> None:
    """Written before identities: `seen` holds the id and the time; the same event is not told
    again, an event reusing the id at another time is."""
    told = event(1, T0, given_id=True)
    cursor = Cursor(T0, {"e1": T0.isoformat()})
    reused = event(1, T0 + timedelta(minutes=2), given_id=True)
    step = advance(cursor, [reused, told], timedelta(minutes=30), 50, reused.timestamp)
    assert step.new == [reused]


@pytest.mark.parametrize("ahead", [0, -20, 20], ids=["on time", "behind", "20 s ahead"])
def test_an_event_remembered_by_id_alone_at_its_clamped_time_is_not_told_again(
    ahead: int,
) -> None:
    """The cursor before identities remembered min(event time, that run's now): an event from a
    feed a few seconds fast was remembered at the run's now."""
    at = T0 + timedelta(seconds=ahead)
    told = event(1, at, given_id=True)
    cursor = Cursor(min(at, T0), {"e1": min(at, T0).isoformat()})
    assert advance(cursor, [told], timedelta(hours=1), 200, T0 + timedelta(minutes=1)).new == []
