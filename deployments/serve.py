"""`fleet-alerting serve`: every deployment on its schedule, in this process.

Prefect's ephemeral API does not schedule, so without PREFECT_API_URL this starts a local Prefect
server on 127.0.0.1 (state under PREFECT_HOME, UI at the printed address) and stops it on exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from fleet_alerting.deployments.schedules import SCHEDULES
from fleet_alerting.flows import get_flow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the server's process: get SIGTERM when `serve` dies, however it dies (Linux), so a
    server is never orphaned, even if `serve` is killed before it can stop it."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def local_server(port: int | None = None, timeout: float = 60) -> Iterator[str]:
    """A `prefect server start` subprocess on loopback; yields its API URL."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/api"
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*command, "--port", str(port)], stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited with code {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"prefect server not healthy within {timeout:g}s")
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def build_deployments(config_path: str) -> list:
    def parameters(defaults: dict[str, Any]) -> dict[str, Any]:
        given = {"config_path": str(Path(config_path).resolve())}
        return {k: given.get(k, v) for k, v in defaults.items()}

    return [
        get_flow(s.flow).to_deployment(
            name=s.name,
            cron=s.cron,
            description=s.description,
            parameters=parameters(s.parameters),
            concurrency_limit=1,  # two runs of one deployment never evaluate at once
            tags=["fleet-alerting"],
        )
        for s in SCHEDULES
    ]


def serve_all(config_path: str) -> int:
    from prefect import serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if os.environ.get("PREFECT_API_URL"):
        serve(*build_deployments(config_path))
        return 0
    with local_server() as url, temporary_settings(updates={PREFECT_API_URL: url}):
        print(f"Started a local Prefect server: UI at {url.removesuffix('/api')}", flush=True)
        serve(*build_deployments(config_path))
    return 0
