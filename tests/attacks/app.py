"""The real `fleet-alerting slack-app` process (uvicorn, as operators run it) on a loopback port,
for requests a stranger could send: raw sockets, streamed bodies, restarts, two processes on one
store. Slack's `response_url`, the incident webhook and PagerDuty are the protocol fakes."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import select
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import yaml
from pydantic import SecretStr

from fleet_alerting.core.incidents import Incident, State
from fleet_alerting.core.policy import Evaluation
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.notifiers.slack_webhook import ACTIONS_BLOCK
from fleet_alerting.store import actions as audit
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.slack_commands import sign
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.operator_fleet import TOKEN, fleet_server
from tests.servers import Server, free_port, http_ready

SLACK_SECRET = "slack-signing-secret-CANARY-attacks"
PD_SECRET = "pd-webhook-secret-CANARY-attacks"
KEY = "blackbox:target=fleet-api"
ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


@dataclass
class Fakes:
    slack: SlackWebhookServer  # the incident messages (incoming webhook)
    responses: SlackWebhookServer  # Slack's response_url
    pagerduty: PagerDutyServer
    fleet_url: str


@contextmanager
def fakes() -> Iterator[Fakes]:
    with ExitStack() as stack:
        fleet = stack.enter_context(fleet_server())
        slack = stack.enter_context(SlackWebhookServer())
        responses = stack.enter_context(SlackWebhookServer())
        pagerduty = stack.enter_context(PagerDutyServer())
        yield Fakes(slack, responses, pagerduty, fleet.url)


def write_config(folder: Path, world: Fakes, state: str, port: int) -> Path:
    """A config for one app process: `state` is a SQLite path or a PostgreSQL URL."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "signing.secret").write_text(SLACK_SECRET)
    (folder / "pd-webhook.secret").write_text(PD_SECRET)
    (folder / "fleet.token").write_text(TOKEN)
    (folder / "pd.key").write_text("R" * 32)
    (folder / "slack.url").write_text(f"{world.slack.url}/services/T/B/X")
    where = {"url": state} if state.startswith("postgresql") else {"path": state}
    config = {
        "state": where,
        "notify": {
            "slack": {"webhook": {"file": "slack.url"}, "min_interval": "0s"},
            "pagerduty": {
                "routing_key": {"file": "pd.key"},
                "url": f"{world.pagerduty.url}/v2/enqueue",
            },
        },
        "policies": {"critical": {"page": ["pagerduty"], "mirror": False}},
        "fleet_api": {"url": world.fleet_url, "token": {"file": "fleet.token"}},
        "operators": {
            "slack_app": {
                "signing_secret": {"file": "signing.secret"},
                "port": port,
                "allowed_users": ["U0ANA"],
            },
            "pagerduty_webhook": {"secret": {"file": "pd-webhook.secret"}},
        },
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def rss(server: Server) -> int:
    """Resident memory of a server process, in bytes."""
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    (line,) = [x for x in status.splitlines() if x.startswith("VmRSS:")]
    return int(line.split()[1]) * 1024


class App:
    """One `fleet-alerting slack-app` process; `restart()` stops it and starts a new one."""

    def __init__(self, folder: Path, world: Fakes, state: str):
        self.folder = folder
        self.state = state
        self.port = free_port()
        self.config = write_config(folder, world, state, self.port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = self._start()

    def _start(self) -> Server:
        argv = [sys.executable, "-m", "fleet_alerting.surfaces.cli", "slack-app"]
        argv += ["--config", str(self.config)]
        return Server(argv, self.folder, http_ready(f"{self.url}/healthz"), "slack-app")

    def restart(self) -> None:
        self.server.stop()
        self.server = self._start()

    def stop(self) -> None:
        self.server.stop()

    def rss(self) -> int:
        return rss(self.server)

    def log(self) -> str:
        return self.server.log.read_text()

    def post(self, path: str, request: dict[str, Any]) -> httpx.Response:
        """A well-formed HTTP request; neither its answer nor the app's log shows a traceback."""
        logged = len(self.log())
        answer = httpx.post(f"{self.url}{path}", timeout=30, **request)
        assert "Traceback" not in answer.text and "Traceback" not in self.log()[logged:]
        return answer

    def send(self, path: str, headers: dict[str, str | bytes], body: bytes) -> Answer:
        """A request exactly as given (exchange); no traceback in its answer or the app's log."""
        logged = len(self.log())
        answer = exchange(self.port, path, headers, body)
        assert "Traceback" not in answer.text and "Traceback" not in self.log()[logged:]
        return answer


def slack_headers(body: bytes, secret: str = SLACK_SECRET, age: int = 0) -> dict[str, str]:
    ts = str(int(time.time()) - age)
    return {
        "x-slack-request-timestamp": ts,
        "x-slack-signature": sign(SecretStr(secret), ts, body),
        "content-type": "application/x-www-form-urlencoded",
    }


def slack_signed(body: bytes) -> dict[str, Any]:
    return {"content": body, "headers": slack_headers(body)}


def click(world: Fakes, action: str = "silence", value: str = "1h") -> dict[str, Any]:
    """A signed `block_actions` request as Slack sends it."""
    return slack_form(click_payload(world, action, value))


def command(text: str, user: str = "U0ANA") -> dict[str, Any]:
    """A signed `/fleet` slash command as Slack sends it (its trigger_id makes it unique)."""
    form = {"command": "/fleet", "text": text, "user_id": user, "channel_id": "C0OPS"}
    return slack_signed(urlencode(form | {"trigger_id": uuid.uuid4().hex}).encode())


def slack_form(payload: Any) -> dict[str, Any]:
    return slack_signed(urlencode({"payload": json.dumps(payload)}).encode())


def click_payload(world: Fakes, action: str = "silence", value: str = "1h") -> dict[str, Any]:
    """A `block_actions` payload as Slack's reference shows it (a static_select's choice)."""
    element: dict[str, Any] = {"action_id": action, "block_id": ACTIONS_BLOCK + KEY}
    element |= {"action_ts": f"{time.time():.6f}", "type": "static_select"}
    element["selected_option"] = {"text": {"type": "plain_text", "text": value}, "value": value}
    payload = {
        "type": "block_actions",
        "user": {"id": "U0ANA", "username": "ana", "name": "ana"},
        "container": {"type": "message", "channel_id": "C0OPS"},
        "channel": {"id": "C0OPS", "name": "operations"},
        "trigger_id": uuid.uuid4().hex,
        "response_url": f"{world.responses.url}/actions/A1/{uuid.uuid4().hex}",
        "actions": [element],
    }
    return payload


def pd_signature(body: bytes, secret: str = PD_SECRET) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def pd_signed(body: bytes) -> dict[str, Any]:
    headers = {"content-type": "application/json", "x-pagerduty-signature": pd_signature(body)}
    return {"content": body, "headers": headers}


PD_USER = {"id": "PLH1HKV", "summary": "Ana Operator", "type": "user_reference"}
PD_SERVICE = {"id": "PF9KMXH", "summary": "Fleet API (service)", "type": "service_reference"}
PD_INTEGRATION = {"id": "PQ8Z4T1", "summary": "Events API V2", "type": "integration_reference"}


def pd_event(
    event_type: str, event_id: str, key: str = KEY, agent: dict[str, str] | None = PD_USER
) -> dict[str, Any]:
    """A signed v3 webhook delivery, shaped as PagerDuty documents it; by default an operator's
    doing (a user agent)."""
    return pd_signed(json.dumps(pd_delivery(event_type, event_id, key, agent)).encode())


def pd_delivery(
    event_type: str, event_id: str, key: str = KEY, agent: dict[str, str] | None = PD_USER
) -> dict[str, Any]:
    """The JSON of a v3 webhook delivery (`agent` None: PagerDuty's own doing, sent as null)."""
    event = {
        "id": event_id,
        "event_type": event_type,
        "resource_type": "incident",
        "occurred_at": datetime.now(UTC).isoformat(),
        "agent": agent,
        "data": {"id": "PGR0VU2", "type": "incident", "incident_key": key, "title": "down"},
    }
    return {"event": event}


SHAPES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "endpoint_shapes.yaml").read_text())


