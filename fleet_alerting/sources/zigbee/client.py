"""Zigbee2MQTT over MQTT (aiomqtt): read each coordinator's retained bridge topics, ask for a
health check, close permit join. Parsing never raises: a bad payload is a `problems` entry.

Coordinators on the same broker (URL, TLS, user and password) share one connection. After
subscribing, the client publishes to a marker topic of its own: the broker handles one client's
packets in order, so the marker arrives after every retained message of the subscriptions, and
"no retained bridge/state" is known at once instead of at the timeout.

Protocol facts (Zigbee2MQTT MQTT API):
- `bridge/state` retained, `{"state":"online"|"offline"}` (the last will is the offline one), or
  the legacy plain `online` / `offline`;
- `bridge/info` retained: `version`, `permit_join` (bool) and, from 2.0, `permit_join_end`
  (ms since the epoch, absent while joining is closed); 1.x publishes `permit_join_timeout`
  instead (seconds left when it was published, null or absent without a timeout);
- `bridge/request/<name>` → `bridge/response/<name>` `{data, status: ok|error, error?,
  transaction?}`, the request's `transaction` echoed back;
- permit join: `{"time": 0..254}` (2.x, 0 closes) or `{"value": false}` (1.x).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import ssl
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from pydantic import SecretStr

from fleet_alerting.config.schema import ZigbeeConfig, ZigbeeCoordinator
from fleet_alerting.config.secrets import SecretError, SecretRef, redact
from fleet_alerting.sources.records import text_only

STATE, INFO, HEALTH = "bridge/state", "bridge/info", "bridge/response/health_check"
# <base>/<friendly name>/availability, read under <base>/#: a friendly name may contain "/"
AVAILABILITY = "/availability"
AUTH_REFUSED_CODES = {4, 5, 134, 135}  # MQTT 3.1.1 CONNACK 4/5, MQTT 5 reason codes 0x86/0x87


@dataclass(frozen=True)
class BridgeInfo:
    permit_join: bool
    permit_join_end: datetime | None  # 2.x only, while open
    version: str | None
    permit_join_timeout: int | None = None  # 1.x: seconds left when bridge/info was published

    @property
    def major(self) -> int:
        """Zigbee2MQTT major version: from `version`, else 2 if it publishes an end time."""
        head = (self.version or "").split(".")[0]
        if head.isdigit():
            return int(head)
        return 2 if self.permit_join_end else 1


@dataclass(frozen=True)
class Health:
    healthy: bool | None  # None: no answer within the timeout
    detail: str = ""


@dataclass(frozen=True)
class Observation:
    """What one coordinator's topics said. `broker_error` set → nothing else could be read."""

    coordinator: ZigbeeCoordinator
    broker_error: str | None = None
    auth_refused: bool = False
    state: str | None = None  # online | offline | None (no retained state)
    info: BridgeInfo | None = None
    health: Health | None = None  # None: not asked
    problems: dict[str, str] = field(default_factory=dict)  # topic → why it is unparseable
    # device → online | offline | "unparseable: why" (coordinators with `availability` only)
    availability: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CloseResult:
    closed: bool  # bridge/info read back shows permit_join false
    detail: str


class PayloadError(ValueError):
    """Why a payload is not what Zigbee2MQTT publishes (never quotes the payload itself)."""


# parsing -------------------------------------------------------------------------------------
def _json(payload: bytes, limit: int) -> Any:
    if len(payload) > limit:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds the {limit}-byte limit")
    try:
        return text_only(json.loads(payload))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PayloadError("not JSON") from None
    except RecursionError:
        raise PayloadError("JSON nested too deeply") from None


def parse_state(payload: bytes, limit: int) -> str:
    """`{"state": "online"}` or the legacy plain `online` (also offline)."""
    if len(payload) > limit:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds the {limit}-byte limit")
    plain = payload.strip().decode("utf-8", "replace")
    if plain in ("online", "offline"):
        return plain
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise PayloadError("neither JSON nor plain online/offline") from None
    state = data.get("state") if isinstance(data, dict) else None
    if state not in ("online", "offline"):
        raise PayloadError('expected {"state": "online" | "offline"}')
    return state


def _availability(payload: bytes, limit: int) -> str:
    """A device's retained availability: `online`/`offline`, `{"state": …}` (2.x) or why not."""
    try:
        return parse_state(payload, limit)
    except PayloadError as exc:
        return f"unparseable: {exc}"


