"""Benchmark: a run's store work with a long history vs an empty store (goal ≤ 1.1×).

"A run" is what every watch does with the store each minute: open it (the flow's writability
check, the evaluate task, the delivery task), read the open incidents, evaluate and record in one
write transaction, prune past retention, and read the queued outbox. The history is 100,000
incidents (resolved, within the 90-day retention) and 200,000 notifications (sent or
dead, within retention), written through the store's own tables. The same runs (200 targets, 10
failing) go against an empty store and the history store, interleaved, CPU time per run taken
with `time.process_time()` (this process: Python + SQLite).

    PYTHONPATH=$PWD .venv/bin/python bench/store_history.py [--incidents 100000]
        [--notifications 200000] [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from pydantic import TypeAdapter

from fleet_alerting.core.incidents import Incident, Kind, Notification, State
from fleet_alerting.core.policy import Evaluation, PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.store.database import Retention, Store, outbox_table

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
POLICY = PolicyConfig(open_after=2, resolve_after=2, mirror=True)
TARGETS, FAILING = 200, 10
NOTIFICATION_JSON = TypeAdapter(Notification)


def signal(n: int, firing: bool) -> Signal:
    return Signal(
        key=f"blackbox:url=http://pi-{n:05d}.example.org:8081/healthz",
        source="blackbox",
        firing=firing,
        severity=Severity.warning,
        summary=f"pi-{n:05d} /healthz {'failed: HTTP 503' if firing else 'ok'}",
        target=f"http://pi-{n:05d}.example.org:8081/healthz",
        labels={"device": f"pi-{n:05d}", "role": "player"},
        runbook_url="https://runbooks.example.org/device-healthz",
        remediation=("Check the player service", "Restart it if it is stuck"),
    )


def fill(store: Store, incidents: int, notifications: int) -> None:
    """History within retention: resolved incidents of the last 80 days and
    notifications (sent, 2% dead) of the last 25 days."""
    batch = 5000
    for start in range(0, incidents, batch):
        made: list[Incident] = []
        for n in range(start, min(start + batch, incidents)):
            at = NOW - timedelta(days=80) + timedelta(seconds=n * 60)
            incident = Incident(
                key=f"history:device=old-{n:06d}",
                source="history",
                severity=Severity.warning,
                state=State.resolved,
                onset=at,
                changed_at=at,
                signal=replace(signal(n, True), key=f"history:device=old-{n:06d}"),
                consecutive_failures=2,
                opened_at=at,
                resolved_at=at + timedelta(minutes=5),
                resolution="recovered",
            )
            made.append(incident)
        store.record(Evaluation(made, []), NOW - timedelta(days=80))
    kinds = list(Kind)
    template = made[-1]
    with store.engine.begin() as conn:
        for start in range(0, notifications, batch):
            rows = []
            for n in range(start, min(start + batch, notifications)):
                at = NOW - timedelta(days=25) + timedelta(seconds=n * 10)
                note = Notification(f"history|{n}", "slack", kinds[n % 4], at, template)
                rows.append(
                    {
                        "notification_id": note.id,
                        "channel": note.channel,
                        "kind": note.kind,
                        "incident_key": template.key,
                        "status": "dead" if n % 50 == 0 else "sent",
                        "attempts": 1,
                        "created_at": at.isoformat(),
                        "next_attempt_at": at.isoformat(),
                        "receipt": "Slack: ok",
                        "data": NOTIFICATION_JSON.dump_json(note).decode(),
                    }
                )
            conn.execute(sa.insert(outbox_table), rows)


def one_run(path: Path, minute: int) -> float:
    """CPU seconds of one run's store work."""
    now = NOW + timedelta(minutes=minute)
    failing = {(minute // 5 + k) % TARGETS for k in range(FAILING)}  # a few change each 5 min
    signals = [signal(n, n in failing) for n in range(TARGETS)]
    start = time.process_time()
    check = Store(path)
    check.check_writable()
    check.close()
    store = Store(path)
    store.evaluate(lambda current: evaluate(signals, current, lambda _s: POLICY, now), now)
    store.prune(now, Retention())
    store.close()
    delivery = Store(path)
    queued = delivery.outbox(("queued",))
    for item in queued:  # delivered: the next run finds an empty queue, as after a good drain
        delivery.queue.mark_sent(item.id, None, 1, "ok")
    delivery.close()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--notifications", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        empty, history = Path(tmp) / "empty.sqlite", Path(tmp) / "history.sqlite"
        Store(empty).close()
        started = time.perf_counter()
        store = Store(history)
        fill(store, args.incidents, args.notifications)
        store.close()
        size = history.stat().st_size / 1e6
        print(
            f"history: {args.incidents:,} incidents, {args.notifications:,} notifications, "
            f"{size:.0f} MB, written in {time.perf_counter() - started:.0f} s"
        )
        one_run(empty, -1), one_run(history, -1)  # warm-up: imports, caches
        cpu: dict[str, list[float]] = {"empty": [], "history": []}
        for minute in range(args.runs):
            cpu["empty"].append(one_run(empty, minute))
            cpu["history"].append(one_run(history, minute))
        for name, values in cpu.items():
            print(
                f"{name:>8}: median {statistics.median(values) * 1000:6.1f} ms CPU per run "
                f"(min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f}; {len(values)} runs)"
            )
        ratio = statistics.median(cpu["history"]) / statistics.median(cpu["empty"])
        print(f"ratio history / empty: {ratio:.2f} (goal ≤ 1.1)")
        timed = Store(history)
        for include_resolved in (False, True):
            started = time.process_time()
            rows = timed.incidents(include_resolved=include_resolved)
            took = time.process_time() - started
            print(
                f"incidents(include_resolved={include_resolved}): {len(rows):,} rows, "
                f"{took:.2f} s CPU"
            )
        timed.close()


if __name__ == "__main__":
    main()
