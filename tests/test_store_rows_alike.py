"""Incidents alike are written with their shape's record JSON made once (store.incidents._Rows):
each stored row is the row the incident gets written alone — every column, byte for byte — and
loads as the incident it was, on both backends; a storm's members serialize one record per
chunk, not one each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from fleet_alerting.core.incidents import Acts, Escalation, Incident, Page, State
from fleet_alerting.core.policy import PolicyConfig
from fleet_alerting.core.signals import Severity
from fleet_alerting.core.storms import StormRules, decide
from fleet_alerting.store import incidents as stored_incidents
from fleet_alerting.store.database import Store
from fleet_alerting.store.tables import incidents_table
from tests.stores import raw_engine
from tests.test_records_pending import series

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SOURCE = "prometheus/RoleAgentFailure"

FIRING = Incident(
    key="",
    source=SOURCE,
    severity=Severity.critical,
    state=State.firing,
    onset=T0,
    changed_at=T0 + MINUTE,
    signal=series("pi-0"),
    consecutive_failures=2,
    opened_at=T0 + MINUTE,
    last_notified_at=T0 + MINUTE,
    escalation=Escalation(step=1, steps=2, next_at=T0 + 5 * MINUTE, next_to=("pagerduty",)),
    group="group/prometheus/RoleAgentFailure:severity=critical",
)
PAGED = replace(
    FIRING,
    state=State.paged,
    paged_at=T0 + MINUTE,
    paged_via=("pagerduty",),
    thread_channel="C1",
    thread_ts="1.5",
    acts=Acts(acked_by="ann\x00nul", acked_at=T0 + 2 * MINUTE, changed_at=T0 + 2 * MINUTE),
    escalation=Escalation(
        step=2, steps=2, pages=(Page("pagerduty", T0 + MINUTE, 1),), ack_hold=timedelta(hours=1)
    ),
    group=None,
    inhibited_by="prometheus/Other:host=x",
)
RESOLVED = replace(
    FIRING,
    state=State.resolved,
    resolved_at=T0 + 9 * MINUTE,
    resolution="no longer reported",
    recovered_at=T0 + 8 * MINUTE,
    recovery=series("pi-0", 1.0),
    group=None,
)

# keys as a source may make them: JSON escapes in some, the fast path in the others
KEYS = [
    f"{SOURCE}:host=pi-1",
    f'{SOURCE}:host=quote"d',
    f"{SOURCE}:host=back\\slash",
    f"{SOURCE}:host=tab\there",
    f"{SOURCE}:host=dél\x7f",
    f"{SOURCE}:host=line\u2028sep",
    f"{SOURCE}:host=pi-2",
]


def alike(base: Incident) -> list[Incident]:
    """Members of one shape: every value but the key and the signal the same objects."""
    keys = [f"{key}/{base.state.value}" for key in KEYS]
    return [replace(base, key=key, signal=replace(series("pi-9"), key=key)) for key in keys]


def storm(store: Store, hosts: int) -> list[Incident]:
    """A storm's opening as the engine decides it (grouped members and their group)."""
    signals = [series(f"pi-{n:04}") for n in range(hosts)]
    policy = PolicyConfig(open_after=2, resolve_after=2, page=["pagerduty"], mirror=True)
    for now in (T0, T0 + MINUTE):
        evaluation, _ = store.evaluate(
            lambda records, now=now: decide(signals, records, lambda _s: policy, StormRules(), now),
            now,
        )
    return list(evaluation.incidents)


def as_stored(incident: Incident) -> Incident:
    """The incident as the store keeps it: its texts rendered, a NUL as U+FFFD."""
    acked_by = incident.acts.acked_by and incident.acts.acked_by.replace("\x00", "\ufffd")
    acts = replace(incident.acts, acked_by=acked_by)
    return replace(incident, signal=incident.signal.rendered(), acts=acts)


def rows(db: str) -> dict[str, tuple[Any, ...]]:
    with raw_engine(db).connect() as conn:
        found = conn.execute(sa.select(incidents_table)).tuples().all()
    return {row[0]: row for row in found}


