"""`fleet-alerting trigger`: run a deployment now through the Prefect API, optionally waiting."""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from fleet_alerting.core.wording import no_such
from fleet_alerting.deployments.local import MARKER, find_api, prefect_home

Print = Callable[[str], None]


async def trigger(
    deployment: str,
    parameters: dict[str, Any],
    *,
    wait: bool,
    poll_seconds: float = 1.0,
    out: Print = print,
    config: str | None = None,
    problem: Print | None = None,
) -> int:
    """Exit code: 0 when created (or, waiting, completed); 1 when the run ended otherwise, or the
    deployment is unknown, paused or runs another config than `config`; 2 when no server answers.
    What went wrong goes to `problem` (default: `out`)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    problem = problem or out
    # Prefect's setting (environment, profile), else the server of a running `fleet-alerting serve`
    api = PREFECT_API_URL.value() or (await asyncio.to_thread(find_api)).url
    if not api:
        problem(no_server())
        return 2
    with temporary_settings(updates={PREFECT_API_URL: api}):
        return await _trigger(deployment, parameters, wait, poll_seconds, out, api, config, problem)


def no_server() -> str:
    """Where `trigger` looked for a running serve, and how to point it at another one."""
    home = prefect_home()
    return (
        "No Prefect server: PREFECT_API_URL is not set and no `fleet-alerting serve` is running "
        f"with PREFECT_HOME={home} (no live {MARKER} there). A serve started with another "
        "PREFECT_HOME is found with that one (PREFECT_HOME=DIR fleet-alerting trigger …), or "
        "set PREFECT_API_URL to the API it printed at start."
    )


async def _trigger(
    deployment: str,
    parameters: dict[str, Any],
    wait: bool,
    poll_seconds: float,
    out: Print,
    api: str,
    config: str | None,
    problem: Print,
) -> int:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        if await client.api_healthcheck() is not None:
            problem(
                f"No Prefect server reachable at {api}. Is `fleet-alerting serve` (or `prefect "
                "server start`) running there? Unset PREFECT_API_URL (`prefect config unset "
                "PREFECT_API_URL` if a profile sets it) to use the running serve this "
                "PREFECT_HOME knows of."
            )
            return 2
        try:
            found = await client.read_deployment_by_name(deployment)
        except (ObjectNotFound, httpx.HTTPStatusError):
            names = await _deployment_names(client)
            meant = difflib.get_close_matches(deployment, names, n=3, cutoff=0.6)
            known = f"Known at {api}: {', '.join(names) or 'none'}."
            problem(no_such("deployment", deployment, meant=meant, hint=known))
            return 1
        if found.paused:  # nobody would run it: a run of it would wait as Late forever
            problem(
                f"Deployment {deployment!r} is paused: the running serve does not serve it (is "
                "its section in serve's config?), or someone paused it in the Prefect UI."
            )
            return 1
        if other := other_config(found.parameters, config):
            problem(
                f"Deployment {deployment!r} at {api} runs {other}, not {config}: the serve of "
                f"{config} has its own Prefect server (another PREFECT_HOME, now {prefect_home()}"
                "): set PREFECT_HOME or PREFECT_API_URL to reach it."
            )
            return 1
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


def other_config(parameters: dict[str, Any], config: str | None) -> str | None:
    """The config a served deployment runs when it is not `config` (None: the same, or no
    config asked for, or a deployment that reads no config)."""
    served = parameters.get("config_path")
    if config is None or not served:
        return None
    return None if Path(served).resolve() == Path(config).resolve() else str(served)


async def _deployment_names(client: Any) -> list[str]:
    flows = {f.id: f.name for f in await client.read_flows()}
    return sorted(f"{flows.get(d.flow_id, '?')}/{d.name}" for d in await client.read_deployments())
