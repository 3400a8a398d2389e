"""One drainer process for the multi-process tests and the delivery benchmark.

    python -m tests.drainer STORE --slack URL --mirror URL --pagerduty URL [--barrier DIR] ...
    python -m tests.drainer STORE --slack-api URL --pagerduty URL ...

With --slack-api, Slack is the Web API as a bot-token config has it: the primary channel with
incident threads (and a snapshot reply to each opened message) and the mirror channel, both
through chat.postMessage of the fake at URL.

Drains the store's outbox (STORE: a SQLite file or a PostgreSQL URL) once with the real notifiers
against the given (local) endpoints and prints a JSON line with its counts. With --barrier it
writes DIR/ready-PID and waits for DIR/go, so several drainers start draining at the same moment;
with --until-empty it drains until nothing is queued (a killed drainer's claims are taken over
once their lease expires).

With --zygote it imports once and then forks a new drainer process for every line `fork` on its
stdin, printing the child's pid (the child writes its JSON to DIR/result-PID, DIR from --results):
the kill -9 loop starts dozens of drainers without paying the imports each time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr

from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.incidents import Incident
from fleet_alerting.delivery.drain import drain
from fleet_alerting.delivery.notifiers.pagerduty import PagerDutyEvents
from fleet_alerting.delivery.notifiers.slack_api import SlackApi, snapshot_message
from fleet_alerting.delivery.notifiers.slack_webhook import Pacer, SlackWebhook
from fleet_alerting.store.database import Store

ROUTING_KEY = "R" * 32
BOT_TOKEN = "xoxb-drainer-bot-token"
PRIMARY, MIRROR = "C0OPS", "C0MIRROR"  # channel ids, as the fake Slack API names them


def notifiers(
    client: httpx.AsyncClient, slack: str, mirror: str, pagerduty: str, interval: float = 0.0
) -> dict:
    """`interval`: Slack's pacing (min_interval; Slack takes ~1 message/s per webhook)."""
    pacer = Pacer(interval) if interval else None
    return {
        "slack": SlackWebhook(
            client, SecretStr(f"{slack}/services/T/B/x"), "Slack", timeout=5, pacer=pacer
        ),
        "slack_mirror": SlackWebhook(
            client, SecretStr(f"{mirror}/services/T/B/m"), "Slack mirror", timeout=5, pacer=pacer
        ),
        "pagerduty": PagerDutyEvents(
            client, SecretStr(ROUTING_KEY), f"{pagerduty}/v2/enqueue", timeout=5
        ),
    }


def web_api_notifiers(
    client: httpx.AsyncClient, store: Store, api: str, pagerduty: str, interval: float = 0.0
) -> dict:
    """Slack through the bot token (primary with threads and snapshot, mirror unthreaded)."""
    pacer = Pacer(interval)  # one pacer for both channels, as build_notifiers has it

    async def snapshot(incident: Incident, _at: datetime) -> dict:
        return snapshot_message(incident, [], "no Fleet API in this test", lambda _e: None)

    token, url = SecretStr(BOT_TOKEN), f"{api}/api"
    primary = SlackApi(
        client, token, PRIMARY, api_url=url, store=store, snapshot=snapshot, pacer=pacer, timeout=5
    )
    note = f"mirror of {PRIMARY}"
    mirror = SlackApi(client, token, MIRROR, api_url=url, note=note, pacer=pacer, timeout=5)
    return {
        "slack": primary,
        "slack_mirror": mirror,
        "pagerduty": PagerDutyEvents(
            client, SecretStr(ROUTING_KEY), f"{pagerduty}/v2/enqueue", timeout=5
        ),
    }


