"""Differential check: random storms run minute by minute through a real store with two
checkouts' engines, every message and record compared. Not a benchmark: the evidence that a faster
path decides what the old one did.

Each seed is a scenario: one or two Prometheus watches (with and without remediation steps) of
0–60 hosts, some flapping, all gone after minute 6; Alertmanager storms and stragglers whose onsets
are written in three time zones, some ending on the way; an inhibition rule (an Alertmanager
HostDown holds the watches' incident of its host) or none; a silence by matchers over part of the
runs or none; grouping on or off; policies that open and resolve after one or two runs, page,
mirror, remind. Every run prints each notification (id, channel, kind, the texts operators read,
the record it carries) and each changed record, then the store's incidents at the end. Each
`--code LABEL=DIR` checkout runs the seeds in a child process of its own (PYTHONPATH=DIR); the
outputs must be equal line for line.

    PYTHONPATH=$PWD .venv/bin/python bench/opening_diff.py --seeds 0:250 \\
        --code before=/tmp/main --code now=.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
ZONES = [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5))]


@dataclass
class Scenario:
    remediations: list[list[str]]  # per watch
    severities: list[str]  # per watch
    hosts: int  # per watch
    flapping: set[int]  # hosts that pass every third run, each in its own phase
    # (alertname, severity, started minutes before T0, alerts, from minute, until minute, zone)
    storms: list[tuple[str, str, int, int, int, int, timezone]]
    inhibit: bool
    silenced: tuple[str, int, int] | None  # matcher, from minute, until minute
    policy: tuple[int, int, bool, int, int]  # open_after, resolve_after, mirror, repeat, warn open
    grouping: bool


def scenario(seed: int) -> Scenario:
    rng = random.Random(seed)
    watches = rng.randint(1, 2)
    hosts = rng.choice([0, 3, 25, 60])
    return Scenario(
        remediations=[
            rng.choice([[], ["ssh {{ $labels.host }}"], ["reboot"]]) for _ in range(watches)
        ],
        severities=[rng.choice(["critical", "warning"]) for _ in range(watches)],
        hosts=hosts,
        flapping={h for h in range(hosts) if rng.random() < 0.2},
        storms=[
            (
                rng.choice(["HostDown", "DiskFull", "NodeHot"]),
                rng.choice(["critical", "warning"]),
                rng.choice([0, 1, 5, 30, -2]),
                rng.choice([1, 3, 21, 40]),
                rng.randint(0, 2),
                rng.randint(3, 8),
                rng.choice(ZONES),
            )
            for _ in range(rng.randint(1, 4))
        ],
        inhibit=rng.random() < 0.6,
        silenced=(
            (
                rng.choice(['host=~"h00.*"', 'alertname="DiskFull"', 'severity="warning"']),
                rng.randint(0, 3),
                rng.randint(3, 7),
            )
            if rng.random() < 0.6
            else None
        ),
        policy=(
            rng.choice([1, 2]),
            rng.choice([1, 2]),
            rng.random() < 0.5,
            rng.choice([2, 60]),
            rng.choice([1, 2]),
        ),
        grouping=rng.random() < 0.85,
    )


def child(seeds: range, out: TextIO) -> None:
    """This checkout's engine over the seeds (imports here: PYTHONPATH chooses the checkout)."""
    from fleet_alerting.config.schema import EscalationRule, PrometheusConfig
    from fleet_alerting.core.incidents import Incident
    from fleet_alerting.core.inhibition import InhibitRule
    from fleet_alerting.core.links import LinksConfig
    from fleet_alerting.core.muting import Muting, Silence
    from fleet_alerting.core.policy import Evaluation, PolicyConfig, PolicyFor
    from fleet_alerting.core.signals import TEXTS, Severity, Signal
    from fleet_alerting.core.storms import StormRules, decide
    from fleet_alerting.sources.alertmanager.judge import GONE, to_signals
    from fleet_alerting.sources.alertmanager.shapes import Alert
    from fleet_alerting.sources.prometheus.judge import (
        Series,
        WatchOutcome,
        active_watches,
        evaluate_watches,
    )
    from fleet_alerting.store.database import Store

    links = LinksConfig(
        grafana_url="https://grafana.test/", loki_datasource_uid="L", prometheus_url="https://p/"
    )
    rules = [
        EscalationRule(name="critical", matchers=['severity="critical"']),
        EscalationRule(name="warning", matchers=['severity="warning"'], severity=Severity.warning),
    ]
    shipped = next(w for w in active_watches(PrometheusConfig()) if w.name == "RoleAgentFailure")

    def one_run(
        store: Store,
        signals: list[Signal],
        policy_for: PolicyFor,
        storm_rules: StormRules,
        now: datetime,
        muting: Muting,
    ) -> tuple[Evaluation, int]:
        def run(records: Mapping[str, Incident]) -> Evaluation:
            unseen = {"alertmanager": GONE}
            return decide(signals, records, policy_for, storm_rules, now, unseen, muting)

        return store.evaluate(run, now)

    def write(*values: Any) -> None:
        out.write(json.dumps(values, default=str, sort_keys=True) + "\n")

    def alerts(s: Scenario, severity: str, minute: int) -> list[Alert]:
        made = []
        for k, (name, level, started, count, first, until, zone) in enumerate(s.storms):
            if level != severity or not first <= minute < until:
                continue
            for n in range(count):
                host = f"h{n:03}"
                made.append(
                    Alert(
                        fingerprint=f"{k}{name}{n:04}",
                        labels={"alertname": name, "host": host, "severity": level},
                        annotations={"summary": f"{host}: {name}", "remediation": "a\nb" * (n % 2)},
                        starts_at=(T0 - timedelta(minutes=started)).astimezone(zone),
                        ends_at=T0 + timedelta(hours=1),
                        state="active",
                        receivers=("x",),
                        generator_url="http://p/graph",
                    )
                )
        return made

    def observed(s: Scenario, minute: int) -> list[Signal]:
        matched = [(rule, alerts(s, rule.severity, minute)) for rule in rules]
        outcomes = []
        for w, (steps, severity) in enumerate(zip(s.remediations, s.severities, strict=True)):
            watch = shipped.model_copy(
                update={"name": f"W{w}", "remediation": steps, "severity": Severity(severity)}
            )
            failing = [h for h in range(s.hosts) if minute < 6]
            failing = [h for h in failing if not (h in s.flapping and (minute + h) % 3 == 2)]
            firing = [Series({"host": f"h{h:03}", "job": "node"}, 0.0) for h in failing]
            present = [Series({"host": f"h{h:03}"}, 1.0) for h in range(s.hosts)]
            outcomes.append(WatchOutcome(watch, firing, present))
        return (
            to_signals(matched, "http://am.test:9093", links)
            + evaluate_watches(outcomes, links).signals
        )

    for seed in seeds:
        s = scenario(seed)
        held = InhibitRule(
            source_matchers=['source="alertmanager"', 'alertname="HostDown"'],
            target_matchers=['source=~"prometheus/.*"'],
            equal=["host"],
        )
        storm_rules = StormRules(inhibit_rules=[held] if s.inhibit else None)
        if not s.grouping:
            off = storm_rules.grouping.model_copy(update={"enabled": False})
            storm_rules = replace(storm_rules, grouping=off)
        silences = []
        if s.silenced is not None:
            matcher, begins, ends = s.silenced
            silences.append(
                Silence(
                    id="s1",
                    matchers=(matcher,),
                    starts_at=T0 + timedelta(minutes=begins),
                    ends_at=T0 + timedelta(minutes=ends),
                    author="ana",
                )
            )
        opens, resolves, mirror, repeat, warn = s.policy
        policies = {
            Severity.critical: PolicyConfig(
                open_after=opens,
                resolve_after=resolves,
                page=["pagerduty"],
                mirror=mirror,
                repeat=timedelta(minutes=repeat),
            ),
            Severity.warning: PolicyConfig(open_after=warn, resolve_after=1),
        }
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "s.sqlite")
            for minute in range(8):
                now = T0 + timedelta(minutes=minute)
                signals = observed(s, minute)
                evaluation, queued = one_run(
                    store, signals, policies.__getitem__, storm_rules, now, Muting(silences)
                )
                for n in evaluation.notifications:
                    i = n.incident
                    texts = {t: getattr(i.signal, t) for t in TEXTS}
                    record = (i.key, i.state, i.group, i.inhibited_by, i.paged_via, i.acts)
                    write(seed, minute, n.id, n.channel, n.kind, texts, record)
                for i in sorted(evaluation.incidents, key=lambda i: i.key):
                    write(seed, minute, i.key, i.state, i.group, i.inhibited_by, i.onset)
                write(seed, minute, "queued", queued)
            for i in store.incidents(include_resolved=True):
                write(seed, i.key, i.state, i.group, i.signal.summary, i.signal.remediation)
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0:100", help="FROM:TO")
    parser.add_argument("--code", action="append", default=[], help="LABEL=DIR (two)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    first, last = (int(x) for x in args.seeds.split(":"))
    if args.child:
        child(range(first, last), sys.stdout)
        return
    outputs = {}
    for label, code in (c.split("=", 1) for c in args.code):
        command = [sys.executable, __file__, "--child", "--seeds", args.seeds]
        env = os.environ | {"PYTHONPATH": str(Path(code).resolve())}
        run = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        outputs[label] = run.stdout.splitlines()
    (a, left), (b, right) = outputs.items()
    differ = [n for n, (x, y) in enumerate(zip(left, right, strict=False)) if x != y]
    print(f"seeds {args.seeds}: {len(left)} lines ({a}), {len(right)} ({b}); {len(differ)} differ")
    for n in differ[:5]:
        print(f"line {n}:\n  {a}: {left[n]}\n  {b}: {right[n]}")
    if differ or len(left) != len(right):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
