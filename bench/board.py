"""Benchmark: the incident board's read and rendering with many open incidents.

What a watch run adds for the board (tasks/board.py): one statement for the first 200 open
incidents in board order and the counts per severity (store/board.py), parsing those 200
records, and rendering the markdown. Against the floor: one raw aggregate that counts the open
incidents per severity (it reads every open record's severity, as the board's statement must).
A store of N open incidents (1 in 10 critical, 1 in 10 info, the rest warning; ~1.6 KB of JSON
each, as a Prometheus watch writes them) on SQLite, or on PostgreSQL with `--url`. Wall time of
`--runs` reads of each, interleaved (the ratio holds on a busy machine), and the process's peak
RSS, which must not grow with N (only the shown rows are parsed).

    PYTHONPATH=$PWD .venv/bin/python bench/board.py [--incidents 50000] [--runs 5] [--url URL]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleet_alerting.core.board import MAX_ROWS, Board, render, row_of
from fleet_alerting.core.incidents import Incident, State
from fleet_alerting.core.short_ids import SHORT, full_id
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.store.board import open_incidents
from fleet_alerting.store.database import Store

NOW = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
SEVERITIES = [Severity.critical, Severity.info] + [Severity.warning] * 8
BATCH = 5000


def incident(n: int) -> Incident:
    severity = SEVERITIES[n % len(SEVERITIES)]
    key = f"prometheus/node-down:instance=host-{n:06d},job=node"
    signal = Signal(
        key=key,
        source="prometheus/node-down",
        firing=True,
        severity=severity,
        summary=f"host-{n:06d} is down " + "x" * 200,
        target=f"host-{n:06d}",
        labels={"instance": f"host-{n:06d}", "job": "node", "site": "s" * 100},
        remediation=("ssh in", "systemctl restart node-agent"),
        evidence={"value": 0.0, "query": "up == 0 " * 10},
    )
    state = State.paged if severity == Severity.critical else State.firing
    return Incident(
        key=key,
        source=signal.source,
        severity=severity,
        state=state,
        onset=NOW - timedelta(seconds=n),
        changed_at=NOW,
        signal=signal,
        opened_at=NOW,
    )


def fill(store: Store, count: int) -> None:
    for start in range(0, count, BATCH):
        with store.transaction() as transaction:
            transaction.write_incidents(
                [incident(n) for n in range(start, min(count, start + BATCH))], NOW
            )


def board(store: Store) -> tuple[str, float]:
    started = time.perf_counter()
    incidents, per_severity = open_incidents(store, MAX_ROWS)
    rows = [row_of(i, full_id(i.key)[:SHORT]) for i in incidents]
    markdown = render(Board(rows, per_severity), NOW)
    return markdown, time.perf_counter() - started


def raw(store: Store) -> float:
    severity = (
        "data::json->>'severity'"
        if store.dialect == "postgresql"
        else ("json_extract(data, '$.severity')")
    )
    sql = (
        f"SELECT {severity}, count(*) FROM incidents WHERE state IN ('firing', 'paged') GROUP BY 1"
    )
    started = time.perf_counter()
    with store.read() as conn:
        conn.exec_driver_sql(sql).all()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--url", help="a PostgreSQL database (empty) instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = args.url or str(Path(tmp) / "state.sqlite")
        with Store(where) as store:
            fill(store, args.incidents)
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            times, floor = [], []
            for _ in range(args.runs):
                markdown, took = board(store)
                times.append(took)
                floor.append(raw(store))
            rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.incidents} open incidents on {store.dialect}: board read + render")
    print(f"  median {statistics.median(times) * 1000:.0f} ms, worst {max(times) * 1000:.0f} ms")
    ratio = statistics.median(times) / statistics.median(floor)
    print(
        f"  raw count per severity: median {statistics.median(floor) * 1000:.0f} ms; {ratio:.2f}x"
    )
    print(f"  peak RSS {rss_before:.0f} MB after filling, {rss_after:.0f} MB after the reads")
    print(f"  {len(markdown.splitlines())} lines, {len(markdown)} characters of markdown")
    print("  " + markdown.splitlines()[0])


if __name__ == "__main__":
    main()
