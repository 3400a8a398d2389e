"""`fleet-alerting silence add|query|expire`, the `incidents` listing of who muted what, and the
MCP silence tools, against the store (SQLite and PostgreSQL: `state_db`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from fleet_alerting.config import load_config
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.store import actions as audit
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.cli import main
from fleet_alerting.surfaces.mcp_server import build_server
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.operator_fleet import fleet_server
from tests.test_actions_cli import KEY, setup


def test_silence_add_query_expire_and_the_listing(
    tmp_path: Path, state_db: str, capsys: pytest.CaptureFixture
) -> None:
    config_path = str(setup(tmp_path, state_db))
    given = ["--config", config_path]
    assert main(["silence", "add", 'target=~".*"', "--for", "2h", *given]) == 1
    assert "at least one matcher must not match the empty string" in capsys.readouterr().err
    assert main(["silence", "add", 'source="blackbox"', *given]) == 2
    assert "silence add needs --for" in capsys.readouterr().err
    assert (
        main(
            [
                "silence",
                "add",
                'source="blackbox"',
                'severity!="critical"',
                "--for",
                "2h",
                "--comment",
                "re-imaging",
                "--author",
                "ana",
                *given,
            ]
        )
        == 0
    )
    added = capsys.readouterr().out
    assert added.startswith("Silence ") and " by ana until " in added
    assert "matches no open incident" not in added  # it mutes KEY
    silence_id = added.split()[1]
    assert main(["silence", "query", "-o", "json", *given]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["id"].startswith(silence_id) and row["mutes_now"] == [KEY]
    assert row["author"] == "ana" and row["comment"] == "re-imaging" and row["state"] == "active"
    # the next run records the mute; `incidents` says who muted it and until when
    config = load_config(config_path)
    store = Store(config.state)
    signal = Signal(KEY, "blackbox", True, Severity.warning, "device down")
    evaluate_and_record(store, [signal], config.policy, utcnow(), maintenance=config.maintenance)
    store.close()
    assert main(["incidents", *given]) == 0
    listed = capsys.readouterr().out
    assert f"[silenced by ana (silence {silence_id}: re-imaging) until " in listed
    assert main(["incidents", "-o", "json", *given]) == 0
    (shown,) = json.loads(capsys.readouterr().out)
    assert shown["mute_id"].startswith(f"silence:{silence_id}") and shown["muted_until"]
    assert main(["silence", "expire", silence_id, "--as", "bo", *given]) == 0
    assert capsys.readouterr().out == f"Silence {silence_id} expired by bo\n"
    assert main(["silence", "expire", silence_id, *given]) == 1
    assert "already ended" in capsys.readouterr().err
    assert main(["silence", "query", *given]) == 0
    assert "no silences" in capsys.readouterr().out
    assert main(["silence", "query", "--expired", *given]) == 0
    assert "expired" in capsys.readouterr().out
    store = Store(config.state)
    trail = [(r.action, r.actor, r.via) for r in audit.history(store) if r.incident_key != KEY]
    store.close()
    assert trail == [("silence add", "ana", "cli"), ("silence expire", "bo", "cli")]


def test_silence_key_still_silences_one_incident(
    tmp_path: Path, state_db: str, capsys: pytest.CaptureFixture
) -> None:
    config = str(setup(tmp_path, state_db))
    assert main(["silence", KEY, "--for", "1h", "--config", config, "--as", "ana"]) == 0
    assert capsys.readouterr().out == "Silenced by ana for 1h00m.\n"
    assert main(["silence", KEY, "extra", "--config", config]) == 2


def test_mcp_silence_tools(tmp_path: Path, state_db: str) -> None:
    with fleet_server() as fleet:
        config = load_config(setup(tmp_path, state_db, fleet.url))
        server = build_server(config, write=True, trigger=lambda *_a: asyncio.sleep(0, 0))

        async def call(name: str, arguments: dict) -> str:
            result = await server.call_tool(name, arguments)
            blocks = result[0] if isinstance(result, tuple) else result.content
            return "\n".join(b.text for b in blocks)

        said = asyncio.run(
            call(
                "add_silence",
                {
                    "matchers": ['source="blackbox"'],
                    "duration": "2h",
                    "comment": "planned",
                    "actor": "claude",
                },
            )
        )
        assert said.startswith("Silence ") and "by mcp:claude until" in said
        listed = asyncio.run(call("list_silences", {}))
        assert KEY in listed and "mcp:claude" in listed
        silence_id = said.split()[1]
        said = asyncio.run(call("expire_silence", {"silence_id": silence_id, "actor": "claude"}))
        assert said == f"Silence {silence_id} expired by mcp:claude"


def test_a_silence_that_matches_no_open_incident_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A device's labels are not always Prometheus' (a probed device's `instance` is its host):
    a silence that mutes nothing now is added, and says so."""
    given = ["--config", str(setup(tmp_path, str(tmp_path / "state.sqlite")))]
    matcher = 'instance="127.0.0.1:18806"'
    assert main(["silence", "add", matcher, "--for", "10h", *given]) == 0
    said = capsys.readouterr().out
    assert "; it matches no open incident now (an incident's labels: `fleet-alerting" in said


