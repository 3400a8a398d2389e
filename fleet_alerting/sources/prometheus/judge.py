"""Prometheus watches, pure: query results → signals, template rendering, log and graph links.

A watch's expression lists what is failing (one series per failing thing). Its `metric`, queried
as `count by (key labels) (metric)`, lists what exists: a key present there but not in the
expression has recovered; a key in neither is "no longer reported" (resolved by hysteresis through
`vanished_sources`); no series at all is the absent signal when the watch has `absent_is`.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet_alerting.config.schema import PrometheusConfig, WatchConfig
from fleet_alerting.core.keys import incident_key
from fleet_alerting.core.links import LinksConfig, logql_selector, logs_link, prometheus_graph_url
from fleet_alerting.core.signals import Link, Severity, Signal
from fleet_alerting.core.templates import NO_VALUE, format_value, render

SOURCE = "prometheus"
ERRORS_SOURCE = "prometheus-errors"
RECOVERED = "recovered: no longer matches the watch expression"
NO_LONGER_REPORTED = "no longer reported: the series disappeared from Prometheus"


def source_of(watch: WatchConfig) -> str:
    return f"{SOURCE}/{watch.name}"


# the shipped watches -----------------------------------------------------------------------

SHIPPED_WATCHES = Path(__file__).with_name("watches.yaml")


def default_watches(config: PrometheusConfig) -> list[WatchConfig]:
    """The shipped watches (watches.yaml), with the thresholds the config sets."""
    window = int(config.device_failures_window.total_seconds())
    text = string.Template(SHIPPED_WATCHES.read_text()).safe_substitute(
        stale_seconds=int(config.role_agent_stale_after.total_seconds()),
        window=f"{window // 60}m" if window % 60 == 0 else f"{window}s",
        threshold=format_value(config.device_failures_threshold),
    )
    return [WatchConfig.model_validate(watch) for watch in yaml.safe_load(text)]


def active_watches(config: PrometheusConfig) -> list[WatchConfig]:
    """The shipped watches (unless turned off), each replaced by a configured one of its name."""
    shipped = default_watches(config) if config.default_watches else []
    by_name = {w.name: w for w in shipped} | {w.name: w for w in config.watches}
    return [w for w in by_name.values() if w.enabled]


def presence_query(watch: WatchConfig) -> str | None:
    if not watch.metric:
        return None
    if watch.key_labels:
        return f"count by ({', '.join(watch.key_labels)}) ({watch.metric})"
    return f"count({watch.metric})"


# query results → signals --------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class WatchOutcome:
    """What the queries of one watch returned; `error` set when they could not be run."""

    watch: WatchConfig
    firing: Sequence[Series] = ()
    present: Sequence[Series] | None = None  # None: the watch has no `metric`
    error: str | None = None
    permanent: bool = False
    warnings: Sequence[str] = ()


@dataclass
class WatchEvaluation:
    signals: list[Signal] = field(default_factory=list)
    vanished_sources: dict[str, str] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)  # the run's table artifact


def evaluate_watches(
    outcomes: Iterable[WatchOutcome], links: LinksConfig, config_file: Path | None = None
) -> WatchEvaluation:
    result = WatchEvaluation()
    errors: list[WatchOutcome] = []
    for outcome in outcomes:
        if outcome.error is not None:
            errors.append(outcome)
            result.rows.append(_row(outcome.watch, "", "ERROR", None, outcome.error))
            continue
        signals = watch_signals(outcome, links)
        result.signals += signals
        result.vanished_sources[source_of(outcome.watch)] = NO_LONGER_REPORTED
        firing = [s for s in signals if s.firing]
        detail = f"{len(firing)} firing"
        if outcome.present is not None:
            detail += f", {len(outcome.present)} present"
        if outcome.warnings:
            detail += "; Prometheus warnings: " + "; ".join(outcome.warnings)
        result.rows.append(_row(outcome.watch, "", "evaluated", None, detail))
        for s in firing:
            value = s.evidence.get("value")
            result.rows.append(_row(outcome.watch, s.target, "FIRING", value, s.summary, s.key))
    result.signals += error_signals(errors, config_file)
    result.vanished_sources[ERRORS_SOURCE] = "the watch evaluates again"
    return result


def _row(
    watch: WatchConfig, series: str, state: str, value: Any, detail: str, key: str = ""
) -> dict[str, Any]:
    return {
        "key": key,
        "watch": watch.name,
        "severity": watch.severity.value,
        "series": series,
        "state": state,
        "value": value,
        "detail": detail,
    }


def watch_signals(outcome: WatchOutcome, links: LinksConfig) -> list[Signal]:
    watch, source = outcome.watch, source_of(outcome.watch)
    signals: list[Signal] = []
    firing_keys: set[str] = set()
    graph = graph_link(links, watch.expr)  # the same for every series: built once
    for series in outcome.firing:
        signal = firing_signal(watch, series, links, graph)
        if signal.key not in firing_keys:  # two series of one key (e.g. two instances): first
            firing_keys.add(signal.key)
            signals.append(signal)
    if outcome.present is None:
        return signals
    if watch.key_labels:
        for series in outcome.present:
            key_labels = _key_labels(watch, series.labels)
            key = incident_key(source, key_labels)
            if key not in firing_keys:
                signals.append(_ok(watch, key, _target(watch, key_labels), series.labels))
    if watch.absent_is is not None:
        signals.append(absent_signal(watch, links, absent=not outcome.present))
    return signals


def _key_labels(watch: WatchConfig, labels: Mapping[str, str]) -> dict[str, str]:
    if watch.key_labels:
        return {k: labels.get(k, "") for k in watch.key_labels}
    return {k: v for k, v in labels.items() if k != "__name__"}


def _target(watch: WatchConfig, key_labels: Mapping[str, str]) -> str:
    return " / ".join(v for v in key_labels.values() if v) or watch.name


def firing_signal(
    watch: WatchConfig, series: Series, links: LinksConfig, graph: Link | None = None
) -> Signal:
    labels, value = series.labels, series.value
    key_labels = _key_labels(watch, labels)
    evidence: dict[str, Any] = {}
    description = render(watch.description, labels, value, watch.name)
    if description:
        evidence["details"] = description
    evidence["value"] = format_value(value)
    return Signal(
        key=incident_key(source_of(watch), key_labels),
        source=source_of(watch),
        firing=True,
        severity=watch.severity,
        summary=render(watch.summary, labels, value, watch.name),
        target=_target(watch, key_labels),
        runbook_url=watch.runbook_url,
        remediation=tuple(render(step, labels, value, watch.name) for step in watch.remediation),
        links=_links(links, logs_query(watch, labels), graph or graph_link(links, watch.expr)),
        labels={k: v for k, v in labels.items() if k != "__name__"},
        evidence=evidence,
    )


def _ok(watch: WatchConfig, key: str, target: str, labels: Mapping[str, str]) -> Signal:
    return Signal(
        key=key,
        source=source_of(watch),
        firing=False,
        severity=watch.severity,
        summary=RECOVERED,
        target=target,
        labels=dict(labels),
    )


def absent_signal(watch: WatchConfig, links: LinksConfig, absent: bool) -> Signal:
    metric = watch.metric or ""
    expr = f"absent({metric})"
    return Signal(
        key=incident_key(source_of(watch), {"absent": metric}),
        source=source_of(watch),
        firing=absent,
        severity=watch.absent_is or watch.severity,
        summary=(
            f"No series of {metric} in Prometheus: {watch.name} cannot fire for any host"
            if absent
            else f"{metric} is reported again"
        ),
        target=metric,
        runbook_url=watch.runbook_url,
        remediation=tuple(watch.absent_remediation),
        links=_links(links, None, graph_link(links, expr)),
        evidence={"details": f"absent({metric}) is 1: the metric is not scraped or not written"},
    )


def error_signals(errors: Sequence[WatchOutcome], config_file: Path | None) -> list[Signal]:
    """One warning per distinct error; the same error of several watches (Prometheus down, an
    unreadable token) is one signal naming them all."""
    groups: dict[tuple[str, bool], list[str]] = {}
    for outcome in errors:
        groups.setdefault((outcome.error or "", outcome.permanent), []).append(outcome.watch.name)
    where = f"{config_file}: " if config_file else ""
    signals = []
    for (error, permanent), names in groups.items():
        what = "configuration error" if permanent else "cannot evaluate"
        listed = ", ".join(names)
        noun = "watch" if len(names) == 1 else "watches"
        signals.append(
            Signal(
                key=incident_key(ERRORS_SOURCE, {"watch": listed}),
                source=ERRORS_SOURCE,
                firing=True,
                severity=Severity.warning,
                summary=f"{where}prometheus {noun} {listed}: {what}: {error}",
                target=listed,
                remediation=(
                    ("Fix the watch's expr in the config (test it in Prometheus' graph page)",)
                    if permanent
                    else ("Check that Prometheus is up and reachable from the Prefect worker",)
                ),
            )
        )
    return signals


def logs_query(watch: WatchConfig, labels: Mapping[str, str]) -> str | None:
    """The LogQL query for this series' logs, or None when the watch has none or a label it
    needs is missing from the series."""
    if not watch.logs:
        return None
    selector = {k: render(v, labels, None, watch.name) for k, v in watch.logs.items()}
    if any(not v or NO_VALUE in v for v in selector.values()):
        return None  # without the host/device label it would show every host's logs
    query = logql_selector(**selector)
    if watch.logs_line_filter:
        line = render(watch.logs_line_filter, labels, None, watch.name)
        if line and NO_VALUE not in line:
            query += f" |= {json.dumps(line)}"
    return query


def graph_link(links: LinksConfig, expr: str) -> Link | None:
    url = prometheus_graph_url(links, expr)
    return Link("Prometheus graph", url) if url else None


def _links(links: LinksConfig, logql: str | None, graph: Link | None) -> tuple[Link, ...]:
    found: list[Link] = []
    if logql:
        link = logs_link(links, logql, "Logs (Grafana Explore)")
        if link:
            found.append(link)
    if graph:
        found.append(graph)
    return tuple(found)