def written(store: Store, incidents: Sequence[Incident], now: datetime, one_by_one: bool) -> None:
    with store.transaction() as unit:
        for part in [[i] for i in incidents] if one_by_one else [incidents]:
            unit.write_incidents(part, now)


CASES = {
    "firing members alike": alike(FIRING),
    "paged, acked, threaded members alike": alike(PAGED),
    "resolved members alike": alike(RESOLVED),
    "shapes interleaved": [
        i for pair in zip(alike(FIRING), alike(PAGED), strict=True) for i in pair
    ],
    "alike but each its own thread": [
        replace(member, thread_ts=f"1.{n}") for n, member in enumerate(alike(PAGED))
    ],
    "no two alike": [
        replace(i, key=f"{SOURCE}:host=x-{i.state.value}") for i in (FIRING, PAGED, RESOLVED)
    ],
}


@pytest.mark.parametrize("incidents", CASES.values(), ids=CASES.keys())
def test_rows_alike_are_the_rows_written_alone(incidents: list[Incident], state_db: str) -> None:
    now = T0 + 10 * MINUTE
    with Store(state_db) as store:
        written(store, incidents, now, one_by_one=False)
        together = rows(state_db)
        loaded = {i.key: store.incident(i.key) for i in incidents}
        written(store, incidents, now, one_by_one=True)  # each its own shape: made whole
        assert rows(state_db) == together
    for incident in incidents:
        assert loaded[incident.key] == as_stored(incident)


@pytest.mark.parametrize("incidents", CASES.values(), ids=CASES.keys())
def test_rows_replaced_as_read_are_the_rows_the_upsert_writes(
    incidents: list[Incident], state_db: str
) -> None:
    """An incident whose row was read in the transaction is replaced by an UPDATE; any other
    is inserted or replaced by the upsert. Both write the same row."""
    now = T0 + 10 * MINUTE
    with Store(state_db) as store:
        written(store, incidents, T0, one_by_one=False)
        with store.transaction() as unit:
            unit.write_incidents(incidents, now, unit.records())
        replaced = rows(state_db)
        written(store, incidents, now, one_by_one=False)  # not read: the upsert
        assert rows(state_db) == replaced
        assert {i.key: store.incident(i.key) for i in incidents} == {
            i.key: as_stored(i) for i in incidents
        }


def test_a_thread_set_after_the_read_is_kept_by_the_replacing_write(state_db: str) -> None:
    """The thread columns are the truth: a record read before its thread was set, written back
    in the same episode, keeps the thread; written in a new episode, drops it."""
    firing = alike(FIRING)[0]
    reopened = replace(firing, opened_at=T0 + 5 * MINUTE)
    with Store(state_db) as store:
        for incident, kept in ((firing, "1.1"), (reopened, None)):
            written(store, [firing], T0, one_by_one=False)
            with store.transaction() as unit:
                read = unit.records()
                assert unit.set_thread(firing.key, firing.onset, "C1", "1.1", T0 + MINUTE)
                unit.write_incidents([incident], T0 + 2 * MINUTE, read)
            stored = store.incident(firing.key)
            assert stored is not None and stored.thread_ts == kept


def test_a_storms_opening_rows_are_the_rows_written_alone(state_db: str) -> None:
    now = T0 + MINUTE
    with Store(state_db) as store:
        opened = storm(store, 120)
        assert len(opened) == 121  # the members and their group
        together = rows(state_db)
        written(store, opened, now, one_by_one=True)
        assert rows(state_db) == together
        assert {i.key: store.incident(i.key) for i in opened} == {
            i.key: as_stored(i) for i in opened
        }


def test_a_chunk_of_members_alike_serializes_one_record_per_shape() -> None:
    chunk = stored_incidents._Rows(T0)
    for incident in alike(FIRING) * 100 + alike(PAGED):
        chunk.add(incident)
    assert chunk.made == 2
    assert len(chunk.rows) == 101 * len(KEYS)
