"""The incident board's read (store/board.py) on both backends: the first open incidents in board
order — critical first, then the oldest — and the open count per severity, in one statement."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

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


def test_a_nul_from_outside_is_stored_so_the_board_reads_it(state_db: str) -> None:
    """PostgreSQL cannot read `\\u0000` in JSON: a label with a NUL is stored with U+FFFD."""
    odd = incident("odd", "critical", State.firing, 1)
    odd = replace(odd, signal=replace(odd.signal, labels={"job": "no\x00de"}))
    with Store(state_db) as store:
        with store.transaction() as transaction:
            transaction.write_incidents([odd], NOW)
        (shown,), counts = open_incidents(store, 10)
    assert shown.signal.labels == {"job": "no\ufffdde"} and counts["critical"] == 1


def test_a_record_the_database_cannot_read_leaves_the_board_a_warning(
    state_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A row written before NULs were kept out (PostgreSQL cannot read it as JSON): the board is
    not updated, with a line in the run's log — the run itself did its job."""
    import asyncio

    import sqlalchemy as sa

    from fleet_alerting.config.schema import Config
    from fleet_alerting.store.incidents import WITH_TEXTS, record_json
    from fleet_alerting.store.tables import incidents_table, texts_table
    from fleet_alerting.tasks.board import publish_incident_board
    from tests.stores import is_url, raw_engine

    if not is_url(state_db):
        pytest.skip("SQLite reads `\\u0000` in JSON")
    with Store(state_db) as store, store.transaction() as transaction:
        transaction.write_incidents(STORED[:1], NOW)
    with raw_engine(state_db).begin() as conn:  # as written then: the signal in the record
        query = sa.select(incidents_table.c.data, texts_table.c.signal).select_from(WITH_TEXTS)
        data, signal = conn.execute(query).one()
        legacy = record_json(data, signal).replace("down", "\\u0000")
        conn.execute(sa.update(incidents_table).values(data=legacy))
        conn.execute(sa.delete(texts_table))
    asyncio.run(publish_incident_board(Config.model_validate({"state": {"url": state_db}})))
    assert "incident board not updated: (psycopg.errors.UntranslatableCharacter)" in caplog.text
