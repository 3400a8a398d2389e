"""Every table of the store, declared once on one MetaData, and the schema version.

Migrations compare a store with all of this metadata (store/migrations.py): one module holds it,
so whichever part of the program opens a store checks it against the whole schema (a partial one
would look like another schema and migrate the store back and forth). A column added to an
existing table is nullable or has a server default, so an older store upgrades in place.

Timestamps are stored as text (`ts`): UTC, one width, so text order is time order.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

metadata = sa.MetaData()

# 0: main before versions (c4597d7); 1: episode, resolved_at and the thread in columns;
# 2: the brief (fingerprint, counters, onset, last notified, acted, inhibition, group) in columns
# 3: PostgreSQL drops the covering brief index (its entries could pass 2,704 bytes)
# 4: the silences table (created by the upgrade, no data step)
# 5: the history tables (created by the upgrade, no data step)
# 6: the indexes on state alone and on source dropped (a storm's opening rewrote them per row);
#    the open incidents' signals moved out of their records into incident_texts
# 7: SQLite prunes by a partial index of the resolved rows, not by (state, resolved_at)
# 8: outbox.sent_at and destinations.failing_since; the outbox status `withdrawn` (a page whose
#    incident resolved before its pager took it), which code of 7 would read as a page delivered
# 9: an incident's texts row holds its signal without the key (the row's own), and a message's
#    copy of its record leaves out a group's members: code of 8 cannot read a signal without key
# 10: a texts row may hold its signal's recipe (core.recipes: an Alertmanager alert's texts are
#    rendered when read), which code of 9 would read as a signal without links or evidence
SCHEMA_VERSION = 10
# The oldest schema whose code may still use a store of this one: a rolling deploy across hosts
# keeps the workers not yet upgraded running. Raise it to SCHEMA_VERSION when a change is more
# than what older code ignores (a new table, a nullable column, an index it does not rely on).
COMPATIBLE_FROM = 10


def ts(moment: datetime) -> str:
    """UTC, always with microseconds: one width, so text order is time order in any collation
    (without them, an ICU collation puts "10:00:00.5+00:00" before "10:00:00+00:00")."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def delete_at_most(
    conn: sa.Connection, table: sa.Table, old: sa.ColumnElement[bool], batch: int
) -> int:
    """Delete at most `batch` rows of `table` matching `old` (by its primary key); how many."""
    (key,) = table.primary_key.columns
    doomed = sa.select(key).where(old).limit(batch)
    return conn.execute(sa.delete(table).where(key.in_(doomed))).rowcount


# incidents (store/incidents.py) -------------------------------------------------------------
# the brief (core.incidents.Brief) in columns: what a run reads of an open incident
BRIEF_COLUMNS = (
    "fingerprint",
    "failures",
    "successes",
    "onset",
    "notified_at",
    "acted",
    "inhibited_by",
    "grouped_in",
)

# a resolved incident's row, as SQL with its constant (SQLite uses a partial index only for a
# query whose WHERE has the index's own terms, not a bound parameter)
RESOLVED_ROW = "state = 'resolved'"

