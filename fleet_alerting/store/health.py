"""Read-only summaries of the store for `serve`'s metrics endpoint and heartbeat: counts and
oldest ages by aggregate queries over the outbox (its retained sent rows included) and the open
incidents' records: a scrape grows with those, and is bounded in time by the endpoint."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from fleet_alerting.core.actions import silenced_at
from fleet_alerting.core.heartbeat import DeadPage, QueuedPage
from fleet_alerting.core.incidents import Incident, State
from fleet_alerting.store import outbox as box
from fleet_alerting.store.database import Store
from fleet_alerting.store.outbox import Destination, UndeliveredPage
from fleet_alerting.store.tables import destinations_table, outbox_table


@dataclass(frozen=True)
class OutboxGroup:
    destination: str
    status: str  # queued | sent | dead | withdrawn
    count: int
    oldest: datetime  # created_at of the oldest row
    last_attempt: datetime  # the latest next_attempt_at: for dead letters, about when they died


def outbox_groups(store: Store) -> list[OutboxGroup]:
    t = outbox_table
    query = sa.select(
        t.c.channel,
        t.c.status,
        sa.func.count(),
        sa.func.min(t.c.created_at),
        sa.func.max(t.c.next_attempt_at),
    ).group_by(t.c.channel, t.c.status)
    with store.queue.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        OutboxGroup(
            channel, status, count, datetime.fromisoformat(oldest), datetime.fromisoformat(last)
        )
        for channel, status, count, oldest, last in rows
    ]


def oldest_queued(store: Store, channels: Sequence[str]) -> QueuedPage | None:
    """The longest-waiting queued message to one of `channels` (the pagers)."""
    t = outbox_table
    query = (
        sa.select(t.c.channel, t.c.incident_key, t.c.created_at)
        .where(t.c.status == "queued", t.c.channel.in_(list(channels)))
        .order_by(t.c.created_at, t.c.id)
        .limit(1)
    )
    with store.queue.engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else QueuedPage(row[0], row[1], datetime.fromisoformat(row[2]))


def destinations(store: Store) -> list[Destination]:
    """Each destination's rest, and since when it has been failing (None: its last send went)."""
    d = destinations_table
    columns = (d.c.name, d.c.blocked_until, d.c.failures, d.c.failing_since)
    with store.queue.engine.connect() as conn:
        rows = conn.execute(sa.select(*columns).order_by(d.c.name)).all()
    return [
        Destination(
            name,
            _at(blocked),
            failures,
            failing_since=_at(since) if failures else None,
        )
        for name, blocked, failures, since in rows
    ]


def _at(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp) if stamp else None


def dead_pages(store: Store) -> list[DeadPage]:
    """The dead letters among the open incidents' pages that no operator dropped (`page_state`'s
    page_dead: nobody was paged), each once: a group's page is its members' too."""
    incidents = store.incidents(include_resolved=False)
    owed = undelivered_pages(store, incidents)
    found = {
        page.outbox_id: DeadPage(page.channel, page.incident_key, page.outbox_id)
        for incident in incidents
        if incident.state == State.paged
        for page in owed.get(incident.key, ())
        if _nobody_paged(page)
    }
    return [found[number] for number in sorted(found)]


def open_incidents(store: Store, now: datetime) -> Counter[tuple[str, str, str]]:
    """Open incidents by (severity, source, state), the state as `page_state` says it."""
    incidents = store.incidents(include_resolved=False)
    owed = undelivered_pages(store, incidents)
    held = {i.key for i in incidents if i.members and _muted(i, now)}
    return Counter((i.severity.value, i.source, page_state(i, owed, now, held)) for i in incidents)


Undelivered = dict[str, list[UndeliveredPage]]


def undelivered_pages(store: Store, incidents: Iterable[Incident]) -> Undelivered:
    """The pages of these incidents' current episodes that no pager has accepted, per incident
    key. A group's member is not paged itself: its pages are the group's (of the group's current
    episode) to the pagers the member's steps paged. One outbox query, whatever the number of
    incidents, and one read per group not among `incidents`."""
    incidents = list(incidents)
    paged = [i for i in incidents if i.is_open and i.paged_via]
    pages = box.undelivered_pages(store.queue) if paged else []
    if not pages:
        return {}
    by_key = {i.key: i for i in incidents}
    groups = {g: by_key.get(g) or store.incident(g) for g in {i.group for i in paged if i.group}}
    pending: Undelivered = {}
    for page in pages:
        pending.setdefault(page.incident_key, []).append(page)

    def of(incident: Incident | None) -> list[UndeliveredPage]:
        if incident is None or not incident.is_open:
            return []
        return [p for p in pending.get(incident.key, ()) if p.onset == incident.onset]

    found: Undelivered = {}
    for incident in paged:
        group = groups.get(incident.group) if incident.group else None
        theirs = [p for p in of(group) if p.channel in incident.paged_via]
        if owed := of(incident) + theirs:
            found[incident.key] = owed
    return found


def page_state(
    incident: Incident, owed: Undelivered, now: datetime, held: Collection[str] = ()
) -> str:
    """An incident's state, but `paged` only once a pager accepted its page: `page_dead` when a
    page of its episode is a dead letter a pager refused or gave up on (nobody was paged),
    `page_queued` while one waits to be delivered, `page_dropped` when an operator dropped it;
    else `muted` while a silence (by matchers, or an operator's of this incident) or a
    maintenance window holds its messages and pages — planned work, which a rule on `firing`
    must not page for; a member of a group so held (`held`: their keys) too, as its group tells
    and pages for it."""
    pages = owed.get(incident.key, ())
    if incident.state == State.paged and pages:
        if any(_nobody_paged(p) for p in pages):
            return "page_dead"
        return "page_queued" if any(p.status == "queued" for p in pages) else "page_dropped"
    if _muted(incident, now) or incident.group in held:
        return "muted"
    return incident.state.value


def _muted(incident: Incident, now: datetime) -> bool:
    return incident.acts.mute_id is not None or silenced_at(incident, now)


def unsent_status(page: UndeliveredPage) -> str:
    """`queued`, `dead` (a dead letter no operator chose: the page never reached anyone) or
    `dropped` (an operator dropped it)."""
    return "dropped" if page.status == "dead" and box.dropped(page.error) else page.status


def _nobody_paged(page: UndeliveredPage) -> bool:
    return unsent_status(page) == "dead"
