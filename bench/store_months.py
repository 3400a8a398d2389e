"""Benchmark: months of a fleet on one small VPS — does the store level off under the default
retentions?

One SQLite store, written by the pipeline's own transaction (`tasks.pipeline.evaluate_and_record`:
incidents, outbox, the actions trail of mutes, the run's history) and pruned as every run prunes
(`Store.prune` and `history.prune` with the config's `state.retention`, its defaults). Each
simulated day, on a virtual clock, for a fleet of 500 devices (one probe each):

- a nightly maintenance window (00:00–02:00 UTC) in which every device reboots: failing from
  00:10 to 00:40, so each opens muted and resolves under the window — two audit rows per device
  (muted, unmuted: resolved), a thousand history changes;
- a few incidents a day: three devices (another three each day) fail 10:00–10:30 and are told in
  Slack (their messages marked sent, as a good drain would);
- a run every hour besides; runs are full runs of all 500 devices. No fleet-offline aggregate
  (muted devices are not counted by it anyway).

At the end of every `--report-every` days it prints the store's size on disk (after a WAL
checkpoint; SQLite reuses freed pages, so the file stops growing once pruning keeps pace) and
its rows per table.

    PYTHONPATH=$PWD .venv/bin/python bench/store_months.py [--days 150] [--devices 500]
        [--report-every 10] [--actions-kept 3650d]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.store_history import signal  # a device probe, as a blackbox watch sees it
from fleet_alerting.config.schema import Config
from fleet_alerting.store import history
from fleet_alerting.store.database import Store
from fleet_alerting.store.tables import metadata
from fleet_alerting.tasks.pipeline import evaluate_and_record, retention

START = datetime(2026, 1, 1, tzinfo=UTC)
NIGHT_DOWN = (timedelta(minutes=10), timedelta(minutes=40))  # every device reboots
DAY_DOWN = (timedelta(hours=10), timedelta(hours=10, minutes=30))  # a few incidents a day


def run_times(day: datetime) -> list[datetime]:
    """The day's runs: hourly, and every 2 minutes around each failure's start and end."""
    times = {day + timedelta(hours=h) for h in range(24)}
    for start, end in (NIGHT_DOWN, DAY_DOWN):
        for edge in (start, end):
            times |= {day + edge + timedelta(minutes=m) for m in (0, 2, 4, 6)}
    return sorted(times)


def failing_at(moment: datetime, day_index: int, devices: int) -> set[int]:
    since_midnight = moment - moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if NIGHT_DOWN[0] <= since_midnight < NIGHT_DOWN[1]:
        return set(range(devices))
    if DAY_DOWN[0] <= since_midnight < DAY_DOWN[1]:
        return {(day_index * 3 + k) % devices for k in range(3)}
    return set()


def sizes(path: Path) -> tuple[float, dict[str, int]]:
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = {
            table: raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in metadata.tables
        }
    return path.stat().st_size / 1e6, rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--report-every", type=int, default=10)
    parser.add_argument(
        "--actions-kept",
        default=None,
        help="state.retention.actions (default: the config's); 3650d: as before it was pruned",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.sqlite"
        config = Config.model_validate(
            {
                "state": {"path": str(path)},
                "maintenance": {
                    "windows": [
                        {
                            "name": "nightly",
                            "time_intervals": [
                                {"times": [{"start_time": "00:00", "end_time": "02:00"}]}
                            ],
                        }
                    ],
                    "mute": [
                        {"matchers": ['source="blackbox"'], "mute_time_intervals": ["nightly"]}
                    ],
                },
                "fleet": {"offline": []},
            }
            | (
                {"state": {"path": str(path), "retention": {"actions": args.actions_kept}}}
                if args.actions_kept
                else {}
            )
        )
        kept, history_kept = retention(config), config.state.retention.history
        rules, maintenance = config.storm_rules(), config.maintenance_rules()
        print(
            f"{args.devices} devices, {args.days} days; retention: resolved incidents "
            f"{kept.resolved_incidents.days}d, sent {kept.sent_notifications.days}d, dead "
            f"{kept.dead_letters.days}d, history {history_kept.days}d, actions "
            f"{kept.actions.days}d, ended silences {kept.expired_silences.days}d"
        )
        started = time.perf_counter()
        runs = 0
        with Store(config.state) as store:
            for day_index in range(args.days):
                day = START + timedelta(days=day_index)
                for now in run_times(day):
                    failing = failing_at(now, day_index, args.devices)
                    signals = [signal(n, n in failing) for n in range(args.devices)]
                    evaluate_and_record(
                        store, signals, config.policy, now, rules=rules, maintenance=maintenance
                    )
                    store.prune(now, kept)
                    history.prune(store, now, history_kept)
                    for item in store.outbox(("queued",)):  # delivered, as after a good drain
                        store.queue.mark_sent(item.id, None, 1, "ok")
                    runs += 1
                if (day_index + 1) % args.report_every == 0:
                    size, rows = sizes(path)
                    counted = ", ".join(f"{t} {n:,}" for t, n in rows.items() if n)
                    print(
                        f"day {day_index + 1:4d}: {size:6.1f} MB  ({counted}; "
                        f"{runs:,} runs in {time.perf_counter() - started:.0f} s)",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
