"""Differential check: random storms run minute by minute through a real store with two
checkouts' engines, every message and record compared. Not a benchmark: the evidence that a faster
path decides what the old one did.

Each seed is a scenario: one or two Prometheus watches (with and without remediation steps) of
0–60 hosts, some flapping, all gone after minute 6; Alertmanager storms and stragglers whose onsets
are written in three time zones, some ending on the way; an inhibition rule (an Alertmanager
HostDown holds the watches' incident of its host) or none; a silence by matchers over part of the
runs or none; grouping on or off; policies that open and resolve after one or two runs, page,
mirror, remind. Every run prints each notification (id, channel, kind, the texts operators read,
the record it carries) and each changed record, then the store's incidents at the end and every
row the store holds of them — records, texts, history (each run recorded as the pipeline does),
the outbox — as stored (a texts row's signal and a message's record parsed: `as_read`). Each
`--code LABEL=DIR` checkout runs the seeds in a child process of its own (PYTHONPATH=DIR); with
`--postgres` each also runs them on PostgreSQL (a throwaway cluster of tests/postgres.py, a
database per seed). The outputs must be equal line for line.

    PYTHONPATH=$PWD .venv/bin/python bench/opening_diff.py --seeds 0:250 [--postgres] \\
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
    # (alertname, severity, started minutes before T0, alerts, from minute, until minute, zone,
    # remediation annotation: "" none, "alternating" every other alert, else every alert's)
    storms: list[tuple[str, str, int, int, int, int, timezone, str]]
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
                rng.choice(["alternating", "", " restart it\n\n  then look "]),
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


def child(seeds: range, out: TextIO, postgres: str | None) -> None:
    """This checkout's engine over the seeds (imports here: PYTHONPATH chooses the checkout), on
    SQLite or (`postgres`: the cluster's URL) PostgreSQL."""
    import sqlalchemy as sa

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
    from fleet_alerting.store import history
    from fleet_alerting.store.database import Store
    from fleet_alerting.store.tables import metadata

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
        unseen = {"alertmanager": GONE}

        def run(records: Mapping[str, Incident]) -> Evaluation:
            return decide(signals, records, policy_for, storm_rules, now, unseen, muting)

        def remember(conn: sa.Connection) -> int:  # as the pipeline records each run
            return history.record(conn, store.dialect, signals, unseen, now)

        return store.evaluate(run, now, also=remember)

    def rows(store: Store) -> list[tuple[str, list[Any]]]:
        """Every row of the tables an evaluation writes, as stored (ids left out: PostgreSQL's
        sequences skip the numbers of rows an ON CONFLICT left out; the rows keep their order),
        but for the two JSON columns whose layout schema 9 changed (`as_read`)."""
        found = []
        with store.read() as conn:
            for name in TABLES:
                table = metadata.tables[name]
                order = table.primary_key.columns
                columns = [c for c in table.columns if c.name != "id"]
                for row in conn.execute(sa.select(*columns).order_by(*order)):
                    values = [int(v) if isinstance(v, bool) else v for v in row]
                    found.append((name, as_read(name, [c.name for c in columns], values)))
        return found

    def write(*values: Any) -> None:
        out.write(json.dumps(values, default=str, sort_keys=True) + "\n")

    def alerts(s: Scenario, severity: str, minute: int) -> list[Alert]:
        made = []
        for k, (name, level, started, count, first, until, zone, steps) in enumerate(s.storms):
            if level != severity or not first <= minute < until:
                continue
            for n in range(count):
                host = f"h{n:03}"
                made.append(
                    Alert(
                        fingerprint=f"{k}{name}{n:04}",
                        labels={"alertname": name, "host": host, "severity": level},
                        annotations={
                            "summary": f"{host}: {name}",
                            "remediation": "a\nb" * (n % 2) if steps == "alternating" else steps,
                        },
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
            store = Store(Path(tmp) / "s.sqlite" if postgres is None else database(postgres))
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
            for table, row in rows(store):
                write(seed, table, row)
            store.close()


TABLES = ("incidents", "incident_texts", "history_changes", "history_keys", "outbox")


def as_read(table: str, columns: list[str], values: list[Any]) -> list[Any]:
    """A row's values (of `columns`) with what schemas 9 and 10 store once read as schema 8
    stored it: a texts row's signal with its key (the row's) and rendered from its recipe
    (schema 10), and a message's copy of its incident's record
    without a group's members (schema 9 leaves them out: no message reads them). Each such JSON
    column parsed, so that the two layouts' spellings (escapes, key order) compare alike."""
    values = list(values)
    if table == "incident_texts":
        key, signal = values
        values[1] = {"key": key} | json.loads(rendered(key, signal))
    if table == "outbox":
        at = columns.index("data")
        data = json.loads(values[at])
        for listed in ("members", "members_told"):
            data["incident"].pop(listed, None)
        values[at] = data
    return values


def rendered(key: str, signal: str) -> str:
    """A texts row's signal: as stored, or (schema 10) the signal its recipe renders, as code
    of 9 stored it (its JSON, rendered)."""
    if not signal.startswith('{"recipe":'):
        return signal
    from pydantic import TypeAdapter

    from fleet_alerting.core.recipes import from_stored
    from fleet_alerting.core.signals import Signal

    made = from_stored(key, json.loads(signal)).rendered()
    return TypeAdapter(Signal).dump_json(made, exclude={"key"}).decode()


def database(cluster_url: str) -> str:
    """A new database of the cluster for one seed, in place of the last seed's (the cluster's
    disk holds one store at a time)."""
    import sqlalchemy as sa

    from fleet_alerting.store.backend import dispose_engines

    dispose_engines()  # the last seed's pooled connections: its database goes
    name = f"diff_{os.getpid()}"
    admin = sa.create_engine(cluster_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return cluster_url.rsplit("/", 1)[0] + f"/{name}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0:100", help="FROM:TO")
    parser.add_argument("--code", action="append", default=[], help="LABEL=DIR (two)")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # "sqlite" or the cluster's URL
    args = parser.parse_args()
    first, last = (int(x) for x in args.seeds.split(":"))
    if args.child:
        child(range(first, last), sys.stdout, None if args.child == "sqlite" else args.child)
        return
    backends = {"sqlite": "sqlite"}
    cluster = None
    if args.postgres:
        from tests.postgres import PostgresCluster

        cluster = PostgresCluster.start()
        backends["postgresql"] = cluster.url("postgres")
    outputs = {}
    try:
        for label, code in (c.split("=", 1) for c in args.code):
            for backend, target in backends.items():
                command = [sys.executable, __file__, "--child", target, "--seeds", args.seeds]
                env = os.environ | {"PYTHONPATH": str(Path(code).resolve())}
                run = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
                outputs[f"{label} ({backend})"] = run.stdout.splitlines()
    finally:
        if cluster is not None:
            cluster.stop()
    failed = False
    for backend in backends:  # each checkout against the first, line for line
        (a, left), *others = ((k, v) for k, v in outputs.items() if k.endswith(f"({backend})"))
        for b, right in others:
            failed |= _compare(args.seeds, a, left, b, right)
    if args.postgres:  # the backends alike but for order (which a run reads first differs)
        (a, left), (b, right) = ((k, v) for k, v in outputs.items() if k.startswith(f"{label} "))
        failed |= _compare(args.seeds, a, sorted(left), f"{b}, sorted", sorted(right))
    if failed:
        raise SystemExit(1)


def _compare(seeds: str, a: str, left: list[str], b: str, right: list[str]) -> bool:
    """Print how many lines differ; True if any."""
    differ = [n for n, (x, y) in enumerate(zip(left, right, strict=False)) if x != y]
    print(f"seeds {seeds}: {len(left)} lines {a}, {len(right)} {b}; {len(differ)} differ")
    for n in differ[:5]:
        print(f"line {n}:\n  {a}: {left[n][:600]}\n  {b}: {right[n][:600]}")
    return bool(differ) or len(left) != len(right)


if __name__ == "__main__":
    main()
