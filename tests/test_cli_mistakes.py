"""No tracebacks for operator mistakes: one line naming the file and key or the failing
dependency, a conventional exit code. Table: tests/cases/cli_mistakes.yaml (in process), plus the
installed entry point in a subprocess for the cases that need the real process."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.cli import main

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "cli_mistakes.yaml").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_operator_mistakes(
    case: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("FLEET_TEST_SIGNING", "CANARY-signing-secret")
    monkeypatch.delenv("FLEET_TEST_UNSET_SIGNING", raising=False)
    config = tmp_path / "config.yaml"
    if "config" in case:
        config.write_text(case["config"])

    def fill(text: str) -> str:
        return text.replace("{config}", str(config)).replace("{dir}", str(tmp_path))

    assert main([fill(a) for a in case["args"]]) == case["exit"]
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "CANARY" not in out + err
    if "stderr" in case:
        assert err.splitlines() == [fill(case["stderr"])]
    if "stderr_starts" in case:
        assert len(err.splitlines()) == 1 and err.startswith(case["stderr_starts"])
    if "stdout" in case:
        assert fill(case["stdout"]) in out.splitlines()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet_alerting.surfaces.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_trigger_with_an_unreachable_prefect_api() -> None:
    done = cli(
        "trigger", "blackbox-probe/scheduled", env={"PREFECT_API_URL": "http://127.0.0.1:9/api"}
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        "fleet-alerting trigger: No Prefect server reachable at http://127.0.0.1:9/api. Is "
        "`fleet-alerting serve` (or `prefect server start`) running there? Unset PREFECT_API_URL "
        "(`prefect config unset PREFECT_API_URL` if a profile sets it) to use the running serve "
        "this PREFECT_HOME knows of."
    ]


def test_unexpected_errors_are_one_line_unless_debugging(tmp_path: Path) -> None:
    """A bug is still one line (with how to see the traceback), and the traceback on demand."""
    state = tmp_path / "state.sqlite"
    Store(state).close()  # a sound store (a damaged one is an operator's problem: one line too)
    with sqlite3.connect(state) as db:  # ...holding a record no version of us wrote: a bug
        db.execute(
            "INSERT INTO incidents (key, source, state, updated_at, data) "
            "VALUES ('blackbox:url=x', 'blackbox', 'firing', '2026-11-27T00:00:00+00:00', '{}')"
        )
    config = tmp_path / "config.yaml"
    config.write_text(f"state: {{path: {state}}}\nnotify: {{dry_run: true}}\n")
    done = cli("incidents", "--config", str(config))
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("fleet-alerting incidents failed: ValidationError: ")
    assert line.endswith("(FLEET_ALERTING_DEBUG=1 shows the traceback)")
    debug = cli("incidents", "--config", str(config), env={"FLEET_ALERTING_DEBUG": "1"})
    assert "Traceback" in debug.stderr