def shape_id(case: dict[str, Any]) -> str:
    return f"{case['at'] or 'document'}={'dropped' if case.get('drop') else case.get('value')}"


def reshaped(document: Any, at: str, value: Any = None, drop: bool = False) -> Any:
    """`document` with what is at the dotted path `at` replaced by `value` (or dropped)."""
    if not at:
        return value
    copy = json.loads(json.dumps(document))
    *parents, last = at.split(".")
    node = copy
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    index: Any = int(last) if isinstance(node, list) else last
    if drop:
        del node[index]
    else:
        node[index] = value
    return copy


def seed_incident(state: str, key: str = KEY, status: State = State.paged) -> None:
    now = datetime.now(UTC)
    onset = now - timedelta(minutes=10)
    signal = Signal(key, "blackbox", True, Severity.critical, "Fleet API down", since=onset)
    incident = Incident(
        key, "blackbox", Severity.critical, status, onset, now, signal,
        consecutive_failures=5, opened_at=onset,
    )  # fmt: skip
    with Store(state) as store:
        store.record(Evaluation([incident], []), now)


def history(state: str, key: str = KEY) -> list[audit.ActionRecord]:
    with Store(state) as store:
        return audit.history(store, key)


def exchange(port: int, path: str, headers: dict[str, str | bytes], body: bytes) -> Answer:
    """One request exactly as given (Content-Length added unless a length or chunking is given),
    on a raw socket: no client library tidies a hostile header."""
    if not {"content-length", "transfer-encoding"} & set(headers):
        headers = headers | {"content-length": str(len(body))}
    data = head(path, headers) + body
    pieces = (data[i : i + 65536] for i in range(0, len(data), 65536))
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        answer = _send(sock, pieces)
        with contextlib.suppress(ConnectionResetError):  # it closed with our bytes unread
            while not Answer.complete(answer):
                part = sock.recv(65536)
                if not part:
                    break
                answer += part
    return Answer(answer)


