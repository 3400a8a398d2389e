"""The heartbeat's decision as a table: tests/cases/heartbeat.yaml."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from fleet_alerting.core.heartbeat import DeadPage, PrefectApi, QueuedPage, WatchStatus, verdict

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "heartbeat.yaml").read_text())
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def at(seconds: float | None) -> datetime | None:
    return None if seconds is None else START + timedelta(seconds=seconds)


def watch(row: dict) -> WatchStatus:
    return WatchStatus(
        row["name"],
        timedelta(seconds=row["every"]),
        serving_since=START,
        last_success=at(row.get("last_success")),
        last_failure=at(row.get("last_failure")),
        last_failure_reason=row.get("why", ""),
        in_flight_since=at(row.get("in_flight")),
    )


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_heartbeat_verdict(case: dict) -> None:
    page = case.get("oldest_page")
    oldest = page and QueuedPage(page["destination"], page["incident_key"], at(page["queued_at"]))
    server = case.get("api")
    api = server and PrefectApi(server["named"], at(server["last_answer"]), server.get("error", ""))
    result = verdict(
        [watch(w) for w in case["watches"]],
        oldest,
        at(case["now"]),
        store_error=case.get("store_error", ""),
        scheduled=case.get("scheduled", True),
        dead_pages=[DeadPage(**page) for page in case.get("dead_pages", [])],
        api=api,
        sends={d: at(since) for d, since in case.get("sends", {}).items()},
    )
    assert (result.ok, result.reason) == (case["ok"], case.get("reason", ""))
    assert result.silent == case.get("silent", False)
