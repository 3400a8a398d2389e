"""`fleet-alerting silence add MATCHERS… --for 2h --comment … [--author]`, `silence query
[-o json|table] [--expired]`, `silence expire ID`, beside `silence KEY --for` (one incident):
the first word says which."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from fleet_alerting.surfaces.cli import OperatorError

VERBS = ("add", "query", "expire")


def add_silence_arguments(sub: argparse.ArgumentParser) -> None:
    sub.description = (
        "silence KEY: silence one incident. silence add MATCHERS… --for 2h --comment TEXT: "
        "silence whatever the matchers select (Alertmanager's =, !=, =~, !~), also in "
        "Alertmanager when they can select its alerts. silence query: silences and maintenance "
        "windows with what each mutes now. silence expire ID: end a silence now."
    )
    sub.add_argument(
        "more", nargs="*", metavar="ARG", help="add: the matchers; expire: the silence id"
    )
    sub.add_argument(
        "--comment", default="", metavar="TEXT", help="add: why (shown wherever it is told)"
    )
    sub.add_argument(
        "--author", metavar="NAME", help="add/expire: who (default: --as, else the login name)"
    )
    sub.add_argument(
        "-o", "--output", choices=["table", "json"], default="table", help="query: table or json"
    )
    sub.add_argument("--expired", action="store_true", help="query: expired silences too")
    sub.set_defaults(func=silence_command)


def silence_command(args: argparse.Namespace) -> int:
    if args.key not in VERBS:
        if args.more:
            raise OperatorError(
                f"silence KEY takes one key. Did you mean `silence add {args.key} …`?", code=2
            )
        from fleet_alerting.surfaces.actions_cli import act

        return act(args)
    from fleet_alerting.config import load_config

    config = load_config(args.config)  # a ConfigError becomes its lines on stderr in main()
    return {"add": _add, "query": _query, "expire": _expire}[args.key](config, args)


def _author(args: argparse.Namespace) -> str:
    return args.author or args.actor or getpass.getuser()


def _add(config: Any, args: argparse.Namespace) -> int:
    import asyncio

    from fleet_alerting.core.clock import utcnow
    from fleet_alerting.surfaces.actions_cli import duration_of
    from fleet_alerting.surfaces.silence_actions import add_silence

    duration = duration_of(args)
    if duration is None:
        raise OperatorError("silence add needs --for DURATION, e.g. --for 2h", code=2)
    outcome = asyncio.run(
        add_silence(
            config,
            args.more,
            duration,
            author=_author(args),
            comment=args.comment,
            via="cli",
            now=utcnow(),
        )
    )
    return _said(outcome)


def _expire(config: Any, args: argparse.Namespace) -> int:
    import asyncio

    from fleet_alerting.core.clock import utcnow
    from fleet_alerting.surfaces.silence_actions import expire_silence

    if len(args.more) != 1:
        raise OperatorError("silence expire takes one silence id (`silence query` lists them)", 2)
    outcome = asyncio.run(
        expire_silence(config, args.more[0], actor=_author(args), via="cli", now=utcnow())
    )
    return _said(outcome)


def _said(outcome: Any) -> int:
    """Done (exit 0); done only in part, said by its warnings (exit 1); refused (exit 1)."""
    if not (outcome.ok or outcome.warnings):
        raise OperatorError(outcome.message)
    print(outcome.message)
    for warning in outcome.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0 if outcome.ok else 1


def _query(config: Any, args: argparse.Namespace) -> int:
    from fleet_alerting.core.clock import utcnow
    from fleet_alerting.store.errors import StoreError
    from fleet_alerting.surfaces.listings import print_json
    from fleet_alerting.surfaces.silence_actions import query

    try:
        rows = query(config, utcnow(), include_expired=args.expired)
    except StoreError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.output == "json":
        print_json(rows)
        return 0
    if not rows:
        print("no silences, no maintenance windows")
        return 0
    print(
        f"{'KIND':<8} {'ID':<10} {'STATE':<15} {'UNTIL (UTC)':<17} {'BY':<12} MATCHERS  MUTES NOW"
    )
    for row in rows:
        until = (row.get("ends_at") or "")[:16].replace("T", " ")
        who = row.get("author") or ""
        mutes = ", ".join(row["mutes_now"]) or "-"
        ident = row["id"][:8] if row["kind"] == "silence" else row["id"]
        print(
            f"{row['kind']:<8} {ident:<10} {row['state']:<15} {until:<17} {who:<12} "
            f"{' '.join(row['matchers'])}  {mutes}"
        )
        if row.get("comment"):
            print(f"{'':<8} {'':<10} {row['comment']}")
        if row.get("schedule"):
            print(f"  {row['schedule']}")
    return 0
