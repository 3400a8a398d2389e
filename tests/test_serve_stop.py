"""`serve` stopped while a run is in flight: the first Ctrl-C (SIGINT) or SIGTERM says which runs it
waits for, cancels them after a short grace and is gone within 5 s, leaving their notifications
queued; a second Ctrl-C exits at once (130). The run hangs in its drain on a Slack webhook that
holds the request for a minute."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from fleet_alerting.store.database import Store
from tests.fakes.http import Request, Response, Scripted
from tests.fakes.saas import SlackWebhookServer
from tests.servers import start_serve, wait_until

pytestmark = pytest.mark.integration

HOLD = 60.0  # seconds the webhook holds a request: far past any stop


class HeldSlack(SlackWebhookServer):
    """Takes the message, then answers only after HOLD seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = threading.Event()

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        self.arrived.set()
        response.delay = HOLD
        return response


@dataclass
class Serving:
    proc: subprocess.Popen
    log: Path
    state: Path

    def output(self) -> str:
        return self.log.read_text()

    def exit_within(self, seconds: float) -> tuple[int, float]:
        """The exit code and how long it took, polled with a deadline."""
        start = time.monotonic()
        try:
            code = self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve still running {seconds:g} s later:\n{self.output()[-3000:]}")
        return code, time.monotonic() - start


def write_config(tmp_path: Path, target: str, slack: str) -> Path:
    (tmp_path / "slack.url").write_text(f"{slack}/services/T000/B000/XXXX\n")
    config = tmp_path / "config.yaml"
    critical = {"open_after": 1, "notify": ["slack"], "page": [], "mirror": False}
    config.write_text(
        yaml.safe_dump(
            {
                "state": {"path": "state.sqlite"},
                "notify": {"slack": {"webhook": {"file": "slack.url"}, "timeout": "90s"}},
                "policies": {"critical": critical},
                "blackbox": {"targets": [{"name": "api", "url": target, "severity": "critical"}]},
                "schedule": {"every": {"blackbox-probe": "10s"}},
            }
        )
    )
    return config


@pytest.fixture
def serving(prefect_api: str, tmp_path: Path) -> Iterator[Serving]:
    """serve with a blackbox run in flight: its target failed, and the drain waits on Slack."""
    from fleet_alerting.deployments.trigger import trigger

    with Scripted(Response(500, "down")) as target, HeldSlack() as slack:
        config = write_config(tmp_path, f"{target.url}/healthz", slack.url)
        log = tmp_path / "serve.log"
        proc = start_serve(config, os.environ | {"PREFECT_API_URL": prefect_api}, log)
        try:
            wait_until(lambda: "serving blackbox-probe/scheduled" in log.read_text(), 180, "serve")
            lines: list[str] = []
            asyncio.run(trigger("blackbox-probe/scheduled", {}, wait=False, out=lines.append))
            wait_until(slack.arrived.is_set, 180, "a run in flight, its message sent to Slack")
            yield Serving(proc, log, tmp_path / "state.sqlite")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def run_state(name: str) -> tuple[str, str]:
    """The type and message of the named flow run's state, as the Prefect UI shows them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    async def read() -> tuple[str, str]:
        async with get_client() as client:
            [run] = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
            )
        return run.state.type.value, run.state.message or ""

    return asyncio.run(read())


def queued_slack_messages(state: Path) -> list[str]:
    with Store(state) as store:
        return [i.notification.kind.value for i in store.outbox(("queued",))]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_names_the_runs_in_flight_and_stops_within_5_s(
    serving: Serving, signum: signal.Signals
) -> None:
    serving.proc.send_signal(signum)
    code, took = serving.exit_within(5.0)
    output = serving.output()
    assert code == 0, output[-3000:]
    waited = re.search(
        r"serve: stopping; waiting up to 1 s for the run\(s\) in flight, then cancelling them "
        r"\(their notifications stay queued\): blackbox-probe ([\w-]+) — press Ctrl-C again",
        output,
    )
    assert waited, output[-3000:]
    assert f"serve: cancelled blackbox-probe {waited.group(1)}" in output
    assert run_state(waited.group(1)) == (
        "CANCELLED",
        "serve stopped while it ran; its notifications stay queued",
    )
    assert "Traceback" not in output
    # the message the run was sending when it was cut off is still queued (its claim expires)
    assert queued_slack_messages(serving.state) == ["opened"]
    print(f"stopped {took:.2f} s after {signum.name}")


def test_a_second_ctrl_c_exits_at_once(serving: Serving) -> None:
    serving.proc.send_signal(signal.SIGINT)
    wait_until(lambda: "serve: stopping; waiting up to" in serving.output(), 5, "stopping")
    serving.proc.send_signal(signal.SIGINT)
    code, took = serving.exit_within(1.5)
    assert code == 130, serving.output()[-3000:]
    assert "serve: SIGINT again: exiting now" in serving.output()
    assert "serve: cancelled" not in serving.output()  # it did not wait for the grace
    assert queued_slack_messages(serving.state) == ["opened"]
    print(f"exited {took:.2f} s after the second SIGINT")
