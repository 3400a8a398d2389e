"""The `/fleet` slash command app against a Fleet API test server serving the fixture shapes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from pydantic import SecretStr
from starlette.testclient import TestClient

from fleet_alerting.config import load_config
from fleet_alerting.surfaces.slack_app import create_app
from fleet_alerting.surfaces.slack_commands import sign
from tests.fakes.http import Response
from tests.operator_fleet import CORRELATION, TOKEN, fleet_server
from tests.servers import free_port, wait_until

SIGNING_SECRET = "slack-signing-secret-CANARY-77"


def write_config(folder: Path, fleet_url: str, answer_within: str = "2s") -> Path:
    (folder / "signing.secret").write_text(SIGNING_SECRET)
    (folder / "fleet.token").write_text(TOKEN)
    path = folder / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state": {"path": "state.sqlite"},
                "notify": {"dry_run": True},  # no channel configured: fail closed otherwise
                "links": {"grafana_url": "https://grafana.example", "loki_datasource_uid": "LOKI"},
                "fleet_api": {"url": fleet_url, "token": {"file": "fleet.token"}},
                "operators": {
                    "slack_app": {
                        "signing_secret": {"file": "signing.secret"},
                        "allowed_users": ["U0OPS"],
                        "answer_within": answer_within,
                    }
                },
            }
        )
    )
    return path


class Slack:
    """Sends slash commands the way Slack does: form-encoded, signed, timestamped."""

    def __init__(self, client: TestClient):
        self.client = client

    def command(
        self, text: str, user: str = "U0ANY", secret: str = SIGNING_SECRET, name: str = "", **kw
    ):
        body = urlencode(
            {
                "command": "/fleet",
                "text": text,
                "user_id": user,
                **({"user_name": name} if name else {}),
                "channel_id": "C0OPS",
                "team_id": "T1",
                "trigger_id": uuid.uuid4().hex,  # unique per request, as Slack's: no replay
            }
        ).encode()
        ts = str(int(time.time()))
        headers = {
            "x-slack-request-timestamp": ts,
            "x-slack-signature": sign(SecretStr(secret), ts, body),
            "content-type": "application/x-www-form-urlencoded",
        }
        return self.client.post("/slack/commands", content=body, headers=headers, **kw)


triggered: list[str] = []


async def record_trigger(deployment: str, out: Callable[[str], None]) -> int:
    triggered.append(deployment)
    out(f"created flow run brave-otter of {deployment}")
    return 0


@pytest.fixture
def slack(tmp_path: Path) -> Iterator[tuple[Slack, object]]:
    with fleet_server() as fleet:
        config = load_config(write_config(tmp_path, fleet.url))
        with TestClient(create_app(config, record_trigger)) as client:
            yield Slack(client), fleet


def text_of(response) -> str:
    assert response.status_code == 200, response.text
    return "\n".join(b["text"]["text"] for b in response.json()["blocks"])


def test_health_and_state_from_the_fixture_shapes(slack) -> None:
    client, fleet = slack
    health = text_of(client.command("health"))
    assert ":red_circle: *audio*: degraded — 1 device offline (pi-audio-02)" in health
    assert fleet.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
    state = text_of(client.command("state pi-audio-02"))
    assert "`pi-audio-02` Patio Speakers [audio] error" in state
    assert "pi-audio-01" not in state


def test_logs_filters_and_links_to_the_rest(slack) -> None:
    client, fleet = slack
    answer = text_of(client.command("logs pi-audio-01 error"))
    query = fleet.requests[-1].query
    assert (query["deviceId"], query["level"]) == (["pi-audio-01"], ["error"])
    assert answer.count("playback step") == 15  # odd minutes below 30
    one = text_of(client.command(f"logs {CORRELATION}"))
    assert f"`{CORRELATION}`" in one and one.count("playback step") == 1
    many = text_of(client.command("logs"))
    assert "… 40 more (<https://grafana.example/explore?" in many


def test_refused_requests(slack) -> None:
    client, _ = slack
    assert client.command("health", secret="wrong").status_code == 401
    stale = client.client.post(
        "/slack/commands",
        content=b"text=health",
        headers={
            "x-slack-request-timestamp": str(int(time.time()) - 600),
            "x-slack-signature": sign(
                SecretStr(SIGNING_SECRET), str(int(time.time()) - 600), b"text=health"
            ),
        },
    )
    assert stale.status_code == 401


def test_run_only_for_allowed_users(slack) -> None:
    client, _ = slack
    triggered.clear()
    refused = text_of(client.command("run blackbox-probe/scheduled", user="U0INTRUDER"))
    assert "limited to the users and channels in config" in refused and triggered == []
    done = text_of(client.command("run blackbox-probe/scheduled", user="U0OPS"))
    assert "created flow run brave-otter" in done
    assert triggered == ["blackbox-probe/scheduled"]


def test_run_with_a_malformed_deployment_name_is_a_usage_answer(slack) -> None:
    client, _ = slack
    triggered.clear()
    for name in ("a/b/c", "nonsense"):
        answer = text_of(client.command(f"run {name}", user="U0OPS"))
        assert f"'{name}' is not a deployment name: expected FLOW/DEPLOYMENT" in answer
        assert "Usage: `/fleet run <flow/deployment>`" in answer
    assert triggered == []


def test_a_run_reply_shows_a_hostile_deployment_name_as_text(slack) -> None:
    client, _ = slack
    response = client.command("run <!channel>/<@U123>", user="U0OPS")
    assert "&lt;!channel&gt;/&lt;@U123&gt;" in text_of(response)
    assert "<!channel>" not in response.text and "<@U123>" not in response.text


def test_incidents_from_the_store(slack) -> None:
    client, _ = slack
    assert "No open incidents." in text_of(client.command("incidents"))
    assert "Usage: `/fleet health`" in text_of(client.command("reboot everything"))


def test_fleet_api_down_or_slow_is_a_friendly_answer(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    config = load_config(write_config(tmp_path, closed))
    with TestClient(create_app(config, record_trigger)) as client:
        answer = Slack(client).command("health")
        assert "The Fleet API is not answering" in text_of(answer)
    with fleet_server() as fleet:
        config = load_config(write_config(tmp_path, fleet.url, answer_within="0.3s"))
        fleet.fail_next = [Response(200, {"modules": []}, delay=2)]
        with TestClient(create_app(config, record_trigger)) as client:
            started = time.monotonic()
            answer = Slack(client).command("health")
            assert "did not answer in time" in text_of(answer)
            assert time.monotonic() - started < 2
        fleet.fail_next = [
            Response(500, {"code": "INTERNAL", "message": "db down", "correlationId": "c-1"})
        ]
        config = load_config(write_config(tmp_path, fleet.url))  # 0.3 s is short on a loaded VM
        with TestClient(create_app(config, record_trigger)) as client:
            answer = text_of(Slack(client).command("health"))
    assert "INTERNAL: db down" in answer and "correlation id c-1" in answer
    assert TOKEN not in answer


# refuse early, never a 500, never wait on the store, name the failing system ----------------------
def signed_headers(body: bytes, **override: str | bytes) -> dict[str, str | bytes]:
    ts = str(int(time.time()))
    headers: dict[str, str | bytes] = {
        "x-slack-request-timestamp": ts,
        "x-slack-signature": sign(SecretStr(SIGNING_SECRET), ts, body),
        "content-type": "application/x-www-form-urlencoded",
    }
    return headers | override


@pytest.mark.parametrize(
    "override, status",
    [
        ({"x-slack-signature": "v0=" + "é" * 64}, 401),  # non-ASCII: latin-1 on the wire
        ({"x-slack-signature": "v1=abc"}, 401),
        ({"x-slack-request-timestamp": "²²²"}, 401),  # str.isdigit() says yes, int() says no
        ({"x-slack-request-timestamp": "9" * 5000}, 401),
        ({"x-slack-request-timestamp": "-1"}, 401),
        ({"content-length": "12abc"}, 400),
        ({"content-length": str(400 * 1024 * 1024)}, 413),
    ],
    ids=[
        "signature-non-ascii",
        "signature-v1",
        "superscript-ts",
        "5000-digit-ts",
        "negative-ts",
        "bad-length",
        "400MB-length",
    ],
)
def test_malformed_headers_are_refused_never_a_500(slack, override: dict, status: int) -> None:
    client, _ = slack
    body = b"command=%2Ffleet&text=health&user_id=U0OPS"
    wire = {
        k: (v.encode("latin-1") if isinstance(v, str) else v)
        for k, v in signed_headers(body, **override).items()
    }
    answer = client.client.post("/slack/commands", content=body, headers=wire)
    assert answer.status_code == status, answer.text
    assert "Traceback" not in answer.text


@pytest.fixture
def live_app(tmp_path: Path) -> Iterator[tuple[int, object]]:
    """The app under uvicorn on a loopback port (raw sockets need a real server)."""
    import threading

    import uvicorn

    with fleet_server() as fleet:
        config = load_config(write_config(tmp_path, fleet.url))
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(config, record_trigger), host="127.0.0.1", port=port, log_level="error"
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_until(lambda: server.started, 60, "slack app")
        try:
            yield port, fleet
        finally:
            server.should_exit = True
            thread.join(10)


def raw_request(port: int, head: bytes, body: bytes = b"") -> bytes:
    """Send the head (and maybe a little body), return what the server answers without ever
    sending the rest of a large declared body."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        return sock.recv(4096)


