"""`fleet-alerting ack KEY`, `silence KEY --for 4h`, `unsilence KEY`, `snooze KEY --for 1h`, and
`incidents --show KEY` (the incident with its audit trail). KEY is an incident's key, its short id
(`incidents` shows it), a unique prefix of either, or a device name (an `instance`, `device`,
`host` label, a probed host, a blackbox target's name) that names one open incident; a miss
suggests close keys, a device with several open incidents lists them. Every action is
recorded with its actor (`--as`, default the login name) and `via=cli`."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fleet_alerting.core.wording import no_such
from fleet_alerting.surfaces.cli import OperatorError

if TYPE_CHECKING:  # the commands import what they need: `fleet-alerting --help` stays fast
    from fleet_alerting.config import Config
    from fleet_alerting.core.incidents import Incident
    from fleet_alerting.store.database import Store
    from fleet_alerting.store.outbox import UndeliveredPage


def act(args: argparse.Namespace) -> int:
    import asyncio

    from fleet_alerting.config import load_config
    from fleet_alerting.core.clock import utcnow
    from fleet_alerting.surfaces.incident_actions import perform

    config = load_config(args.config)  # a ConfigError becomes its lines on stderr in main()
    duration = duration_of(args)
    if args.action == "snooze" and duration is None:
        raise OperatorError("snooze needs --for DURATION, e.g. --for 1h", code=2)
    actor = args.actor or getpass.getuser()
    key, problem = _resolve(config, args.key)
    meant = key or args.key
    outcome = asyncio.run(
        perform(config, meant, args.action, actor=actor, via="cli", now=utcnow(), duration=duration)
    )
    if key is None:  # refused and recorded by `perform`; say what might have been meant
        raise OperatorError(problem)
    if not outcome.ok:
        raise OperatorError(outcome.message)
    print(outcome.message)
    return 0


def duration_of(args: argparse.Namespace) -> timedelta | None:
    """`--for DURATION`: malformed is a usage error (exit 2)."""
    from fleet_alerting.surfaces.incident_actions import parse_for

    value = getattr(args, "for_", None)
    try:
        return parse_for(value)
    except ValueError as exc:
        raise OperatorError(f"--for {value!r}: {exc}", code=2) from None


def _resolve(config: Config, typed: str) -> tuple[str | None, str]:
    """The key `typed` names, from a store that must exist (never created by a lookup)."""
    from fleet_alerting.surfaces.listings import find_key, open_store

    with open_store(config) as store:
        key, problem, _ids = find_key(store, typed, config)
    return key, problem


def show(store: Store, key: str, config: Config) -> int:
    """One incident: its state, what operators did to it, and the audit trail of every action."""
    from fleet_alerting.core import escalation
    from fleet_alerting.core.clock import utcnow
    from fleet_alerting.core.durations import format_duration
    from fleet_alerting.core.grouping import is_group, next_page
    from fleet_alerting.delivery.notifiers.slack_webhook import action_lines
    from fleet_alerting.store import actions as audit
    from fleet_alerting.store.health import undelivered_pages
    from fleet_alerting.surfaces.listings import find_key, page_lines

    found, problem, ids = find_key(store, key, config)
    incident = store.incident(found) if found else None
    if incident is None:
        raise OperatorError(problem or no_such("incident", key))
    key = incident.key
    now = utcnow()
    print(f"{ids[key]} {key}: {incident.state} {incident.severity}, {incident.signal.summary}")
    print(
        f"  since {incident.onset:%Y-%m-%d %H:%M:%S}Z ({format_duration(incident.duration(now))})"
    )
    owed = undelivered_pages(store, [incident]).get(key, [])
    if incident.group is None:
        for line in page_lines(incident, owed, key):
            print(f"  {line}")
    if incident.resolved_at:
        print(f"  resolved {incident.resolved_at:%Y-%m-%d %H:%M:%S}Z: {incident.resolution}")
    elif incident.inhibited_by:
        print(f"  inhibited by {incident.inhibited_by}: tells and pages nobody while that fails")
    if incident.group is not None:  # a member is not paged itself: its group's page is what is
        for line in member_lines(store, incident, owed, ids):
            print(f"  {line}")
    for line in action_lines(incident):
        print(f"  {line}")
    for line in escalation.lines(incident):
        print(f"  {line}")
    if is_group(incident) and not incident.resolved_at:
        members = [m for m in map(store.incident, incident.members) if m is not None]
        policy = config.policy(incident.severity)
        print(f"  Next page: {next_page(incident, members, policy, now)}")
    records = audit.history(store, key)
    print("actions:" if records else "actions: none")
    for record in records:
        mark = f" (an earlier episode, since {record.onset:%H:%M:%S}Z)" if record.onset else ""
        mark = mark if record.of_another_episode(incident) else ""
        print(f"  {record.line()}{mark}")
    return 0


def member_lines(
    store: Store, member: Incident, owed: list[UndeliveredPage], ids: dict[str, str]
) -> list[str]:
    """Which group tells and pages for a member, and that group's page: whom it paged that took
    the page, each of its pages not delivered (queued, a dead letter) — and a page of the member
    itself not delivered, from before it joined."""
    from fleet_alerting.store.health import undelivered_pages
    from fleet_alerting.surfaces.listings import page_lines, page_problem

    key, group_key = member.key, member.group or ""
    short = f" (id {ids[group_key]})" if group_key in ids else ""
    if member.resolved_at:
        told = "told and paged" if member.paged_via else "told"
        return [f"was in group {group_key}{short}: the group {told} for it"]
    said = [f"in group {group_key}{short}: the group tells and pages for it"]
    group = store.incident(group_key)
    if group is not None and group.is_open:
        pages = page_lines(group, undelivered_pages(store, [group]).get(group_key, []), key)
        # its steps asked for a page the group has not sent (an ack or a silence holds it)
        said += pages or (["the group has paged nobody yet"] if member.paged_via else [])
    return said + [page_problem(p, key, detailed=True) for p in owed if p.incident_key == key]


FOR_HELP = {
    "silence": "how long: 90 (seconds), 1h, 4h; `resolved` (the default): until it resolves",
    "snooze": "how long reminders stay quiet (required): 90 (seconds), 1h, 4h",
}


def add_commands(commands: Any, with_config: Callable[[Any], object]) -> None:
    helps = {
        "ack": "acknowledge an incident: reminders stop, the page is held or acknowledged",
        "silence": "silence an incident (Alertmanager silence, or a local mute for our sources)",
        "unsilence": "end a silence or local mute now",
        "snooze": "snooze an incident: no reminders for a while (our own sources)",
    }
    for action, help_text in helps.items():
        sub = commands.add_parser(action, help=help_text, description=help_text)
        sub.set_defaults(func=act, action=action)
        sub.add_argument(
            "key",
            metavar="KEY",
            help="the incident's key or id, a unique prefix of either, or its device's name",
        )
        with_config(sub)
        sub.add_argument(
            "--as", dest="actor", metavar="NAME", help="who acts (default: the login name)"
        )
        if action in FOR_HELP:
            sub.add_argument(
                "--for",
                dest="for_",
                metavar="DURATION",
                default="resolved" if action == "silence" else None,
                help=FOR_HELP[action],
            )
        if action == "silence":
            from fleet_alerting.surfaces.silences_cli import add_silence_arguments

            add_silence_arguments(sub)
