"""`serve --ui-port PORT` (or FLEET_ALERTING_UI_PORT): the local Prefect server — serve's child
process — listens on a fixed port, so the "View at" links of one start still open after a
restart; a port already taken is said in one line, before any server starts."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.servers import free_port, wait_until

ROOT = Path(__file__).parents[1]
CLI = [sys.executable, "-m", "fleet_alerting.surfaces.cli", "serve", "--config"]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    nowhere = f"http://127.0.0.1:{free_port()}/healthz"  # each run completes, reporting it down
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {"dry_run": True},
        "blackbox": {"targets": [{"name": "api", "url": nowhere}]},
        "schedule": {"every": {"blackbox-probe": "10s"}},
        "metrics": {"enabled": False},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PREFECT_API_URL", "FLEET_ALERTING_UI_PORT")
    }
    return env | {"PREFECT_HOME": str(home)} | extra


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def completed_run_link(log: Path) -> str:
    """The "View at" link of a run serve has seen complete."""
    found: list[str] = []

    def seen() -> bool:
        said = log.read_text()
        names = re.findall(r"^blackbox-probe (\S+): Completed$", said, re.MULTILINE)
        links = [re.search(rf"Flow run '{name}' - View at (\S+)", said) for name in names]
        found[:] = [link.group(1) for link in links if link]
        return bool(found)

    wait_until(seen, 240, f"a completed run's 'View at' link in {log}")
    return found[0]


@pytest.mark.integration
def test_a_fixed_port_keeps_view_at_links_across_a_restart(config: Path, tmp_path: Path) -> None:
    port = free_port()
    ui = f"http://127.0.0.1:{port}"
    home = tmp_path / "home"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    serve = start([*CLI, str(config), "--ui-port", str(port)], environment(home), first_log)
    try:
        link = completed_run_link(first_log)
        assert link.startswith(f"{ui}/runs/flow-run/"), first_log.read_text()[-3000:]
        assert f"Started a local Prefect server: UI at {ui} " in first_log.read_text()
        # the UI is told its API's real address (else it asks port 4200)
        assert httpx.get(f"{ui}/ui-settings", timeout=30).json()["api_url"] == f"{ui}/api"
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0, first_log.read_text()[-3000:]
        assert not listening(port), "serve stopped but its Prefect server still listens"

        # the same port from the environment; the first start's link opens again
        env = environment(home, FLEET_ALERTING_UI_PORT=str(port))
        serve = start([*CLI, str(config)], env, second_log)
        assert completed_run_link(second_log).startswith(f"{ui}/runs/flow-run/")
        run_id = link.rsplit("/", 1)[1]
        run = httpx.get(f"{ui}/api/flow_runs/{run_id}", timeout=30)
        assert run.status_code == 200 and run.json()["state_type"] == "COMPLETED"
        page = httpx.get(link, headers={"Accept": "text/html"}, timeout=30)  # as a browser asks
        assert page.status_code == 200 and "<html" in page.text

        # serve killed outright: its server does not outlive it
        serve.kill()
        serve.wait(10)
        wait_until(lambda: not listening(port), 30, "the orphaned Prefect server to stop")
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait(10)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def run_serve(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_a_taken_port_is_said_in_one_line(config: Path, tmp_path: Path, taken_port: int) -> None:
    done = run_serve([*CLI, str(config), "--ui-port", str(taken_port)], environment(tmp_path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"serve: port {taken_port} is taken (Address already in use): the local Prefect server "
        f"(UI and API) cannot listen on 127.0.0.1:{taken_port}; stop what listens there, or "
        "choose another port with --ui-port or FLEET_ALERTING_UI_PORT"
    )
    assert "Traceback" not in done.stderr and "Started a local" not in done.stdout
    assert not (tmp_path / "fleet-alerting-serve.json").exists()  # no marker: `run` finds none


@pytest.mark.parametrize(
    ("args", "env", "said", "code"),
    [
        (["--ui-port", "70000"], {}, "--ui-port 70000: expected a port 1-65535", 1),
        (
            [],
            {"FLEET_ALERTING_UI_PORT": "web"},
            "FLEET_ALERTING_UI_PORT='web': expected a port 1-65535",
            1,
        ),
        (
            ["--ui-port", "4200"],
            {"PREFECT_API_URL": "http://127.0.0.1:9/api"},
            "serve: PREFECT_API_URL is set (http://127.0.0.1:9/api): serve starts no server of its "
            "own, so there is no port to fix; unset PREFECT_API_URL or drop --ui-port / "
            "FLEET_ALERTING_UI_PORT",
            2,
        ),
    ],
    ids=["out-of-range", "env-not-a-number", "with-PREFECT_API_URL"],
)
def test_a_port_that_cannot_apply_is_refused(
    config: Path, tmp_path: Path, args: list[str], env: dict[str, str], said: str, code: int
) -> None:
    done = run_serve([*CLI, str(config), *args], environment(tmp_path, **env))
    assert (done.returncode, done.stderr.splitlines()[-1]) == (code, said)