def parse_info(payload: bytes, limit: int) -> BridgeInfo:
    data = _json(payload, limit)
    if not isinstance(data, dict):
        raise PayloadError("expected a JSON object")
    permit_join = data.get("permit_join")
    if not isinstance(permit_join, bool):
        raise PayloadError("permit_join is missing or not a boolean")
    end = data.get("permit_join_end")
    if end is not None and (isinstance(end, bool) or not isinstance(end, int | float)):
        raise PayloadError("permit_join_end is not a number of milliseconds")
    try:
        end_at = datetime.fromtimestamp(end / 1000, UTC) if end is not None else None
    except (OverflowError, OSError, ValueError):
        raise PayloadError("permit_join_end is out of range") from None
    version = data.get("version")
    timeout = data.get("permit_join_timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
        raise PayloadError("permit_join_timeout is not a number of seconds")
    if timeout is not None and not 0 <= timeout <= 86_400:
        raise PayloadError("permit_join_timeout is out of range")
    return BridgeInfo(
        permit_join,
        end_at,
        version if isinstance(version, str) else None,
        None if timeout is None else int(timeout),
    )


def parse_response(payload: bytes, limit: int) -> dict[str, Any]:
    data = _json(payload, limit)
    if not isinstance(data, dict) or data.get("status") not in ("ok", "error"):
        raise PayloadError('expected {"status": "ok" | "error", ...}')
    return data


def health_of(response: dict[str, Any]) -> Health:
    if response["status"] == "error":
        return Health(False, f"health_check failed: {response.get('error') or 'no reason given'}")
    data = response.get("data")
    healthy = data.get("healthy") if isinstance(data, dict) else None
    if not isinstance(healthy, bool):
        return Health(False, "health_check answer lacks data.healthy")
    return Health(healthy, "" if healthy else "health_check answered healthy: false")


# connections ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: bool
    ca_file: str | None
    username: str | None
    password_ref: str | None  # which secret, to group by; never the value

    @property
    def label(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def broker_of(coordinator: ZigbeeCoordinator) -> Broker:
    parts = urlsplit(coordinator.broker)
    tls = coordinator.tls or parts.scheme == "mqtts"
    return Broker(
        parts.hostname or "127.0.0.1",
        parts.port or (8883 if tls else 1883),
        tls,
        str(coordinator.ca_file) if coordinator.ca_file else None,
        coordinator.username,
        coordinator.password.describe() if coordinator.password else None,
    )


class BrokerError(Exception):
    def __init__(self, message: str, *, auth_refused: bool = False):
        super().__init__(redact(message))
        self.auth_refused = auth_refused


def _client(broker: Broker, coordinator: ZigbeeCoordinator, timeout: float) -> aiomqtt.Client:
    password: SecretStr | None = None
    if coordinator.password is not None:
        try:
            password = coordinator.password.resolve()
        except SecretError as exc:
            raise BrokerError(f"MQTT password unavailable: {exc}") from None
    context = ssl.create_default_context(cafile=broker.ca_file) if broker.tls else None
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=broker.username,
        password=password.get_secret_value() if password else None,
        identifier=f"fleet-alerting-{uuid.uuid4().hex[:12]}",
        tls_context=context,
        timeout=timeout,
        keepalive=max(5, int(timeout * 4)),
    )


def _broker_error(broker: Broker, exc: Exception) -> BrokerError:
    if isinstance(exc, MqttConnectError):
        code = getattr(exc.rc, "value", exc.rc)
        if code in AUTH_REFUSED_CODES:
            user = broker.username or "(anonymous)"
            return BrokerError(
                f"MQTT broker {broker.label} refused the login of {user} (auth refused)",
                auth_refused=True,
            )
        return BrokerError(f"MQTT broker {broker.label} refused the connection: {exc}")
    if isinstance(exc, TimeoutError):
        return BrokerError(f"MQTT broker {broker.label} unreachable: timed out")
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return BrokerError(f"MQTT broker {broker.label} unreachable: {reason}")


def _topic(coordinator: ZigbeeCoordinator, suffix: str) -> str:
    return f"{coordinator.base_topic.rstrip('/')}/{suffix}"


def device_of(topic: str, base: str) -> str | None:
    """The friendly name in `<base>/<name>/availability`; None for any other topic under the
    base (the bridge's own `bridge/…`, a device's state or `/set`)."""
    prefix = base.rstrip("/") + "/"
    if not topic.startswith(prefix) or not topic.endswith(AVAILABILITY):
        return None
    name = topic[len(prefix) : -len(AVAILABILITY)]
    if not name or name == "bridge" or name.startswith("bridge/"):
        return None
    return name


def availability_of(
    topic: str, watched: Sequence[ZigbeeCoordinator]
) -> tuple[ZigbeeCoordinator, str] | None:
    """(coordinator, device) of an availability topic; the longest base topic that holds it wins
    (one base may lie under another)."""
    for coordinator in watched:  # longest base first
        if (device := device_of(topic, coordinator.base_topic)) is not None:
            return coordinator, device
    return None


# reading -------------------------------------------------------------------------------------
async def observe_all(
    coordinators: Sequence[ZigbeeCoordinator], config: ZigbeeConfig
) -> list[Observation]:
    """One observation per coordinator, in order; brokers are read concurrently."""
    groups: dict[Broker, list[ZigbeeCoordinator]] = defaultdict(list)
    for coordinator in coordinators:
        groups[broker_of(coordinator)].append(coordinator)
    results = await asyncio.gather(*(_observe_broker(b, cs, config) for b, cs in groups.items()))
    by_name = {o.coordinator.name: o for group in results for o in group}
    return [by_name[c.name] for c in coordinators]


async def _observe_broker(
    broker: Broker, coordinators: list[ZigbeeCoordinator], config: ZigbeeConfig
) -> list[Observation]:
    timeout = config.timeout.total_seconds()
    try:
        async with asyncio.timeout(timeout * 3):  # connect + retained read + health answers
            async with _client(broker, coordinators[0], timeout) as client:
                return await _read(client, coordinators, config)
    except BrokerError as exc:
        error = exc
    except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
        error = _broker_error(broker, exc)
    return [
        Observation(c, broker_error=str(error), auth_refused=error.auth_refused)
        for c in coordinators
    ]


async def _read(
    client: aiomqtt.Client, coordinators: list[ZigbeeCoordinator], config: ZigbeeConfig
) -> list[Observation]:
    limit = config.max_payload_bytes
    marker = f"fleet-alerting/marker/{uuid.uuid4().hex}"
    owner: dict[str, tuple[ZigbeeCoordinator, str]] = {}
    for c in coordinators:
        for suffix in (STATE, INFO) + ((HEALTH,) if c.health_check else ()):
            owner[_topic(c, suffix)] = (c, suffix)
    watched = sorted(
        (c for c in coordinators if c.availability is not None),
        key=lambda c: len(c.base_topic.rstrip("/")),
        reverse=True,
    )
    wildcards = [_topic(c, "#") for c in watched]
    await client.subscribe([(topic, 1) for topic in [*owner, *wildcards, marker]])
    await client.publish(marker, b"", qos=1)
    transactions: dict[str, str] = {}
    for c in coordinators:
        if c.health_check:
            transactions[c.name] = f"fleet-alerting-{uuid.uuid4().hex[:12]}"
            body = json.dumps({"transaction": transactions[c.name]})
            await client.publish(_topic(c, "bridge/request/health_check"), body, qos=1)

    payloads: dict[tuple[str, str], bytes] = {}
    available: dict[str, dict[str, str]] = defaultdict(dict)
    health: dict[str, Health] = {}
    problems: dict[str, dict[str, str]] = defaultdict(dict)
    retained_done = False
    try:
        async with asyncio.timeout(config.timeout.total_seconds()):
            async for message in client.messages:
                topic = message.topic.value
                payload = message.payload if isinstance(message.payload, bytes) else b""
                if topic == marker:
                    retained_done = True
                elif topic not in owner:
                    if payload and (found := availability_of(topic, watched)) is not None:
                        available[found[0].name][found[1]] = _availability(payload, limit)
                else:
                    c, suffix = owner[topic]
                    if suffix != HEALTH:
                        payloads[(c.name, suffix)] = payload
                    elif c.name not in health:
                        try:
                            response = parse_response(payload, limit)
                        except PayloadError as exc:
                            problems[c.name][HEALTH] = str(exc)
                            continue
                        if response.get("transaction") == transactions[c.name]:
                            health[c.name] = health_of(response)
                if retained_done and len(health) == len(transactions):
                    break
    except TimeoutError:
        pass  # whatever did not come is "no retained state" / "no answer"

    observations = []
    for c in coordinators:
        state = info = None
        found = problems[c.name]
        if (raw := payloads.get((c.name, STATE))) is not None:
            try:
                state = parse_state(raw, limit)
            except PayloadError as exc:
                found[STATE] = str(exc)
        if (raw := payloads.get((c.name, INFO))) is not None:
            try:
                info = parse_info(raw, limit)
            except PayloadError as exc:
                found[INFO] = str(exc)
        answer = None
        if c.health_check:
            wait = config.timeout.total_seconds()
            answer = health.get(c.name) or Health(None, f"no health_check answer within {wait:g}s")
            if c.name in health:  # a garbage answer beside the matching one is no matter
                found.pop(HEALTH, None)
        observations.append(
            Observation(
                c,
                state=state,
                info=info,
                health=answer,
                problems=found,
                availability=available[c.name],
            )
        )
    return observations


# acting --------------------------------------------------------------------------------------
def close_request(major: int) -> dict[str, Any]:
    """The permit_join request that closes joining, as Zigbee2MQTT `major` takes it."""
    return {"time": 0} if major >= 2 else {"value": False}


def close_command(coordinator: ZigbeeCoordinator, major: int) -> str:
    """The `mosquitto_pub` that closes joining by hand on this broker: host, port, TLS and the
    login it needs; the password is read where the command runs (never written here)."""
    broker = broker_of(coordinator)
    words = ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port)]
    if broker.tls:
        words += ["--cafile", broker.ca_file] if broker.ca_file else ["--capath", "/etc/ssl/certs"]
    if coordinator.username:
        words += ["-u", coordinator.username]
    quoted = [shlex.quote(word) for word in words]
    if coordinator.password is not None:
        quoted += ["-P", _password_words(coordinator.password)]
    topic = _topic(coordinator, "bridge/request/permit_join")
    quoted += [
        "-t",
        shlex.quote(topic),
        "-m",
        shlex.quote(json.dumps(close_request(major), separators=(",", ":"))),
    ]
    return " ".join(quoted)


