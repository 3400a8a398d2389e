"""Benchmark: draining 1,000 queued notifications with 3 concurrent drainer processes.

Local servers answer each request after 20 ms: a Slack webhook, the mirror's webhook and the
PagerDuty Events API (the documented protocols, tests/fakes/saas.py). 200 critical incidents that
open and page at once queue 1,000 notifications: 400 Slack, 400 mirror, 200 PagerDuty.

- **bare sequential sender**: per destination, one process POSTs the same rendered bodies one
  after another with one httpx client — no store, no claims. The slowest lane's time is the bar.
- **3 drainers**: three processes (forked from one that imported once, tests/drainer.py) drain the
  store at the same moment, with claims, leases, destination state and ordering.

Prints duplicates (goal 0), lost (goal 0) and drain time / slowest bare lane (goal ≤ 1.2).

    PYTHONPATH=$PWD .venv/bin/python bench/delivery.py [--incidents 200] [--drainers 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.notifiers import pagerduty
from fleet_alerting.delivery.notifiers.slack_webhook import render
from fleet_alerting.store.database import Store
from tests.drainer import ROUTING_KEY, Zygote
from tests.fakes.http import Request, Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer

LATENCY = 0.02
POLICY = PolicyConfig(open_after=1, page=["pagerduty"], page_after=timedelta(0), mirror=True)


def slow(server_class: type) -> type:
    class Slow(server_class):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.server.RequestHandlerClass.disable_nagle_algorithm = True

        def handle(self, request: Request) -> Response:
            response = super().handle(request)
            response.delay = LATENCY
            return response

    return Slow


def queue(db: Path, incidents: int) -> int:
    store = Store(db)
    now = datetime.now(UTC)
    signals = [
        Signal(
            f"blackbox:url=http://dev-{i}/healthz",
            "blackbox",
            True,
            Severity.critical,
            f"dev-{i} down",
            target=f"dev-{i}",
        )
        for i in range(incidents)
    ]
    queued = store.record(evaluate(signals, {}, lambda _s: POLICY, now), now)
    store.close()
    return queued


def bodies(db: Path, channel: str) -> list[dict]:
    store = Store(db)
    items = [i for i in store.outbox(("queued",)) if i.notification.channel == channel]
    store.close()
    if channel == "pagerduty":
        return [pagerduty.event(i.notification, ROUTING_KEY) for i in items]
    return [render(i.notification) for i in items]


async def bare_lane(url: str, payloads: list[dict]) -> float:
    async with httpx.AsyncClient() as client:
        started = time.perf_counter()
        for body in payloads:
            response = await client.post(url, json=body)
            response.raise_for_status()
        return time.perf_counter() - started


def bare_main(db: str, channel: str, url: str) -> None:
    payloads = bodies(Path(db), channel)
    print(json.dumps({"seconds": asyncio.run(bare_lane(url, payloads)), "n": len(payloads)}))


def bare(db: Path, urls: dict[str, str]) -> dict[str, tuple[float, int]]:
    """Each lane's bare sender in its own process, all at once (as the drainers' lanes run)."""
    procs = {
        channel: subprocess.Popen(
            [sys.executable, __file__, "--bare", str(db), channel, url],
            stdout=subprocess.PIPE,
            text=True,
        )
        for channel, url in urls.items()
    }
    results = {channel: json.loads(p.communicate()[0]) for channel, p in procs.items()}
    return {channel: (r["seconds"], r["n"]) for channel, r in results.items()}


def received(slack, mirror, pd) -> Counter:
    got: Counter = Counter()
    for name, server in (("slack", slack), ("slack_mirror", mirror)):
        for message in server.messages:
            got[(name, message["text"].split(" | ")[0])] += 1
    for event in pd.events:
        got[("pagerduty", event["dedup_key"], event["event_action"])] += 1
    return got


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--drainers", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    with (
        slow(SlackWebhookServer)() as slack,
        slow(SlackWebhookServer)() as mirror,
        slow(PagerDutyServer)() as pd,
    ):
        urls = {
            "slack": f"{slack.url}/services/T/B/x",
            "slack_mirror": f"{mirror.url}/services/T/B/m",
            "pagerduty": f"{pd.url}/v2/enqueue",
        }
        bare_db = folder / "bare.sqlite"
        total = queue(bare_db, args.incidents)
        lanes = bare(bare_db, urls)
        slack.messages.clear()
        mirror.messages.clear()
        pd.events.clear()
        pd.open.clear()

        db = folder / "state.sqlite"
        queue(db, args.incidents)
        zygote = Zygote(db, folder / "results", (slack.url, mirror.url, pd.url))
        started = time.perf_counter()
        pids = zygote.fork(args.drainers)
        reports = zygote.wait(pids, timeout=600)
        drained = time.perf_counter() - started
        zygote.close()
        got = received(slack, mirror, pd)
        store = Store(db)
        left = len(store.outbox(("queued", "dead")))
        store.close()
    duplicates = sum(count - 1 for count in got.values() if count > 1)
    slowest = max(seconds for seconds, _n in lanes.values())
    print(
        f"{total} notifications queued ({args.incidents} incidents), "
        f"latency {LATENCY * 1000:.0f} ms"
    )
    for channel, (seconds, n) in lanes.items():
        print(f"  bare sequential {channel:<13} {n:>4} messages  {seconds:6.2f} s (lanes at once)")
    sent = [r["sent"] for r in reports]
    draining = max(r["ended"] for r in reports) - min(r["began"] for r in reports)
    print(
        f"  {args.drainers} drainers: {draining:.2f} s from the first one's start to the last "
        f"one's end ({drained:.2f} s from the fork, with process start-up)"
    )
    print(
        f"    sent per drainer: {sent}, each drainer's own time: {[r['seconds'] for r in reports]}"
    )
    print(
        f"  delivered: {sum(got.values())}, duplicates: {duplicates} (goal 0), left queued: {left}"
    )
    print(f"  ratio drain / slowest bare lane: {draining / slowest:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--bare":
        bare_main(*sys.argv[2:5])
    else:
        main()
