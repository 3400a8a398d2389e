"""`fleet-alerting ack KEY`, `silence KEY --for 4h`, `unsilence KEY`, `snooze KEY --for 1h`, and
`incidents --show KEY` (the incident with its audit trail). KEY is an incident's key, its short id
(`incidents` shows it) or a unique prefix of either; a miss suggests close keys. Every action is
recorded with its actor (`--as`, default the login name) and `via=cli`."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the commands import what they need: `fleet-alerting --help` stays fast
    from fleet_alerting.store.database import Store


def act(args: argparse.Namespace) -> int:
    import asyncio

    from fleet_alerting.config import ConfigError, load_config
    from fleet_alerting.core.clock import utcnow
    from fleet_alerting.surfaces.incident_actions import parse_for, perform

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        duration = parse_for(getattr(args, "for_", None))
    except ValueError as exc:
        print(f"--for: {exc}", file=sys.stderr)
        return 2
    if args.action == "snooze" and duration is None:
        print("snooze needs --for, e.g. --for 1h", file=sys.stderr)
        return 2
    actor = args.actor or getpass.getuser()
    key, problem = _resolve(config, args.key)
    meant = key or args.key
    outcome = asyncio.run(
        perform(config, meant, args.action, actor=actor, via="cli", now=utcnow(), duration=duration)
    )
    if key is None:  # refused and recorded by `perform`; say what might have been meant
        print(problem, file=sys.stderr)
        return 1
    print(outcome.message, file=sys.stdout if outcome.ok else sys.stderr)
    return 0 if outcome.ok else 1


def _resolve(config: Any, typed: str) -> tuple[str | None, str]:
    """The key `typed` names, from a store that must exist (never created by a lookup)."""
    from fleet_alerting.surfaces.listings import find_key, open_store

    with open_store(config) as store:
        key, problem, _ids = find_key(store, typed)
    return key, problem


def show(store: Store, key: str) -> int:
    from fleet_alerting.core import escalation
    from fleet_alerting.core.clock import utcnow
    from fleet_alerting.core.durations import format_duration
    from fleet_alerting.delivery.notifiers.slack_webhook import action_lines
    from fleet_alerting.store import actions as audit

    """One incident: its state, what operators did to it, and the audit trail of every action."""
    from fleet_alerting.surfaces.listings import find_key

    found, problem, ids = find_key(store, key)
    incident = store.incident(found) if found else None
    if incident is None:
        print(problem or f"no incident {key!r}", file=sys.stderr)
        return 1
    key = incident.key
    now = utcnow()
    print(f"{ids[key]} {key}: {incident.state} {incident.severity}, {incident.signal.summary}")
    print(
        f"  since {incident.onset:%Y-%m-%d %H:%M:%S}Z ({format_duration(incident.duration(now))})"
    )
    if incident.paged_at:
        print(f"  paged {', '.join(incident.paged_via)} at {incident.paged_at:%H:%M:%S}Z")
    if incident.resolved_at:
        print(f"  resolved {incident.resolved_at:%Y-%m-%d %H:%M:%S}Z: {incident.resolution}")
    for line in action_lines(incident):
        print(f"  {line}")
    for line in escalation.lines(incident):
        print(f"  {line}")
    records = audit.history(store, key)
    print("actions:" if records else "actions: none")
    for record in records:
        print(f"  {record.line()}")
    return 0


def add_commands(commands: Any, with_config: Callable[[Any], object]) -> None:
    helps = {
        "ack": "acknowledge an incident: reminders stop, the page is held or acknowledged",
        "silence": "silence an incident (Alertmanager silence, or a local mute for our sources)",
        "unsilence": "end a silence or local mute now",
        "snooze": "no reminders for a while (our own sources)",
    }
    for action, help_text in helps.items():
        sub = commands.add_parser(action, help=help_text, description=help_text)
        sub.set_defaults(func=act, action=action)
        sub.add_argument("key", help="the incident's key or id, or a unique prefix of either")
        with_config(sub)
        sub.add_argument("--as", dest="actor", help="who acts (default: the login name)")
        if action in ("silence", "snooze"):
            sub.add_argument(
                "--for", dest="for_", default=None if action == "snooze" else "resolved",
                help="e.g. 90 (seconds), 1h, 4h; silence: `resolved` (default) until resolved",
            )  # fmt: skip
        if action == "silence":
            from fleet_alerting.surfaces.silences_cli import add_silence_arguments

            add_silence_arguments(sub)
