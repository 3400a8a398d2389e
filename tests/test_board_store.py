"""The incident board's read (store/board.py) on both backends: the first open incidents in board
order — critical first, then the oldest — and the open count per severity, in one statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fleet_alerting.core.incidents import Incident, State
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.store.board import open_incidents
from fleet_alerting.store.database import Store

NOW = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)


def incident(key: str, severity: str, state: State, minutes_ago: int) -> Incident:
    signal = Signal(key, "blackbox", True, Severity(severity), f"{key} down", labels={"k": key})
    return Incident(
        key=key,
        source="blackbox",
        severity=Severity(severity),
        state=state,
        onset=NOW - timedelta(minutes=minutes_ago),
        changed_at=NOW,
        signal=signal,
        resolved_at=NOW if state == State.resolved else None,
    )


STORED = [
    incident("warning-oldest", "warning", State.firing, 300),
    incident("critical-new", "critical", State.firing, 5),
    incident("critical-old", "critical", State.paged, 60),
    incident("info", "info", State.firing, 30),
    incident("critical-pending", "critical", State.pending, 500),  # not open yet
    incident("critical-resolved", "critical", State.resolved, 900),
]


def test_first_open_incidents_in_board_order_with_counts(state_db: str) -> None:
    with Store(state_db) as store:
        with store.transaction() as transaction:
            transaction.write_incidents(STORED, NOW)
        everything, counts = open_incidents(store, 10)
        first_two, same_counts = open_incidents(store, 2)
    assert [i.key for i in everything] == ["critical-old", "critical-new", "warning-oldest", "info"]
    assert counts == {"critical": 2, "warning": 1, "info": 1, "other": 0} == same_counts
    assert first_two == everything[:2]  # whole records: who is paged, acknowledgements, mutes


def test_no_open_incidents(state_db: str) -> None:
    with Store(state_db) as store:
        with store.transaction() as transaction:
            transaction.write_incidents(STORED[4:], NOW)
        assert open_incidents(store, 200) == (
            [],
            {"critical": 0, "warning": 0, "info": 0, "other": 0},
        )
