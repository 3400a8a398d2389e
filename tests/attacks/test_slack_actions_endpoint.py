"""`/slack/actions` (the incident buttons) against what a stranger can send, on the real
`fleet-alerting slack-app` process: hostile headers and bodies get 4xx, never a 5xx or a
traceback; a 500 MB body leaves the process's memory flat; a signed click replayed after a restart,
or to a second process on the same store, does nothing."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.attacks.app import (
    SHAPES,
    App,
    Fakes,
    click,
    click_payload,
    history,
    refuses_500_mb_flat,
    reshaped,
    seed_incident,
    shape_id,
    slack_form,
)
from tests.attacks.slack_requests import SIGNED_REQUEST_CASES, Edit, resigned, well_formed
from tests.servers import wait_until
from tests.stores import write_lock_held

pytestmark = pytest.mark.integration  # the real app process, on loopback

PATH = "/slack/actions"


def payload_form(payload_json: str) -> bytes:
    return urlencode({"payload": payload_json}).encode()


CASES: dict[str, tuple[Edit, int]] = SIGNED_REQUEST_CASES | {
    "empty body, signed": (resigned(b""), 400),
    "no payload field": (resigned(b"token=x&team_id=T1"), 400),
    "not a form": (resigned(b"a&&&=="), 400),
    "payload not JSON": (resigned(payload_form("{type: block_actions")), 400),
    "JSON nested 100,000 deep": (resigned(payload_form("[" * 100_000 + "]" * 100_000)), 400),
    "a number of 5,000 digits": (
        resigned(payload_form('{"type": "block_actions", "user": {"id": ' + "7" * 5000 + "}}")),
        400,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_requests_get_4xx_never_a_500(app: App, world: Fakes, name: str) -> None:
    edit, status = CASES[name]
    request = click(world)
    headers, body = edit(request["headers"], request["content"])
    answer = app.send(PATH, headers, body)
    assert answer.status == status, answer.raw[:300]


@pytest.mark.parametrize("case", SHAPES["slack_actions"], ids=shape_id)
def test_wrongly_typed_payloads_under_a_valid_signature_are_400(
    app: App, world: Fakes, case: dict
) -> None:
    done = len(history(app.state))
    payload = reshaped(click_payload(world), case["at"], case.get("value"), case.get("drop", False))
    answer = app.post(PATH, slack_form(payload))
    assert answer.status_code == case["status"], answer.text
    assert len(history(app.state)) == done


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_500_mb_body_leaves_memory_flat(app: App, chunked: bool) -> None:
    """Sent with well-formed signature headers (so only the size stops it), as it is made."""
    refuses_500_mb_flat(app.server, app.port, PATH, well_formed(), chunked)


def clicks(state: str) -> int:
    return len([r for r in history(state) if r.action == "silence"])


def test_a_click_replayed_after_a_restart_does_nothing(world: Fakes, tmp_path: Path) -> None:
    state = str(tmp_path / "state.sqlite")
    seed_incident(state)
    app = App(tmp_path, world, state)
    try:
        silence = click(world, "silence", "1h")
        assert app.post(PATH, silence).status_code == 200
        wait_until(lambda: clicks(state) == 1, 30, "the silence recorded")
        app.restart()
        replayed = app.post(PATH, silence)
        ack = click(world, "ack")  # a new click after it: once it is recorded, so would be a replay
        assert app.post(PATH, ack).status_code == 200
        wait_until(lambda: any(r.action == "ack" for r in history(state)), 30, "the ack recorded")
    finally:
        app.stop()
    assert (replayed.status_code, replayed.text) == (401, "replayed request")
    assert clicks(state) == 1


def test_a_click_replayed_to_a_second_process_on_the_store_is_refused(
    world: Fakes, tmp_path: Path, state_db: str
) -> None:
    seed_incident(state_db)
    first, second = App(tmp_path / "a", world, state_db), App(tmp_path / "b", world, state_db)
    try:
        silence = click(world, "silence", "1h")
        assert first.post(PATH, silence).status_code == 200
        replayed = second.post(PATH, silence)
        wait_until(lambda: clicks(state_db) == 1, 30, "the silence recorded")
        assert second.post(PATH, click(world, "ack")).status_code == 200
        wait_until(lambda: any(r.action == "ack" for r in history(state_db)), 30, "the ack")
    finally:
        first.stop()
        second.stop()
    assert (replayed.status_code, replayed.text) == (401, "replayed request")
    assert clicks(state_db) == 1


def test_a_click_while_the_store_stays_locked_is_503_within_slacks_3_s(
    app: App, world: Fakes
) -> None:
    done = len(history(app.state))
    with write_lock_held(app.state):  # an evaluation that does not end
        started = time.monotonic()
        answer = app.post(PATH, click(world))
        took = time.monotonic() - started
    assert (answer.status_code, answer.text) == (503, "the incident store failed (StoreError)")
    assert took < 3
    assert len(history(app.state)) == done
