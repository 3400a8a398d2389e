"""`fleet-alerting incidents` and `outbox`: a table for people or `-o json` for scripts (the fields
are stable: README, "Operating it"), with filters; `outbox retry|drop|requeue ID`, each recorded
in the actions trail. Listing never creates a store: a missing one is an error naming its path."""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from fleet_alerting.config import Config, load_config
from fleet_alerting.config.checks import destination
from fleet_alerting.core.channels import pager_of
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.incidents import Incident, Kind, State
from fleet_alerting.core.keys import signal_key
from fleet_alerting.core.muting import labels_of
from fleet_alerting.core.short_ids import SHORT, device_names, find, full_id, short_ids
from fleet_alerting.core.wording import no_such
from fleet_alerting.delivery.notifiers.slack_webhook import LATE, paged_after_all
from fleet_alerting.delivery.stages import dead_page_advice, paging_ended
from fleet_alerting.sources.blackbox.client import SOURCE as BLACKBOX
from fleet_alerting.store import actions as audit
from fleet_alerting.store import outbox as box
from fleet_alerting.store.database import OPEN, Store
from fleet_alerting.store.health import Undelivered, undelivered_pages
from fleet_alerting.store.outbox import Destination, OutboxItem, UndeliveredPage
from fleet_alerting.surfaces.cli import OperatorError, incident_line, when


def open_store(config: Config) -> Store:
    """The configured store for reading: never created here."""
    return Store(config.state, create=False)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def print_json(rows: Sequence[dict[str, Any]]) -> None:
    print(json.dumps(list(rows), indent=2, ensure_ascii=False))


# incidents ----------------------------------------------------------------------------------
def find_key(store: Store, typed: str, config: Config) -> tuple[str | None, str, dict[str, str]]:
    """The key `typed` names (a key, a short id or a unique prefix of either, or a device name
    that names one open incident), or None and what to tell the operator; and the short ids of
    every stored incident."""
    states = store.incident_states()
    ids = short_ids(states)
    opened = {key for key, state in states.items() if state in OPEN}
    devices = None if typed in states else open_devices(store, config)
    lookup = find(typed, states.keys(), opened, devices)
    return lookup.key, lookup.problem(typed, ids) if lookup.key is None else "", ids


def open_devices(store: Store, config: Config) -> dict[str, frozenset[str]]:
    """Each open incident's device names; a configured blackbox target's name is its too."""
    named = {signal_key(BLACKBOX, url=t.url): (t.name,) for t in config.blackbox.targets}
    return {i.key: device_names(labels_of(i), *named.get(i.key, ())) for i in store.incidents()}


class IdsOf(dict[str, str]):
    """Short ids of the stored incidents; a key stored since they were read (or pruned while
    its messages stay) gets its unlengthened id."""

    def __init__(self, keys: Iterable[str]):
        super().__init__(short_ids(keys))

    def __missing__(self, key: str) -> str:
        return full_id(key)[:SHORT]


def page_problem(page: UndeliveredPage, of: str, *, detailed: bool = False) -> str:
    """`page to pagerduty not delivered: 6 attempts, next 06:20:11Z; outbox #23`, or the dead
    letter's reason; `detailed`: with the last error and what to do. A page that is not the
    incident `of`'s own is its group's."""
    whose = "" if page.incident_key == of else "the group's "
    head = f"{whose}page to {page.channel} not delivered"
    error = f": {page.error}" if page.error else ""
    if page.status == "dead":
        told = f"{head}: dead letter #{page.outbox_id}{error if detailed else ''}"
        hint = f"; {dead_page_advice(page.outbox_id)}"
        return told + (hint if detailed else "")
    tries = f"{page.attempts} attempt(s), next {when(page.next_attempt_at)}"
    if not page.attempts:
        tries = "queued, not sent yet"
    told = f"{head}: {tries}; outbox #{page.outbox_id}"
    return told + (f" (last error{error})" if detailed and error else "")