def _send(sock: socket.socket, pieces: Iterator[bytes]) -> bytes:
    """Send until done or until the server answers (a refusal before the end); its answer's
    first bytes."""
    try:
        for piece in pieces:
            if select.select([sock], [], [], 0)[0]:
                break
            sock.sendall(piece)
    except (TimeoutError, ConnectionError):
        pass  # the server stopped reading: its answer is waiting
    sock.settimeout(30)
    return sock.recv(65536)


@dataclass(frozen=True)
class Answer:
    raw: bytes

    @property
    def status(self) -> int:
        return int(self.raw.split(b" ", 2)[1]) if self.raw else 0

    @property
    def text(self) -> str:
        return self.raw.partition(b"\r\n\r\n")[2].decode(errors="replace")

    @staticmethod
    def complete(raw: bytes) -> bool:
        top, sep, body = raw.partition(b"\r\n\r\n")
        lengths = [x for x in top.lower().split(b"\r\n") if x.startswith(b"content-length:")]
        return bool(sep) and bool(lengths) and len(body) >= int(lengths[0].split(b":")[1])


def head(path: str, headers: dict[str, str | bytes]) -> bytes:
    lines = [f"POST {path} HTTP/1.1".encode(), b"host: 127.0.0.1"]
    for name, value in headers.items():
        lines.append(
            name.encode() + b": " + (value if isinstance(value, bytes) else value.encode())
        )

    return b"\r\n".join(lines) + b"\r\n\r\n"


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """`total` bytes of body, made as they are sent (the test never holds them)."""
    block = b"a" * size
    for _ in range(total // size):
        yield block


def stream(port: int, request_head: bytes, body: Iterator[bytes], chunked: bool) -> bytes:
    """Send the head, then the body until the server answers (or stops reading); its answer."""
    framed = (b"%x\r\n%s\r\n" % (len(part), part) if chunked else part for part in body)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        return _send(
            sock, itertools.chain([request_head], framed, [b"0\r\n\r\n"] if chunked else [])
        )


def refuses_500_mb_flat(
    server: Server, port: int, path: str, headers: dict[str, str], chunked: bool
) -> None:
    """Stream a 500 MB body, made as it is sent, to `path` (chunked, or with its length
    declared): the server process must grow by less than 50 MB and answer 413."""
    size = {"transfer-encoding": "chunked"} if chunked else {"content-length": str(500 * MB)}
    before = rss(server)
    answer = stream(port, head(path, headers | size), chunks(500 * MB), chunked)
    grown = rss(server) - before
    assert grown < 50 * MB, f"the process grew by {grown / MB:.0f} MB"
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