def test_big_body_is_refused_before_it_is_read(live_app) -> None:
    port, _ = live_app
    ts = str(int(time.time()))
    bad = (
        "POST /slack/commands HTTP/1.1\r\nhost: x\r\ncontent-length: 419430400\r\n"
        f"x-slack-request-timestamp: {ts}\r\nx-slack-signature: v0={'0' * 64}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    assert raw_request(port, bad).startswith(b"HTTP/1.1 413")  # declared 400 MB, none sent
    assert time.monotonic() - started < 5
    unsigned = b"POST /slack/commands HTTP/1.1\r\nhost: x\r\ncontent-length: 419430400\r\n\r\n"
    assert raw_request(port, unsigned).startswith(b"HTTP/1.1 401")  # headers first, no body
    chunk = b"x" * 8192
    chunked = (
        "POST /slack/commands HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
        f"x-slack-request-timestamp: {ts}\r\nx-slack-signature: v0={'0' * 64}\r\n\r\n"
    ).encode() + (b"2000\r\n" + chunk + b"\r\n") * 4
    assert raw_request(port, chunked).startswith(b"HTTP/1.1 413")  # counted while reading


def test_incidents_never_wait_for_the_write_lock(slack, tmp_path: Path) -> None:
    import sqlite3

    from fleet_alerting.core.incidents import Incident, State
    from fleet_alerting.core.policy import Evaluation
    from fleet_alerting.core.signals import Severity, Signal
    from fleet_alerting.store.database import Store

    client, _ = slack
    now = datetime.now(UTC)
    signal = Signal("probe:target=api", "probe", True, Severity.critical, "API down")
    incident = Incident(
        "probe:target=api",
        "probe",
        Severity.critical,
        State.firing,
        now,
        now,
        signal,
        consecutive_failures=2,
        opened_at=now,
    )
    store = Store(tmp_path / "state.sqlite")
    store.record(Evaluation([incident], []), now)
    store.close()
    writer = sqlite3.connect(tmp_path / "state.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # an evaluation holding the write lock
    writer.execute("UPDATE incidents SET updated_at = updated_at")
    try:
        started = time.monotonic()
        answer = text_of(client.command("incidents"))
        assert time.monotonic() - started < 2  # the store's busy timeout is 10 s
        assert "*critical* firing for" in answer and "API down" in answer
        assert client.client.get("/healthz").text == "ok"
    finally:
        writer.execute("ROLLBACK")
        writer.close()


async def slow_trigger(deployment: str, out: Callable[[str], None]) -> int:
    await asyncio.sleep(5)
    return 0


async def broken_trigger(deployment: str, out: Callable[[str], None]) -> int:
    raise RuntimeError("prefect client exploded")


def test_errors_name_the_system_that_failed(tmp_path: Path) -> None:
    with fleet_server() as fleet:
        config = load_config(write_config(tmp_path, fleet.url, answer_within="0.3s"))
        with TestClient(create_app(config, slow_trigger)) as client:
            answer = text_of(Slack(client).command("run blackbox-probe/scheduled", user="U0OPS"))
        with TestClient(create_app(config, broken_trigger)) as client:
            broken = text_of(Slack(client).command("run blackbox-probe/scheduled", user="U0OPS"))
        (tmp_path / "state.sqlite").write_bytes(b"this is not a database" * 100)
        with TestClient(create_app(config, record_trigger)) as client:
            store = text_of(Slack(client).command("incidents"))
    assert answer.startswith("*Prefect did not answer in time*")
    assert "The run may have been created" in answer and "Fleet API" not in answer
    assert broken.startswith("*Prefect failed*") and "RuntimeError" in broken
    assert store.startswith("*The incident store failed*") and "DatabaseError" in store


@pytest.mark.parametrize(
    "timestamp, signature",
    [
        (b"\xb2\xb2\xb2", b"v0=" + b"0" * 64),  # latin-1 superscript two: isdigit() but not int()
        (str(int(time.time())).encode(), b"v0=" + b"\xe9" * 64),  # non-ASCII signature
    ],
    ids=["superscript-ts", "latin1-signature"],
)
def test_raw_non_ascii_headers_get_401(live_app, timestamp: bytes, signature: bytes) -> None:
    port, _ = live_app
    head = (
        b"POST /slack/commands HTTP/1.1\r\nhost: x\r\ncontent-length: 11\r\n"
        b"x-slack-request-timestamp: "
        + timestamp
        + b"\r\nx-slack-signature: "
        + signature
        + b"\r\n\r\n"
    )
    assert raw_request(port, head, b"text=health").startswith(b"HTTP/1.1 401")


def test_fleet_silence_add_query_expire(slack) -> None:
    client, _ = slack
    answer = text_of(client.command('silence add target="pi-video-03" for 2h -- re-imaging'))
    assert "Not allowed" in answer  # changes only from the allow-listed
    answer = text_of(
        client.command('silence add target="pi-video-03" -- no duration', user="U0OPS")
    )
    assert "say for how long" in answer and "Usage: `/fleet silence add" in answer
    answer = text_of(
        client.command('silence add target="pi-video-03" for 2h -- re-imaging', user="U0OPS")
    )
    assert answer.startswith("*Silence*\nSilence ") and "by U0OPS until" in answer
    silence_id = answer.split("\n")[1].split()[1]
    listed = text_of(client.command("silence query"))  # anyone may look
    assert f"`{silence_id}` active until" in listed and "re-imaging" in listed
    answer = text_of(client.command(f"silence expire {silence_id}", user="U0OPS"))
    assert f"Silence {silence_id} expired by U0OPS" in answer
    assert "No silences, no windows." in text_of(client.command("silence query"))
    # Slack gives the user's name too: the silence names them as a button's ack does (@marko)
    named = client.command(
        'silence add target="pi-video-03" for 1h -- x', user="U0OPS", name="marko"
    )
    assert "by @marko until" in text_of(named)


def test_fleet_silence_add_and_expire_leave_the_event_loop_free(tmp_path: Path) -> None:
    """An evaluation holds the store's write lock: `/fleet silence add|expire` wait for it off
    the event loop, and a `/fleet silence query` beside them is answered meanwhile."""
    import sqlite3

    from fleet_alerting.store.database import Store
    from fleet_alerting.surfaces.slack_commands import parse
    from fleet_alerting.surfaces.slack_silences import silence

    config = load_config(write_config(tmp_path, "http://127.0.0.1:9"))
    Store(config.state).close()  # the tables exist

    def command(text: str) -> object:
        return parse({"text": text, "user_id": "U0OPS", "channel_id": "C0OPS"})

    async def while_locked(text: str) -> str:
        writer = sqlite3.connect(tmp_path / "state.sqlite", isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # an evaluation holding the write lock
        try:
            change = asyncio.create_task(silence(command(text), config))
            started = time.monotonic()
            await asyncio.sleep(0.1)  # the change is waiting for the lock now
            listed = await silence(command("silence query"), config)
            assert time.monotonic() - started < 2, "the event loop was blocked"  # busy: 10 s
            assert "Silences and maintenance windows" in listed["text"]
            assert not change.done()
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        return text_of_reply(await asyncio.wait_for(change, 15))

    added = asyncio.run(while_locked('silence add target="pi-video-03" for 2h -- re-imaging'))
    assert added.startswith("*Silence*\nSilence ") and "by U0OPS until" in added
    silence_id = added.split("\n")[1].split()[1]
    expired = asyncio.run(while_locked(f"silence expire {silence_id}"))
    assert f"Silence {silence_id} expired by U0OPS" in expired


def text_of_reply(answer: dict) -> str:
    return "\n".join(b["text"]["text"] for b in answer["blocks"])


def test_incidents_show_the_id_and_who_acked_silenced_or_muted_it(slack, tmp_path: Path) -> None:
    """`/fleet incidents` on a phone: each line carries the short id every command takes, and
    whether it is acknowledged, silenced, snoozed or muted (and until when) — as the CLI's
    listing does; names and labels from outside show as text, never a ping."""
    from dataclasses import replace
    from datetime import timedelta

    from slack_sdk.models.blocks import Block

    from fleet_alerting.core.incidents import Acts, Incident, State
    from fleet_alerting.core.policy import Evaluation
    from fleet_alerting.core.short_ids import short_ids
    from fleet_alerting.core.signals import Severity, Signal
    from fleet_alerting.store.database import Store

    client, _ = slack
    now = datetime.now(UTC)
    until = datetime(2031, 12, 8, 2, 0, tzinfo=UTC)

    def incident(key: str, summary: str, acts: Acts) -> Incident:
        signal = Signal(key, "probe", True, Severity.critical, summary)
        opened = Incident(key, "probe", Severity.critical, State.firing, now, now, signal)
        return replace(opened, consecutive_failures=2, opened_at=now, acts=acts)

    acked = incident(
        "probe:target=<!channel>",
        "API down <!here>",
        Acts(acked_by="@ana <!channel>", acked_at=now, silenced_by="@ana", silenced_until=until),
    )
    muted = incident(
        "probe:target=yard",
        "yard player down",
        Acts(
            mute_id="window:yard-night",
            muted_by="muted by window yard-night",
            muted_until=until,
            snoozed_until=now + timedelta(hours=1),
        ),
    )
    plain = incident("probe:target=hall", "hall player down", Acts())
    with Store(tmp_path / "state.sqlite") as store:
        store.record(Evaluation([acked, muted, plain], []), now)
    ids = short_ids([acked.key, muted.key, plain.key])
    response = client.command("incidents")
    for block in response.json()["blocks"]:
        Block.parse(block).validate_json()
    lines = text_of(response).splitlines()[1:]
    line = {key: next(x for x in lines if f"`{ids[key]}`" in x) for key in ids}
    assert "acked by @ana &lt;!channel&gt;" in line[acked.key]
    assert "silenced by @ana until Dec 8 02:00 UTC" in line[acked.key]
    assert "muted by window yard-night until Dec 8 02:00 UTC" in line[muted.key]
    assert "snoozed until" in line[muted.key] and "acked" not in line[muted.key]
    assert "acked" not in line[plain.key] and "muted" not in line[plain.key]
    assert "<!channel>" not in response.text and "<!here>" not in response.text
