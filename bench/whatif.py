"""Benchmark: what-if replay of a quarter — 90 days × 500 devices × 5 watches, each watch every
minute — in ≤ 60 s and ≤ 1 GB, against the engine's own per-run cost × runs.

The history is synthetic but written as the hook writes it: one `history_changes` row per change
(compact signal JSON), one `history_runs` segment per watch, in a real SQLite store (its size is
printed). Each device fails in each watch about once every `--mean-days` days (exponential gaps),
for a log-normal time (median 8 min, one in twenty over 2 h), 5 % of the devices critical. The
replay reads the period back (store/history.py) and replays it through the default policies
(warnings told in Slack, criticals paged after 5 min and reminded every 30 min), inhibition and
grouping on — the flows' own `core.storms.decide`.

The reference: `decide` over each watch's 500 signals in steady state with 1 % failing (CPU,
`--probe` runs), × that watch's runs in the quarter — what stepping every run would cost. Times
are CPU (`time.process_time`) besides wall: the machine is shared.

    PYTHONPATH=$PWD .venv/bin/python bench/whatif.py [--devices 500] [--days 90] [--mean-days 14]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
import yaml

from fleet_alerting.audit.whatif import replay
from fleet_alerting.config import load_config
from fleet_alerting.core.history import signal_record
from fleet_alerting.core.signals import Severity, Signal, ignoring
from fleet_alerting.core.storms import decide
from fleet_alerting.store import history
from fleet_alerting.store.database import Store
from fleet_alerting.store.outbox import ts
from fleet_alerting.tasks.pipeline import evaluate_and_record

START = datetime(2026, 9, 1, tzinfo=UTC)
WATCHES = ("blackbox", "prometheus/RoleAgentStale", "zigbee-device", "fleet-events", "alertmanager")


def stream_of(source: str) -> str:
    return source.replace("/", "-").split("-", 1)[0]


def signal(source: str, device: int, firing: bool, critical: bool) -> Signal:
    name = f"pi-{device:04d}"
    labels = {"device": name, "role": "player"}
    if source == "alertmanager":
        labels["alertname"] = "DeviceDown"
    return ignoring(  # fingerprinted once, as the watches' signals are (Signal.deferred, ignoring)
        Signal(
            key=f"{source}:device={name}",
            source=source,
            firing=firing,
            severity=Severity.critical if critical else Severity.warning,
            summary=f"{name} {'failing' if firing else 'ok'}",
            target=name,
            labels=labels,
        )
    )


def episodes(rng: random.Random, days: int, mean_days: float) -> list[tuple[int, int]]:
    """(first failing minute, first ok minute) of one device in one watch."""
    out, minute, end = [], 0, days * 1440
    while True:
        minute += int(rng.expovariate(1 / (mean_days * 1440)))
        length = max(1, int(rng.lognormvariate(2.1, 1.2)))
        if minute + length >= end:
            return out
        out.append((minute, minute + length))
        minute += length + 1


def write_history(store: Store, devices: int, days: int, mean_days: float) -> int:
    rng = random.Random(27)
    critical = set(rng.sample(range(devices), devices // 20))
    rows = []
    for source in WATCHES:
        stream = stream_of(source)
        for device in range(devices):
            ok = signal(source, device, False, device in critical)
            first = json.dumps(signal_record(ok), separators=(",", ":"))
            failing = json.dumps(
                signal_record(signal(source, device, True, device in critical)),
                separators=(",", ":"),
            )
            rows.append((START, stream, ok.key, "ok", first))
            for a, b in episodes(rng, days, mean_days):
                rows.append((START + timedelta(minutes=a), stream, ok.key, "failing", failing))
                rows.append((START + timedelta(minutes=b), stream, ok.key, "ok", first))
    rows.sort(key=lambda r: r[0])
    runs = [
        {
            "stream": stream_of(source),
            "first_at": ts(START),
            "last_at": ts(START + timedelta(minutes=days * 1440 - 1)),
            "every_us": 60_000_000,
            "runs": days * 1440,
            "vanished": "{}",
        }
        for source in WATCHES
    ]
    with store.engine.begin() as conn:
        conn.execute(sa.insert(history.runs_table), runs)
        conn.execute(
            sa.insert(history.changes_table),
            [
                {"at": ts(at), "stream": s, "key": k, "status": st, "signal": js}
                for at, s, k, st, js in rows
            ],
        )
    return len(rows)


def per_run_cost(config, source: str, devices: int, probe: int) -> float:  # type: ignore[no-untyped-def]
    """CPU seconds of one `decide` over one watch's signals, steady state, 1 % failing."""
    signals = [signal(source, d, d % 100 == 0, False) for d in range(devices)]
    incidents: dict = {}
    rules = config.storm_rules()
    now = START
    for _ in range(3):  # open the failing ones
        evaluation = decide(signals, incidents, config.policy, rules, now)
        incidents.update({i.key: i for i in evaluation.incidents})
        now += timedelta(minutes=1)
    began = time.process_time()
    for _ in range(probe):
        decide(signals, incidents, config.policy, rules, now)
        now += timedelta(minutes=1)
    return (time.process_time() - began) / probe


