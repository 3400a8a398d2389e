"""CLI habits: --version, --config everywhere (check-config also positional), amtool's
`--config.file` for routes test, help text for every option, telemetry off unless asked for."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from fleet_alerting.surfaces.cli import build_parser, main

CLI = [sys.executable, "-m", "fleet_alerting.surfaces.cli"]

ROOT = Path(__file__).parents[1]
AM = str(ROOT / "config" / "audit" / "alertmanager.yml")


def subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from subcommands(sub, (*path, name))


def test_version(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"fleet-alerting {version('fleet-alerting')}\n"


def test_every_command_and_option_has_help() -> None:
    missing = []
    for path, parser in subcommands(build_parser()):
        if path and not parser.description:
            missing.append(f"{' '.join(path)}: no description")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            if not action.help:
                missing.append(
                    f"{' '.join(path) or '(top)'} {'/'.join(action.option_strings) or action.dest}"
                )
    assert not missing


def test_config_everywhere() -> None:
    """Every command that reads the config takes --config (check-config also a positional)."""
    takes_config = {
        path
        for path, parser in subcommands(build_parser())
        if any("--config" in a.option_strings for a in parser._actions)
    }
    for command in (
        "check-config",
        "run",
        "serve",
        "demo",
        "slack-app",
        "mcp",
        "incidents",
        "outbox",
        "notify-test",
        "routes test",
    ):
        assert tuple(command.split()) in takes_config, command


def test_check_config_positional_and_option_agree(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("blackbox: {}\nnotify: {dry_run: true}\n")
    assert main(["check-config", str(path)]) == 0
    positional = capsys.readouterr().out
    assert main(["check-config", "--config", str(path)]) == 0
    assert capsys.readouterr().out == positional


@pytest.mark.parametrize(
    "spelling", [["--config.file", AM], [f"--config.file={AM}"], ["--config", AM]]
)
def test_routes_test_takes_amtools_spelling(
    spelling: list[str], capsys: pytest.CaptureFixture
) -> None:
    assert main(["routes", "test", *spelling, "severity=critical", "alertname=ApiDown"]) == 0
    assert capsys.readouterr().out.strip() != ""


def test_telemetry_off_by_default_and_opt_in_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("blackbox: {}\n")
    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED", raising=False)
    monkeypatch.delenv("DO_NOT_TRACK", raising=False)
    main(["check-config", str(path)])
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["DO_NOT_TRACK"] == "1"
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "true")
    main(["check-config", str(path)])
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "true"


def test_output_closed_early_stops_quietly(tmp_path: Path) -> None:
    """`fleet-alerting … | head`: the reader went away; no error line, exit 141 as on SIGPIPE."""
    config = tmp_path / "config.yaml"
    config.write_text("notify: {dry_run: true}\nstate: {path: state.sqlite}\n")
    read, write = os.pipe()
    os.close(read)  # nobody reads: the first flush fails with EPIPE
    try:
        done = subprocess.run(
            [*CLI, "check-config", str(config)],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")
