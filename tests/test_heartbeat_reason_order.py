"""The heartbeat says at most 500 characters of a failed run's reason. A run whose config file was
made invalid (it ran with the last good one) and that owes a page says the page owed first, so
a long list of config problems never pushes "a pager down, not a broken watch" out of /fail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fleet_alerting.core.heartbeat import verdict
from fleet_alerting.core.incidents import Incident, Kind, Notification, State
from fleet_alerting.core.policy import Evaluation
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.stages import DrainReport
from fleet_alerting.deployments.watch_runs import WatchRuns
from fleet_alerting.flows.common import RunIncomplete, finish
from fleet_alerting.store.outbox import OutboxItem

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def owed_page() -> OutboxItem:
    signal = Signal("bb|api", "blackbox", True, Severity.critical, "api down", target="api")
    incident = Incident(
        key="bb|api", source="blackbox", severity=Severity.critical, state=State.paged,
        onset=NOW, changed_at=NOW, signal=signal, paged_via=("pagerduty",),
    )  # fmt: skip
    n = Notification("bb|api|paged|pagerduty", "pagerduty", Kind.paged, NOW, incident)
    why = "PagerDuty Events API answered HTTP 503"
    return OutboxItem(7, n, "queued", 1, NOW, NOW, why, None)


def failed_reason(stale: str | None) -> str:
    report = DrainReport()
    report.owed_pages.append(owed_page())
    counters = {"opened": 0, "paged": 0, "resolved": 0}
    with pytest.raises(RunIncomplete) as raised:
        finish("observed 3 targets", counters, Evaluation([], []), report, stale)
    return str(raised.value)


def heartbeat_body(reason: str) -> str:
    runs = WatchRuns()
    runs.serve({"blackbox-probe": timedelta(seconds=10)}, datetime.now(UTC) - timedelta(minutes=1))
    runs.started("blackbox-probe").ended(False, reason)
    return verdict(runs.statuses(), None, datetime.now(UTC)).reason


STALE = "invalid configuration (ran with the one read 2026-12-07 08:00:00Z):\n" + "\n".join(
    f"config/fleet.yaml:{40 + k}: watches[{k}].every: expected a duration like 30s or 5m"
    for k in range(8)
)


def test_a_page_owed_is_said_even_with_a_stale_config() -> None:
    body = heartbeat_body(failed_reason(STALE))
    assert "page to pagerduty undelivered" in body, body


def test_control_a_page_owed_alone_is_said() -> None:
    body = heartbeat_body(failed_reason(None))
    assert "page to pagerduty undelivered: PagerDuty Events API answered HTTP 503" in body
