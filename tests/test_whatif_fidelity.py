"""Fidelity: a scripted day of failures recorded by the real blackbox flow (its clock injected,
real HTTP targets on loopback, Slack and PagerDuty fakes receiving), then replayed through the
configuration that was live: exactly the notifications that were sent, to the minute."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from fleet_alerting.audit.whatif import replay
from fleet_alerting.config import load_config
from fleet_alerting.flows import watches
from fleet_alerting.store import history
from fleet_alerting.store.database import Store
from tests.fakes.http import FakeServer, Request, Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer

DAY = datetime(2026, 11, 2, tzinfo=UTC)
EVERY = timedelta(minutes=10)
# minutes of the day each target is down (half-open ranges)
SCRIPT = {
    "api": [(600, 660), (900, 910), (1200, 1260)],  # critical: pages after 10 min
    "pi-0": [(120, 140), (610, 650), (700, 900)],  # warning: reminders every 30 min
    "pi-1": [(120, 130), (610, 620), (1000, 1010), (1100, 1110)],  # flaps
    "pi-2": [(300, 480)],
}


class Scripted(FakeServer):
    """A `/healthz` that fails while the script says so, at the flow's injected time."""

    def __init__(self, name: str, clock: list[datetime]):
        super().__init__()
        self.name, self.clock = name, clock

    def handle(self, request: Request) -> Response:
        minute = (self.clock[0] - DAY) // timedelta(minutes=1)
        down = any(a <= minute < b for a, b in SCRIPT[self.name])
        return Response(503, {"status": "down"}) if down else Response(200, {"status": "ok"})


@pytest.fixture
def clock() -> list[datetime]:
    return [DAY]


@pytest.fixture
def targets(clock: list[datetime]) -> Iterator[dict[str, Scripted]]:
    with ExitStack() as stack:
        yield {name: stack.enter_context(Scripted(name, clock)) for name in SCRIPT}


def write_config(config_file: Path, targets: dict[str, Scripted], slack, mirror, pd) -> None:
    folder = config_file.parent
    (folder / "slack.url").write_text(f"{slack.url}/services/T0/B0/XX\n")
    (folder / "mirror.url").write_text(f"{mirror.url}/services/T0/B1/YY\n")
    (folder / "pd.key").write_text("P" * 32)
    listed = [
        {
            "name": name,
            "url": f"{server.url}/healthz",
            "severity": "critical" if name == "api" else "warning",
        }
        for name, server in targets.items()
    ]
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {
            "slack": {
                "webhook": {"file": "slack.url"},
                "mirror_webhook": {"file": "mirror.url"},
            },
            "pagerduty": {"routing_key": {"file": "pd.key"}, "url": f"{pd.url}/v2/enqueue"},
        },
        "policies": {
            "critical": {"page_after": "10m", "repeat": "30m", "mirror": True},
            "warning": {"open_after": 2, "resolve_after": 2, "repeat": "30m"},
        },
        "blackbox": {"timeout": "2s", "targets": listed},
    }
    config_file.write_text(yaml.safe_dump(config))


def record_day(
    config_file: Path, targets: dict[str, Scripted], clock: list[datetime], late_ms: int
) -> tuple[list[tuple[str, str, str, str]], int, history.History]:
    """The day through the real flow, each run starting up to `late_ms` after its beat (as
    scheduled runs do): what was sent (key, kind, channel, minute), how many pages, the history."""
    late = random.Random(27)
    with SlackWebhookServer() as slack, SlackWebhookServer() as mirror, PagerDutyServer() as pd:
        write_config(config_file, targets, slack, mirror, pd)
        for run in range(timedelta(days=1) // EVERY):
            clock[0] = DAY + EVERY * run + timedelta(milliseconds=late.randint(0, late_ms))
            asyncio.run(watches.blackbox_probe.fn(str(config_file)))
        pages = [e for e in pd.events if e["event_action"] == "trigger"]
    with Store(config_file.parent / "state.sqlite") as store:
        sent = store.outbox(("sent",))
        recorded = history.read(store, DAY, DAY + timedelta(days=1))
    told = sorted(
        (
            i.notification.incident.key,
            str(i.notification.kind),
            i.notification.channel,
            i.notification.at.strftime("%Y-%m-%dT%H:%M"),
        )
        for i in sent
    )
    return told, len(pages), recorded


def test_replaying_a_recorded_day_sends_exactly_what_was_sent(
    tmp_path: Path,
    targets: dict[str, Scripted],
    clock: list[datetime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(watches, "utcnow", lambda: clock[0])
    config_file = tmp_path / "on-the-beat" / "config.yaml"
    config_file.parent.mkdir()
    told, pages, recorded = record_day(config_file, targets, clock, late_ms=0)
    replayed = replay(recorded, load_config(config_file))

    assert pages == 2 and len(told) > 30  # a day worth replaying: pages, reminders, flaps
    assert {kind for _, kind, _, _ in told} >= {"opened", "paged", "reminder", "resolved"}
    assert sorted(s.minute for s in replayed.sent) == told
    assert replayed.evaluations < replayed.runs  # it stepped through changes, not every run
    # compact: a row per change, one run segment for the day's 144 runs
    assert len(recorded.runs) == 1 and recorded.runs[0].count == 144
    assert len(recorded.changes) == 2 * sum(len(v) for v in SCRIPT.values()) + len(SCRIPT)

    # the same day with every run up to 900 ms late: still one segment, replayed on the beat —
    # what the schedule meant, which is what the day on the beat sent
    config_file = tmp_path / "jittered" / "config.yaml"
    config_file.parent.mkdir()
    _, _, jittered = record_day(config_file, targets, clock, late_ms=900)
    assert [(r.every, r.count) for r in jittered.runs] == [(EVERY, 144)]
    assert len(jittered.changes) == len(recorded.changes)
    assert sorted(s.minute for s in replay(jittered, load_config(config_file)).sent) == told
