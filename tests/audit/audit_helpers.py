"""Helpers shared by the audit tests (a uniquely named module, importable from any test)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from fleet_alerting.alertmanager.routing import parse_config
from fleet_alerting.audit import synth
from fleet_alerting.audit.live import noise_statistics
from fleet_alerting.audit.loader import expectations_from_dict, load_rule_text
from fleet_alerting.audit.model import (
    AuditInput,
    DeliveryRecord,
    PrometheusUnavailable,
    SecretFile,
    SilenceRecord,
)

REPO = Path(__file__).resolve().parents[2]
CHECK_CASES = yaml.safe_load((Path(__file__).parent / "cases" / "checks.yaml").read_text())
NOW = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


class FakeSeries:
    """A Prometheus that knows a fixed set of metric names and matching selectors."""

    def __init__(self, names: list[str], selectors: list[str]) -> None:
        self.names, self.selectors = set(names), set(selectors)

    def series_exists(self, selector: str) -> bool:
        return selector in self.selectors

    def metric_names(self) -> set[str]:
        return set(self.names)


class HistorySeries(FakeSeries):
    """A Prometheus that also has raw ALERTS history (what `alert_history` queries)."""

    def __init__(self, names: list[str], selectors: list[str], history: tuple) -> None:
        super().__init__(names, selectors)
        self.firing, self.for_state = history
        self.queries: list[tuple[str, int, float]] = []

    def raw_samples(self, selector: str, seconds: int, at: float) -> list[dict]:
        self.queries.append((selector, seconds, at))
        source = self.firing if selector.startswith("ALERTS{") else self.for_state
        out = []
        for s in source:
            vals = [v for v in s["values"] if at - seconds < v[0] <= at]
            if vals:
                out.append({"metric": s["metric"], "values": vals})
        return out


class DownSeries:
    def series_exists(self, selector: str) -> bool:
        raise PrometheusUnavailable("connection refused")

    def metric_names(self) -> set[str]:
        raise PrometheusUnavailable("connection refused")


def build_input(overrides: dict) -> AuditInput:
    """The clean base of cases/checks.yaml with the parts a case names replaced."""
    parts = {**CHECK_CASES["base"], **overrides}
    rules_text = yaml.safe_dump({"groups": [{"name": "g", "rules": parts["rules"]}]})
    secret_files = [
        SecretFile(
            f["config_path"],
            f["path"],
            f["exists"],
            f["git_tracked"],
            f["mode"],
            NOW - timedelta(days=f["age_days"]),
        )
        for f in parts.get("secret_files", [])
    ]
    am = parse_config(parts["am"])
    rules = load_rule_text(rules_text, "t.rules.yml")
    expectations = expectations_from_dict(parts["expectations"])
    noise = None
    if "noise" in parts:
        start = NOW - timedelta(days=parts["noise"].get("days", 90))
        history = synth.alert_history(parts["noise"]["alerts"], start.timestamp(), NOW.timestamp())
        source = HistorySeries(**parts["series"], history=history)
        noise = noise_statistics(source, am, rules, expectations, start, NOW)
    return AuditInput(
        am=am,
        rules=rules,
        expectations=expectations,
        noise=noise,
        now=NOW,
        running=parse_config(parts["running"]) if parts.get("running") else None,
        secret_files=secret_files,
        series=FakeSeries(**parts["series"]),
        dashboards=parts["dashboards"],
        silences=[
            SilenceRecord(
                x["id"],
                tuple(x["matchers"]),
                NOW + timedelta(days=x["days"][0]),
                NOW + timedelta(days=x["days"][1]),
                "ana",
                "",
                x["muted"],
            )
            for x in parts.get("silences", [])
        ],
        deliveries=[
            DeliveryRecord(x["key"], "e1", x["channel"], tuple(x["kinds"]), x["resolved"])
            for x in parts.get("deliveries", [])
        ],
    )
