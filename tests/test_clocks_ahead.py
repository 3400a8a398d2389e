"""A source whose clock runs ahead of ours must not hold back a page: a real Alertmanager lists a
critical alert as active whose `startsAt` lies 20 minutes ahead (the Prometheus that fired it runs
fast, or a script wrote local time with a `Z`). The page after 5 minutes counts from when we first
saw it, as for the alert beside it with an honest clock; the run log says whose clock to check."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from fleet_alerting.config import Config
from fleet_alerting.sources import alertmanager as alertmanager_watch
from fleet_alerting.store.database import Store
from fleet_alerting.tasks.observe import observe
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.servers import start_alertmanager, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    server, url = start_alertmanager(
        tmp_path / "alertmanager", "route:\n  receiver: ops\nreceivers:\n  - name: ops\n"
    )
    yield url
    server.stop()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_an_alert_starting_ahead_of_our_clock_pages_when_its_time_with_us_is_due(
    alertmanager: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    real = datetime.now(UTC)
    starts = {"Honest": real - timedelta(minutes=1), "Ahead": real + timedelta(minutes=20)}
    alerts = [
        {
            "labels": {"alertname": name, "severity": "critical", "instance": name.lower()},
            "annotations": {"summary": f"{name} failing"},
            "startsAt": iso(at),
            "endsAt": iso(real + timedelta(hours=2)),
        }
        for name, at in starts.items()
    ]
    httpx.post(f"{alertmanager}/api/v2/alerts", json=alerts).raise_for_status()
    wait_until(lambda: len(httpx.get(f"{alertmanager}/api/v2/alerts").json()) == 2, 10)
    config = Config.model_validate(
        {
            "state": {"path": str(tmp_path / "state.sqlite")},
            "alertmanager": {"url": alertmanager, "watchdog": None},
        }
    )
    paged_at: dict[str, int] = {}
    with caplog.at_level(logging.WARNING), Store(config.state) as store:
        for minute in range(8):
            now = real + timedelta(minutes=minute, seconds=5)
            seen = asyncio.run(observe(alertmanager_watch.WATCH, config, now))
            evaluate_and_record(store, seen.signals, config.policy, now, seen.unseen_sources)
            for incident in store.incidents():
                name = incident.signal.labels.get("alertname", "")
                if incident.paged_at is not None:
                    paged_at.setdefault(name, minute)
        pages = Counter(
            row.notification.incident.signal.labels.get("alertname")
            for row in store.outbox(("queued",))
            if row.notification.channel == "pagerduty"
        )
        ahead = next(i for i in store.incidents() if i.signal.labels["alertname"] == "Ahead")
    assert paged_at == {"Honest": 4, "Ahead": 5}  # 5 min after it started / after we saw it
    assert pages == {"Honest": 1, "Ahead": 1}
    assert ahead.onset <= real + timedelta(seconds=5)
    warned = [r.getMessage() for r in caplog.records if "later than this machine's clock" in r.msg]
    assert (
        warned and warned[0].startswith("1 alert(s) start later") and "0:19:55 ahead" in warned[0]
    )