def _password_words(ref: SecretRef) -> str:
    if ref.file:
        return f'"$(cat {shlex.quote(str(ref.file))})"'
    if ref.env:
        return f'"${ref.env}"'
    return "PASSWORD"  # a Prefect Secret block: the operator fills it in


async def close_permit_join(
    coordinator: ZigbeeCoordinator, major: int, config: ZigbeeConfig
) -> CloseResult:
    """Ask Zigbee2MQTT to close joining, then read bridge/info back: only a bridge/info with
    permit_join false counts as closed, whatever the request's answer said."""
    broker = broker_of(coordinator)
    timeout = config.timeout.total_seconds()
    transaction = f"fleet-alerting-{uuid.uuid4().hex[:12]}"
    request = close_request(major)
    try:
        async with asyncio.timeout(timeout * 3):
            async with _client(broker, coordinator, timeout) as client:
                await client.subscribe(
                    [(_topic(coordinator, INFO), 1), (_topic(coordinator, "bridge/response/#"), 1)]
                )
                await client.publish(
                    _topic(coordinator, "bridge/request/permit_join"),
                    json.dumps(request | {"transaction": transaction}),
                    qos=1,
                )
                return await _read_back(client, transaction, config)
    except BrokerError as exc:
        return CloseResult(False, f"close not sent: {exc}")
    except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
        return CloseResult(False, f"close not sent: {_broker_error(broker, exc)}")


