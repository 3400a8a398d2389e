"""The outbox and the delivery state of each destination, in the store's database (SQLite or
PostgreSQL).

A queued notification is *claimed* before it is sent: one compare-and-set UPDATE sets
`claimed_by` and `lease_until` only where the row is still queued and no live lease holds it, and
only the drainer whose UPDATE changed the row (`rowcount == 1`) sends it. Marking it sent, retrying
or dead checks the claim too, so a drainer whose lease expired (it hung, another took over) cannot
overwrite what the new holder did. On PostgreSQL the candidate is picked `FOR UPDATE SKIP
LOCKED`, so concurrent drainers take different rows instead of queueing on one. A drainer killed
while holding a claim leaves a lease that expires; the next drainer's claim of that message says
it is *in doubt* (`claimed_by` was still set: the killed drainer may have sent it), and so does one
whose last attempt may have reached the destination (a timeout). A destination that can be asked
(Slack's Web API) is asked before the message is sent again; the others get it again (the
at-least-once window, see README).

`destinations` holds one row per channel (slack, slack_mirror, pagerduty, oncall): until when it
is backing off (Retry-After, consecutive failures) and why. Every drainer, in every process and
every run, reads it before it sends.

The tables are declared in store/tables.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter

from fleet_alerting.core.channels import SLACK_CHANNELS, pager_of
from fleet_alerting.core.clock import CLOCK_SKEW
from fleet_alerting.core.escalation import current_pages
from fleet_alerting.core.incidents import Incident, Kind, Notification, State
from fleet_alerting.store import backend, incidents
from fleet_alerting.store.tables import delete_at_most, destinations_table, outbox_table, ts

_notification_json = TypeAdapter(Notification)
# a group's members, left out of each message's copy of its record (schema 9): no message reads
# them, and a storm's group lists thousands, twice (the group's own record keeps them)
_UNLISTED = {"incident": {"members", "members_told"}}


def _data(n: Notification) -> str:
    """A notification as its outbox row's `data`."""
    return _notification_json.dump_json(n, exclude=_UNLISTED).decode()


# Compatibility with rows queued before `one_off` existed: these sources' messages were one-off
# then too (a fleet event's report, a notify-test message), so such a row reads as one.
ONE_OFF_SOURCES_BEFORE_THE_FLAG = frozenset({"fleet-events", "notify-test"})

_DOUBT = sa.or_(outbox_table.c.claimed_by.isnot(None), outbox_table.c.in_doubt.is_(True))
# the key space of PostgreSQL's per-incident transaction locks (b"page" as a 32-bit integer;
# two-key advisory locks never meet the store's one-key write lock)
INCIDENT_LOCKS = int.from_bytes(b"page", "big")
# no failed attempt puts a message's next one further off (delivery's backoff stops there)
LONGEST_RETRY = timedelta(minutes=30)
# a status beside queued, sent and dead: a page whose episode resolved before its pager took it,
# and what queued behind it would only have followed it (`Outbox.withdraw_resolved_page`)
WITHDRAWN = "withdrawn"
DROPPED_BY = "dropped by "  # the start of the reason of a message an operator dropped


def dropped(error: str | None) -> bool:
    """A dead letter an operator chose (`outbox drop`), not one a destination refused."""
    return (error or "").startswith(DROPPED_BY)


def _due(now: datetime) -> Any:
    """Due: its next attempt has come, or lies further ahead than any retry is put off — this
    machine's clock went back after it was set, and it would wait for the clock to catch up.
    (CLOCK_SKEW: another drainer read its clock after this one and set it meanwhile.)"""
    t = outbox_table
    stale = ts(now + LONGEST_RETRY + CLOCK_SKEW)
    return sa.or_(t.c.next_attempt_at <= ts(now), t.c.next_attempt_at > stale)


def _set_ahead(stamp: str | None, now: datetime) -> bool:
    """Stamped when the clock read later than `now` by more than clocks differ: it went back."""
    return stamp is not None and datetime.fromisoformat(stamp) > now + CLOCK_SKEW


def _lapsed(now: datetime, longest: timedelta | None = None) -> Any:
    """Under no live lease: none, run out, or further ahead than any claim lasts (`longest`, and
    CLOCK_SKEW: another drainer read its clock after this one and claimed meanwhile): taken
    before the clock went back, by a drainer that did not finish it."""
    t = outbox_table
    free = [t.c.lease_until.is_(None), t.c.lease_until < ts(now)]
    if longest is not None:
        free.append(t.c.lease_until > ts(now + longest + CLOCK_SKEW))
    return sa.or_(*free)


def _queue(dialect: str) -> Any:
    insert = backend.insert(outbox_table, dialect).on_conflict_do_nothing()
    # psycopg reports no rowcount for many rows: count the ids of the rows inserted
    return insert.returning(outbox_table.c.id) if dialect == "postgresql" else insert


