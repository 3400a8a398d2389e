"""One convention across every `fleet-alerting` subcommand, found by walking the argparse tree (a
new command is covered without touching this file): `--help` works and opens with a one-line
description of its own; the config option is `-c/--config PATH`; metavars read as words (no
`FOR_`); positionals are upper case. And one error per command (tests/cases/cli_convention.yaml):
one line on stderr in one wording, exit 1 for an operator's mistake, 2 for usage."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.cli import build_parser, main

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "cli_convention.yaml").read_text())
# commands that read no config of ours: `routes test` reads an alertmanager.yml (`-c` too, and
# amtool's `--config.file`), `audit` names each of its files
NO_CONFIG = {"routes", "routes test", "audit"}


def commands() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]):
        if path:
            yield " ".join(path), parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, (*path, name))

    yield from walk(build_parser(), ())


COMMANDS = dict(commands())


def summaries() -> dict[str, str]:
    """Each command's one-line help, as its parent lists it."""
    found = {}
    for name, parser in [("", build_parser()), *COMMANDS.items()]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for listed in action._choices_actions:
                    found[f"{name} {listed.dest}".strip()] = listed.help or ""
    return found


def words(text: str) -> str:
    return " ".join(text.split())


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    skip = (argparse._HelpAction, argparse._SubParsersAction)
    return [a for a in parser._actions if not isinstance(a, skip) and a.help != argparse.SUPPRESS]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_follows_the_convention(name: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as done:
        main([*name.split(), "--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    parser = COMMANDS[name]
    summary = summaries()[name]
    assert summary and "\n" not in summary and len(summary) <= 100, f"{name}: {summary!r}"
    assert parser.description and words(parser.description) in words(shown), name
    for action in options(parser):
        if action.option_strings:
            if "--config" in action.option_strings:
                assert {"-c", "--config"} <= set(action.option_strings), name
                assert action.metavar == ("FILE" if name in NO_CONFIG else "PATH"), name
            if action.nargs != 0:
                metavar = action.metavar or action.dest.upper()
                assert "_" not in str(metavar), f"{name} {action.option_strings[-1]} {metavar}"
        else:
            metavar = str(action.metavar or action.dest)
            assert metavar == metavar.upper() and "_" not in metavar, f"{name}: {metavar}"


def test_every_command_that_reads_the_config_takes_c() -> None:
    missing = [
        name
        for name, parser in COMMANDS.items()
        if name not in NO_CONFIG
        and not any("--config" in a.option_strings for a in parser._actions)
        and not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
    ]
    assert missing == []


def test_descriptions_are_distinct() -> None:
    first = {
        name: (parser.description or "").strip().splitlines()[0]
        for name, parser in COMMANDS.items()
    }
    twice = {n: d for n, d in first.items() if list(first.values()).count(d) > 1}
    assert twice == {}


def test_snooze_help_is_about_snooze(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["snooze", "--help"])
    shown = capsys.readouterr().out
    assert "snooze" in shown.split("options:")[0].split("\n\n")[1]
    assert "silence" not in shown


def test_every_command_has_an_error_case() -> None:
    assert set(COMMANDS) - {c["command"] for c in CASES} == set()


@pytest.mark.parametrize("case", CASES, ids=[" ".join(c["args"][:3]) for c in CASES])
def test_errors_follow_the_convention(
    case: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "config.yaml").write_text("state: {path: state.sqlite}\nnotify: {dry_run: true}\n")
    Store(tmp_path / "state.sqlite").close()
    monkeypatch.delenv("FLEET_ALERTING_CONFIG", raising=False)
    args = [a.replace("{dir}", str(tmp_path)) for a in case["args"]]
    try:
        code = main(args)
    except SystemExit as exc:  # argparse: a usage error
        code = exc.code
    err = capsys.readouterr().err.splitlines()
    assert code == case["exit"]
    expected = case["stderr"].replace("{dir}", str(tmp_path))
    if case.get("usage"):  # argparse's usage, then one line naming the mistake
        assert err[-1] == expected and err[0].startswith("usage: fleet-alerting ")
        return
    assert err == [expected]
    command = "fleet-alerting " + args[0] + ": "
    style = "error: " if case.get("amtool") else command
    assert expected.startswith((style, str(tmp_path)))


def test_trigger_says_which_prefect_home_it_looked_in(tmp_path: Path) -> None:
    """A serve runs under its PREFECT_HOME; `trigger` under another finds none and says where it
    looked and how to point it at the right one."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleet_alerting.surfaces.cli",
            "trigger",
            "blackbox-probe/scheduled",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env | {"PREFECT_HOME": str(tmp_path)},
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(
        "fleet-alerting trigger: No Prefect server: PREFECT_API_URL is not set and no "
        f"`fleet-alerting serve` is running with PREFECT_HOME={tmp_path} "
    )
    assert "PREFECT_HOME=DIR fleet-alerting trigger" in line and "PREFECT_API_URL" in line
