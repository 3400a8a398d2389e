"""`fleet-alerting trigger`: run a deployment now through the Prefect API, optionally waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from fleet_alerting.deployments.local import find_api

Print = Callable[[str], None]


async def trigger(
    deployment: str,
    parameters: dict[str, Any],
    *,
    wait: bool,
    poll_seconds: float = 1.0,
    out: Print = print,
) -> int:
    """Exit code: 0 when created (or, waiting, completed), 1 when the run ended otherwise,
    2 when there is no server or no such deployment."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # Prefect's setting (environment, profile), else the server of a running `fleet-alerting serve`
    api = PREFECT_API_URL.value() or (await asyncio.to_thread(find_api)).url
    if not api:
        out(
            "no Prefect server: PREFECT_API_URL is not set and no `fleet-alerting serve` is "
            "running. Start one with `fleet-alerting serve` or point PREFECT_API_URL at yours."
        )
        return 2
    with temporary_settings(updates={PREFECT_API_URL: api}):
        return await _trigger(deployment, parameters, wait, poll_seconds, out, api)


async def _trigger(
    deployment: str,
    parameters: dict[str, Any],
    wait: bool,
    poll_seconds: float,
    out: Print,
    api: str,
) -> int:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        if await client.api_healthcheck() is not None:
            out(f"no Prefect server reachable at {api}")
            return 2
        try:
            found = await client.read_deployment_by_name(deployment)
        except (ObjectNotFound, httpx.HTTPStatusError):
            names = await _deployment_names(client)
            out(f"no deployment {deployment!r}; known: {', '.join(names) or 'none'}")
            return 2
        if found.paused:  # nobody would run it: a run of it would wait as Late forever
            out(
                f"deployment {deployment!r} is paused: the running serve does not serve it (is "
                "its section in serve's config?), or someone paused it in the Prefect UI"
            )
            return 2
        run = await client.create_flow_run_from_deployment(found.id, parameters=parameters)
        out(f"created flow run {run.name} ({run.id}) of {deployment}")
        if not wait:
            return 0
        seen = None
        while True:
            run = await client.read_flow_run(run.id)
            state = run.state
            if state is not None and state.name != seen:
                seen = state.name
                out(f"{run.name}: {state.name}" + (f" — {state.message}" if state.message else ""))
            if state is not None and state.is_final():
                return 0 if state.is_completed() else 1
            await asyncio.sleep(poll_seconds)


async def _deployment_names(client: Any) -> list[str]:
    flows = {f.id: f.name for f in await client.read_flows()}
    return sorted(f"{flows.get(d.flow_id, '?')}/{d.name}" for d in await client.read_deployments())