def queue(conn: sa.Connection, notifications: Sequence[Notification], now: datetime) -> int:
    """Queue notifications inside the caller's transaction (the one that records the incident
    changes causing them); a notification id already queued is ignored. Returns how many."""
    if not notifications:
        return 0
    rows = [
        {
            "notification_id": n.id,
            "channel": n.channel,
            "kind": n.kind,
            "incident_key": n.incident.key,
            "status": "queued",
            "attempts": 0,
            "created_at": ts(now),
            "next_attempt_at": ts(now),
            "data": _data(n),
        }
        for n in notifications
    ]
    result = conn.execute(backend.cached(_queue, conn.dialect.name), rows)
    return len(result.all()) if result.returns_rows else result.rowcount


def prune(
    conn: sa.Connection, statuses: Sequence[str], now: datetime, kept: timedelta, batch: int
) -> int:
    """Delete at most `batch` messages of `statuses` (sent and withdrawn, or dead) created longer
    than `kept` ago."""
    out = outbox_table.c
    old = sa.and_(out.status.in_(list(statuses)), out.created_at < ts(now - kept))
    return delete_at_most(conn, outbox_table, old, batch)


@dataclass(frozen=True)
class OutboxItem:
    id: int
    notification: Notification
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None
    receipt: str | None
    errors: int = 0
    in_doubt: bool = False  # an earlier attempt may have delivered it (see `claim_next`)
    sent_at: datetime | None = None  # None: not sent, or sent before this was kept


@dataclass(frozen=True)
class Page:
    channel: str
    status: str
    last_error: str | None
    next_attempt_at: datetime
    claimed_by: str | None = None
    lease_until: datetime | None = None
    id: int = 0  # its outbox row
    created_at: datetime | None = None  # owed since (a requeue starts it again)

    def held_by_other(self, owner: str, now: datetime) -> bool:
        """Under a live claim of another drainer (which sends it, or died holding it)."""
        live = self.lease_until is not None and self.lease_until > now
        return live and self.claimed_by not in (None, owner)


@dataclass(frozen=True)
class Destination:
    name: str
    blocked_until: datetime | None = None
    failures: int = 0
    last_error: str | None = None
    failing_since: datetime | None = None  # its first failure of those in a row
    troubled_at: datetime | None = None  # when a failure or Retry-After last set its rest


@dataclass(frozen=True)
class UndeliveredPage:
    """The latest page of an incident's episode to one pager, not (yet) accepted by it."""

    incident_key: str
    onset: datetime  # the episode it pages for
    channel: str
    outbox_id: int
    status: str  # queued | dead
    attempts: int
    next_attempt_at: datetime
    error: str | None


def _latest_paged(incident_key: str, channels: Sequence[str], before: int | None) -> Any:
    """The ids of an incident's latest `paged` message to each channel (before row `before`)."""
    t = outbox_table
    earlier = [t.c.id < before] if before is not None else []
    return (
        sa.select(sa.func.max(t.c.id))
        .where(
            t.c.incident_key == incident_key,
            t.c.kind == "paged",
            t.c.channel.in_(list(channels)),
            *earlier,
        )
        .group_by(t.c.channel)
    )


def _notification(data: str) -> Notification:
    n = _notification_json.validate_json(data)
    if n.one_off or n.incident.source not in ONE_OFF_SOURCES_BEFORE_THE_FLAG:
        return n
    return n if "one_off" in json.loads(data) else replace(n, one_off=True)


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def _item(row: Any) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        notification=_notification(row["data"]),
        status=row["status"],
        attempts=row["attempts"],
        created_at=datetime.fromisoformat(row["created_at"]),
        next_attempt_at=datetime.fromisoformat(row["next_attempt_at"]),
        last_error=row["last_error"],
        receipt=row["receipt"],
        errors=row["errors"] or 0,
        in_doubt=bool(row["in_doubt"]),
        sent_at=_at(row["sent_at"]) if row["sent_at"] else None,
    )


# what a Slack "paged" message told PAGING DELAYED becomes once all its pages ended (delivery
# decides): the message as told, its pages, and its episode's incident as stored (None: unknown)
TellEnded = Callable[[Notification, list[Page], Incident | None], Notification | None]


def pagers_waited_for(n: Notification) -> list[str]:
    """The pagers a Slack "paged" message waits for: those of the step its incident is on."""
    return list(current_pages(n.incident) or n.incident.paged_via)


def _pages_before(
    conn: sa.Connection, incident_key: str, pagers: Sequence[str], before: int
) -> list[Page]:
    t = outbox_table
    columns = (
        t.c.channel, t.c.status, t.c.last_error, t.c.next_attempt_at, t.c.claimed_by,
        t.c.lease_until, t.c.id, t.c.created_at,
    )  # fmt: skip
    query = sa.select(*columns).where(t.c.id.in_(_latest_paged(incident_key, pagers, before)))
    return [
        Page(c, s, e, _at(n), by, _at(u) if u else None, i, _at(created))
        for c, s, e, n, by, u, i, created in conn.execute(query).all()
    ]


