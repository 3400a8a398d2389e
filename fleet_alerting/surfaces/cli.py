"""`fleet-alerting`: check the config, run a flow once, serve every deployment, look at state.

Commands that need Prefect import it when they run, so `check-config` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

import yaml

from fleet_alerting.audit.cli import add_commands as add_audit_commands
from fleet_alerting.config import Config, ConfigError, load_config
from fleet_alerting.config.secrets import redact
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.incidents import Incident
from fleet_alerting.store.sqlite import Store

DEFAULT_CONFIG = "config/example.yaml"
Command = Callable[[argparse.Namespace], int]


def check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    bb = config.blackbox
    slack = "Slack" if config.notify.slack and config.notify.slack.webhook else "local outbox"
    pager = "PagerDuty" if config.notify.pagerduty else "no pager"
    watches = [
        f"blackbox {len(bb.targets)} target(s) + {len(bb.file_sd)} file_sd group(s)",
        f"zigbee {len(config.zigbee.coordinators)} coordinator(s)",
    ]
    if config.prometheus.url:
        watches.append(f"prometheus {len(config.prometheus.watches)} extra watch(es)")
    watches += [name for name in ("alertmanager", "fleet_api") if getattr(config, name)]
    print(
        f"{args.config}: ok — {', '.join(watches)}; policies for {', '.join(config.policies)}; "
        f"notifications to {slack}, {pager}"
    )
    return 0


def run_flow(args: argparse.Namespace) -> int:
    from fleet_alerting.flows import get_flow
    from fleet_alerting.flows.common import RunFailed

    flow = get_flow(args.flow)
    try:
        result = asyncio.run(flow(config_path=args.config))
    except RunFailed as exc:
        print(f"{args.flow}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the run failed: say so in one line, never with a secret
        print(f"{args.flow} failed: {redact(f'{type(exc).__name__}: {exc}')}", file=sys.stderr)
        return 1
    print(f"{args.flow}: {result}")
    return 0


def serve(args: argparse.Namespace) -> int:
    from fleet_alerting.deployments.serve import serve_all

    return serve_all(args.config)


def trigger(args: argparse.Namespace) -> int:
    from fleet_alerting.deployments.trigger import trigger as run_now

    parameters = {}
    for pair in args.param:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            print(f"--param {pair!r}: expected NAME=VALUE", file=sys.stderr)
            return 2
        parameters[name] = yaml.safe_load(value) if value else ""
    return asyncio.run(run_now(args.deployment, parameters, wait=args.wait))


def _config(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


def slack_app(args: argparse.Namespace) -> int:
    import uvicorn

    from fleet_alerting.deployments.trigger import trigger as run_now
    from fleet_alerting.surfaces.slack_app import create_app

    config = _config(args.config)
    settings = config.operators.slack_app
    if settings is None:
        raise SystemExit(f"{args.config}: operators.slack_app is not configured")

    async def trigger_from_slack(deployment: str, out: Callable[[str], None]) -> int:
        return await run_now(deployment, {}, wait=False, out=out)

    app = create_app(config, trigger_from_slack)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    return 0


def mcp(args: argparse.Namespace) -> int:
    import uvicorn

    from fleet_alerting.deployments.trigger import trigger as run_now
    from fleet_alerting.surfaces.mcp_server import build_server, http_app

    config = _config(args.config)

    async def trigger_from_mcp(name: str, params: dict, out: Callable[[str], None]) -> int:
        return await run_now(name, params, wait=False, out=out)

    server = build_server(config, write=args.write, trigger=trigger_from_mcp)
    if not args.http:
        server.run("stdio")
        return 0
    settings = config.operators.mcp
    uvicorn.run(
        http_app(config, server), host=settings.host, port=settings.port, log_level="warning"
    )
    return 0


def demo(args: argparse.Namespace) -> int:
    from fleet_alerting.flows.demo import run_demo

    return run_demo(args.config, rounds_seconds=args.interval)


def _store(args: argparse.Namespace) -> Store:
    return Store(_config(args.config).state.path)


def incidents(args: argparse.Namespace) -> int:
    now = utcnow()
    rows = _store(args).incidents(include_resolved=args.all)
    if not rows:
        print("no open incidents")
    for i in rows:
        age = format_duration(i.duration(now))
        print(f"{i.state:<9} {i.severity:<8} {age:>7}  {i.key}  — {i.signal.summary}{_why(i)}")
    return 0


def _why(i: Incident) -> str:
    """Who tells (or does not tell) for this incident, besides itself."""
    if i.inhibited_by:
        return f"  [inhibited by {i.inhibited_by}]"
    if i.group:
        return f"  [in group {i.group}]"
    return ""


def outbox(args: argparse.Namespace) -> int:
    items = _store(args).outbox(("queued", "dead"))
    if not items:
        print("outbox empty: nothing queued, no dead letters")
    for item in items:
        n = item.notification
        print(
            f"{item.status:<6} {n.channel:<12} {n.kind:<9} attempts={item.attempts} "
            f"{n.incident.key}  {item.last_error or ''}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from fleet_alerting.deployments.schedules import SCHEDULES

    parser = argparse.ArgumentParser(prog="fleet-alerting", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(func=func)
        return sub

    add("check-config", check_config, "validate a config file").add_argument("config")
    run = add("run", run_flow, "run one watch flow once, locally (the audit: `audit`)")
    run.add_argument("flow", choices=[s.flow for s in SCHEDULES if "config_path" in s.parameters])
    run.add_argument("--config", default=DEFAULT_CONFIG)
    add("serve", serve, "serve every deployment on its schedule").add_argument(
        "--config", default=DEFAULT_CONFIG
    )
    show = add("demo", demo, "show the product working against local targets, in about a minute")
    show.add_argument("--config", default=DEFAULT_CONFIG)
    show.add_argument("--interval", type=float, default=3.0, help="seconds between probe runs")
    now = add("trigger", trigger, "run a deployment now through the Prefect API")
    now.add_argument("deployment", help="FLOW/DEPLOYMENT, e.g. blackbox-probe/every-minute")
    now.add_argument("--param", action="append", default=[], help="NAME=VALUE (YAML scalar)")
    now.add_argument("--wait", action="store_true", help="follow the run; exit with its outcome")
    add("slack-app", slack_app, "serve the /fleet slash command").add_argument(
        "--config", default=DEFAULT_CONFIG
    )
    server = add("mcp", mcp, "serve Fleet data to MCP clients (stdio, or --http)")
    server.add_argument("--config", default=DEFAULT_CONFIG)
    server.add_argument("--http", action="store_true", help="streamable HTTP with a bearer token")
    server.add_argument("--write", action="store_true", help="offer trigger_deployment")
    add_audit_commands(commands)
    inc = add("incidents", incidents, "list open incidents from the store")
    inc.add_argument("--config", default=DEFAULT_CONFIG)
    inc.add_argument("--all", action="store_true", help="include resolved incidents")
    add("outbox", outbox, "list queued notifications and dead letters").add_argument(
        "--config", default=DEFAULT_CONFIG
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
