"""serve's own Prefect server hanging (SIGSTOP: alive, not answering) is told in
serve's log after 30 s (it is), and a SIGTERM then exits within 5 s (4.5 s, code 1, as the
README allows) — but the watchdog's os._exit skips stop_server: the hung server is never
SIGKILLed and outlives serve (its orphan check cannot run in a stopped or blocked process); with a
fixed --ui-port the restarted serve then finds its port taken."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from tests.servers import start_serve, wait_until
from tests.test_serve_stop import Serving

pytestmark = pytest.mark.integration


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def _state(pid: int) -> str:
    """The process's state letter (`Z`: killed, not yet reaped), or "gone"."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def test_a_hanging_local_server_is_told_and_stop_stays_within_5_s(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(home)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state": {"path": "state.sqlite"},
                "notify": {"dry_run": True},
                "blackbox": {"targets": [{"name": "api", "url": "http://127.0.0.1:9/healthz"}]},
            }
        )
    )
    log = tmp_path / "serve.log"
    proc = start_serve(config, env, log)
    server = None
    try:
        wait_until(lambda: "serving blackbox-probe/scheduled" in log.read_text(), 180, "serve")
        [server] = _children(proc.pid)
        os.kill(server, signal.SIGSTOP)
        wait_until(lambda: "has not answered for" in log.read_text(), 60, "the hang told")
        told = [ln for ln in log.read_text().splitlines() if "has not answered" in ln]
        print(told)
        proc.send_signal(signal.SIGTERM)
        code, took = Serving(proc, log, tmp_path / "state.sqlite").exit_within(5.0)
        print(f"stopped {took:.2f} s after SIGTERM, code {code}")
        assert proc.poll() is not None
        time.sleep(2)
        state = _state(server)
        assert state in ("gone", "Z"), f"serve exited ({code}) and left its hung server ({state})"
    finally:
        if server:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(server, sig)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