def _tell_delayed(
    conn: sa.Connection, incident_key: str, page_id: int, tell: TellEnded, now: datetime
) -> None:
    """The incident's Slack "paged" messages that went out saying PAGING DELAYED while page
    `page_id` was owed: told how paging ended once all their pages did — only the latest one
    waiting for that page in each Slack channel and episode (a requeue retells the message:
    the thread hears the end once)."""
    t = outbox_table
    told_delayed = sa.select(t.c.id, t.c.data).where(
        t.c.incident_key == incident_key,
        t.c.channel.in_(sorted(SLACK_CHANNELS)),
        t.c.status == "sent",
        t.c.kind == "paged",
        t.c.id > page_id,
        # only the rows whose stored notification has a paging_delayed that is not empty
        t.c.data.contains('"paging_delayed":"', autoescape=True),
        ~t.c.data.contains('"paging_delayed":""', autoescape=True),
    )
    told_already: set[tuple[str, str]] = set()
    for row_id, data in conn.execute(told_delayed.order_by(t.c.id.desc())).all():
        told = _notification(data)
        lane = (told.channel, told.incident.episode)
        if lane not in told_already and _tell_ended(conn, row_id, told, tell, now, page_id):
            told_already.add(lane)


def _tell_ended(
    conn: sa.Connection, row_id: int, told: Notification, tell: TellEnded, now: datetime,
    page_id: int | None = None,
) -> bool:  # fmt: skip
    """Queue what `tell` makes of `told` (outbox row `row_id`) once none of its pages is owed
    (and, given `page_id`, that page is one of them: else False). Its id is the message's own,
    with PAGING_ENDED: however many drainers see the pages end, it is queued once."""
    pages = _pages_before(conn, told.incident.key, pagers_waited_for(told), row_id)
    if page_id is not None and page_id not in {p.id for p in pages}:
        return False  # another episode's (or another step's) page
    if not pages or any(p.status == "queued" for p in pages):
        return True
    follow_up = tell(told, pages, _episode(conn, told.incident, row_id))
    if follow_up is not None:
        queue(conn, [follow_up], now)
    return True


def _episode(conn: sa.Connection, incident: Incident, after: int) -> Incident | None:
    """`incident`'s episode as stored now: the incident's record while it is that episode, else
    (its key opened again) the episode's `resolved` message queued after row `after`."""
    stored = incidents.load(conn, incident.key)
    if stored is not None and stored.episode == incident.episode:
        return stored
    t = outbox_table
    resolved = sa.select(t.c.data).where(
        t.c.incident_key == incident.key, t.c.kind == "resolved", t.c.id > after
    )
    for (data,) in conn.execute(resolved.order_by(t.c.id)).all():
        told = _notification(data).incident
        if told.episode == incident.episode:
            return told
    return None


def _queued_page(row: Any) -> OutboxItem | None:
    """A queued pager's `paged` row, readable, of an incident (None: anything else — a
    one-off's trigger and resolve, `notify-test`'s, are both meant to go)."""
    if row is None or row["status"] != "queued" or row["kind"] != Kind.paged:
        return None
    if pager_of(row["channel"]) is None:
        return None
    try:
        page = _item(row)
    except ValueError:
        return None  # its lane parks it
    return None if page.notification.one_off else page


def _resolve_behind(conn: sa.Connection, page: OutboxItem) -> OutboxItem | None:
    """The resolve of `page`'s episode (its incident resolved, not a re-page's resolve) queued
    behind it in its lane."""
    t, n = outbox_table, page.notification
    resolves = sa.select(t).where(
        t.c.incident_key == n.incident.key,
        t.c.channel == n.channel,
        t.c.kind == "resolved",
        t.c.status == "queued",
        t.c.id > page.id,
    )
    for row in conn.execute(resolves.order_by(t.c.id)).mappings():
        try:
            resolve = _item(row)
        except ValueError:
            continue  # unreadable: its lane parks it
        told = resolve.notification.incident
        if told.episode == n.incident.episode and told.state == State.resolved:
            return resolve
    return None


def _reached(conn: sa.Connection, page: OutboxItem, resolve: OutboxItem) -> bool:
    """Another page of `page`'s episode to its pager, queued before the resolve, went or may
    have (a step paging the same pager again, a page requeued after a re-page): PagerDuty has
    an alert only the resolve closes."""
    t, n = outbox_table, page.notification
    went = sa.select(t.c.data).where(
        t.c.incident_key == n.incident.key, t.c.channel == n.channel, t.c.kind == "paged",
        t.c.id != page.id, t.c.id < resolve.id,
        sa.or_(t.c.status == "sent", t.c.in_doubt.is_(True)),
    )  # fmt: skip
    return any(
        _notification(data).incident.episode == n.incident.episode
        for (data,) in conn.execute(went).all()
    )


