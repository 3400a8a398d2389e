"""Silences by matchers and maintenance windows end to end: the store, the engine's pipeline, the
outbox drained into the Slack Web API and PagerDuty fakes, and a real Alertmanager (Debian,
loopback) for the silences made there. Time is a parameter: every run is given its `now`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from fleet_alerting.alertmanager.routing import parse_config
from fleet_alerting.audit.checks import never_closed
from fleet_alerting.audit.model import AuditInput, DeliveryRecord, Expectations
from fleet_alerting.config import Config, load_config
from fleet_alerting.core.incidents import State
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.drain import build_notifiers, drain
from fleet_alerting.store import actions as audit
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.silence_actions import add_silence, expire_silence, query
from fleet_alerting.tasks.audit import delivery_records
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.fakes.saas import PagerDutyServer
from tests.fakes.slack_api import SlackApiServer
from tests.servers import start_alertmanager
from tests.test_alertmanager import AM_CONFIG

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
BOT = "xoxb-silence-flow-token"
ROUTING_KEY = "R" * 32
KEY = "blackbox:pi-video-03"
NIGHTLY = {
    "windows": [
        {
            "name": "yard-night",
            "time_intervals": [
                {
                    "times": [{"start_time": "22:00", "end_time": "24:00"}],
                    "location": "Europe/Zagreb",
                },
                {
                    "times": [{"start_time": "00:00", "end_time": "06:00"}],
                    "location": "Europe/Zagreb",
                },
            ],
        }
    ],
    "mute": [{"matchers": ['coordinator="yard"'], "mute_time_intervals": ["yard-night"]}],
}


def write_config(tmp: Path, slack: str, pagerduty: str, **extra: object) -> Config:
    (tmp / "bot.token").write_text(BOT)
    (tmp / "pd.key").write_text(ROUTING_KEY)
    data = {
        "state": {"path": "state.sqlite"},
        "notify": {
            "slack": {
                "bot_token": {"file": "bot.token"},
                "api_url": f"{slack}/api",
                "min_interval": "0s",
            },
            "pagerduty": {"routing_key": {"file": "pd.key"}, "url": f"{pagerduty}/v2/enqueue"},
        },
        "policies": {"critical": {"page": ["pagerduty"], "page_after": "5m", "mirror": True}},
    } | extra
    (tmp / "config.yaml").write_text(yaml.safe_dump(data))
    return load_config(tmp / "config.yaml")


def probe(firing: bool, target: str = "pi-video-03", **labels: str) -> Signal:
    return Signal(
        key=f"blackbox:{target}",
        source="blackbox",
        firing=firing,
        severity=Severity.critical,
        summary=f"{target} {'unreachable' if firing else 'answers'}",
        target=target,
        labels={"instance": target, **labels},
    )


async def no_sleep(_seconds: float) -> None:
    return None


def run(config: Config, signal: Signal | list[Signal], now: datetime) -> None:
    """One watch run: evaluate and record, then drain the outbox, at `now`."""
    with Store(config.state) as store:
        evaluate_and_record(
            store,
            signal if isinstance(signal, list) else [signal],
            config.policy,
            now,
            rules=config.storm_rules(),
            maintenance=config.maintenance,
        )

        async def deliver() -> None:
            async with httpx.AsyncClient() as client:
                report = await drain(
                    store, build_notifiers(config, client, store), lambda: now, sleep=no_sleep
                )
                assert not report.dead and not report.retrying, report

        asyncio.run(deliver())


def silence(config: Config, matchers: list[str], now: datetime, hours: float = 2) -> str:
    outcome = asyncio.run(
        add_silence(
            config,
            matchers,
            timedelta(hours=hours),
            author="ana",
            comment="re-imaging",
            via="cli",
            now=now,
        )
    )
    assert outcome.silence is not None, outcome.message
    return outcome.silence.id


def replace_input(deliveries: list[DeliveryRecord]) -> AuditInput:
    am = parse_config({"route": {"receiver": "a"}, "receivers": [{"name": "a"}]})
    return AuditInput(am, [], Expectations(), T0, deliveries=deliveries)


@pytest.fixture
def fakes() -> Iterator[tuple[SlackApiServer, PagerDutyServer]]:
    with SlackApiServer(BOT) as slack, PagerDutyServer() as pagerduty:
        yield slack, pagerduty


def texts(slack: SlackApiServer, channel: str) -> list[str]:
    return [p.body["text"] for p in slack.posted if p.channel == channel]


def test_a_silence_added_before_the_outage_tells_nobody_and_records_it(fakes, tmp_path) -> None:
    slack, pagerduty = fakes
    config = write_config(tmp_path, slack.url, pagerduty.url)
    silence_id = silence(config, ['target="pi-video-03"'], T0 - timedelta(minutes=1))
    for minute in (0, 1, 6, 10):
        run(config, probe(True), T0 + timedelta(minutes=minute))
    store = Store(config.state)
    incident = store.incident(KEY)
    store.close()
    assert incident is not None and incident.state == State.firing  # evaluated, recorded
    assert incident.acts.mute_id == f"silence:{silence_id}"
    assert "silenced by ana" in (incident.acts.muted_by or "")
    (row,) = [r for r in query(config, T0 + timedelta(minutes=10)) if r["kind"] == "silence"]
    assert row["mutes_now"] == [KEY] and row["muted_total"] == 1
    for minute in (11, 12):
        run(config, probe(False), T0 + timedelta(minutes=minute))
    assert slack.posted == [] and pagerduty.events == []  # nothing told, nothing to close


def test_a_silence_that_ends_while_the_failure_persists_is_told_once(fakes, tmp_path) -> None:
    slack, pagerduty = fakes
    config = write_config(tmp_path, slack.url, pagerduty.url)
    silence(config, ['instance=~"pi-video-0[0-9]"', 'severity="critical"'], T0, hours=0.25)
    for minute in (0, 1, 6, 10):
        run(config, probe(True), T0 + timedelta(minutes=minute))
    assert slack.posted == [] and pagerduty.events == []
    for minute in (15, 16, 17, 20):
        run(config, probe(True), T0 + timedelta(minutes=minute))
    (top,) = slack.top_level("C0OPS")
    first = (top.original or top.body)["text"]
    assert "was silenced by ana (silence" in first and "which has ended" in first
    mirror = texts(slack, "C0MIRROR")
    assert len([t for t in mirror if "was silenced by ana" in t]) == 1  # once, mirror too
    assert [e["event_action"] for e in pagerduty.events] == ["trigger"]  # the held page, once


def test_a_resolve_during_a_silence_is_closed_everywhere_it_was_told(fakes, tmp_path) -> None:
    slack, pagerduty = fakes
    config = write_config(tmp_path, slack.url, pagerduty.url)
    for minute in (0, 1, 6):  # opened at 1 (thread + mirror), paged at 6
        run(config, probe(True), T0 + timedelta(minutes=minute))
    (top,) = slack.top_level("C0OPS")
    assert [e["event_action"] for e in pagerduty.events] == ["trigger"]
    silence(config, ['target="pi-video-03"'], T0 + timedelta(minutes=7))
    for minute in (8, 9, 30):
        run(config, probe(True), T0 + timedelta(minutes=minute))
    replies = [r.body["text"] for r in slack.replies(top.ts)]
    assert sum("Silenced by ana (silence" in t for t in replies) == 1, replies
    assert slack.updates and slack.updates[-1].body["text"].startswith("Silenced by ana")
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "acknowledge"]
    for minute in (31, 32):
        run(config, probe(False), T0 + timedelta(minutes=minute))
    assert "[RESOLVED after 31m" in slack.replies(top.ts)[-1].body["text"]
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "acknowledge", "resolve"]
    assert pagerduty.open == set()
    # the mirror saw it open, paged, silenced and resolved: every closing word
    mirror = texts(slack, "C0MIRROR")
    assert [t.split("]")[0] for t in mirror] == [
        "[CRITICAL",
        "[CRITICAL",
        "[CRITICAL",
        "[RESOLVED after 31m00s",
    ]
    assert "Paged pagerduty" in mirror[1] and "Silenced by ana" in mirror[2]
    # the top-level message now says where it stands, with the values it fired with
    edited = slack.top_level("C0OPS")[0].body
    assert edited["text"].startswith("Resolved after 31m00s: [CRITICAL] pi-video-03 unreachable")
    assert ":white_check_mark:" in edited["blocks"][0]["text"]["text"]
    assert not any(b.get("type") == "actions" for b in edited["blocks"])  # no buttons left
    # the quarterly audit finds nothing left hanging, in every destination that was told
    deliveries = delivery_records(str(config.state.path))
    assert {d.channel for d in deliveries} == {"slack", "slack_mirror", "pagerduty"}
    assert never_closed.check(replace_input(deliveries)) == []


def test_a_silence_that_ends_on_a_held_page_pages_again(fakes, tmp_path) -> None:
    slack, pagerduty = fakes
    config = write_config(tmp_path, slack.url, pagerduty.url)
    for minute in (0, 1, 6):  # opened at 1, paged at 6
        run(config, probe(True), T0 + timedelta(minutes=minute))
    silence(config, ['target="pi-video-03"'], T0 + timedelta(minutes=7), hours=0.25)
    for minute in (8, 9):
        run(config, probe(True), T0 + timedelta(minutes=minute))
    assert pagerduty.acknowledged == {KEY}  # the silence holds the page
    for minute in (23, 24, 30):  # the silence ended at 22, the failure goes on
        run(config, probe(True), T0 + timedelta(minutes=minute))
    actions = [e["event_action"] for e in pagerduty.events]
    assert actions == ["trigger", "acknowledge", "resolve", "trigger"]
    assert pagerduty.open == {KEY} and pagerduty.acknowledged == set()
    assert pagerduty.incidents[KEY] == 2  # the on-call is notified again
    (top,) = slack.top_level("C0OPS")
    replies = [r.body["text"] for r in slack.replies(top.ts)]
    assert sum("which has ended" in t for t in replies) == 1, replies
    for minute in (31, 32):
        run(config, probe(False), T0 + timedelta(minutes=minute))
    assert pagerduty.open == set()
    deliveries = delivery_records(str(config.state.path))
    assert never_closed.check(replace_input(deliveries)) == []


def test_a_nightly_window_across_the_dst_change_mutes_nine_hours(fakes, tmp_path) -> None:
    slack, pagerduty = fakes
    config = write_config(tmp_path, slack.url, pagerduty.url, maintenance=NIGHTLY)
    night = datetime(2026, 10, 24, 19, 30, tzinfo=UTC)  # 21:30 CEST; 03:00 CEST → 02:00 CET
    hub = probe(True, target="yard-hub", coordinator="yard")
    for minutes in (0, 1):
        run(config, hub, night + timedelta(minutes=minutes))
    assert len(slack.top_level("C0OPS")) == 1
    run(config, hub, night + timedelta(minutes=30))  # 22:00 CEST: the window begins
    (top,) = slack.top_level("C0OPS")
    assert "Muted by window yard-night until 05:00 UTC" in slack.replies(top.ts)[-1].body["text"]
    told = len(slack.posted)
    for minutes in (60, 300, 480, 569):  # to 04:59 UTC = 05:59 CET: still night
        run(config, hub, night + timedelta(minutes=minutes))
    assert len(slack.posted) == told
    run(config, hub, night + timedelta(minutes=570))  # 05:00 UTC = 06:00 CET
    last = slack.replies(top.ts)[-1].body["text"]
    assert "was muted by window yard-night, which has ended" in last


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    server, url = start_alertmanager(tmp_path / "alertmanager", AM_CONFIG)
    yield url
    server.stop()


@pytest.mark.integration
def test_a_silence_selecting_alertmanager_alerts_is_made_and_expired_there(
    alertmanager: str, tmp_path: Path
) -> None:
    data = {
        "state": {"path": "state.sqlite"},
        "notify": {"dry_run": True},
        "alertmanager": {"url": alertmanager},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    config = load_config(tmp_path / "config.yaml")
    now = datetime.now(UTC)
    matchers = ['source="alertmanager"', 'alertname=~"Api.*"', 'instance!="lab:443"']
    added = asyncio.run(
        add_silence(
            config,
            matchers,
            timedelta(hours=2),
            author="ana",
            comment="upgrade",
            via="cli",
            now=now,
        )
    )
    assert added.ok and added.silence and added.silence.alertmanager_id, added.message
    there = httpx.get(f"{alertmanager}/api/v2/silence/{added.silence.alertmanager_id}").json()
    assert there["status"]["state"] == "active" and there["createdBy"] == "ana"
    assert sorted((m["name"], m["isRegex"], m["isEqual"]) for m in there["matchers"]) == [
        ("alertname", True, True),
        ("instance", False, False),
    ]
    ours_only = asyncio.run(
        add_silence(
            config,
            ['source="blackbox"', 'target="x"'],
            timedelta(hours=1),
            author="ana",
            comment="",
            via="cli",
            now=now,
        )
    )
    assert ours_only.ok and ours_only.silence and ours_only.silence.alertmanager_id is None
    expired = asyncio.run(
        expire_silence(config, added.silence.id[:8], actor="bo", via="cli", now=datetime.now(UTC))
    )
    assert expired.ok, expired.message
    there = httpx.get(f"{alertmanager}/api/v2/silence/{added.silence.alertmanager_id}").json()
    assert there["status"]["state"] == "expired"
    store = Store(config.state)
    trail = [r.action for r in audit.history(store, f"silence:{added.silence.id}")]
    store.close()
    assert trail == ["silence add", "silence expire"]
