"""Slow clients (slowloris) against the real `fleet-alerting slack-app` process: a request head
that stalls or trickles in, or a body that stalls, is cut within the 10 s deadlines, on every
endpoint and on a kept-alive connection's second request. All clients run at once."""

from __future__ import annotations

import time

import pytest

from tests.attacks.app import App, Fakes, click, head, pd_signature
from tests.attacks.slow import SlowClient, run_all

pytestmark = pytest.mark.integration  # the real app process, on loopback

PAGERDUTY = {"x-pagerduty-signature": pd_signature(b"{}")}


def test_slow_heads_and_bodies_are_cut_within_the_deadlines(app: App, world: Fakes) -> None:
    partial_head = b"POST /slack/actions HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slack-sig"
    slack = {
        "x-slack-request-timestamp": str(int(time.time())),
        "x-slack-signature": "v0=" + "0" * 64,
    }
    signed = whole(click(world))
    clients = {
        "head that stalls": SlowClient(app.port, partial_head),
        "head that trickles": SlowClient(app.port, partial_head, b"x" * 100),
        "second head on a kept-alive connection": SlowClient(app.port, signed + partial_head),
        "/slack/actions body that stalls": SlowClient(
            app.port, head("/slack/actions", slack | {"content-length": "1000"}) + b"payload="
        ),
        "/slack/commands body that stalls": SlowClient(
            app.port, head("/slack/commands", slack | {"content-length": "1000"}) + b"text="
        ),
        "/pagerduty/webhook body that stalls": SlowClient(
            app.port,
            head("/pagerduty/webhook", PAGERDUTY | {"transfer-encoding": "chunked"}) + b"5\r\n{",
        ),
    }
    run_all(clients)
    for name, client in clients.items():
        if "body" in name:
            assert client.answer.startswith(b"HTTP/1.1 408"), (name, client.answer[:100])
    kept_alive = clients["second head on a kept-alive connection"].answer
    assert kept_alive.startswith(b"HTTP/1.1 200"), kept_alive[:100]  # the first request's answer


def whole(request: dict) -> bytes:
    """A whole request as bytes (one that is answered at once)."""
    headers = request["headers"] | {"content-length": str(len(request["content"]))}
    return head("/slack/actions", headers) + request["content"]
