"""`fleet-alerting`: check the config, run a flow once, serve every deployment, look at state.

Commands that need Prefect import it when they run, so `check-config` stays fast.

Exit codes: 0 success; 1 the command ran and failed, or the config is broken (one line names the
file and key, or what failed); 2 a usage error (unknown command or option, malformed argument) or
a server the command needs does not answer (PREFECT_API_URL down, no Prefect server for
`trigger`); 130 interrupted; 141 its output was closed early (`| head`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from fleet_alerting.audit.cli import add_commands as add_audit_commands

if TYPE_CHECKING:  # commands import what they need when they run: `routes test` starts fast
    from fleet_alerting.config import Config
    from fleet_alerting.config.checks import BlockCheck
    from fleet_alerting.core.incidents import Incident

DEFAULT_CONFIG = "config/example.yaml"
Command = Callable[[argparse.Namespace], int]
CONFIG_HELP = f"the YAML config file (default: $FLEET_ALERTING_CONFIG, else {DEFAULT_CONFIG})"


TRIGGER_CONFIG_HELP = (
    "only if the deployment runs this config (default: $FLEET_ALERTING_CONFIG, else no check): "
    "the serve it reaches (PREFECT_API_URL, else the one running with this PREFECT_HOME) must "
    "have been started with it"
)


def add_config_option(
    parser: argparse.ArgumentParser, help_text: str, default: str | None = None
) -> None:
    """The config option, spelled the same by every command: `-c/--config PATH`."""
    parser.add_argument("-c", "--config", metavar="PATH", default=default, help=help_text)


class OperatorError(Exception):
    """A mistake an operator can fix (a missing section, a malformed argument): one line, no
    traceback. `code` is the exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def check_config(args: argparse.Namespace) -> int:
    """Errors (exit 1) name file:line: key.path and what breaks; notes do not fail the check."""
    from fleet_alerting.config import ConfigError, load_config
    from fleet_alerting.config.checks import check, policy_summary, secret_refs
    from fleet_alerting.core.clock import utcnow
    from fleet_alerting.core.muting import Muting
    from fleet_alerting.core.signals import Severity

    path = args.config_file or args.config
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    names = [ref.prefect_secret for _loc, ref in secret_refs(config) if ref.prefect_secret]
    findings = check(config, _prefect_blocks(names) if names else None)
    errors = [f for f in findings if f.level == "error"]
    for finding in errors:
        print(finding.at(Path(path)), file=sys.stderr)
    for finding in findings:  # never fails the check: on stdout, beside the notes
        if finding.level == "warning":
            print(f"warning: {finding.at(Path(path))}")
    if errors:
        return 1
    bb = config.blackbox
    watches = []
    if bb.targets or bb.file_sd:
        watches.append(f"blackbox {len(bb.targets)} target(s) + {len(bb.file_sd)} file_sd group(s)")
    if config.zigbee.coordinators:
        watches.append(f"zigbee {len(config.zigbee.coordinators)} coordinator(s)")
    if config.prometheus.url:
        watches.append(f"prometheus {len(config.prometheus.watches)} extra watch(es)")
    watches += [name for name in ("alertmanager", "fleet_api") if getattr(config, name)]
    unresolved = {f.loc for f in findings if f.level != "warning"}
    refs = sum(1 for loc, _ref in secret_refs(config) if loc not in unresolved)
    sent = ""
    if config.notify.dry_run:
        sent = "; notifications to local outbox (dry run), nothing sent"
    watched = ", ".join(watches) or "no watch configured"
    print(f"{path}: ok — {watched}; {refs} secret reference(s) resolve{sent}")
    print(f"  state: {_describe_state(config)}")
    for severity in Severity:
        print(f"  {policy_summary(config, severity)}")
    schedules = Muting((), config.maintenance_rules()).schedules(utcnow())
    print("  maintenance windows:" if schedules else "  maintenance windows: none")
    for schedule in schedules:
        print(f"    {schedule.describe()}")
    for finding in findings:
        if finding.level == "note":
            print(f"note: {finding.at(Path(path))}")
    return 0