incidents_table = sa.Table(
    "incidents",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    # no index of their own: open incidents are found by the indexes below that begin with the
    # state, and a storm's opening changes the state of every row it writes
    sa.Column("source", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("updated_at", sa.String, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    # schema 1: the episode (Incident.episode), for pruning, and the Slack thread in columns
    sa.Column("episode", sa.String),
    sa.Column("resolved_at", sa.String),
    sa.Column("thread_channel", sa.String),
    sa.Column("thread_ts", sa.String),
    # schema 2: what the engine compares for a steady failure (core.incidents.Brief), so that a
    # run reads these columns, not the record, of an incident that stays as it is
    sa.Column("fingerprint", sa.String),
    sa.Column("failures", sa.Integer),
    sa.Column("successes", sa.Integer),
    sa.Column("onset", sa.String),
    sa.Column("notified_at", sa.String),
    sa.Column("acted", sa.Boolean),
    sa.Column("inhibited_by", sa.String),
    sa.Column("grouped_in", sa.String),
    # PostgreSQL reads the open incidents by it, and prunes by it
    sa.Index("ix_incidents_state_resolved_at", "state", "resolved_at").ddl_if(dialect="postgresql"),
    # SQLite prunes by this one (it reads the open incidents by the brief index below): an
    # open incident has no entry, so a storm's opening (pending to firing) moves none
    # (the state first too: the planner then prefers it to the brief index's state)
    sa.Index(
        "ix_incidents_resolved", "state", "resolved_at", sqlite_where=sa.text(RESOLVED_ROW)
    ).ddl_if(dialect="sqlite"),
    # SQLite: covering the read of the open incidents' briefs, so the row itself (its `data`
    # spans overflow pages before the brief columns) is not visited. Not on PostgreSQL: an index
    # entry is limited to 2,704 bytes there, and key, inhibited_by and grouped_in are three keys
    # (long when a watch keys by every label); it reads the open rows by the state index.
    sa.Index("ix_incidents_brief", "state", "key", "source", *BRIEF_COLUMNS).ddl_if(
        dialect="sqlite"
    ),
)

# an incident's signal (JSON), out of its record: a storm's opening rewrites every record and
# keeps the texts of most (store/incidents.py), and rows of ~1 KB instead of ~2.8 KB are a third
# of the pages to write. A record without a row here holds its signal (written before schema 6).
texts_table = sa.Table(
    "incident_texts",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("signal", sa.Text, nullable=False),
)

# small per-source state: cursors, first-seen times (store/kv.py) -----------------------------
values_table = sa.Table(
    "source_values",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# the outbox and the delivery state of each destination (store/outbox.py) ---------------------
outbox_table = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("notification_id", sa.String, nullable=False, unique=True),
    sa.Column("channel", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("incident_key", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False, index=True),  # queued|sent|dead|withdrawn
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("next_attempt_at", sa.String, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("receipt", sa.Text),
    sa.Column("data", sa.Text, nullable=False),
    # claims (added after the first release: nullable or with a server default)
    sa.Column("claimed_by", sa.String, nullable=True),
    sa.Column("lease_until", sa.String, nullable=True),
    sa.Column("errors", sa.Integer, nullable=False, server_default="0"),  # unexpected failures
    # the claim took over from a drainer that may have sent it (its lease expired), or the last
    # attempt may have reached the destination (a timeout): look there before sending again
    sa.Column("in_doubt", sa.Boolean, nullable=True),
    sa.Column("sent_at", sa.String, nullable=True),  # when it was sent (NULL: before it was kept)
    sa.Index("ix_outbox_lane", "status", "channel", "id"),
    sa.Index("ix_outbox_incident", "incident_key", "channel", "status", "id"),
    sa.Index("ix_outbox_status_created_at", "status", "created_at"),  # pruning
)
destinations_table = sa.Table(
    "destinations",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("blocked_until", sa.String, nullable=True),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("updated_at", sa.String, nullable=True),
    # since when it has failed, its failures counted in a row (NULL: it is not failing)
    sa.Column("failing_since", sa.String, nullable=True),
)

# the operator actions trail (store/actions.py) -----------------------------------------------
actions_table = sa.Table(
    "actions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.String, nullable=False, index=True),
    sa.Column("incident_key", sa.String, nullable=False, index=True),
    sa.Column("onset", sa.String),  # which failure episode (None: no such incident)
    # Incident.episode (a source may report the same onset again); None: written before it was
    sa.Column("episode", sa.String),
    sa.Column("action", sa.String, nullable=False),  # ack | silence | unsilence | snooze | ...
    sa.Column("actor", sa.String, nullable=False),  # a Slack user id, a PagerDuty user, $USER
    sa.Column("via", sa.String, nullable=False),  # slack | pagerduty | cli | mcp
    sa.Column("outcome", sa.String, nullable=False),  # done | refused: why
    sa.Column("detail", sa.Text, nullable=False, default="{}"),  # until, silence id, channel
)

# silences by matchers (store/silences.py) ----------------------------------------------------
silences_table = sa.Table(
    "silences",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("matchers", sa.Text, nullable=False),  # JSON list of matchers as written
    sa.Column("starts_at", sa.String, nullable=False),
    sa.Column("ends_at", sa.String, nullable=False, index=True),
    sa.Column("author", sa.String, nullable=False),
    sa.Column("comment", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("expired_by", sa.String),  # ended by hand: who (ends_at is then when)
    sa.Column("alertmanager_id", sa.String),
    sa.Column("muted", sa.Integer, nullable=False, default=0),  # incidents it has muted
    sa.Column("last_muted_at", sa.String),
)

# requests already seen, for replay protection (store/replay.py) ------------------------------
replays_table = sa.Table(
    "replays",
    metadata,
    sa.Column("key", sa.String, primary_key=True),  # "slack:v0=…", "pagerduty:<event id>"
    sa.Column("expires_at", sa.String, nullable=False, index=True),
)

# what each run observed, kept for replay (store/history.py) ----------------------------------
changes_table = sa.Table(
    "history_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.String, nullable=False, index=True),
    sa.Column("stream", sa.String, nullable=False),
    sa.Column("key", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),  # core.history.Status
    sa.Column("signal", sa.Text),  # JSON of core.history.signal_record; NULL when unobserved
)
keys_table = sa.Table(
    "history_keys",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("stream", sa.String, nullable=False, index=True),
    sa.Column("signature", sa.String, nullable=False),  # core.history.signature, or "unobserved"
)
runs_table = sa.Table(
    "history_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("stream", sa.String, nullable=False, index=True),
    sa.Column("first_at", sa.String, nullable=False),
    sa.Column("last_at", sa.String, nullable=False, index=True),
    sa.Column("every_us", sa.BigInteger, nullable=False),  # 0 while the segment is one run
    sa.Column("runs", sa.Integer, nullable=False),
    sa.Column("vanished", sa.Text, nullable=False),  # JSON {source: reason}
)
