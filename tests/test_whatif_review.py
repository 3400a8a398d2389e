"""The quarterly review's what-if section: MTTA and MTTR per alert from incidents, the noisiest
alerts of a replayed period with one suggested policy change each and its replayed figures."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import yaml

from fleet_alerting.audit.report import to_markdown
from fleet_alerting.audit.whatif_review import response_table, review
from fleet_alerting.config import load_config
from fleet_alerting.core.history import Change, History, RunSegment
from fleet_alerting.core.incidents import Acts, Incident, State
from fleet_alerting.core.signals import Severity, Signal

DAY = datetime(2026, 11, 2, tzinfo=UTC)


def observed(source: str, name: str, severity: str, down: list[tuple[int, int]]) -> list[Change]:
    key = f"{source}:device={name}"
    changes = []
    for minute, firing in [(0, False)] + [p for a, b in down for p in ((a, True), (b, False))]:
        signal = Signal(key, source, firing, Severity(severity), f"{name}", labels={"device": name})
        changes.append(Change(DAY + timedelta(minutes=minute), source.split("/")[0], key, signal))
    return changes


def history() -> History:
    flaps = [(m, m + 2) for m in range(30, 1400, 40)]  # 35 two-minute failures
    changes = observed("prometheus/RoleAgentStale", "pi-01", "warning", flaps)
    changes += observed("blackbox", "api", "critical", [(100, 108), (500, 509), (900, 960)])
    runs = [
        RunSegment(stream, DAY, timedelta(minutes=1), 1440) for stream in ("prometheus", "blackbox")
    ]
    return History(DAY, DAY + timedelta(days=1), changes, runs)


def test_the_noisiest_alerts_come_with_a_change_and_its_figures(tmp_path: Path) -> None:
    path = tmp_path / "live.yaml"
    path.write_text(yaml.safe_dump({"notify": {"dry_run": True}}))
    config = load_config(path)
    blocks = review(history(), config, [], config.review.business_hours, (), {}, with_charts=False)
    table = next(v for k, v in blocks if k == "table" and "suggested change" in v.columns)
    rows = {row["alert"]: row for row in table.to_dict("records")}
    # the flapping warning: open after 2 → 4 runs, its two-minute failures tell nobody
    flapping = rows["prometheus/RoleAgentStale"]
    assert flapping["suggested change"] == "`policies.warning.open_after: 2 → 4`"
    # 35 flaps, two while the API was down (inhibited by it): 33 opened and resolved
    assert flapping["Slack messages"] == "66 → 0"
    # the critical: its short outages page; paging 15 minutes after onset keeps the long one
    api = rows["blackbox"]
    assert api["suggested change"] == "`policies.critical.page_after: 5m00s → 15m00s`"
    assert api["pages"] == "3 → 1"
    assert "Five noisiest alerts" in to_markdown(blocks)


def test_mtta_and_mttr_per_alert() -> None:
    signal = Signal("blackbox:device=api", "blackbox", True, Severity.critical, "api down")
    first = Incident(
        key=signal.key,
        source="blackbox",
        severity=Severity.critical,
        state=State.resolved,
        onset=DAY,
        changed_at=DAY,
        signal=signal,
        opened_at=DAY + timedelta(minutes=1),
        paged_at=DAY + timedelta(minutes=5),
        resolved_at=DAY + timedelta(minutes=40),
        recovered_at=DAY + timedelta(minutes=39),
        acts=Acts(acked_by="ana", acked_at=DAY + timedelta(minutes=9)),
    )
    second = replace(
        first,
        onset=DAY + timedelta(hours=2),
        paged_at=DAY + timedelta(hours=2, minutes=5),
        recovered_at=DAY + timedelta(hours=2, minutes=21),
        resolved_at=DAY + timedelta(hours=2, minutes=22),
        acts=Acts(),
    )
    table = response_table([first, second])
    assert table.to_dict("records") == [
        {"alert": "blackbox", "acknowledged": 1, "MTTA": "4m00s", "resolved": 2, "MTTR": "30m00s"}
    ]
    assert isinstance(table, pd.DataFrame)