def test_a_window_says_its_next_start_and_end_before_it_mutes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The operator planning a night reads each configured window's matchers and its next start
    and end — in UTC and in the window's own zone — in `silence query` and in `check-config`."""
    from datetime import UTC, datetime

    import yaml

    monkeypatch.setattr(
        "fleet_alerting.core.clock.utcnow", lambda: datetime(2026, 12, 7, 17, 13, tzinfo=UTC)
    )
    path = tmp_path / "config.yaml"
    one_to_two = {"start_time": "01:00", "end_time": "02:00"}
    six_to_half_past_seven = {"start_time": "18:00", "end_time": "19:30"}
    path.write_text(
        yaml.safe_dump(
            {
                "state": {"path": "state.sqlite"},
                "notify": {"dry_run": True},
                "maintenance": {
                    "windows": [
                        {"name": "yard-night", "time_intervals": [{"times": [one_to_two]}]},
                        {"name": "zg-evening",
                         "time_intervals": [{"times": [six_to_half_past_seven],
                                             "location": "Europe/Zagreb"}]},
                    ],
                    "mute": [
                        {"matchers": ['role="player"', 'site="yard"'],
                         "mute_time_intervals": ["yard-night"]},
                        {"matchers": ['coordinator="yard"'], "mute_time_intervals": ["zg-evening"]},
                    ],
                },
            }
        )
    )  # fmt: skip
    given = ["--config", str(path)]
    yard = 'yard-night: next 2026-12-08 01:00–02:00 UTC, matches role="player",site="yard"'
    zagreb = (
        "zg-evening: muting now until 2026-12-07 18:30 UTC (2026-12-07 19:30 Europe/Zagreb); "
        "next 2026-12-08 17:00–18:30 UTC (2026-12-08 18:00–19:30 Europe/Zagreb), "
        'matches coordinator="yard"'
    )
    assert main(["silence", "query", *given]) == 0
    table = capsys.readouterr().out
    assert f"  {yard}" in table.splitlines() and f"  {zagreb}" in table.splitlines()
    assert "window   yard-night" in table and "2026-12-07 18:30" in table  # UNTIL: it lifts
    assert main(["silence", "query", "-o", "json", *given]) == 0
    night, evening = json.loads(capsys.readouterr().out)
    assert (night["next_starts_at"], night["next_ends_at"], night["ends_at"]) == (
        "2026-12-08T01:00:00Z", "2026-12-08T02:00:00Z", None
    )  # fmt: skip
    assert evening["ends_at"] == "2026-12-07T18:30:00Z"
    assert evening["time_zones"] == ["Europe/Zagreb"] and evening["schedule"] == zagreb
    assert main(["check-config", *given]) == 0
    checked = capsys.readouterr().out.splitlines()
    assert "  maintenance windows:" in checked
    assert f"    {yard}" in checked and f"    {zagreb}" in checked
