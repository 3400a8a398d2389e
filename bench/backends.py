"""Benchmark: the store on SQLite and on PostgreSQL, side by side in one run.

1. **Delivery** (as bench/delivery.py): 200 critical incidents queue 1,000 notifications; three
   drainer processes forked at the same moment (tests/drainer.py) drain them to local fakes of
   Slack, the mirror and PagerDuty answering after 20 ms. Per backend: time from the first
   drainer's start to the last one's end, messages per second, what each drainer sent,
   duplicates (goal 0) and lost (goal 0).
2. **A run with history** (as bench/store_history.py): a run's store work (open ×3, evaluate 200
   targets in one write transaction, prune, read the outbox) against an empty store and against
   one holding 100,000 resolved incidents and 200,000 notifications, interleaved. Per backend:
   median wall time per run (PostgreSQL's share of the work runs in its server processes, so
   wall time is the comparable figure; this process's CPU is printed too) and history / empty.

PostgreSQL is a throwaway cluster started here (tests/postgres.py: Debian's `postgresql`, loopback,
`fsync=off`, `synchronous_commit=off` — no waiting for the disk per commit, as SQLite's WAL with
`synchronous=NORMAL`).

    PYTHONPATH=$PWD .venv/bin/python bench/backends.py [--incidents 200] [--history 100000]
        [--notifications 200000] [--runs 20] [--skip-delivery] [--skip-history]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # bench/ is not a package

import delivery  # bench/delivery.py
import store_history  # bench/store_history.py

from fleet_alerting.store.database import Store
from tests.drainer import Zygote
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.postgres import PostgresCluster


def drain_once(db: str, folder: Path, incidents: int, drainers: int) -> dict[str, object]:
    with (
        delivery.slow(SlackWebhookServer)() as slack,
        delivery.slow(SlackWebhookServer)() as mirror,
        delivery.slow(PagerDutyServer)() as pd,
    ):
        total = delivery.queue(db, incidents)  # type: ignore[arg-type]
        zygote = Zygote(db, folder, (slack.url, mirror.url, pd.url))
        reports = zygote.wait(zygote.fork(drainers), timeout=900)
        zygote.close()
        got = delivery.received(slack, mirror, pd)
    store = Store(db)
    left = len(store.outbox(("queued", "dead")))
    sent_rows = len(store.outbox(("sent",)))
    store.close()
    seconds = max(r["ended"] for r in reports) - min(r["began"] for r in reports)
    return {
        "queued": total,
        "seconds": seconds,
        "per_second": total / seconds,
        "sent": [r["sent"] for r in reports],
        "duplicates": sum(n - 1 for n in got.values() if n > 1),
        "lost": total - len(got),
        "left": left,
        "sent_rows": sent_rows,
    }


def history_runs(stores: dict[str, str], runs: int) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU seconds per run for each store, runs interleaved across the stores."""
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in stores}
    for db in stores.values():
        store_history.one_run(db, -1)  # type: ignore[arg-type] -- warm-up: imports, caches
    for minute in range(runs):
        for name, db in stores.items():
            began = time.perf_counter()
            cpu = store_history.one_run(db, minute)  # type: ignore[arg-type]
            out[name][0].append(time.perf_counter() - began)
            out[name][1].append(cpu)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--drainers", type=int, default=3)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--notifications", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--skip-delivery", action="store_true")
    parser.add_argument("--skip-history", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-backends-"))
    cluster = PostgresCluster.start()
    try:
        print(f"PostgreSQL {cluster.bindir.parent.name} on 127.0.0.1:{cluster.port}; SQLite WAL")
        if not args.skip_delivery:
            floor = 2 * args.incidents * delivery.LATENCY  # a Slack lane's messages, in a row
            print(
                f"\ndelivery: {args.incidents} incidents, {args.drainers} drainers at once, "
                f"fakes answer after {delivery.LATENCY * 1000:.0f} ms (a Slack lane's "
                f"{2 * args.incidents} answers one after another: {floor:.1f} s)"
            )
            for name, db in (
                ("sqlite", str(folder / "delivery.sqlite")),
                ("postgres", cluster.create_database("delivery")),
            ):
                r = drain_once(db, folder / f"results-{name}", args.incidents, args.drainers)
                print(
                    f"  {name:<8} {r['queued']} queued, drained in {r['seconds']:6.2f} s "
                    f"({r['per_second']:.0f}/s), sent per drainer {r['sent']}, "
                    f"duplicates {r['duplicates']}, lost {r['lost']}, left queued {r['left']}"
                )
        if not args.skip_history:
            print(
                f"\na run with history: {args.history:,} incidents + {args.notifications:,} "
                f"notifications vs empty, {args.runs} runs each (interleaved)"
            )
            stores: dict[str, str] = {}
            for name, make in (
                ("sqlite", lambda n: str(folder / f"{n}.sqlite")),
                ("postgres", lambda n: cluster.create_database(n)),
            ):
                for kind in ("empty", "history"):
                    db = make(f"{kind}")
                    started = time.perf_counter()
                    store = Store(db)
                    if kind == "history":
                        store_history.fill(store, args.history, args.notifications)
                    store.close()
                    took = time.perf_counter() - started
                    print(f"  {name} {kind}: written in {took:.0f} s")
                    stores[f"{name} {kind}"] = db
            timed = history_runs(stores, args.runs)
            medians = {}
            for name, (wall, cpu) in timed.items():
                medians[name] = statistics.median(wall)
                print(
                    f"  {name:<16} median {statistics.median(wall) * 1000:6.1f} ms wall "
                    f"(min {min(wall) * 1000:.1f}, max {max(wall) * 1000:.1f}), "
                    f"{statistics.median(cpu) * 1000:6.1f} ms CPU here"
                )
            for name in ("sqlite", "postgres"):
                ratio = medians[f"{name} history"] / medians[f"{name} empty"]
                print(f"  {name}: history / empty {ratio:.2f} (goal <= 1.1)")
            ratio = medians["postgres history"] / medians["sqlite history"]
            print(f"  postgres / sqlite, with history: {ratio:.2f}")
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