class Outbox:
    """Outbox queries on the store's database, through the store's autocommit engine: every
    statement is its own transaction, so a read takes no lock and a write (claim, mark) holds
    the write lock (SQLite) or its row's lock (PostgreSQL) for one UPDATE; many lanes in many
    processes rarely wait for each other."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.dialect = engine.dialect.name

    def items(self, statuses: Iterable[str] = ("queued", "dead")) -> list[OutboxItem]:
        t = outbox_table
        query = sa.select(t).where(t.c.status.in_(list(statuses))).order_by(t.c.id)
        with self.engine.begin() as conn:
            return [_item(row) for row in conn.execute(query).mappings()]

    def sent(self, start: datetime, end: datetime) -> Iterator[Notification]:
        """The messages a destination accepted, of those queued from `start` to `end` (what-if
        puts what was sent beside its replay), one at a time: a noisy month is hundreds of MB
        of records, and what-if keeps a few fields of each."""
        t = outbox_table
        period = [t.c.created_at >= ts(start), t.c.created_at <= ts(end)]
        query = sa.select(t.c.data).where(t.c.status == "sent", *period).order_by(t.c.id)
        with self.engine.begin() as conn:
            for data in conn.execute(query).scalars():
                yield _notification(data)

    def channels(self) -> list[str]:
        """Channels that have queued messages (each is one lane)."""
        t = outbox_table
        query = sa.select(t.c.channel).where(t.c.status == "queued").distinct()
        with self.engine.begin() as conn:
            return sorted(conn.execute(query).scalars())

    def claim_next(
        self,
        channel: str,
        owner: str,
        now: datetime,
        lease: timedelta,
        exclude: Iterable[int] = (),
        longest: timedelta | None = None,
    ) -> OutboxItem | None:
        """Claim the lane's oldest claimable message in one UPDATE … RETURNING: due, under no
        live lease, not behind an earlier queued message of its incident, not in `exclude`.
        `longest`: the longest claim a drainer of the lane takes (a send extends `lease`).
        On SQLite the subquery runs under the write lock, so two drainers never get the same
        row; on PostgreSQL it skips rows another drainer is claiming (`FOR UPDATE SKIP
        LOCKED`), and the outer WHERE re-checks the claim, so they do not collide either.

        The claim is *in doubt* when it takes over a lease that expired (`claimed_by` still set:
        that drainer died or hung, maybe after sending) or the last attempt may have arrived;
        SET sees the row as it was, so this is decided in the same UPDATE."""
        t = outbox_table
        earlier = t.alias("earlier")
        free = _lapsed(now, max(lease, longest or lease))
        behind = (
            sa.select(earlier.c.id)
            .where(
                earlier.c.incident_key == t.c.incident_key,
                earlier.c.channel == t.c.channel,
                earlier.c.status == "queued",
                earlier.c.id < t.c.id,
            )
            .exists()
        )
        candidate = (
            sa.select(t.c.id)
            .where(
                t.c.status == "queued",
                t.c.channel == channel,
                _due(now),
                free,
                ~behind,
                t.c.id.notin_(list(exclude)),
            )
            .order_by(t.c.id)
            .limit(1)
        )
        if self.dialect == "postgresql":
            candidate = candidate.with_for_update(skip_locked=True)
        query = (
            sa.update(t)
            .where(t.c.id == candidate.scalar_subquery(), t.c.status == "queued", free)
            .values(claimed_by=owner, lease_until=ts(now + lease), in_doubt=_DOUBT)
            .returning(*t.c)
        )
        while True:
            with self.engine.begin() as conn:
                row = conn.execute(query).mappings().first()
            if row is None:
                return None
            try:
                return _item(row)
            except ValueError as exc:  # a row no version of us can read: park it, take the next
                reason = f"unreadable notification: {type(exc).__name__}"
                self.mark_dead(row["id"], owner, row["attempts"], reason)

    def claim(self, item_id: int, owner: str, now: datetime, lease: timedelta) -> bool:
        """Compare-and-set: only one drainer wins a queued message whose lease is free."""
        t = outbox_table
        with self.engine.begin() as conn:
            result = conn.execute(
                sa.update(t)
                .where(t.c.id == item_id, t.c.status == "queued", _lapsed(now))
                .values(claimed_by=owner, lease_until=ts(now + lease), in_doubt=_DOUBT)
            )
        return result.rowcount == 1

    def held(self, channel: str, now: datetime, exclude: Iterable[int] = ()) -> list[OutboxItem]:
        """The lane's due messages nobody holds a lease on (waiting behind an earlier one, or
        for a destination that backs off), except `exclude`."""
        t = outbox_table
        query = (
            sa.select(t)
            .where(t.c.status == "queued", t.c.channel == channel, _due(now), _lapsed(now))
            .order_by(t.c.id)
        )
        skipped = set(exclude)
        with self.engine.begin() as conn:
            rows = [r for r in conn.execute(query).mappings() if r["id"] not in skipped]
        return [_item(row) for row in rows]

    def pages_before(self, incident_key: str, pagers: Sequence[str], before: int) -> list[Page]:
        """The latest `paged` message of the incident to each pager, queued before row `before`
        (status only: this is polled while a Slack "paged" message waits for the pager)."""
        with self.engine.begin() as conn:
            return _pages_before(conn, incident_key, pagers, before)

    def due_ahead(self, page: Page) -> datetime | None:
        """The latest next attempt of the messages of `page`'s incident queued on its channel
        before it: it is sent after them, so no earlier (None: none ahead of it)."""
        t, own = outbox_table, outbox_table.alias("own")
        query = sa.select(sa.func.max(t.c.next_attempt_at)).where(
            t.c.incident_key
            == sa.select(own.c.incident_key).where(own.c.id == page.id).scalar_subquery(),
            t.c.channel == page.channel,
            t.c.status == "queued",
            t.c.id < page.id,
        )
        with self.engine.begin() as conn:
            latest = conn.execute(query).scalar()
        return _at(latest) if latest else None

    def told_of_page(self, page: OutboxItem) -> list[OutboxItem]:
        """The latest Slack "paged" message to each Slack channel that waited for `page`, a
        pager's `paged` row (its pages, as `page_outcome` looks them up, include it). Not a
        PAGING DELAYED message's follow-up: it waits for no page (the message it followed did)."""
        t, key = outbox_table, page.notification.incident.key
        later = sa.select(t).where(
            t.c.incident_key == key,
            t.c.kind == "paged",
            t.c.channel.in_(sorted(SLACK_CHANNELS)),
            t.c.id > page.id,
        )
        found: dict[str, OutboxItem] = {}
        with self.engine.begin() as conn:
            for row in conn.execute(later.order_by(t.c.id.desc())).mappings().all():
                told = _item(row)
                pagers = pagers_waited_for(told.notification)
                if told.notification.channel in found or told.notification.paging_ended:
                    continue
                if page.notification.channel not in pagers:
                    continue
                if page.id in {p.id for p in _pages_before(conn, key, pagers, told.id)}:
                    found[told.notification.channel] = told
        return list(found.values())

    def mark_sent(
        self, item_id: int, owner: str | None, attempts: int, receipt: str,
        now: datetime | None = None,
    ) -> bool:  # fmt: skip
        """`now`: when it was sent (`outbox --sent` shows it)."""
        sent = {"status": "sent", "attempts": attempts, "receipt": receipt, "last_error": None}
        return self._finish(item_id, owner, sent_at=ts(now) if now else None, **sent)

    def mark_delayed_sent(
        self, item_id: int, owner: str | None, attempts: int, receipt: str, told: Notification,
        tell: TellEnded, now: datetime,
    ) -> bool:  # fmt: skip
        """A Slack "paged" message sent saying PAGING DELAYED, stored as `told` (as it went
        out); if its pages ended before this (another lane recorded it), what `tell` makes of
        that is queued in the same transaction."""
        data = _data(told)
        with self._transaction(told.incident.key) as conn:
            sent = {
                "status": "sent", "attempts": attempts, "receipt": receipt, "data": data,
                "sent_at": ts(now),
            }  # fmt: skip
            if not self._finish_in(conn, item_id, owner, last_error=None, **sent):
                return False
            _tell_ended(conn, item_id, told, tell, now)
            return True

    def end_page(
        self, item_id: int, owner: str | None, page: Notification, tell: TellEnded,
        now: datetime, **values: Any,
    ) -> bool:  # fmt: skip
        """A page (`page`) recorded as ended (`values`: sent, or dead) and, in the same
        transaction, what `tell` makes of each Slack "paged" message of its incident that went
        out saying PAGING DELAYED while this page was owed, once all its pages ended: two
        drainers, or a drainer killed in between, can neither lose nor double that message."""
        if values.get("status") == "sent":
            values["sent_at"] = ts(now)
        with self._transaction(page.incident.key) as conn:
            if not self._finish_in(conn, item_id, owner, **values):
                return False
            _tell_delayed(conn, page.incident.key, item_id, tell, now)
            return True

    def episode(self, incident: Incident, after: int) -> Incident | None:
        """`incident`'s episode as stored now (`_episode`)."""
        with self.engine.begin() as conn:
            return _episode(conn, incident, after)

    def withdraw_resolved_page(
        self, page_id: int, owner: str | None, tell: TellEnded, now: datetime
    ) -> list[OutboxItem]:
        """A queued page, never accepted, that `owner` claimed or nobody holds (owner None:
        only one nobody holds — a lane of this drainer may be sending it), with its episode's
        resolve queued behind it in its lane: nobody is woken for an incident that is over.
        The page and what queued between them (acknowledges, a re-page) are withdrawn — and
        the resolve too, unless one of them may have reached the pager (in doubt) or another
        page of the episode to it went (`_reached`): it closes what that opened. One
        transaction with the follow-ups of the PAGING DELAYED messages that waited for a
        withdrawn page (`_tell_delayed`): a drainer killed anywhere loses nothing. The rows
        withdrawn (none: no such resolve, or another drainer holds the page)."""
        t = outbox_table
        with self.engine.begin() as conn:  # a read first: most pages take no write lock here
            row = conn.execute(sa.select(t).where(t.c.id == page_id)).mappings().first()
            page = _queued_page(row)
            if page is None or _resolve_behind(conn, page) is None:
                return []
        n = page.notification
        with self._transaction(n.incident.key) as conn:
            free = _lapsed(now) if owner is None else sa.or_(t.c.claimed_by == owner, _lapsed(now))
            query = sa.select(t).where(t.c.id == page_id, t.c.status == "queued", free)
            row = conn.execute(query.with_for_update()).mappings().first()  # PostgreSQL: no claim
            page = _queued_page(row)  # meanwhile (SQLite: the write lock holds them off)
            resolve = None if page is None else _resolve_behind(conn, page)
            if row is None or page is None or resolve is None:
                return []
            # a claim that lapsed: its drainer may have sent the page before it died
            doubt = page.in_doubt or row["claimed_by"] not in (None, owner)
            not_paged = f"not paged: resolved before {n.channel} answered"
            self._finish_in(conn, page.id, None, status=WITHDRAWN, last_error=not_paged)
            between = sa.and_(
                t.c.incident_key == n.incident.key,
                t.c.channel == n.channel,
                t.c.status == "queued",
                t.c.id > page.id,
                t.c.id < resolve.id,
            )
            followed = f"not sent: its page was withdrawn ({not_paged})"
            query = sa.update(t).where(between).values(status=WITHDRAWN, last_error=followed)
            rows = [_item(row) for row in conn.execute(query.returning(*t.c)).mappings()]
            withdrawn = [replace(page, status=WITHDRAWN, last_error=not_paged), *rows]
            reached = doubt or any(item.in_doubt for item in rows) or _reached(conn, page, resolve)
            if not reached:
                never = f"not sent: no page reached {n.channel} ({not_paged})"
                self._finish_in(conn, resolve.id, None, status=WITHDRAWN, last_error=never)
                withdrawn.append(replace(resolve, status=WITHDRAWN, last_error=never))
            for item in withdrawn:
                if item.notification.kind == Kind.paged:
                    _tell_delayed(conn, n.incident.key, item.id, tell, now)
            return sorted(withdrawn, key=lambda item: item.id)

    def mark_retry(
        self,
        item_id: int,
        owner: str | None,
        attempts: int,
        next_at: datetime,
        error: str,
        errors: int | None = None,
        in_doubt: bool = False,
    ) -> bool:
        """`in_doubt`: the last attempt may have reached the destination (a timeout), so the
        next claim asks it first."""
        values: dict[str, Any] = {
            "attempts": attempts,
            "next_attempt_at": ts(next_at),
            "last_error": error,
            "in_doubt": in_doubt,
        }
        if errors is not None:
            values["errors"] = errors
        return self._finish(item_id, owner, **values)

    def mark_dead(
        self, item_id: int, owner: str | None, attempts: int, reason: str, errors: int | None = None
    ) -> bool:
        values: dict[str, Any] = {"status": "dead", "attempts": attempts, "last_error": reason}
        if errors is not None:
            values["errors"] = errors
        return self._finish(item_id, owner, **values)

    def mark_dead_with_pages_behind(
        self, item: OutboxItem, owner: str | None, attempts: int, reason: str, why_pages: str,
        tell: TellEnded, now: datetime,
    ) -> list[OutboxItem]:  # fmt: skip
        """Mark a pager's `resolved` dead and, in the same transaction (no drainer claims them in
        between), the pages of its incident queued behind it (`_pages_behind_dead`); those."""
        with self._transaction(item.notification.incident.key) as conn:
            dead = {"status": "dead", "attempts": attempts, "last_error": reason}
            if not self._finish_in(conn, item.id, owner, **dead):
                return []
            return _pages_behind_dead(conn, item, why_pages, tell, now)

    def renew(self, item_id: int, owner: str, until: datetime) -> bool:
        """Extend this drainer's claim on a message it is still sending; False if it lost it."""
        t = outbox_table
        query = (
            sa.update(t)
            .where(t.c.id == item_id, t.c.status == "queued", t.c.claimed_by == owner)
            .values(lease_until=ts(until))
        )
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount == 1

    def release(self, item_id: int, owner: str) -> bool:
        return self._finish(item_id, owner)

    @contextmanager
    def _transaction(self, incident_key: str) -> Iterator[sa.Connection]:
        """Several statements in one transaction on this autocommit engine, begun by hand, one
        at a time per incident: SQLite takes its write lock at once (as every outbox write
        does); PostgreSQL a lock on the incident's key, so a page's end and the sending of its
        PAGING DELAYED message (or another page's end) each see what the other wrote."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
            try:
                if self.dialect == "postgresql":
                    key = sa.func.hashtext(incident_key)
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(INCIDENT_LOCKS, key)))
                yield conn
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")

    def _finish(self, item_id: int, owner: str | None, **values: Any) -> bool:
        """Update a message this drainer holds, and free its lease. False if another drainer
        has taken it over meanwhile (this one's lease had expired)."""
        with self.engine.begin() as conn:
            return self._finish_in(conn, item_id, owner, **values)

    @staticmethod
    def _finish_in(conn: sa.Connection, item_id: int, owner: str | None, **values: Any) -> bool:
        t = outbox_table
        query = sa.update(t).where(t.c.id == item_id, t.c.status == "queued")
        if owner is not None:
            query = query.where(t.c.claimed_by == owner)
        result = conn.execute(query.values(claimed_by=None, lease_until=None, **values))
        return result.rowcount == 1

    # destinations ------------------------------------------------------------------------------
    def destination(self, name: str, now: datetime | None = None) -> Destination:
        """`name`'s delivery state; as of `now`, a block set when the clock read later than
        `now` (it went back since) blocks nothing: it would hold every message until the clock
        caught up."""
        d = destinations_table
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(d).where(d.c.name == name)).mappings().first()
        if row is None:
            return Destination(name)
        blocked = row["blocked_until"]
        if now is not None and _set_ahead(row["updated_at"], now):
            blocked = None
        since = row["failing_since"]
        return Destination(
            name,
            datetime.fromisoformat(blocked) if blocked else None,
            row["failures"],
            row["last_error"],
            datetime.fromisoformat(since) if since and row["failures"] else None,
            datetime.fromisoformat(row["updated_at"]) if row["updated_at"] else None,
        )

    def destination_failed(
        self, name: str, now: datetime, blocked_until: datetime, error: str
    ) -> Destination:
        """One more consecutive failure; back off until `blocked_until` (never shortening a
        longer block another drainer set)."""
        self._block(name, now, blocked_until, error, count_failure=True)
        return self.destination(name, now)

    def destination_blocked(self, name: str, now: datetime, until: datetime, error: str) -> None:
        """Retry-After from the destination: every drainer waits until then (failures unchanged)."""
        self._block(name, now, until, error, count_failure=False)

    def _block(
        self, name: str, now: datetime, until: datetime, error: str, *, count_failure: bool
    ) -> None:
        """Block `name` until `until` at the latest of this and any block already set (unless
        that one was set when the clock read later than `now`); a counted failure also adds
        one to its failures (the first of them: failing since `now`). updated_at: when the block
        was last set."""
        d = destinations_table
        insert = backend.insert(d, self.dialect).values(
            name=name, blocked_until=ts(until), failures=int(count_failure), last_error=error,
            updated_at=ts(now), failing_since=ts(now) if count_failure else None,
        )  # fmt: skip
        later = backend.greatest(
            self.dialect, sa.func.coalesce(d.c.blocked_until, ""), insert.excluded.blocked_until
        )
        stale = d.c.updated_at > ts(now + CLOCK_SKEW)
        changes = {
            "blocked_until": sa.case((stale, insert.excluded.blocked_until), else_=later),
            "last_error": insert.excluded.last_error,
            "updated_at": insert.excluded.updated_at,
        }
        if count_failure:
            changes["failures"] = d.c.failures + 1
            first = sa.or_(d.c.failures == 0, d.c.failing_since.is_(None))
            changes["failing_since"] = sa.case(
                (first, insert.excluded.failing_since), else_=d.c.failing_since
            )
        with self.engine.begin() as conn:
            conn.execute(insert.on_conflict_do_update(index_elements=["name"], set_=changes))

    def lift_rest(self, name: str, now: datetime) -> datetime | None:
        """An operator says `name` is back: it rests no more (its failures in a row, and since
        when, stay until a send goes). The rest lifted (None: it rested not)."""
        rest = self.destination(name, now).blocked_until
        if rest is None or rest <= now:
            return None
        d = destinations_table
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(d).where(d.c.name == name).values(blocked_until=None, updated_at=ts(now))
            )
        return rest

    def destination_ok(self, name: str, now: datetime) -> None:
        d = destinations_table
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(d)
                .where(d.c.name == name, sa.or_(d.c.failures > 0, d.c.blocked_until.isnot(None)))
                .values(
                    failures=0,
                    blocked_until=None,
                    last_error=None,
                    updated_at=ts(now),
                    failing_since=None,
                )
            )


