"""Benchmark (not a test): `fleet-alerting routes test` vs `amtool config routes test`, like with
like, and the whole audit.

A generated tree of 500 routes and 5,000 alert rules. Compared: (1) one process per label set,
ours vs amtool, on a sample, interleaved; (2) all 5,000 label sets the fastest way each tool
offers: ours in one process (`--file`), amtool one process per label set (it has no batch mode),
timed on the sample and extrapolated. Our in-process routing is shown alone.
Run: PYTHONPATH=. .venv/bin/python bench/routing_audit.py
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from fleet_alerting.alertmanager.routing import parse_config
from fleet_alerting.audit import amtool, synth
from fleet_alerting.audit.live import gather_inputs
from fleet_alerting.audit.report import write_report
from fleet_alerting.audit.run import run_audit


def make_rules(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    exprs = [
        'up{job="fleet-api"} == 0',
        "probe_success == 0",
        "rate(x_total[5m]) > 1",
        "sum by (instance) (increase(upstream_device_failures_total[5m])) > 5",
    ]
    rules = []
    for i in range(n):
        labels = synth.random_labels(rng)
        labels.pop("alertname", None)
        rules.append(
            {
                "alert": f"Alert{i}",
                "expr": rng.choice(exprs),
                "labels": labels,
                "annotations": {"summary": "s", **({"runbook_url": "r"} if i % 3 else {})},
            }
        )
    return rules


CPU: list[float] = []  # user + sys seconds of each process timed by _timed


def _timed(cmd: list[str]) -> tuple[float, str]:
    """Wall time and stdout of one process; its CPU time is appended to CPU (on a loaded
    machine the wall time is mostly waiting for a core, the CPU time is what it costs)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, proc.stdout.strip()


def _p90(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=10)[-1] if len(xs) > 1 else xs[0]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--routes", type=int, default=500)
    ap.add_argument("--rules", type=int, default=5000)
    ap.add_argument("--sample", type=int, default=100)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    am_doc = synth.sized_config(42, args.routes)
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(am_doc))
    rules = make_rules(args.rules, 7)
    (tmp / "bench.rules.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "bench", "rules": rules}]})
    )
    (tmp / "expectations.yaml").write_text(
        yaml.safe_dump(
            {
                "paging_receivers": ["r1", "r2"],
                "severities": {
                    "critical": {"must_reach": ["r1"], "pages": True},
                    "warning": {"must_not_reach": ["r1", "r2"], "pages": False},
                },
            }
        )
    )
    print(f"routes: {synth.count_routes(am_doc['route'])}, rules: {len(rules)}")

    am_file = str(tmp / "alertmanager.yml")
    cfg = parse_config(yaml.safe_load((tmp / "alertmanager.yml").read_text()))
    label_sets = [{"alertname": r["alert"], **r["labels"]} for r in rules]

    # 1. in-process routing (ours only: amtool's routing cannot be called in-process from here)
    t0 = time.perf_counter()
    ours = [",".join(cfg.receivers_for(ls)) for ls in label_sets]
    ours_s = time.perf_counter() - t0
    print(
        f"in-process, ours: {len(label_sets)} label sets in {ours_s:.3f} s "
        f"({ours_s / len(label_sets) * 1e6:.0f} µs each; config parsed beforehand)"
    )

    # 2. process vs process: one label set per process, both tools, interleaved
    rng = random.Random(1)
    idx = rng.sample(range(len(label_sets)), min(args.sample, len(label_sets)))
    cli = [str(Path(sys.executable).with_name("fleet-alerting")), "routes", "test"]
    ours_times, amtool_times, ours_cpu, amtool_cpu, same = [], [], [], [], 0
    for i in idx:
        args_ = synth.label_args(label_sets[i])
        t_ours, out_ours = _timed([*cli, "--config", am_file, *args_])
        ours_times.append(t_ours)
        ours_cpu.append(CPU[-1])
        if shutil.which("amtool"):
            cmd = ["amtool", "config", "routes", "test", f"--config.file={am_file}", *args_]
            t_am, out_am = _timed(cmd)
            amtool_times.append(t_am)
            amtool_cpu.append(CPU[-1])
            same += out_am == out_ours == ours[i]
    med_ours = statistics.median(ours_times)
    print(
        f"process per label set, ours (`fleet-alerting routes test`): median "
        f"{med_ours * 1e3:.0f} ms, p90 {_p90(ours_times) * 1e3:.0f} ms over {len(idx)} runs; "
        f"CPU median {statistics.median(ours_cpu) * 1e3:.0f} ms"
    )
    if amtool_times:
        med_am = statistics.median(amtool_times)
        print(
            f"process per label set, amtool: median {med_am * 1e3:.0f} ms, p90 "
            f"{_p90(amtool_times) * 1e3:.0f} ms, CPU median "
            f"{statistics.median(amtool_cpu) * 1e3:.0f} ms; ratio ours/amtool = "
            f"{med_ours / med_am:.1f}x; "
            f"equal answers {same}/{len(idx)}"
        )

    # 3. batch vs batch: all label sets, each tool's fastest way (ours: one process with --file;
    # amtool has no batch mode: one process per label set, 2 at a time, on the sample above)
    cases = [
        {"labels": ls, "receivers": o.split(",")} for ls, o in zip(label_sets, ours, strict=True)
    ]
    (tmp / "cases.yaml").write_text(yaml.safe_dump({"cases": cases}))
    t_batch, out_batch = _timed([*cli, "--config", am_file, "--file", str(tmp / "cases.yaml")])
    print(
        f"batch, ours: {len(label_sets)} label sets in one process: {t_batch:.2f} s "
        f"({out_batch.splitlines()[-1]})"
    )
    if shutil.which("amtool"):
        jobs = [(am_file, label_sets[i]) for i in idx]
        t0 = time.perf_counter()
        amtool.routes_test_many(jobs, workers=2)
        per = (time.perf_counter() - t0) / len(jobs)
        extrap = per * len(label_sets)
        print(
            f"batch, amtool: one process per label set, 2 workers: {per * 1e3:.1f} ms each → "
            f"{extrap:.1f} s for {len(label_sets)} (extrapolated from {len(jobs)}); "
            f"ratio amtool/ours = {extrap / t_batch:.0f}x"
        )
    else:
        print("amtool not installed: no comparison")

    t0 = time.perf_counter()
    inp = gather_inputs(
        alertmanager_file=str(tmp / "alertmanager.yml"),
        rules_glob=str(tmp / "*.rules.yml"),
        expectations_file=str(tmp / "expectations.yaml"),
        now=datetime(2026, 1, 1, 9, tzinfo=UTC),
    )
    t1 = time.perf_counter()
    result = run_audit(inp)
    t2 = time.perf_counter()
    written = write_report(result, tmp / "reports")
    t3 = time.perf_counter()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"whole audit: {t3 - t0:.2f} s (load {t1 - t0:.2f} s, checks+matrices {t2 - t1:.2f} s, "
        f"report {t3 - t2:.2f} s); {len(result.findings)} findings; peak RSS {rss_mb:.0f} MB"
    )
    print(f"report: {written.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
