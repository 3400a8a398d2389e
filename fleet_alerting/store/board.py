"""The incident board's read: the first open incidents in board order, and how many are open per
severity — one statement, whatever the number of open incidents.

The severity is not a column; it is read from each open record's JSON by the database (SQLite
`json_extract`, PostgreSQL `->>`), and only the rows shown are parsed in Python: 50,000 open
incidents cost the database one pass over them, not 50,000 parsed records (bench/README.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from fleet_alerting.core.board import SEVERITY_ORDER
from fleet_alerting.core.incidents import OPEN_STATES, Incident
from fleet_alerting.store.incidents import INCIDENT_COLUMNS, WITH_TEXTS, row_incident
from fleet_alerting.store.tables import incidents_table

if TYPE_CHECKING:
    from fleet_alerting.store.database import Store

OTHER = "other"  # a severity this code does not know


def open_incidents(store: Store, limit: int) -> tuple[list[Incident], dict[str, int]]:
    """The first `limit` open incidents (firing or paged), critical first then the oldest onset,
    and the count of all open ones per severity (OTHER for one not known here)."""
    with store.read() as conn:
        rows = conn.execute(_query(store.dialect, limit)).all()
    counts = {s.value: 0 for s in SEVERITY_ORDER} | {OTHER: 0}
    if rows:
        *_, total = rows[0]
        counts.update(zip(counts, rows[0][len(INCIDENT_COLUMNS) : -1], strict=False))
        counts[OTHER] = total - sum(counts[s.value] for s in SEVERITY_ORDER)
    return [row_incident(row[: len(INCIDENT_COLUMNS)]) for row in rows], counts


def _query(dialect: str, limit: int) -> sa.Select[Any]:
    row = incidents_table.c
    opened = (
        sa.select(row.key, row.onset, _severity(dialect).label("severity"))
        .where(row.state.in_([s.value for s in OPEN_STATES]))
        .cte("opened")
        .prefix_with("MATERIALIZED")  # the severity read from each record once
    )
    severity = opened.c.severity
    rank = sa.case(
        *((severity == s.value, i) for i, s in enumerate(SEVERITY_ORDER)), else_=len(SEVERITY_ORDER)
    )
    everything = sa.over(sa.func.count())
    ranked = sa.select(
        opened.c.key,
        sa.over(sa.func.row_number(), order_by=(rank, opened.c.onset, opened.c.key)).label("at"),
        *(
            sa.over(sa.func.sum(sa.case((severity == s.value, 1), else_=0))).label(s.value)
            for s in SEVERITY_ORDER
        ),
        everything.label("total"),
    ).cte("ranked")
    return (
        sa.select(*INCIDENT_COLUMNS, *(ranked.c[s.value] for s in SEVERITY_ORDER), ranked.c.total)
        .select_from(ranked.join(WITH_TEXTS, incidents_table.c.key == ranked.c.key))
        .where(ranked.c.at <= limit)
        .order_by(ranked.c.at)
    )


def _severity(dialect: str) -> sa.ColumnElement[str]:
    """The severity in an incident's JSON (`data` is text on both backends)."""
    data = incidents_table.c.data
    if dialect == "postgresql":
        return sa.cast(data, postgresql.JSON)["severity"].as_string()
    return sa.type_coerce(data, sa.JSON)["severity"].as_string()
