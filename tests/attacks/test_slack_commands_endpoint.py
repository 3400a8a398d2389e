"""`/slack/commands` (`/fleet …`) against what a stranger can send, on the real
`fleet-alerting slack-app` process: hostile headers and bodies get 4xx, never a 5xx or a
traceback; a `/fleet run` replayed after a restart is refused; a read-only command replayed to the
same process is refused without waiting for the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.attacks.app import App, Fakes, command, refuses_500_mb_flat, seed_incident
from tests.attacks.slack_requests import SIGNED_REQUEST_CASES, Edit, resigned, well_formed
from tests.stores import write_lock_held

pytestmark = pytest.mark.integration  # the real app process, on loopback

PATH = "/slack/commands"
CASES: dict[str, tuple[Edit, int]] = SIGNED_REQUEST_CASES | {
    "Content-Length just past 16 KiB, none sent": (
        lambda h, b: (h | {"content-length": str(16 * 1024 + 1)}, b""),
        413,
    ),
    "a body of 17 KiB, signed": (resigned(b"text=" + b"x" * 17 * 1024), 413),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_requests_get_4xx_never_a_500(app: App, name: str) -> None:
    edit, status = CASES[name]
    request = command("health")
    headers, body = edit(request["headers"], request["content"])
    answer = app.send(PATH, headers, body)
    assert answer.status == status, answer.raw[:300]


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_500_mb_body_leaves_memory_flat(app: App, chunked: bool) -> None:
    refuses_500_mb_flat(app.server, app.port, PATH, well_formed(), chunked)


def test_a_read_only_command_replayed_to_the_same_process_is_refused(app: App) -> None:
    health = command("health")
    assert app.post(PATH, health).status_code == 200
    replayed = app.post(PATH, health)
    assert (replayed.status_code, replayed.text) == (401, "replayed request")


def test_a_run_replayed_after_a_restart_is_refused(world: Fakes, tmp_path: Path) -> None:
    """`run` of a name that is no deployment: answered without Prefect, remembered all the same."""
    state = str(tmp_path / "state.sqlite")
    seed_incident(state)
    app = App(tmp_path, world, state)
    try:
        run = command("run not-a-deployment")
        first = app.post(PATH, run)
        app.restart()
        replayed = app.post(PATH, run)
    finally:
        app.stop()
    assert first.status_code == 200 and "not a deployment name" in first.text
    assert (replayed.status_code, replayed.text) == (401, "replayed request")


def test_a_run_while_the_store_stays_locked_says_the_store_failed(app: App) -> None:
    with write_lock_held(app.state):  # an evaluation that does not end
        answer = app.post(PATH, command("run not-a-deployment"))
        health = app.post(PATH, command("health"))
    assert answer.status_code == 200 and "The incident store failed" in answer.text
    assert health.status_code == 200 and "Fleet health" in health.text