def dry_run_config(folder: Path, name: str):  # type: ignore[no-untyped-def]
    """A config whose store is `<name>.sqlite` in `folder`, telling nobody."""
    path = folder / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump({"state": {"path": f"{name}.sqlite"}, "notify": {"dry_run": True}})
    )
    return load_config(path)


def hook_cost(folder: Path, devices: int, runs: int) -> tuple[float, float]:
    """CPU seconds per run: the whole evaluate-and-record of one watch's 500 signals (1 %
    failing, steady), and the history hook's share of it (`history.record`, timed alone in
    the same kind of transaction)."""
    config = dry_run_config(folder, "hook")
    signals = [signal("blackbox", d, d % 100 == 0, False) for d in range(devices)]
    now = START
    whole = alone = 0.0
    with Store(config.state) as store:
        for n in range(runs + 3):
            began = time.process_time()
            evaluate_and_record(store, signals, config.policy, now, rules=config.storm_rules())
            if n >= 3:
                whole += time.process_time() - began
            now += timedelta(minutes=1)
            began = time.process_time()
            with store.engine.begin() as conn:
                history.record(conn, store.dialect, signals, None, now)
            if n >= 3:
                alone += time.process_time() - began
            now += timedelta(minutes=1)
    return whole / runs, alone / runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--mean-days", type=float, default=14.0)
    parser.add_argument("--probe", type=int, default=300)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="whatif-bench-"))
    config = dry_run_config(folder, "state")
    store = Store(config.state)
    began = time.perf_counter()
    changes = write_history(store, args.devices, args.days, args.mean_days)
    written = time.perf_counter() - began
    store.engine.dispose()
    size = (folder / "state.sqlite").stat().st_size
    print(f"history: {changes:,} changes written in {written:.1f} s; store {size / 1e6:.1f} MB")
    print(f"  {size / changes:.0f} bytes per change")
    end = START + timedelta(days=args.days)
    began, cpu = time.perf_counter(), time.process_time()
    recorded = history.read(store, START, end)
    read = time.perf_counter() - began
    result = replay(recorded, config, "config.yaml")
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    costs = {stream_of(w): per_run_cost(config, w, args.devices, args.probe) for w in WATCHES}
    runs = {r.stream: r.count for r in recorded.runs}
    naive = sum(costs[stream] * count for stream, count in runs.items())
    print(f"replay: {wall:.1f} s wall ({read:.1f} s reading), {cpu:.1f} s CPU")
    print(f"  peak RSS {peak:.0f} MB")
    print(f"  {result.evaluations:,} evaluations for {result.runs:,} recorded runs")
    print(f"  {len(result.sent):,} notifications decided")
    for stream, each in costs.items():
        print(f"engine per run, {stream}: {each * 1000:.2f} ms CPU × {runs[stream]:,} runs")
    print(f"engine per-run cost × runs: {naive:.0f} s CPU")
    print(f"ratio replay / (per-run cost × runs): {cpu / naive:.3f}")
    whole, hook = hook_cost(folder, args.devices, 30)
    print(f"hook: {hook * 1000:.2f} ms CPU of a run's {whole * 1000:.2f} ms evaluate-and-record")


if __name__ == "__main__":
    main()