# operators' hands on the outbox (`fleet-alerting outbox retry|drop|requeue`) ---------------------
def _change(outbox: Outbox, item_id: int, where: Sequence[Any], values: dict[str, Any]) -> bool:
    t = outbox_table
    with outbox.engine.begin() as conn:
        result = conn.execute(sa.update(t).where(t.c.id == item_id, *where).values(**values))
    return result.rowcount == 1


def item(outbox: Outbox, item_id: int) -> OutboxItem | None:
    t = outbox_table
    with outbox.engine.begin() as conn:
        row = conn.execute(sa.select(t).where(t.c.id == item_id)).mappings().first()
    return None if row is None else _item(row)


def undelivered_pages(outbox: Outbox) -> list[UndeliveredPage]:
    """Every incident's latest page to each pager when it is queued or a dead letter, in one
    query: few rows whatever the number of incidents (the status index finds them; a later page
    of the same incident to the same pager, found by the incident index, supersedes it)."""
    t = outbox_table
    later = t.alias("later")
    same_lane = sa.and_(later.c.incident_key == t.c.incident_key, later.c.channel == t.c.channel)
    superseded = sa.exists().where(same_lane, later.c.kind == "paged", later.c.id > t.c.id)
    columns = (
        t.c.id, t.c.incident_key, t.c.channel, t.c.status, t.c.attempts, t.c.next_attempt_at,
        t.c.last_error, t.c.data,
    )  # fmt: skip
    query = (
        sa.select(*columns)
        .where(t.c.status.in_(["queued", "dead"]), t.c.kind == "paged", ~superseded)
        .order_by(t.c.id)
    )
    with outbox.engine.begin() as conn:
        rows = conn.execute(query).all()
    return [
        UndeliveredPage(
            key, _onset(data), channel, id_, status, attempts, datetime.fromisoformat(due), error
        )
        for id_, key, channel, status, attempts, due, error, data in rows
        if pager_of(channel)
    ]