async def _read_back(client: aiomqtt.Client, transaction: str, config: ZigbeeConfig) -> CloseResult:
    """Wait for both the request's answer and a bridge/info showing joining closed, in whichever
    order they come (Zigbee2MQTT republishes bridge/info before it answers)."""
    answer: str | None = None
    closed = False
    timeout = config.timeout.total_seconds()
    try:
        async with asyncio.timeout(timeout):
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                if message.topic.value.endswith("bridge/response/permit_join"):
                    answer = _describe_answer(payload, transaction, config) or answer
                elif not closed:
                    with contextlib.suppress(PayloadError):
                        closed = not parse_info(payload, config.max_payload_bytes).permit_join
                if closed and answer is not None:
                    break
    except TimeoutError:
        pass
    said = answer or "no answer to the request"
    if closed:
        return CloseResult(True, f"closed, verified by bridge/info ({said})")
    return CloseResult(False, f"bridge/info still shows joining open after {timeout:g}s ({said})")


def _describe_answer(payload: bytes, transaction: str, config: ZigbeeConfig) -> str | None:
    try:
        response = parse_response(payload, config.max_payload_bytes)
    except PayloadError as exc:
        return f"unparseable answer: {exc}"
    if response.get("transaction") not in (None, transaction):
        return None
    if response["status"] == "ok":
        return "request answered ok"
    return f"request refused: {response.get('error') or 'no reason given'}"