def _describe_state(config: Config) -> str:
    """Where the store is, never with a password (the URL cannot hold one; it is a secret)."""
    state = config.state
    if state.url is None:
        return f"SQLite {state.path} (one host)"
    login = f", password from {state.password.describe()}" if state.password else ""
    return f"PostgreSQL {state.url}{login} (not connected by check-config)"


def _prefect_blocks(names: list[str]) -> BlockCheck | None:
    """Look the Secret blocks up when a Prefect API is set and answers; None otherwise."""
    import asyncio

    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return None

    async def look_up() -> dict[str, str | None] | None:
        from prefect.blocks.system import Secret
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            if await client.api_healthcheck() is not None:
                return None
        found: dict[str, str | None] = {}
        for name in names:
            try:
                value = str((await Secret.aload(name)).get()).strip()
            except Exception as exc:  # ValueError (no such block), HTTP errors alike
                found[name] = f"cannot load Prefect Secret block {name!r}: {type(exc).__name__}"
            else:
                found[name] = None if value else f"Prefect Secret block {name!r} is empty"
        return found

    found = asyncio.run(look_up())
    return None if found is None else found.__getitem__


def run_flow(args: argparse.Namespace) -> int:
    from fleet_alerting.deployments.run import run_once

    return run_once(args.flow, args.config)


def serve(args: argparse.Namespace) -> int:
    from fleet_alerting.deployments.serve import serve_all
    from fleet_alerting.surfaces.metrics import metrics_endpoint

    return serve_all(args.config, sidecars=[metrics_endpoint], ui_port=args.ui_port)


def trigger(args: argparse.Namespace) -> int:
    import asyncio

    import httpx
    import yaml

    from fleet_alerting.deployments.trigger import trigger as run_now
    from fleet_alerting.surfaces.slack_commands import deployment_name_problem

    problem = deployment_name_problem(args.deployment)
    if problem:
        raise OperatorError(problem, code=2)
    parameters = {}
    for pair in args.param:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise OperatorError(f"--param {pair!r}: expected NAME=VALUE", code=2)
        try:
            parameters[name] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            raise OperatorError(f"--param {pair!r}: the value is not a YAML scalar", 2) from None
    config = args.config or os.environ.get("FLEET_ALERTING_CONFIG", "").strip() or None

    def problem(text: str) -> None:
        print(f"fleet-alerting trigger: {text}", file=sys.stderr)

    try:
        run = run_now(args.deployment, parameters, wait=args.wait, config=config, problem=problem)
        return asyncio.run(run)
    except httpx.HTTPError as exc:
        raise OperatorError(f"Prefect API unreachable ({type(exc).__name__})") from None


def _config(path: str) -> Config:
    from fleet_alerting.config import load_config

    return load_config(path)  # a ConfigError becomes its lines on stderr in main()


def _require(config: Config, path: str, *sections: str) -> None:
    """Every secret the command needs must resolve, and its sections exist: else one line
    naming the file and key, before any server starts."""
    from fleet_alerting.config.checks import secret_refs
    from fleet_alerting.config.loader import key_path, locate

    for section in sections:
        node: object = config
        for part in section.split("."):
            node = getattr(node, part, None)
        if node is None:
            raise OperatorError(f"{path}: {section}: not configured (this command needs it)")
    for loc, ref in secret_refs(config):
        if key_path(loc).startswith(sections) and ref.prefect_secret is None:
            problem = ref.problem()
            if problem:
                raise OperatorError(f"{locate(Path(path), loc)}: {problem}")


def slack_app(args: argparse.Namespace) -> int:
    from fleet_alerting.deployments.trigger import trigger as run_now
    from fleet_alerting.surfaces.http_guard import serve
    from fleet_alerting.surfaces.slack_app import NO_FLEET_API, announce, create_app, log_actions

    config = _config(args.config)
    # buttons, `/fleet incidents`, `run` and `silence` need no Fleet API; its secrets resolve if set
    _require(
        config, args.config, "operators.slack_app", *(["fleet_api"] if config.fleet_api else [])
    )
    settings = config.operators.slack_app
    assert settings is not None

    async def trigger_from_slack(deployment: str, out: Callable[[str], None]) -> int:
        return await run_now(deployment, {}, wait=False, out=out)

    app = create_app(config, trigger_from_slack)
    announce(app, settings.host, settings.port, lambda line: print(line, flush=True))
    if config.fleet_api is None:
        print(f"  {NO_FLEET_API}", flush=True)
    log_actions(sys.stderr)
    serve(app, settings.host, settings.port)
    return 0


