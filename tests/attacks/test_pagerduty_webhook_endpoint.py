"""`/pagerduty/webhook` against what a stranger can send, on the real `fleet-alerting slack-app`
process: hostile headers and bodies get 4xx, never a 5xx or a traceback; a 500 MB body leaves the
process's memory flat; a signed `incident.resolved` delivered again after a restart, or to a second
process on the same store, records nothing and tells Slack nothing the second time; an
acknowledge or resolve no person did (the echo of our own Events API call) is a 200 that changes
nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.attacks.app import (
    KEY,
    MB,
    PD_INTEGRATION,
    PD_SERVICE,
    PD_USER,
    SHAPES,
    App,
    Fakes,
    history,
    pd_delivery,
    pd_event,
    pd_signature,
    pd_signed,
    refuses_500_mb_flat,
    reshaped,
    seed_incident,
    shape_id,
)
from tests.servers import wait_until
from tests.stores import write_lock_held

pytestmark = pytest.mark.integration  # the real app process, on loopback

PATH = "/pagerduty/webhook"
SIG = "x-pagerduty-signature"
Headers = dict[str, Any]
Edit = Callable[[Headers, bytes], tuple[Headers, bytes]]
SENTINEL = "blackbox:target=sentinel"


def resigned(body: bytes) -> Edit:
    return lambda _h, _b: (pd_signed(body)["headers"], body)


def deep(levels: int) -> bytes:
    return b'{"event": ' + b"[" * levels + b"]" * levels + b"}"


CASES: dict[str, tuple[Edit, int]] = {
    "no signature": (lambda h, b: ({"content-type": "application/json"}, b), 401),
    "v1=éé (UTF-8)": (lambda h, b: (h | {SIG: "v1=éé".encode()}, b), 401),
    "v1=éé (latin-1)": (lambda h, b: (h | {SIG: "v1=éé".encode("latin-1")}, b), 401),
    "v1= and nothing": (lambda h, b: (h | {SIG: "v1="}, b), 401),
    "zeros": (lambda h, b: (h | {SIG: "v1=" + "0" * 64}, b), 401),
    "10,000 commas": (lambda h, b: (h | {SIG: "," * 10_000}, b), 401),
    "wrong secret": (lambda h, b: (h | {SIG: pd_signature(b, "not-the-secret")}, b), 401),
    "body altered": (lambda h, b: (h, b.replace(b"Ana", b"Eve")), 401),
    "Content-Length not a number": (lambda h, b: (h | {"content-length": "1e3"}, b), 400),
    "Content-Length 500 MB, none sent": (
        lambda h, b: (h | {"content-length": str(500 * MB)}, b""),
        413,
    ),
    "non-UTF-8 body, signed": (resigned(b'{"event": "\xff\xfe"}'), 400),
    "empty body, signed": (resigned(b""), 400),
    "not JSON, signed": (resigned(b"event=incident.resolved"), 400),
    "JSON nested 100,000 deep, signed": (resigned(deep(100_000)), 400),
    "a number of 5,000 digits, signed": (resigned(b'{"event": {"id": ' + b"7" * 5000 + b"}}"), 400),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_requests_get_4xx_never_a_500(app: App, name: str) -> None:
    edit, status = CASES[name]
    request = pd_event("incident.acknowledged", f"E-{name}")
    headers, body = edit(request["headers"], request["content"])
    done = len(history(app.state))
    answer = app.send(PATH, headers, body)
    assert answer.status == status, answer.raw[:300]
    assert len(history(app.state)) == done


@pytest.mark.parametrize("case", SHAPES["pagerduty"], ids=shape_id)
def test_wrongly_typed_events_under_a_valid_signature_are_400(app: App, case: dict) -> None:
    done = len(history(app.state))
    delivery = pd_delivery("incident.acknowledged", f"E-{shape_id(case)}")
    document = reshaped(delivery, case["at"], case.get("value"), case.get("drop", False))
    answer = app.post(PATH, pd_signed(json.dumps(document).encode()))
    assert answer.status_code == case["status"], answer.text
    assert len(history(app.state)) == done


def test_several_signatures_one_of_them_right_is_accepted(app: App) -> None:
    request = pd_event("incident.custom_field_values.updated", "E-rotation")
    right = request["headers"][SIG]
    request["headers"][SIG] = f"v1={'0' * 64}, {right},v1=zz"
    assert app.post(PATH, request).status_code == 200


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_500_mb_body_leaves_memory_flat(app: App, chunked: bool) -> None:
    headers = {SIG: "v1=" + "0" * 64, "content-type": "application/json"}
    refuses_500_mb_flat(app.server, app.port, PATH, headers, chunked)


def told_slack(world: Fakes) -> int:
    return sum("Resolved in PagerDuty" in m.get("text", "") for m in world.slack.messages)


def sentinel_recorded(app: App, event_id: str) -> None:
    """A new delivery after a replay: once its row is there, so would be the replay's."""
    assert app.post(PATH, pd_event("incident.acknowledged", event_id, SENTINEL)).status_code == 200
    wait_until(lambda: len(history(app.state, SENTINEL)) == 1, 30, "the sentinel recorded")