def page_lines(incident: Incident, owed: Sequence[UndeliveredPage], of: str) -> list[str]:
    """Whom `incident` paged that took the page, and each of its pages not delivered, detailed;
    said as the group's when `incident` is the group of the incident `of`."""
    whose = "" if incident.key == of else "the group "
    delivered = [c for c in incident.paged_via if c not in {p.channel for p in owed}]
    said = []
    if incident.paged_at and delivered:
        said.append(f"{whose}paged {paged_when(incident, delivered)}")
    return said + [page_problem(p, of, detailed=True) for p in owed]


def paged_when(incident: Incident, pagers: list[str]) -> str:
    """Each pager at the times its escalation paged it (an older record: when paging began)."""
    pages = incident.escalation.pages
    said = []
    for pager in pagers:
        times = [p.at for p in pages if p.channel == pager] or [incident.paged_at]
        said.append(f"{pager} at " + " and ".join(f"{t:%H:%M:%S}Z" for t in times if t))
    return ", ".join(said)


def undelivered_json(pages: Sequence[UndeliveredPage]) -> list[dict[str, Any]]:
    return [
        {
            "incident_key": p.incident_key,  # a member's: its group's key
            "channel": p.channel,
            "outbox_id": p.outbox_id,
            "status": p.status,
            "attempts": p.attempts,
            "next_attempt_at": iso(p.next_attempt_at) if p.status == "queued" else None,
            "error": p.error,
        }
        for p in pages
    ]


def incident_json(
    incident: Incident, short_id: str, now: datetime, undelivered: Undelivered
) -> dict[str, Any]:
    acts = incident.acts
    return {
        "id": short_id,
        "key": incident.key,
        "state": incident.state.value,
        "severity": incident.severity.value,
        "source": incident.source,
        "summary": incident.signal.summary,
        "target": incident.signal.target,
        "onset": iso(incident.onset),
        "failing_seconds": int(incident.duration(now).total_seconds()),
        "opened_at": iso(incident.opened_at),
        "paged_at": iso(incident.paged_at),
        "paged_via": list(incident.paged_via),
        "undelivered": undelivered_json(undelivered.get(incident.key, ())),
        "resolved_at": iso(incident.resolved_at),
        "resolution": incident.resolution or None,
        "acked_by": acts.acked_by,
        "acked_at": iso(acts.acked_at),
        "silenced_by": acts.silenced_by,
        "silenced_until": iso(acts.silenced_until),
        "snoozed_until": iso(acts.snoozed_until),
        "muted_by": acts.muted_by,
        "muted_until": iso(acts.muted_until),
        "mute_id": acts.mute_id,
        "inhibited_by": incident.inhibited_by,
        "group": incident.group,
        "runbook_url": incident.signal.runbook_url,
        "labels": dict(incident.signal.labels),
    }


def source_matches(source: str, wanted: str | None) -> bool:
    """`--source prometheus` selects every `prometheus/WATCH` too."""
    return wanted is None or source == wanted or source.startswith(f"{wanted}/")


def wanted_incident(incident: Incident, args: argparse.Namespace) -> bool:
    return (
        (not args.severity or incident.severity.value in args.severity)
        and source_matches(incident.source, args.source)
        and (not args.state or incident.state.value in args.state)
    )