def mcp(args: argparse.Namespace) -> int:
    from fleet_alerting.deployments.trigger import trigger as run_now
    from fleet_alerting.surfaces.http_guard import serve
    from fleet_alerting.surfaces.mcp_server import build_server, http_app

    config = _config(args.config)
    _require(config, args.config, "fleet_api")
    if args.http:
        _require(config, args.config, "operators.mcp.token")

    async def trigger_from_mcp(name: str, params: dict, out: Callable[[str], None]) -> int:
        return await run_now(name, params, wait=False, out=out)

    server = build_server(config, write=args.write, trigger=trigger_from_mcp)
    if not args.http:
        server.run("stdio")
        return 0
    settings = config.operators.mcp
    serve(http_app(config, server), settings.host, settings.port)
    return 0


def demo(args: argparse.Namespace) -> int:
    from fleet_alerting.deployments.run import demo as run_demo

    return run_demo(args.config, rounds_seconds=args.interval)


def when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}Z" if moment else "-"


def incident_line(incident: Incident, now: datetime) -> str:
    """State, onset, how long it failed, and what it is (or why it resolved)."""
    from fleet_alerting.core.durations import format_duration
    from fleet_alerting.core.incidents import State

    lasted = format_duration(incident.duration(now))
    what = incident.signal.summary
    if incident.state == State.resolved:
        why = incident.resolution or "never opened: cleared before open_after"
        what = f"{what} — resolved {when(incident.resolved_at)}: {why}"
    return (
        f"{incident.state:<9} {incident.severity:<8} {when(incident.onset):<20} {lasted:>7}  "
        f"{incident.key}  {what}{_told_by(incident)}{_acted_on(incident, now)}"
    )


def _acted_on(incident: Incident, now: datetime) -> str:
    """Who acknowledged, silenced, snoozed or muted it, and until when (what still holds)."""
    acts, said = incident.acts, []
    if acts.acked_by:
        said.append(f"acknowledged by {acts.acked_by} {when(acts.acked_at)}")
    if acts.silenced_by:
        until = when(acts.silenced_until) if acts.silenced_until else "resolved"
        said.append(f"silenced by {acts.silenced_by} until {until}")
    if acts.snoozed_until and acts.snoozed_until > now:
        said.append(f"snoozed until {when(acts.snoozed_until)}")
    if acts.muted_by:
        until = f" until {when(acts.muted_until)}" if acts.muted_until else ""
        said.append(f"{acts.muted_by}{until}")
    return f"  [{'; '.join(said)}]" if said else ""


def _told_by(incident: Incident) -> str:
    """Who tells (or does not tell) for this incident, besides itself."""
    if incident.inhibited_by:
        return f"  [inhibited by {incident.inhibited_by}]"
    if incident.group:
        return f"  [in group {incident.group}]"
    return ""


def incidents(args: argparse.Namespace) -> int:
    from fleet_alerting.surfaces.listings import incidents as list_incidents

    return list_incidents(args)


def outbox(args: argparse.Namespace) -> int:
    from fleet_alerting.surfaces.listings import outbox as list_outbox

    return list_outbox(args)


def manage_outbox(args: argparse.Namespace) -> int:
    from fleet_alerting.surfaces.listings import manage

    return manage(args)


def _add_filters(parser: argparse.ArgumentParser, states: list[str]) -> None:
    parser.add_argument(
        "-o", "--output", choices=["table", "json"], default="table", help="table or json"
    )
    parser.add_argument(
        "--severity",
        action="append",
        choices=["critical", "warning", "info"],
        help="only this severity (repeatable)",
    )
    parser.add_argument(
        "--source", metavar="NAME", help="only this source, e.g. blackbox or prometheus"
    )
    parser.add_argument("--state", action="append", choices=states, help="only this state")


