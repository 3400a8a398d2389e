"""Benchmark (not a test): our routing vs `amtool config routes test`, and the whole audit.

A generated tree of 500 routes and 5,000 alert rules. amtool starts one process per label set,
so it is timed on a sample and extrapolated. Run: PYTHONPATH=. python bench/routing_audit.py
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--routes", type=int, default=500)
    ap.add_argument("--rules", type=int, default=5000)
    ap.add_argument("--sample", type=int, default=200)
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

    cfg = parse_config(yaml.safe_load((tmp / "alertmanager.yml").read_text()))
    label_sets = [{"alertname": r["alert"], **r["labels"]} for r in rules]
    t0 = time.perf_counter()
    ours = [",".join(cfg.receivers_for(ls)) for ls in label_sets]
    ours_s = time.perf_counter() - t0
    print(
        f"ours: {len(label_sets)} label sets in {ours_s:.3f} s "
        f"({ours_s / len(label_sets) * 1e6:.0f} µs each)"
    )

    if shutil.which("amtool"):
        rng = random.Random(1)
        idx = rng.sample(range(len(label_sets)), min(args.sample, len(label_sets)))
        jobs = [(str(tmp / "alertmanager.yml"), label_sets[i]) for i in idx]
        for workers in (1, 2):
            t0 = time.perf_counter()
            theirs = amtool.routes_test_many(jobs, workers=workers)
            amt_s = time.perf_counter() - t0
            per = amt_s / len(jobs)
            extrap = per * len(label_sets)
            same = sum(ours[i] == t for i, t in zip(idx, theirs, strict=True))
            print(
                f"amtool ({workers} worker{'s' if workers > 1 else ''}): {len(jobs)} label sets "
                f"in {amt_s:.2f} s ({per * 1e3:.1f} ms each), extrapolated to "
                f"{len(label_sets)}: {extrap:.1f} s; ratio amtool/ours = {extrap / ours_s:.0f}x; "
                f"equal answers {same}/{len(jobs)}"
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
