"""A watch whose run hangs on a slow destination: the heartbeat's `/fail` names the sends the
process waits on (`a run in flight for 1m02s); sends in flight: slack for 1m02s`), not only the
run. A real drain of a real SQLite outbox to a Slack webhook fake that holds each request, and
the real heartbeat deciding while it hangs."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr

from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.drain import drain
from fleet_alerting.delivery.in_flight import SENDS
from fleet_alerting.delivery.notifiers.slack_webhook import SlackWebhook
from fleet_alerting.deployments.watch_runs import WatchRuns
from fleet_alerting.store.database import Store
from tests.fakes.deadmans_switch import DeadMansSwitch
from tests.fakes.http import Request, Response
from tests.fakes.saas import SlackWebhookServer
from tests.servers import wait_until
from tests.test_heartbeat_said_once import beating

HOLD = 3.0  # seconds the fake Slack holds each request


class HangingSlack(SlackWebhookServer):
    def handle(self, request: Request) -> Response:
        answer = super().handle(request)
        answer.delay = HOLD
        return answer


def test_a_run_hanging_on_slack_says_it_waits_on_slack(tmp_path: Path) -> None:
    runs = WatchRuns()
    runs.serve({"blackbox-probe": timedelta(seconds=10)}, datetime.now(UTC) - timedelta(minutes=1))
    with DeadMansSwitch() as switch, HangingSlack() as slack:
        beat = beating(tmp_path, switch, runs, print)
        store = Store(tmp_path / "state.sqlite")
        down = Signal("blackbox:url=http://api/healthz", "blackbox", True, Severity.warning, "down")
        now = datetime.now(UTC)
        store.record(evaluate([down], {}, lambda _s: PolicyConfig(open_after=1), now), now)

        async def deliver() -> None:
            async with httpx.AsyncClient() as client:
                webhook = SlackWebhook(client, SecretStr(f"{slack.url}/s"), "Slack", timeout=10)
                await drain(store, {"slack": webhook}, lambda: datetime.now(UTC))

        run = runs.started("blackbox-probe")
        draining = threading.Thread(target=asyncio.run, args=(deliver(),))
        draining.start()
        try:
            wait_until(lambda: bool(slack.requests), 10, "the message at Slack")
            hanging = beat.decide(datetime.now(UTC))
        finally:
            draining.join(HOLD + 10)
            run.ended(True)
            store.close()
    assert not hanging.ok
    assert ", a run in flight for " in hanging.reason, hanging.reason
    assert "; sends in flight: slack for " in hanging.reason, hanging.reason
    assert slack.messages and SENDS.waiting() == {}  # delivered, and no longer waited on