def test_a_resolve_replayed_after_a_restart_does_nothing(world: Fakes, tmp_path: Path) -> None:
    state = str(tmp_path / "state.sqlite")
    seed_incident(state)
    seed_incident(state, SENTINEL)
    app = App(tmp_path, world, state)
    told = told_slack(world)
    try:
        resolved = pd_event("incident.resolved", "E-resolved-restart")
        assert app.post(PATH, resolved).status_code == 200
        wait_until(lambda: told_slack(world) == told + 1, 30, "Slack told once")
        app.restart()
        assert app.post(PATH, resolved).status_code == 200  # a redelivery: acknowledged, ignored
        sentinel_recorded(app, "E-sentinel-restart")
    finally:
        app.stop()
    assert [r.action for r in history(state)] == ["resolved"]
    assert told_slack(world) == told + 1


def test_a_resolve_replayed_to_a_second_process_on_the_store_does_nothing(
    world: Fakes, tmp_path: Path, state_db: str
) -> None:
    seed_incident(state_db)
    seed_incident(state_db, SENTINEL)
    first, second = App(tmp_path / "a", world, state_db), App(tmp_path / "b", world, state_db)
    told = told_slack(world)
    try:
        resolved = pd_event("incident.resolved", f"E-resolved-{Path(state_db).name}")
        assert first.post(PATH, resolved).status_code == 200
        wait_until(lambda: len(history(state_db)) == 1, 30, "the resolve recorded")
        assert second.post(PATH, resolved).status_code == 200
        sentinel_recorded(second, f"E-sentinel-{Path(state_db).name}")
    finally:
        first.stop()
        second.stop()
    assert [(r.incident_key, r.action) for r in history(state_db)] == [(KEY, "resolved")]
    assert told_slack(world) == told + 1


def test_a_delivery_while_the_store_stays_locked_is_503_for_pagerduty_to_retry(app: App) -> None:
    resolved, done = pd_event("incident.resolved", "E-locked"), len(history(app.state))
    with write_lock_held(app.state):  # an evaluation that does not end
        assert app.post(PATH, resolved).status_code == 503
    assert app.post(PATH, resolved).status_code == 200  # the retry: not a replay of the refused
    wait_until(lambda: len(history(app.state)) == done + 1, 30, "the retry recorded")


AGENTS: dict[str, tuple[dict[str, str] | None, int]] = {
    "user (an operator)": (PD_USER, 1),
    "service (our own Events API call)": (PD_SERVICE, 0),
    "integration": (PD_INTEGRATION, 0),
    "no agent (PagerDuty itself)": (None, 0),
}


@pytest.mark.parametrize("event_type", ["incident.acknowledged", "incident.resolved"])
@pytest.mark.parametrize("agent", list(AGENTS))
def test_only_what_a_person_did_in_pagerduty_is_acted_on(
    app: App, agent: str, event_type: str
) -> None:
    reference, records = AGENTS[agent]
    key = f"blackbox:target={agent}/{event_type}"
    sentinel = f"{key} (the delivery after)"
    seed_incident(app.state, key)
    seed_incident(app.state, sentinel)
    delivery = pd_event(event_type, f"E-{agent}-{event_type}", key, reference)
    assert app.post(PATH, delivery).status_code == 200
    later = pd_event("incident.acknowledged", f"E-after-{agent}-{event_type}", sentinel)
    assert app.post(PATH, later).status_code == 200
    wait_until(lambda: len(history(app.state, sentinel)) == 1, 30, "the delivery after recorded")
    assert [r.action for r in history(app.state, key)] == [event_type.split(".")[1]] * records
