"""Done when: `serve` never pings "all well" while nothing is watched. A real `serve` (its own
Prefect server as its child) with a heartbeat to a Healthchecks-style fake:
- its server cannot start (a corrupt prefect.db): no success ping ever, then a `/fail` naming
  why, and exit 2;
- its server is killed (`kill -9` of the child alone): serve says so in its log and in a `/fail`,
  and exits 2 within seconds for its service manager to restart it;
- stopped as systemd stops it (SIGTERM to serve and its server at once): a clean stop, exit 0,
  no `/fail`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.fakes.deadmans_switch import DeadMansSwitch
from tests.servers import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[1]
CLI = [sys.executable, "-m", "fleet_alerting.surfaces.cli"]
EVERY = 1.0  # the heartbeat's period, seconds


@dataclass
class Serving:
    proc: subprocess.Popen
    log: Path
    switch: DeadMansSwitch
    home: Path

    def output(self) -> str:
        return self.log.read_text()

    def server_pid(self) -> int:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        [pid] = children.split()
        return int(pid)


@pytest.fixture
def start_serve(tmp_path: Path) -> Iterator:
    started: list[subprocess.Popen] = []

    def start(switch: DeadMansSwitch, home: Path, **env: str) -> Serving:
        (tmp_path / "heartbeat.url").write_text(switch.ping_url)
        config = tmp_path / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "state": {"path": "state.sqlite"},
                    "notify": {"dry_run": True},
                    "blackbox": {},
                    "schedule": {"every": {"blackbox-probe": "10s"}},
                    "heartbeat": {"url": {"file": "heartbeat.url"}, "every": f"{EVERY:g}s"},
                }
            )
        )
        environment = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        log = tmp_path / "serve.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [*CLI, "serve", "--config", str(config)],
                cwd=ROOT,
                env=environment | {"PREFECT_HOME": str(home)} | env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(proc)
        return Serving(proc, log, switch, home)

    yield start
    for proc in started:
        if proc.poll() is None:
            with_children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text()
            proc.kill()
            proc.wait(10)
            for pid in with_children.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)


def serving_until_first_success(serving: Serving) -> None:
    def succeeded() -> bool:
        if serving.proc.poll() is not None:
            pytest.fail(f"serve exited {serving.proc.returncode}:\n{serving.output()[-3000:]}")
        return "blackbox-probe" in serving.output() and ": Completed" in serving.output()

    wait_until(succeeded, 240, "serve's first completed run")
    assert serving.switch.wait_for(lambda p: p.ok, timeout=10), "no success ping"


def test_a_server_that_cannot_start_is_told_and_never_pinged_ok(
    start_serve, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "prefect.db").write_bytes(b"not a database\n" * 100)  # corrupt
    with DeadMansSwitch() as switch:
        serving = start_serve(switch, home, FLEET_ALERTING_STARTUP_TIMEOUT="120")
        code = serving.proc.wait(180)
        pings = list(switch.pings)
    output = serving.output()
    assert code == 2, output[-3000:]
    assert not [p for p in pings if p.ok], f"success pinged while nothing was scheduled: {pings}"
    assert pings, output[-3000:]
    said = pings[-1].body
    assert said.startswith("serve could not start its Prefect server: the local Prefect server"), (
        said
    )
    assert switch.check not in output


@pytest.fixture
def serving_well(start_serve, tmp_path: Path) -> Iterator[Serving]:
    """serve after its first completed run and success ping."""
    with DeadMansSwitch() as switch:
        serving = start_serve(switch, tmp_path / "home")
        serving_until_first_success(serving)
        yield serving


def test_its_server_killed_serve_says_so_and_exits_for_a_restart(serving_well: Serving) -> None:
    serving, switch = serving_well, serving_well.switch
    killed = time.monotonic()
    os.kill(serving.server_pid(), signal.SIGKILL)
    code = serving.proc.wait(30)
    took = time.monotonic() - killed
    last = switch.wait_for(lambda p: not p.ok, timeout=5, after=killed)
    time.sleep(2 * EVERY)
    output = serving.output()
    assert code == 2, output[-3000:]
    assert took < 5, f"serve took {took:.1f} s to exit"
    print(f"serve exited {took:.2f} s after its server was killed")
    assert (
        "serve: serve's Prefect server exited (killed by signal 9); exiting (2) for the service "
        "manager to restart serve" in output
    ), output[-3000:]
    assert last is not None and last.body == "serve's Prefect server exited (killed by signal 9)"
    assert switch.pings[-1] == last  # nothing after its last word
    assert not (serving.home / "fleet-alerting-serve.json").exists()  # `run` looks no more


def test_control_stopped_with_its_server_as_systemd_does_is_a_clean_stop(
    serving_well: Serving,
) -> None:
    serving = serving_well
    server = serving.server_pid()
    stopped = time.monotonic()
    serving.proc.send_signal(signal.SIGTERM)
    os.kill(server, signal.SIGTERM)
    code = serving.proc.wait(10)
    failed = [p for p in serving.switch.pings if p.at > stopped and not p.ok]
    output = serving.output()
    assert code == 0, output[-3000:]
    assert "exited" not in output, output[-3000:]
    assert failed == []