def _onset(data: str) -> datetime:
    """The onset of the incident a stored notification was made for (its episode)."""
    return datetime.fromisoformat(json.loads(data)["incident"]["onset"])


def retry_now(outbox: Outbox, item_id: int, now: datetime) -> bool:
    """A queued message nobody is sending is due now (its destination's back-off still holds).
    False if it is not queued or a drainer holds it."""
    where = [outbox_table.c.status == "queued", _lapsed(now)]
    return _change(outbox, item_id, where, {"next_attempt_at": ts(now)})


def drop(outbox: Outbox, item_id: int, now: datetime, reason: str, tell: TellEnded) -> bool:
    """A queued message nobody is sending becomes a dead letter with `reason`: it is never
    sent, and later messages of its incident to that channel are no longer held behind it. A
    dropped page ends as a refused one does (`Outbox.end_page`): what `tell` makes of its
    PAGING DELAYED messages is queued in the same transaction; a dropped pager's resolve fails
    the pages behind it as a dead resolve does. A page already dead (refused, given up on) is
    marked dropped (`_drop_dead_page`)."""
    found = item(outbox, item_id)
    if found is None:
        return False
    n, t = found.notification, outbox_table
    if found.status == "dead":
        return _drop_dead_page(outbox, found, reason)
    where = [t.c.id == item_id, t.c.status == "queued", _lapsed(now)]
    values = {"status": "dead", "last_error": reason, "claimed_by": None, "lease_until": None}
    with outbox._transaction(n.incident.key) as conn:
        if conn.execute(sa.update(t).where(*where).values(**values)).rowcount != 1:
            return False
        if n.kind == Kind.paged and pager_of(n.channel) is not None:
            _tell_delayed(conn, n.incident.key, item_id, tell, now)
        if n.kind == Kind.resolved and pager_of(n.channel) is not None:  # as a dead resolve's
            why = f"the resolve before it was dropped ({reason}), a trigger would notify nobody"
            _pages_behind_dead(conn, found, why, tell, now)
        return True


