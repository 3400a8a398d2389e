"""`fleet-alerting slack-app`: the ASGI app behind the `/fleet` slash command (Starlette).

Every request is refused as early as possible: its headers (present, ASCII digits, a `v0=` hex
signature, within 5 minutes) and its declared size before the body is read, the body read up to
the limit only, then the signature. Malformed requests get 400/401/413, never a 500. Answers come
within Slack's 3 s; a slow or broken system becomes a friendly message naming that system (the
Fleet API, the incident store, Prefect). Store reads never take the write lock and never block
the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from fleet_alerting.config import Config
from fleet_alerting.config.secrets import install_log_redaction
from fleet_alerting.delivery.notifiers.slack_webhook import escape
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.sources.fleet_events.client import FleetApi
from fleet_alerting.surfaces.fleet_queries import FleetQueries, LogsQuery
from fleet_alerting.surfaces.slack_actions import action_routes
from fleet_alerting.surfaces.slack_commands import (
    MAX_BODY_BYTES,
    USAGE,
    RequestVerifier,
    SignatureError,
    SlashCommand,
    deployment_name_problem,
    health_lines,
    log_lines,
    parse,
    reply,
    state_lines,
)

log = logging.getLogger("fleet_alerting.surfaces.slack_app")
# (deployment, print) → exit code; `deployments.trigger.trigger` in production.
Trigger = Callable[[str, Callable[[str], None]], Awaitable[int]]


def create_app(
    config: Config, trigger: Trigger, clock: Callable[[], float] = time.time
) -> Starlette:
    settings = config.operators.slack_app
    if settings is None:
        raise ValueError("operators.slack_app is not configured")
    if config.fleet_api is None:
        raise ValueError("fleet_api is not configured")
    install_log_redaction()
    verifier = RequestVerifier(settings.signing_secret.resolve())
    fleet_api = config.fleet_api
    token = fleet_api.token.resolve() if fleet_api.token else None
    state: dict[str, FleetQueries] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=settings.answer_within.total_seconds()) as client:
            state["queries"] = FleetQueries(config, FleetApi(client, fleet_api.url, token))
            yield

    async def command(request: Request) -> PlainTextResponse | JSONResponse:
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        try:  # before a byte of the body is read
            verifier.check_headers(timestamp, signature, clock())
        except SignatureError as exc:
            log.warning("refused a /fleet request: %s", exc)
            return PlainTextResponse("invalid request signature", status_code=401)
        refused = _size_refusal(request.headers.get("content-length"))
        if refused is not None:
            log.warning("refused a /fleet request: %s", refused.body.decode())
            return refused
        body = await _read_body(request)
        if body is None:
            return PlainTextResponse("request body too large", status_code=413)
        try:
            verifier.verify(timestamp, signature, body, clock())
        except SignatureError as exc:
            log.warning("refused a /fleet request: %s", exc)
            return PlainTextResponse("invalid request signature", status_code=401)
        cmd = parse(dict(parse_qsl(body.decode(errors="replace"))))
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


def _size_refusal(length: str | None) -> PlainTextResponse | None:
    """400 for a Content-Length that is not a number, 413 for one over the limit; None when the
    body may be read (absent: chunked, counted while reading)."""
    if length is None:
        return None
    if not length.isascii() or not length.isdigit() or len(length) > 12:
        return PlainTextResponse("malformed Content-Length", status_code=400)
    if int(length) > MAX_BODY_BYTES:
        return PlainTextResponse("request body too large", status_code=413)
    return None


async def _read_body(request: Request) -> bytes | None:
    """The body, read no further than MAX_BODY_BYTES (None beyond it)."""
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None
            chunks.append(chunk)
    except ClientDisconnect:
        return b""
    return b"".join(chunks)


async def respond(
    cmd: SlashCommand, queries: FleetQueries, config: Config, trigger: Trigger
) -> dict[str, Any]:
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
        lines = [
            f"*{i['severity']}* {i['state']} for {i['failing_for']}: {i['summary']} (`{i['key']}`)"
            for i in await queries.open_incidents()
        ]
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
    code = await trigger(cmd.args[0], lines.append)
    title = "Triggered" if code == 0 else "Could not trigger"
    return reply(f"{title} {cmd.args[0]}", lines)
