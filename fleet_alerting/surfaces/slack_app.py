"""`fleet-alerting slack-app`: the ASGI app behind the `/fleet` slash command (Starlette).

Every request is refused as early as possible (surfaces/http_guard.py): its headers (present,
ASCII digits, a `v0=` hex signature, within 5 minutes) and its declared size before the body is
read, the body read up to the limit only, then the signature, then a replay (the store remembers
signatures). Malformed requests get 400/401/408/413, never a 500. Answers come
within Slack's 3 s; a slow or broken system becomes a friendly message naming that system (the
Fleet API, the incident store, Prefect). Store reads never take the write lock and never block
the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TextIO
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from fleet_alerting.config import Config
from fleet_alerting.config.secrets import install_log_redaction
from fleet_alerting.core.mrkdwn import escape
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.sources.fleet_events.client import FleetApi
from fleet_alerting.surfaces.fleet_queries import FleetQueries, LogsQuery
from fleet_alerting.surfaces.http_guard import Refused, SlackSigning
from fleet_alerting.surfaces.slack_actions import action_routes
from fleet_alerting.surfaces.slack_commands import (
    MAX_BODY_BYTES,
    USAGE,
    SlashCommand,
    deployment_name_problem,
    health_lines,
    incident_lines,
    log_lines,
    parse,
    reply,
    state_lines,
)

log = logging.getLogger("fleet_alerting.surfaces.slack_app")
# (deployment, print) → exit code; `deployments.trigger.trigger` in production.
Trigger = Callable[[str, Callable[[str], None]], Awaitable[int]]


def announce(app: Starlette, host: str, port: int, out: Callable[[str], None] = print) -> None:
    """Where the app listens and what it answers, said once at start-up."""
    out(f"slack-app: listening on http://{host}:{port}")
    for route in app.routes:
        if isinstance(route, Route):
            methods = ",".join(sorted(set(route.methods or ()) - {"HEAD"}))
            out(f"  {methods:<4} http://{host}:{port}{route.path}")


def log_actions(stream: TextIO) -> None:
    """Each handled command and click, one line on `stream` (who, what, which incident; the
    redaction filter keeps secrets out)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    surfaces = logging.getLogger("fleet_alerting.surfaces")
    surfaces.setLevel(logging.INFO)
    surfaces.addHandler(handler)
    install_log_redaction()