def _drop_dead_page(outbox: Outbox, page: OutboxItem, reason: str) -> bool:
    """A page a pager refused or was given up on, dropped: the operator paged by hand (or chose
    nobody), so nobody was paged no longer stands — its refusal stays in the reason. Its end was
    told when it died. False for any other dead letter."""
    n = page.notification
    if n.kind != Kind.paged or pager_of(n.channel) is None or dropped(page.last_error):
        return False
    where = [outbox_table.c.status == "dead", outbox_table.c.last_error == page.last_error]
    return _change(outbox, page.id, where, {"last_error": f"{reason} (was: {page.last_error})"})


def _pages_behind_dead(
    conn: sa.Connection, resolve: OutboxItem, why: str, tell: TellEnded, now: datetime
) -> list[OutboxItem]:
    """The `paged` messages of a dead resolve's incident queued behind it on its channel, made
    dead letters (`why`) and their ends told as `end_page` tells one: sent after a resolve that
    never arrived, a trigger folds into the still-acknowledged alert and notifies nobody."""
    t, n = outbox_table, resolve.notification
    behind = sa.and_(
        t.c.incident_key == n.incident.key,
        t.c.channel == n.channel,
        t.c.kind == "paged",
        t.c.status == "queued",
        t.c.id > resolve.id,
    )
    query = sa.update(t).where(behind).values(status="dead", last_error=why).returning(*t.c)
    ended = [_item(row) for row in conn.execute(query).mappings().all()]
    for page in ended:
        _tell_delayed(conn, n.incident.key, page.id, tell, now)
    return ended


def requeue(outbox: Outbox, item_id: int, now: datetime) -> bool:
    """A dead letter is queued again, due now, with its attempts reset and a fresh
    `give_up_after` (counted from `created_at`, which becomes now). False if it is not dead."""
    values = {
        "status": "queued",
        "attempts": 0,
        "errors": 0,
        "created_at": ts(now),
        "next_attempt_at": ts(now),
        "claimed_by": None,
        "lease_until": None,
    }
    return _change(outbox, item_id, [outbox_table.c.status == "dead"], values)
