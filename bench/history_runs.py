"""Benchmark: how many `history_runs` rows a quarter of jittered runs leaves in the store.

Each watch runs every `--every` seconds for `--days` days, every run starting up to `--late-ms`
after its beat (uniformly, as scheduled runs do); the runs are recorded with store/history.py's
own segment logic (`_ran`) in a real SQLite store, `--batch` runs per transaction. One watch is
simulated and the figures are multiplied by `--watches` (the watches' segments are independent).

    PYTHONPATH=$PWD .venv/bin/python bench/history_runs.py [--days 90] [--every 60] [--late-ms 900]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from fleet_alerting.store import history
from fleet_alerting.store.database import Store

START = datetime(2026, 9, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--every", type=float, default=60.0)
    parser.add_argument("--late-ms", type=int, default=900)
    parser.add_argument("--watches", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    runs = int(args.days * 86400 / args.every)
    late = random.Random(1)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.sqlite"
        store = Store(path)
        started = time.process_time()
        for begin in range(0, runs, args.batch):
            with store.engine.begin() as conn:
                for n in range(begin, min(begin + args.batch, runs)):
                    beat = START + timedelta(seconds=args.every * n)
                    now = beat + timedelta(milliseconds=late.randint(0, args.late_ms))
                    history._ran(conn, "blackbox", {}, now)
        cpu = time.process_time() - started
        with store.engine.begin() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(history.runs_table)).scalar()
        store.close()
        size = _table_bytes(path)
    print(
        f"{args.watches} watches × {runs:,} runs ({args.days} d every {args.every:g} s, up to "
        f"{args.late_ms} ms late): {rows * args.watches:,} history_runs rows, "
        f"~{size * args.watches / 1e6:.2f} MB ({rows:,} rows, {size:,} bytes per watch; "
        f"{cpu:.1f} s CPU)"
    )


def _table_bytes(path: Path) -> int:
    """The bytes the history_runs table and its indexes take in the file (SQLite's dbstat)."""
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.exec_driver_sql("VACUUM")
        names = ["history_runs", *_indexes(conn)]
        marks = ", ".join("?" for _ in names)
        query = f"SELECT SUM(pgsize) FROM dbstat WHERE name IN ({marks})"
        total = conn.exec_driver_sql(query, tuple(names)).scalar()
    engine.dispose()
    return int(total or 0)


def _indexes(conn: sa.Connection) -> list[str]:
    query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'history_runs'"
    return [row[0] for row in conn.exec_driver_sql(query)]


if __name__ == "__main__":
    main()