def _add_outbox_commands(box: argparse.ArgumentParser) -> None:
    """`outbox retry|drop|requeue ID` (`outbox` alone still lists). `--config` is taken before
    or after the verb: the verb's own option has no default, which would replace the other."""
    verbs = box.add_subparsers(dest="verb", metavar="{retry,drop,requeue}")
    helps = {
        "retry": "make a queued message due now, its destination's rest lifted (it is back)",
        "drop": "never send a queued message (a dead letter), or mark a refused page dropped "
        "(--reason)",
        "requeue": "queue a dead letter again, due now, its attempts reset",
    }
    for verb, help_text in helps.items():
        sub = verbs.add_parser(verb, help=help_text, description=help_text)
        sub.set_defaults(func=manage_outbox)
        sub.add_argument(
            "id", type=int, metavar="ID", help="the message's number (#ID in `outbox`)"
        )
        sub.add_argument(
            "--as", dest="actor", metavar="NAME", help="who acts (default: the login name)"
        )
        if verb == "drop":
            sub.add_argument(
                "--reason", required=True, metavar="TEXT", help="why; recorded in the trail"
            )
        add_config_option(sub, CONFIG_HELP, argparse.SUPPRESS)


def _since(text: str) -> datetime:
    """`--since`: a duration back from now (`2h`, `30m`) or an ISO 8601 instant."""
    from fleet_alerting.core.clock import utcnow
    from fleet_alerting.core.durations import parse_duration

    try:
        return utcnow() - parse_duration(text)
    except (ValueError, OverflowError):
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a duration such as 2h or an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def notify_test(args: argparse.Namespace) -> int:
    import asyncio

    from fleet_alerting.core.channels import Channel
    from fleet_alerting.core.clock import utcnow
    from fleet_alerting.surfaces.notify_test import DESTINATIONS, configured, describe, send_test

    config = _config(args.config)
    wanted = list(DESTINATIONS) if args.to == "all" else [args.to]
    channels = []
    for name in wanted:
        channel = DESTINATIONS[name]
        if configured(config, channel):
            channels.append(channel)
            continue
        section = {
            Channel.slack: "notify.slack.webhook",
            Channel.slack_mirror: "notify.slack.mirror_webhook",
        }
        section = section.get(channel, f"notify.{channel}")
        if args.to != "all":
            raise OperatorError(f"{name} is not configured ({section}): nothing to test")
        print(f"{name}: not configured ({section}): skipped")
    if not channels:
        where = "messages go to the local outbox" if config.notify.dry_run else "notify.*"
        raise OperatorError(f"nothing to test: no destination configured ({where})")
    outcomes = asyncio.run(send_test(config, channels, utcnow))
    for outcome in outcomes:
        print(describe(config, outcome))
    return 0 if all(o.result == "delivered" for o in outcomes) else 1


