"""Benchmark: what-if's `sent` column — the store's sent messages of a 30-day period read and
turned into what the report compares (`Outbox.sent` + `sent_of`), against the raw read of the
same rows (`SELECT data` + `json.loads`). The store holds 30 days of a noisy fleet: `--messages`
sent notifications (2 % dead, not read), a few of them a storm group's messages that carry
`--members` members each.

Both sides interleaved, `--runs` times each, CPU time and the peak of Python's traced memory.

    PYTHONPATH=$PWD .venv/bin/python bench/whatif_sent.py [--messages 200000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from store_history import NOW, fill  # bench/, beside this script

from fleet_alerting.audit.whatif import sent_of
from fleet_alerting.store.database import Store, outbox_table

START, END = NOW - timedelta(days=30), NOW


def ours(store: Store) -> int:
    return len([sent_of(n) for n in store.queue.sent(START, END)])


def raw(store: Store) -> int:
    t = outbox_table
    query = sa.select(t.c.data).where(t.c.status == "sent", t.c.created_at >= START.isoformat())
    with store.engine.begin() as conn:
        return len([json.loads(data) for data in conn.execute(query).scalars()])


def measured(side: Callable[[Store], int], path: Path) -> tuple[float, float, int]:
    """CPU seconds, peak traced MB, rows."""
    with Store(path) as store:
        tracemalloc.start()
        began = time.process_time()
        rows = side(store)
        cpu = time.process_time() - began
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    return cpu, peak, rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.sqlite"
        with Store(path) as store:
            fill(store, 1, args.messages)
        print(f"{args.messages:,} messages in 25 days, store {path.stat().st_size / 1e6:.0f} MB")
        found: dict[str, list[tuple[float, float, int]]] = {"ours": [], "raw": []}
        for _ in range(args.runs):
            found["raw"].append(measured(raw, path))
            found["ours"].append(measured(ours, path))
        for name, runs in found.items():
            cpu = [r[0] for r in runs]
            print(
                f"{name:5} rows {runs[0][2]:,}  CPU {min(cpu):.2f} / {statistics.median(cpu):.2f} s"
                f"  peak traced {max(r[1] for r in runs):.0f} MB"
            )
        ratio = [o[0] / r[0] for o, r in zip(found["ours"], found["raw"], strict=True)]
        print(f"ours / raw CPU: {', '.join(f'{x:.2f}' for x in ratio)}")


if __name__ == "__main__":
    main()
