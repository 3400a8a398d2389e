"""Slash commands, pure part: signatures (valid, wrong secret, stale, replayed, altered), parsing,
replies built from the Fleet API fixture shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from fleet_alerting.surfaces.slack_commands import (
    MAX_LINES,
    RequestVerifier,
    SignatureError,
    health_lines,
    parse,
    reply,
    sign,
    state_lines,
)

SECRET = SecretStr("8f742231b10e8888abcd99yyyzzz85a5")
FIXTURES = Path(__file__).parent / "fixtures" / "fleet-api"
NOW = 1_790_000_000
BODY = b"token=x&team_id=T1&command=%2Ffleet&text=health&user_id=U1&channel_id=C1"


def signed(body: bytes = BODY, ts: int = NOW, secret: SecretStr = SECRET) -> tuple[str, str]:
    return str(ts), sign(secret, str(ts), body)


CASES = {
    "valid": (lambda: signed(), BODY, None),
    "wrong secret": (lambda: signed(secret=SecretStr("other")), BODY, "signature mismatch"),
    "stale timestamp": (lambda: signed(ts=NOW - 301), BODY, "stale request"),
    "future timestamp": (lambda: signed(ts=NOW + 301), BODY, "stale request"),
    "body altered": (lambda: signed(), BODY.replace(b"health", b"run+x"), "signature mismatch"),
    "no headers": (lambda: (None, None), BODY, "missing"),
    "garbage timestamp": (lambda: ("12a", "v0=00"), BODY, "malformed"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_signature_verification(name: str) -> None:
    make, body, refused = CASES[name]
    ts, signature = make()
    verifier = RequestVerifier(SECRET)
    if refused is None:
        verifier.verify(ts, signature, body, NOW)
    else:
        with pytest.raises(SignatureError, match=refused):
            verifier.verify(ts, signature, body, NOW)


def test_a_replayed_request_is_refused() -> None:
    verifier = RequestVerifier(SECRET)
    ts, signature = signed()
    verifier.verify(ts, signature, BODY, NOW)
    with pytest.raises(SignatureError, match="replayed"):
        verifier.verify(ts, signature, BODY, NOW + 10)


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