def _version() -> str:
    try:
        return version("fleet-alerting")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    from fleet_alerting.deployments.schedules import SCHEDULES

    parser = argparse.ArgumentParser(prog="fleet-alerting", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="print the version"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(func=func)
        return sub

    def with_config(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        add_config_option(sub, CONFIG_HELP)
        sub.set_defaults(finds_config=True)
        return sub

    checker = with_config(add("check-config", check_config, "validate a config file"))
    # the config given positionally: the old spelling, still accepted, no longer shown
    checker.add_argument("config_file", nargs="?", help=argparse.SUPPRESS)
    run = add("run", run_flow, "run one watch flow once, locally (the audit: `audit`)")
    flows = [s.flow for s in SCHEDULES if "config_path" in s.parameters]
    run.add_argument(
        "flow", choices=flows, metavar="FLOW", help=f"the watch to run: {', '.join(flows)}"
    )
    with_config(run)
    served = with_config(add("serve", serve, "serve every deployment on its schedule"))
    served.add_argument(
        "--ui-port",
        type=int,
        metavar="PORT",
        help="the local Prefect server's port (UI and API), fixed so its links outlive restarts "
        "(default: FLEET_ALERTING_UI_PORT, else a free port at each start)",
    )
    show = add("demo", demo, "show the product working against local targets, in about a minute")
    add_config_option(show, f"the YAML config file (default: {DEFAULT_CONFIG})", DEFAULT_CONFIG)
    show.add_argument(
        "--interval", type=float, default=3.0, metavar="SECONDS", help="seconds between probe runs"
    )
    now = add("trigger", trigger, "run a deployment now through the Prefect API")
    now.add_argument("deployment", metavar="FLOW/DEPLOYMENT", help="e.g. blackbox-probe/scheduled")
    add_config_option(now, TRIGGER_CONFIG_HELP)
    now.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a flow parameter (the value a YAML scalar); repeatable",
    )
    now.add_argument("--wait", action="store_true", help="follow the run; exit with its outcome")
    with_config(add("slack-app", slack_app, "serve the /fleet slash command"))
    server = with_config(add("mcp", mcp, "serve Fleet data to MCP clients (stdio, or --http)"))
    server.add_argument("--http", action="store_true", help="streamable HTTP with a bearer token")
    server.add_argument("--write", action="store_true", help="offer trigger_deployment")
    add_audit_commands(commands)
    inc = with_config(add("incidents", incidents, "list incidents: id, state, onset, duration"))
    inc.add_argument("--all", action="store_true", help="include resolved incidents and why")
    inc.add_argument(
        "--show",
        metavar="KEY",
        help="one incident and its actions (key, id, a unique prefix, or a device name)",
    )
    _add_filters(inc, ["pending", "firing", "paged", "resolved"])
    from fleet_alerting.surfaces.actions_cli import add_commands as add_action_commands

    add_action_commands(commands, with_config)  # ack, silence, unsilence, snooze
    box = with_config(
        add("outbox", outbox, "list queued notifications and dead letters (or --sent)")
    )
    box.add_argument(
        "--sent",
        action="store_true",
        help="show delivered messages and receipts, and pages withdrawn (resolved first)",
    )
    box.add_argument(
        "--since",
        type=_since,
        metavar="WHEN",
        help="only messages queued since WHEN: a duration back (2h) or an ISO 8601 time",
    )
    _add_filters(box, ["queued", "dead", "sent", "withdrawn"])
    _add_outbox_commands(box)
    from fleet_alerting.surfaces.whatif_cli import add_commands as add_whatif_commands

    add_whatif_commands(commands, with_config, _since)
    tell = with_config(
        add("notify-test", notify_test, "send a marked test message to each destination")
    )
    tell.add_argument(
        "--to",
        choices=["slack", "mirror", "pagerduty", "oncall", "all"],
        default="all",
        help="one destination, or all configured ones (default); pagers: trigger, then resolve",
    )
    return parser


def _quiet_telemetry() -> None:
    """No analytics calls from a CLI on a closed network; an operator may still opt in."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def main(argv: Sequence[str] | None = None) -> int:

    _quiet_telemetry()
    args = build_parser().parse_args(argv)
    name = f"fleet-alerting {args.command}"
    if getattr(args, "finds_config", False):
        _choose_config(args, name)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe raises here, not at exit
        return code
    except OperatorError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `| head` read enough: stop quietly, as other tools do on SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit flush
        return 141
    except Exception as exc:
        # imported only here: the store package loads SQLAlchemy, which `routes test` never needs
        from fleet_alerting.store.errors import StoreError

        if isinstance(exc, StoreError):  # says which file and what to do; no traceback
            print(exc, file=sys.stderr)
            return 1
        return _failed(name, exc)


def _choose_config(args: argparse.Namespace, name: str) -> None:
    """`--config`, else $FLEET_ALERTING_CONFIG, else the example; said on stderr unless given."""
    from fleet_alerting.config.loader import find_config

    path, why = find_config(getattr(args, "config_file", None) or args.config)
    if why:
        print(f"{name}: config {path} ({why})", file=sys.stderr)
    args.config = path


def _failed(name: str, exc: Exception) -> int:
    """One line for any other failure; the config's own errors are already one line each."""
    from fleet_alerting.config import ConfigError
    from fleet_alerting.config.secrets import SecretError, redact

    if isinstance(exc, ConfigError):
        print(exc, file=sys.stderr)
        return 1
    if isinstance(exc, SecretError):
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    if os.environ.get("FLEET_ALERTING_DEBUG"):
        raise exc
    print(
        f"{name} failed: {_first_line(redact(f'{type(exc).__name__}: {exc}'))} "
        "(FLEET_ALERTING_DEBUG=1 shows the traceback)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
