"""Where a Prefect API is: PREFECT_API_URL, else the local server a running `serve` started (it
leaves its address in PREFECT_HOME), else none. Imports no Prefect, so asking is cheap."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import httpx

MARKER = "fleet-alerting-serve.json"
STARTUP_SETTING = "FLEET_ALERTING_STARTUP_TIMEOUT"
UI_PORT_SETTING = "FLEET_ALERTING_UI_PORT"


def startup_timeout() -> float:
    """Seconds a Prefect server may take to answer (FLEET_ALERTING_STARTUP_TIMEOUT, default 180:
    a busy 2-core machine needed up to a minute)."""
    with contextlib.suppress(ValueError):
        return max(1.0, float(os.environ.get(STARTUP_SETTING) or 180))
    return 180.0


def chosen_ui_port(given: int | None) -> int | None:
    """The port of serve's local Prefect server (UI and API): `given` (--ui-port), else
    FLEET_ALERTING_UI_PORT, else None (a free port, new at every start). ValueError names the
    bad value."""
    if given is not None:
        return _port(given, "--ui-port")
    if found := os.environ.get(UI_PORT_SETTING, "").strip():
        try:
            return _port(int(found), UI_PORT_SETTING)
        except ValueError:
            raise ValueError(f"{UI_PORT_SETTING}={found!r}: expected a port 1-65535") from None
    return None


def _port(port: int, source: str) -> int:
    if not 1 <= port <= 65535:
        raise ValueError(f"{source} {port}: expected a port 1-65535")
    return port


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def marker_path() -> Path:
    return prefect_home() / MARKER


@dataclass(frozen=True)
class Api:
    url: str | None  # None: no API, the run is not recorded in Prefect
    origin: str  # "PREFECT_API_URL", "serve" or "none"


def find_api() -> Api:
    if url := os.environ.get("PREFECT_API_URL"):
        return Api(url, "PREFECT_API_URL")
    url = served_api()
    return Api(url, "serve") if url else Api(None, "none")


def served_api() -> str | None:
    """The API of the local server of a running `serve`, if it answers."""
    try:
        found = json.loads(marker_path().read_text())
        url = str(found["api_url"])
        os.kill(int(found["pid"]), 0)  # the serve process still exists
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if healthy(url) else None


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def write_marker(api_url: str) -> Path:
    path = marker_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"api_url": api_url, "pid": os.getpid()}))
    return path


def remove_marker() -> None:
    with contextlib.suppress(OSError, ValueError):
        if json.loads(marker_path().read_text()).get("pid") == os.getpid():
            marker_path().unlink()