def incidents(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with open_store(config) as store:
        if args.show:
            from fleet_alerting.surfaces.actions_cli import show

            return show(store, args.show, config)
        ids = IdsOf(store.incident_states())
        everything = args.all or State.resolved.value in (args.state or ())
        rows = [i for i in store.incidents(include_resolved=everything) if wanted_incident(i, args)]
        owed = undelivered_pages(store, rows)
    now = utcnow()
    if args.output == "json":
        print_json([incident_json(i, ids[i.key], now, owed) for i in rows])
        return 0
    if not rows:
        filtered = args.severity or args.source or args.state
        print("no incidents" if everything or filtered else "no open incidents")
        return 0
    width = max(len(ids[i.key]) for i in rows)
    header = f"{'STATE':<9} {'SEVERITY':<8} {'ONSET (UTC)':<20} {'FAILED':>7}  KEY  WHAT"
    print(f"{'ID':<{width}}  {header}")
    for incident in rows:
        problems = "; ".join(page_problem(p, incident.key) for p in owed.get(incident.key, ()))
        said = f"  ({problems})" if problems else ""
        print(f"{ids[incident.key]:<{width}}  {incident_line(incident, now)}{said}")
    return 0


# outbox -------------------------------------------------------------------------------------
def outbox_json(
    config: Config, item: OutboxItem, ids: IdsOf, blocked: Destination
) -> dict[str, Any]:
    n = item.notification
    return {
        "id": item.id,
        "status": item.status,
        "channel": n.channel,
        "destination": destination(config, n.channel),
        "kind": n.kind.value,
        "incident_key": n.incident.key,
        "incident_id": ids[n.incident.key],
        "severity": n.incident.severity.value,
        "source": n.incident.source,
        "attempts": item.attempts,
        "created_at": iso(item.created_at),
        "sent_at": iso(item.sent_at),
        "next_attempt_at": iso(item.next_attempt_at) if item.status == "queued" else None,
        "last_error": item.last_error,
        "receipt": item.receipt,
        "in_doubt": item.in_doubt,
        "destination_backoff_until": iso(blocked.blocked_until),
        "destination_failures": blocked.failures,
        "destination_last_error": blocked.last_error,
    }


def outbox_statuses(args: argparse.Namespace) -> tuple[str, ...]:
    if args.state:
        return tuple(args.state)
    return ("sent", box.WITHDRAWN) if args.sent else ("queued", "dead")


def wanted_item(item: OutboxItem, args: argparse.Namespace) -> bool:
    """`--since`: queued since then, or (a sent message) sent since then."""
    incident = item.notification.incident
    return (
        (args.since is None or (item.sent_at or item.created_at) >= args.since)
        and (not args.severity or incident.severity.value in args.severity)
        and source_matches(incident.source, args.source)
    )


def outbox(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with open_store(config) as store:
        items = [i for i in store.outbox(outbox_statuses(args)) if wanted_item(i, args)]
        channels = sorted({i.notification.channel for i in items})
        now = utcnow()
        blocked = {c: store.queue.destination(c, now) for c in channels}
        ids = IdsOf(store.incident_states())
    if args.output == "json":
        print_json([outbox_json(config, i, ids, blocked[i.notification.channel]) for i in items])
        return 0
    since = " since then" if args.since else ""
    if not items:
        delivered = outbox_statuses(args) in (("sent",), ("sent", box.WITHDRAWN))
        print(("nothing delivered" if delivered else
               "nothing queued, no dead letters") + since)  # fmt: skip
        return 0
    for item in items:
        print(item_line(config, item, ids, now, blocked[item.notification.channel]))
    backing_off = [d for d in blocked.values() if d.blocked_until and d.blocked_until > now]
    if backing_off:
        print("destinations backing off:")
    for d in backing_off:
        print(
            f"  {d.name}: until {when(d.blocked_until)} ({d.failures} failure(s) in a row)"
            f"{': ' + d.last_error if d.last_error else ''}"
        )
    return 0


def item_line(
    config: Config, item: OutboxItem, ids: IdsOf, now: datetime, rest: Destination
) -> str:
    """One message; a queued one with when it will really be tried: its next attempt, or its
    destination's rest if that ends later."""
    n = item.notification
    key = n.incident.key
    if item.status == "sent":
        return (
            f"sent   {_sent_when(item)} {n.kind:<9} {key} → "
            f"{destination(config, n.channel)}: {item.receipt or ''}"
        )
    if item.status == box.WITHDRAWN:  # not sent, and nothing to do: its incident resolved first
        return (
            f"withdrawn {when(item.created_at)} {n.kind:<9} {key} → "
            f"{destination(config, n.channel)}: {item.last_error or ''}"
        )
    if item.status == "queued":
        due, resting = item.next_attempt_at, ""
        if rest.blocked_until and rest.blocked_until > max(due, now):
            due, resting = rest.blocked_until, f", {n.channel} rests until then"
        in_ = f"in {format_duration(due - now)}{resting}"
        nxt = "next: now" if due <= now else f"next: {when(due)} ({in_})"
    else:
        nxt = "not retried"
    return (
        f"{item.status:<6} #{item.id:<5} {n.channel:<12} {n.kind:<9} attempts={item.attempts} "
        f"{nxt}  {ids[key]} {key}  {item.last_error or ''}"
    ).rstrip()


def _sent_when(item: OutboxItem) -> str:
    """When a message was sent, and when it was queued if that was a while before (a message
    sent before its sending time was kept: queued then)."""
    if item.sent_at is None:
        return f"{when(item.created_at)} (queued; sent time not kept)"
    if item.sent_at - item.created_at <= LATE:
        return when(item.sent_at)
    return f"{when(item.sent_at)} (queued {item.created_at:%H:%M:%S}Z)"


# outbox retry | drop | requeue --------------------------------------------------------------
def manage(args: argparse.Namespace) -> int:
    """Each operation changes one message only if it is in the state it applies to, and is
    recorded (done or refused) in the actions trail of the message's incident."""
    config = load_config(args.config)
    actor = args.actor or getpass.getuser()
    now = utcnow()
    with open_store(config) as store:
        item = box.item(store.queue, args.id)
        if item is None:
            hint = "`fleet-alerting outbox` lists them."
            raise OperatorError(no_such("outbox message", f"#{args.id}", hint=hint))
        reason = getattr(args, "reason", None)
        lifted: datetime | None = None
        if args.verb == "retry":
            done = box.retry_now(store.queue, item.id, now)
            why = "not queued, or being sent right now"
            # the operator says its destination is back: its lane rests no more
            lifted = store.queue.lift_rest(item.notification.channel, now) if done else None
        elif args.verb == "drop":
            dropped = f"{box.DROPPED_BY}{actor}: {reason}"
            done = box.drop(store.queue, item.id, now, dropped, partial(paging_ended, now=now))
            why = "not queued, or being sent right now"
        else:
            done = box.requeue(store.queue, item.id, now)
            why = "not a dead letter"
        n = item.notification
        audit.record(
            store,
            n.incident.key,
            action=f"outbox-{args.verb}",
            actor=actor,
            via="cli",
            now=now,
            outcome="done" if done else f"refused: {why}",
            detail={"message": item.id, "channel": n.channel, "kind": n.kind.value}
            | ({"reason": reason} if reason else {})
            | ({"rest_lifted": iso(lifted)} if lifted else {}),
        )
        backoff = store.queue.destination(n.channel)
        retold = retell_page(store, item, now) if done and args.verb == "requeue" else 0
    if not done:
        raise OperatorError(f"#{item.id} ({item.status}): {why}; nothing changed")
    print(f"#{item.id} {n.channel} {n.kind} {n.incident.key}: {DONE[args.verb]}")
    if lifted:
        print(f"  {n.channel} rested until {when(lifted)}: no more (it is tried again at once)")
    elif args.verb != "drop" and backoff.blocked_until and backoff.blocked_until > now:
        print(f"  {n.channel} backs off until {when(backoff.blocked_until)}: sent after that")
    if retold:
        print('  Slack is told again once the page is taken ("Paged after all") or fails')
    return 0


def retell_page(store: Store, item: OutboxItem, now: datetime) -> int:
    """A requeued page whose Slack "paged" message already went out (saying PAGING FAILED or
    PAGING DELAYED — its follow-up, queued or sent, says PAGING FAILED): that message, the latest
    in each Slack channel that waited for this page, is queued again, to say how the page ends.
    How many were queued."""
    n = item.notification
    if n.kind != Kind.paged or pager_of(n.channel) is None:
        return 0
    told = store.queue.told_of_page(item)
    again = [paged_after_all(t.notification, now) for t in told if t.status != "queued"]
    with store.transaction() as transaction:
        return transaction.queue(again, now)


DONE = {
    "retry": "due now (the next run, or `fleet-alerting run`, sends it)",
    "drop": "dropped (a dead letter: never sent)",
    "requeue": "queued again, due now",
}