def create_app(
    config: Config, trigger: Trigger, clock: Callable[[], float] = time.time
) -> Starlette:
    settings = config.operators.slack_app
    if settings is None:
        raise ValueError("operators.slack_app is not configured")
    install_log_redaction()
    signing = SlackSigning(config, clock)
    fleet_api = config.fleet_api
    token = fleet_api.token.resolve() if fleet_api and fleet_api.token else None
    state: dict[str, FleetQueries] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=settings.answer_within.total_seconds()) as client:
            api = None
            if fleet_api is not None:
                api = FleetApi(client, fleet_api.url, token, fleet_api.max_answer_bytes)
            state["queries"] = FleetQueries(config, api)
            yield

    async def command(request: Request) -> PlainTextResponse | JSONResponse:
        try:
            body, signature = await signing.read(request, MAX_BODY_BYTES)
            cmd = parse(dict(parse_qsl(body)))
            if changes_something(cmd.action, cmd.args):  # the store remembers it for every process
                await signing.refuse_replay(signature)
            else:  # the others never wait for the store's write lock
                signing.refuse_replay_here(signature)
        except Refused as exc:
            log.warning("refused a /fleet request: %s", exc.text)
            if exc.status == 503:  # signed, but the store cannot say it is new: Slack shows why
                return JSONResponse(reply("The incident store failed", [exc.text]))
            return exc.response()
        system = SYSTEMS.get(cmd.action, "fleet-alerting")
        try:
            answer = await asyncio.wait_for(
                respond(cmd, state["queries"], config, trigger),
                settings.answer_within.total_seconds(),
            )
        except TimeoutError:
            lines = ["Try again in a moment."]
            if cmd.action == "run":
                lines = ["The run may have been created: check the Prefect UI before retrying."]
            answer = reply(f"{system} did not answer in time", lines)
        except AdapterError as exc:
            answer = reply(f"{system} is not answering", [str(exc)])
        except Exception as exc:  # never a 500 with a traceback to Slack
            log.exception("/fleet %s failed", cmd.action)
            answer = reply(f"{system} failed", [f"{type(exc).__name__}; see the slack-app log."])
        log.info(
            "/fleet %s by %s in %s: %s",
            " ".join([cmd.action, *cmd.args]),
            cmd.user_id,
            cmd.channel_id,
            answer.get("text", ""),
        )
        return JSONResponse(answer)

    async def healthz(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    routes = [Route("/slack/commands", command, methods=["POST"]), Route("/healthz", healthz)]
    routes += action_routes(config, clock)  # /slack/actions: the buttons (slack_actions.py)
    return Starlette(routes=routes, lifespan=lifespan)


SYSTEMS = {  # which system answers each /fleet action, named when it fails
    "health": "The Fleet API",
    "state": "The Fleet API",
    "logs": "The Fleet API",
    "incidents": "The incident store",
    "run": "Prefect",
    "silence": "The incident store",
}


NEEDS_FLEET_API = ("health", "state", "logs")
NO_FLEET_API = "no fleet_api section: /fleet health, state and logs answer that they need one"


async def respond(
    cmd: SlashCommand, queries: FleetQueries, config: Config, trigger: Trigger
) -> dict[str, Any]:
    if cmd.action in NEEDS_FLEET_API and config.fleet_api is None:
        return reply(
            "The Fleet API is not configured",
            [
                "`/fleet health`, `/fleet state` and `/fleet logs` read the Fleet API: give the "
                "config a `fleet_api` section (url, token). Buttons, `/fleet incidents`, `run` "
                "and `silence` work without it."
            ],
        )
    if cmd.action == "health":
        return reply("Fleet health", health_lines(await queries.health_summary()))
    if cmd.action == "state":
        device = cmd.args[0] if cmd.args else None
        lines = state_lines(await queries.fleet_state(), device)
        return reply(f"Fleet state{f' of {device}' if device else ''}", lines)
    if cmd.action == "logs":
        query = LogsQuery.from_words(cmd.args)
        lines = log_lines(await queries.logs(query))
        return reply("Fleet logs", lines, queries.logs_url(query))
    if cmd.action == "incidents":
        lines = incident_lines(await queries.open_incidents())
        return reply("Open incidents", lines or ["No open incidents."])
    if cmd.action == "run":
        return await run(cmd, config, trigger)
    if cmd.action == "silence":
        from fleet_alerting.surfaces.slack_silences import silence

        return await silence(cmd, config)
    return reply("fleet", [USAGE])


async def run(cmd: SlashCommand, config: Config, trigger: Trigger) -> dict[str, Any]:
    settings = config.operators.slack_app
    assert settings is not None
    allowed = cmd.user_id in settings.allowed_users or cmd.channel_id in settings.allowed_channels
    if not allowed:
        log.warning("refused /fleet run from user %s in %s", cmd.user_id, cmd.channel_id)
        return reply(
            "Not allowed", ["`/fleet run` is limited to the users and channels in config."]
        )
    if not cmd.args:
        return reply("fleet run", ["Usage: `/fleet run <flow/deployment>`"])
    problem = deployment_name_problem(cmd.args[0])
    if problem:
        return reply("fleet run", [escape(problem), "Usage: `/fleet run <flow/deployment>`"])
    lines: list[str] = []
    code = await trigger(cmd.args[0], lambda line: lines.append(escape(line)))
    title = "Triggered" if code == 0 else "Could not trigger"
    return reply(f"{title} {cmd.args[0]}", lines)


def changes_something(action: str, args: Sequence[str]) -> bool:
    """`/fleet run` and `/fleet silence add|expire` change state: a replay of one must be refused
    by every app process, after a restart too, so the store remembers their signatures."""
    return action == "run" or (
        action == "silence" and [a.lower() for a in args[:1]] in (["add"], ["expire"])
    )
