"""`fleet-alerting run WATCH`: one run, now, without paying for a temporary Prefect server.

The config is validated first (a typo costs milliseconds, not a server start-up). Then the run is
recorded in a Prefect server if there is one — PREFECT_API_URL, else the local server of a running
`fleet-alerting serve` — and otherwise runs plainly: the same flow code, steps as plain calls, logs
on stderr, no run in any UI. Prefect's ephemeral server (6–50 s per process) is never started.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from fleet_alerting.config import ConfigError, load_config
from fleet_alerting.config.secrets import redact
from fleet_alerting.deployments.local import Api, find_api, healthy, startup_timeout

Print = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def plain_logging(stream: TextIO | None = None) -> None:
    """Log lines of a plain run (no Prefect run logger) on stderr, as Prefect would print them."""
    logger = logging.getLogger("fleet_alerting")
    if not any(getattr(h, "_fleet_plain", False) for h in logger.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        line = "%(asctime)s.%(msecs)03d | %(levelname)-7s | %(message)s"
        handler.setFormatter(logging.Formatter(line, "%H:%M:%S"))
        handler._fleet_plain = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # Prefect's console handler on the root would print each line twice


async def run_watch(flow_name: str, config_path: str, api: Api) -> Any:
    """Run one watch: as a Prefect flow run recorded at `api.url`, or plainly when it is None."""
    from fleet_alerting.flows import get_flow
    from fleet_alerting.tasks.runtime import go_plain

    if api.url is None:
        go_plain()  # this process imports no Prefect for the flow (a CLI process, one-shot)
        plain_logging()
        return await get_flow(flow_name).fn(config_path=config_path)
    flow = get_flow(flow_name)
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    updates = {
        PREFECT_API_URL: api.url,
        # never used with an API URL set; generous should anything start one anyway
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: int(startup_timeout()),
    }
    from prefect.exceptions import FailedRun

    from fleet_alerting.flows.common import RunFailed

    with temporary_settings(updates=updates):
        try:
            return await flow(config_path=config_path)
        except FailedRun as exc:  # the run's own one-line reason (store_errors_fail_the_run)
            raise RunFailed(str(exc)) from None


def describe(api: Api) -> str:
    if api.origin == "serve":
        return f"recorded in the Prefect server of the running `serve` ({api.url})"
    if api.origin == "PREFECT_API_URL":
        return f"recorded in the Prefect server at {api.url} (PREFECT_API_URL)"
    return (
        "not recorded in Prefect: no PREFECT_API_URL and no `fleet-alerting serve` running "
        "(start one, or set PREFECT_API_URL, to see runs in the Prefect UI)"
    )


def run_once(flow_name: str, config_path: str, out: Print = print, err: Print = _stderr) -> int:
    """Exit code: 0 the run did its job (finding failures is its job), 1 it could not (bad
    config, a run that failed, a page it did not deliver, its store failing while delivering),
    2 PREFECT_API_URL names a server that does not answer."""
    try:
        load_config(config_path)
    except ConfigError as exc:
        err(str(exc))
        return 1
    from fleet_alerting.flows.common import RunFailed, RunIncomplete  # only for a valid config
    from fleet_alerting.store.errors import StoreError

    api = find_api()
    if api.url and api.origin == "PREFECT_API_URL" and not healthy(api.url, timeout=5):
        err(
            f"{flow_name}: no Prefect server answers at {api.url} (PREFECT_API_URL); start it, "
            "or unset PREFECT_API_URL to run without recording the run"
        )
        return 2
    err(f"{flow_name}: {describe(api)}")
    try:
        result = asyncio.run(run_watch(flow_name, str(Path(config_path).resolve()), api))
    except RunIncomplete as exc:  # what it did, and what it owes (still queued)
        out(f"{flow_name}: {exc.result['summary']}")
        err(f"{flow_name}: {exc}")
        return 1
    except (RunFailed, StoreError) as exc:
        err(f"{flow_name}: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the run failed: say so in one line, never with a secret
        err(f"{flow_name} failed: {redact(f'{type(exc).__name__}: {exc}')}")
        return 1
    said = result.get("summary", result) if isinstance(result, dict) else result
    out(f"{flow_name}: {said}")
    return 0


def demo(example_config: str, rounds_seconds: float = 3.0, err: Print = _stderr) -> int:
    """`fleet-alerting demo`: the probe round after round against stand-in targets, each round
    run as `run` would (recorded in a Prefect server if there is one, else plainly)."""
    from fleet_alerting.flows.demo import run_demo

    try:
        load_config(example_config)
    except ConfigError as exc:
        err(str(exc))
        return 1
    api = find_api()
    if api.url and api.origin == "PREFECT_API_URL" and not healthy(api.url, timeout=5):
        err(f"demo: no Prefect server answers at {api.url} (PREFECT_API_URL); unset it or start it")
        return 2
    err(f"demo: each probe round {describe(api)}")
    try:
        return run_demo(
            example_config,
            rounds_seconds,
            run_round=lambda path: run_watch("blackbox-probe", path, api),
        )
    except Exception as exc:  # one line, never a traceback or a secret
        err(f"demo failed: {redact(f'{type(exc).__name__}: {exc}')}")
        return 1