async def run(args: argparse.Namespace) -> dict:
    began = time.time()  # wall clock: comparable across drainer processes
    store = Store(args.store)
    started = time.perf_counter()
    totals: dict[str, float] = {"sent": 0, "retrying": 0, "dead": 0, "rounds": 0}
    deadline = time.monotonic() + args.deadline
    async with httpx.AsyncClient() as client:
        if args.slack_api:
            chans = web_api_notifiers(
                client, store, args.slack_api, args.pagerduty, args.slack_interval
            )
        else:
            chans = notifiers(client, args.slack, args.mirror, args.pagerduty, args.slack_interval)
        if args.results:  # set up: the drain starts now (the kill loop waits for this)
            (Path(args.results) / f"started-{os.getpid()}").touch()
        while True:
            report = await drain(
                store,
                chans,
                utcnow,
                lease=timedelta(seconds=args.lease),
                paged_wait=args.paged_wait,
            )
            totals["rounds"] += 1
            for name in ("sent", "retrying", "dead"):
                totals[name] += len(getattr(report, name))
            if not args.until_empty or not store.outbox(("queued",)):
                break
            if time.monotonic() > deadline:
                totals["timeout"] = 1
                break
            await asyncio.sleep(0.1)  # claims of a killed drainer: wait for their lease to end
    store.close()
    totals["seconds"] = round(time.perf_counter() - started, 3)
    totals["began"], totals["ended"] = began, time.time()
    return totals


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Zygote:
    """`python -m tests.drainer --zygote`: forks a fresh drainer process on demand."""

    def __init__(self, db: Path | str, results: Path, urls: tuple[str, ...], *extra: str):
        """`urls`: (slack webhook, mirror webhook, pagerduty) or (slack api, pagerduty)."""
        results.mkdir(exist_ok=True)
        self.results = results
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.drainer",
                str(db),
                *endpoints(urls),
                "--zygote",
                "--results",
                str(results),
                *extra,
            ],
            cwd=Path(__file__).parents[1],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def fork(self, count: int = 1) -> list[int]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("fork\n" * count)
        self.proc.stdin.flush()
        return [int(self.proc.stdout.readline()) for _ in range(count)]

    def started(self, pid: int) -> bool:
        return (self.results / f"started-{pid}").exists()

    def result(self, pid: int) -> dict | None:
        path = self.results / f"result-{pid}"
        return json.loads(path.read_text()) if path.exists() else None

    def wait(self, pids: list[int], timeout: float = 120) -> list[dict]:
        wait_for(lambda: all(self.result(p) for p in pids), timeout, f"drainers {pids}")
        return [self.result(p) for p in pids]  # type: ignore[misc]

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def endpoints(urls: tuple[str, ...]) -> list[str]:
    """The drainer's endpoint options for (slack, mirror, pagerduty) webhooks or (api, pd)."""
    if len(urls) == 2:
        return ["--slack-api", urls[0], "--pagerduty", urls[1]]
    slack, mirror, pd = urls
    return ["--slack", slack, "--mirror", mirror, "--pagerduty", pd]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    slack = parser.add_mutually_exclusive_group(required=True)
    slack.add_argument("--slack")
    slack.add_argument("--slack-api")
    parser.add_argument("--mirror")
    parser.add_argument("--pagerduty", required=True)
    parser.add_argument("--lease", type=float, default=180.0)
    parser.add_argument("--paged-wait", type=float, default=30.0)
    parser.add_argument("--barrier")
    parser.add_argument("--until-empty", action="store_true")
    parser.add_argument("--deadline", type=float, default=120.0)
    parser.add_argument("--zygote", action="store_true")
    parser.add_argument("--slack-interval", type=float, default=0.0)
    parser.add_argument("--results")
    args = parser.parse_args(argv)
    if args.zygote:
        return zygote(args)
    if args.barrier:
        barrier = Path(args.barrier)
        (barrier / f"ready-{os.getpid()}").touch()
        while not (barrier / "go").exists():
            time.sleep(0.005)
    totals = asyncio.run(run(args))
    print(json.dumps(totals), flush=True)
    return 0


def zygote(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    results = Path(args.results)
    for line in sys.stdin:
        if line.strip() != "fork":
            continue
        pid = os.fork()
        if pid == 0:  # the child: a fresh drainer (no loop, thread or connection was inherited)
            try:
                totals = asyncio.run(run(args))
                partial = results / f"partial-{os.getpid()}"
                partial.write_text(json.dumps(totals))
                partial.rename(results / f"result-{os.getpid()}")  # whole, or not there at all
            finally:
                os._exit(0)
        print(pid, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
