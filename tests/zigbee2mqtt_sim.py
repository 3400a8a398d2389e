"""A small Zigbee2MQTT on a real broker: what the real bridge does on its bridge topics.

- on connect: last will `bridge/state` offline (retained), then retained `bridge/state` online and
  `bridge/info`; 2.x publishes JSON state and `permit_join_end` (ms epoch) while joining is open,
  1.x (`legacy_state`) the plain text state and no end;
- `bridge/request/health_check` → `bridge/response/health_check` `{data: {healthy}, status}`;
- `bridge/request/permit_join` `{"time": N}` (2.x) or `{"value": bool, "time"?: N}` (1.x) opens
  joining for N seconds clamped to 0..254 (0 or false closes), republishes `bridge/info` and answers
  with the request's `transaction`;
- `publish_availability(device, state)` publishes a device's retained availability, in the 2.x
  JSON shape or the legacy plain text;
- `crash()` drops the connection without DISCONNECT, so the broker publishes the last will.
`ignore_close` makes it answer ok to a close request but keep joining open (a lying bridge);
`answer_first` answers a permit_join request before republishing `bridge/info` (the real bridge
does it the other way round; a client must read both in either order); `join_timeout` makes a 1.x
bridge publish `permit_join_timeout` (seconds left) as Zigbee2MQTT 1.x does while joining is open
with a time.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt


class Zigbee2MqttSim:
    def __init__(
        self,
        port: int,
        username: str,
        password: str,
        *,
        base_topic: str = "zigbee2mqtt",
        major: int = 2,
        healthy: bool = True,
        answer_health: bool = True,
        ignore_close: bool = False,
        answer_first: bool = False,
        join_timeout: bool = False,
    ):
        self.base = base_topic
        self.major = major
        self.healthy = healthy
        self.answer_health = answer_health
        self.ignore_close = ignore_close
        self.answer_first = answer_first
        self.join_timeout = join_timeout
        self.permit_join = False
        self.permit_join_end: int | None = None  # ms epoch
        self.requests: list[tuple[str, Any]] = []
        self._timer: threading.Timer | None = None
        self._connected = threading.Event()
        self.port = port
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"z2m-sim-{base_topic}"
        )
        self.client.username_pw_set(username, password)
        self.client.will_set(self.topic("bridge/state"), self._state("offline"), 1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> Zigbee2MqttSim:
        self._connected.clear()
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(5):
            raise RuntimeError(f"simulator {self.base} could not connect")
        return self

    def stop(self) -> None:
        """A clean stop, as Zigbee2MQTT does it: state offline, then disconnect."""
        self._cancel_timer()
        self.publish("bridge/state", self._state("offline"))
        self.client.disconnect()
        self.client.loop_stop()

    def crash(self) -> None:
        """Gone without a word (power cut, OOM kill): the broker publishes the last will."""
        self._cancel_timer()
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def topic(self, suffix: str) -> str:
        return f"{self.base}/{suffix}"

    def publish(self, suffix: str, payload: bytes | str, retain: bool = True) -> None:
        info = self.client.publish(self.topic(suffix), payload, qos=1, retain=retain)
        info.wait_for_publish(5)

    # joining ----------------------------------------------------------------------------------
    def open_joining(self, seconds: float, publish: bool = True) -> int:
        """What a permit_join request does; returns the clamped time."""
        seconds = int(max(0, min(254, seconds)))
        self._cancel_timer()
        if seconds == 0:
            self.permit_join, self.permit_join_end = False, None
        else:
            self.permit_join = True
            self.permit_join_end = int((time.time() + seconds) * 1000)
            self._timer = threading.Timer(seconds, self.open_joining, (0,))
            self._timer.daemon = True
            self._timer.start()
        if publish:
            self.publish_info()
        return seconds

    def publish_info(self) -> None:
        info: dict[str, Any] = {
            "version": "2.1.3" if self.major >= 2 else "1.42.0",
            "coordinator": {"type": "ConBee2/RaspBee2", "ieee_address": "0x00212effff0612d5"},
            "network": {"channel": 11, "pan_id": 6754},
            "log_level": "info",
            "permit_join": self.permit_join,
            "restart_required": False,
        }
        if self.major >= 2 and self.permit_join_end is not None:
            info["permit_join_end"] = self.permit_join_end
        if self.major < 2:
            left = (self.permit_join_end or 0) / 1000 - time.time()
            timed = self.join_timeout and self.permit_join and left > 0
            info["permit_join_timeout"] = round(left) if timed else None
        self.publish("bridge/info", json.dumps(info))

    def publish_availability(self, device: str, state: str, *, legacy: bool = False) -> None:
        """`<base>/<device>/availability`, retained: `{"state": …}` (2.x) or plain (legacy)."""
        payload = state if legacy else json.dumps({"state": state})
        self.publish(f"{device}/availability", payload)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # MQTT callbacks -----------------------------------------------------------------------------
    def _state(self, state: str) -> str:
        return state if self.major < 2 else json.dumps({"state": state})

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, rc: Any, _p: Any
    ) -> None:
        if rc != 0:
            return
        client.subscribe(self.topic("bridge/request/#"), qos=1)
        client.publish(self.topic("bridge/state"), self._state("online"), qos=1, retain=True)
        threading.Thread(target=self._announce, daemon=True).start()

    def _announce(self) -> None:
        self.publish_info()
        self._connected.set()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        name = message.topic.removeprefix(self.topic("bridge/request/"))
        try:
            request = json.loads(message.payload or b"null")
        except json.JSONDecodeError:
            request = message.payload.decode(errors="replace")
        self.requests.append((name, request))
        # answer from another thread: paho must not block its own network loop on wait_for_publish
        threading.Thread(target=self._answer, args=(name, request), daemon=True).start()

    def _answer(self, name: str, request: Any) -> None:
        transaction = request.get("transaction") if isinstance(request, dict) else None
        response: dict[str, Any]
        if name == "health_check":
            if not self.answer_health:
                return
            response = {"data": {"healthy": self.healthy}, "status": "ok"}
        elif name == "permit_join":
            response = self._permit_join(request)
        else:
            response = {"data": {}, "status": "error", "error": f"Unknown request '{name}'"}
        if transaction is not None:
            response["transaction"] = transaction
        self.publish(f"bridge/response/{name}", json.dumps(response), retain=False)
        if name == "permit_join" and self.answer_first:
            self.publish_info()

    def _permit_join(self, request: Any) -> dict[str, Any]:
        if self.major >= 2:
            if not isinstance(request, dict) or not isinstance(request.get("time"), int | float):
                return {"data": {}, "status": "error", "error": "Invalid payload"}
            wanted = request["time"]
        else:
            value = request.get("value") if isinstance(request, dict) else request
            if not isinstance(value, bool):
                return {"data": {}, "status": "error", "error": "Invalid payload"}
            wanted = (request.get("time") or 254) if value and isinstance(request, dict) else 0
            wanted = wanted if value else 0
        if wanted == 0 and self.ignore_close:
            return {"data": {"time": 0}, "status": "ok"}
        granted = self.open_joining(wanted, publish=not self.answer_first)
        return {
            "data": {"time": granted} if self.major >= 2 else {"value": granted > 0},
            "status": "ok",
        }
