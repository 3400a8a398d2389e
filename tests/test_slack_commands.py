"""Slash commands, pure part: parsing, replies built from the Fleet API fixture shapes (signatures:
tests/attacks/test_slack_commands_endpoint.py)."""

from __future__ import annotations

import json
from pathlib import Path

from fleet_alerting.surfaces.slack_commands import (
    MAX_LINES,
    health_lines,
    parse,
    reply,
    state_lines,
)

FIXTURES = Path(__file__).parent / "fixtures" / "fleet-api"


def test_parse_and_usage() -> None:
    cmd = parse({"text": "  Logs pi-audio-01 error ", "user_id": "U1", "channel_id": "C9"})
    assert (cmd.action, cmd.args, cmd.user_id, cmd.channel_id) == (
        "logs",
        ("pi-audio-01", "error"),
        "U1",
        "C9",
    )
    assert parse({"text": ""}).action == "help"


def test_replies_from_the_fixture_shapes() -> None:
    health = json.loads((FIXTURES / "health.summary.json").read_text())
    lines = health_lines(health)
    assert lines[0] == ":red_circle: *audio*: degraded — 1 device offline (pi-audio-02)"
    live = {"modules": [{"module": "video", "status": "healthy", "message": None}]}
    assert health_lines(live) == [":large_green_circle: *video*: healthy"]
    state = json.loads((FIXTURES / "state.json").read_text())
    one = state_lines(state, "pi-audio-02")
    assert len(one) == 1 and one[0].startswith(":red_circle: `pi-audio-02` Patio Speakers [audio]")
    assert any("tv-main-hall" in line for line in state_lines(state))


def test_long_replies_are_cut_with_a_link() -> None:
    answer = reply("logs", [f"line {i}" for i in range(55)], "https://grafana.example/explore")
    text = answer["blocks"][1]["text"]["text"]
    assert text.count("\n") == MAX_LINES
    assert text.endswith("… 35 more (<https://grafana.example/explore|see all 55>)")
