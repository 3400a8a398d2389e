"""Prometheus watches, pure: query results → signals, template rendering, log and graph links.

A watch's expression lists what is failing (one series per failing thing). Its `metric`, queried
as `count by (key labels) (metric)`, lists what exists: a key present there but not in the
expression has recovered; a key in neither is "no longer reported" (resolved by hysteresis through
`WatchEvaluation.unseen`); no series at all is the absent signal when the watch has `absent_is`.

Only what was observed changes: a watch that could not run (Prometheus down) resolves nothing, its
configuration error included; a sample that does not have the documented shape is a warning of its
own, and the series it names neither fires nor recovers until it can be read again.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import yaml

from fleet_alerting.config.schema import PrometheusConfig, WatchConfig
from fleet_alerting.core.batch import no_gc_pauses
from fleet_alerting.core.incidents import Incident, State
from fleet_alerting.core.keys import incident_key, key_value, stored_key
from fleet_alerting.core.links import LinksConfig, logql_selector, logs_link, prometheus_graph_url
from fleet_alerting.core.signals import (
    TEXTS_VERSION,
    Link,
    Severity,
    Signal,
    digest,
    digest_bytes,
)
from fleet_alerting.core.templates import NO_VALUE, format_value, render
from fleet_alerting.http.body import TOO_LARGE
from fleet_alerting.sources.records import Malformed

SOURCE = "prometheus"
ERRORS_SOURCE = "prometheus-errors"
RECOVERED = "recovered: no longer matches the watch expression"
NO_LONGER_REPORTED = "no longer reported: the series disappeared from Prometheus"
EVALUATES_AGAIN = "the watch evaluates again"
NOT_CONFIGURED = "the watch is no longer configured"
READABLE_AGAIN = "Prometheus answers this sample in the documented shape again"


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


PRESENCE_DISAGREES = (
    "no series at all, while the expression returns some: the presence query's answer cannot "
    "be the whole truth"
)


def disagree(
    firing: Sequence[Series], present: Sequence[Series], malformed: Sequence[tuple[str, Malformed]]
) -> bool:
    """The presence answer is empty (not even a malformed sample) while the expression, built on
    the same metric, returns series: believing it would call every other series gone."""
    return bool(firing) and not present and not any(q == "metric" for q, _ in malformed)


def presence_query(watch: WatchConfig) -> str | None:
    if not watch.metric:
        return None
    if watch.key_labels:
        return f"count by ({', '.join(watch.key_labels)}) ({watch.metric})"
    return f"count({watch.metric})"


# query results → signals --------------------------------------------------------------------


class Series(NamedTuple):
    """One sample of an instant vector (a tuple: an answer holds thousands)."""

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
    cause: str = ""  # the error in a few words (`not answering`, `HTTP 401`): told when it changes
    warnings: Sequence[str] = ()
    malformed: Sequence[tuple[str, Malformed]] = ()  # (which query: expr | metric, the sample)


@dataclass
class WatchEvaluation:
    signals: list[Signal] = field(default_factory=list)
    evaluated: set[str] = field(default_factory=set)  # watches whose queries were answered
    known: set[str] = field(default_factory=set)  # ... or that failed for a reason of their own
    configured: set[str] = field(default_factory=set)  # every watch of this run
    unknown_keys: set[str] = field(default_factory=set)  # series named only by a malformed sample
    # the run's table artifact, a watch's firing series as (watch, signals, their series): their
    # rows (with the rendered summary) are built when the artifact is, see `rows`
    parts: list[dict[str, Any] | tuple[WatchConfig, list[Signal], list[Series]]] = field(
        default_factory=list
    )

    @cached_property
    def rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for part in self.parts:
            if isinstance(part, dict):
                rows.append(part)
                continue
            watch, signals, firing = part
            for s, series in zip(signals, firing, strict=True):
                value, summary = format_value(series.value), _summary(watch, series)
                rows.append(_row(watch, s.target, "FIRING", value, summary, s.key))
        return rows

    def unseen(self, incidents: Iterable[Incident]) -> list[Signal]:
        """Ok-signals for the open incidents this run's observations no longer mention and could
        have: series of evaluated watches ("no longer reported", malformed samples "readable
        again"), and watch errors whose watches all ran or failed for a reason of their own. A
        watch that could not run (an outage) keeps every incident it has, errors included."""
        seen: set[str] | None = None  # made for the first incident it may name (often none)
        gone = []
        for incident in incidents:
            if incident.state == State.resolved:
                continue
            why = self._why_gone(incident)
            if why is None:
                continue
            if seen is None:
                seen = {s.key for s in self.signals} | self.unknown_keys
            if incident.key not in seen:
                gone.append(replace(incident.signal, firing=False, summary=why))
        return gone

    def _why_gone(self, incident: Incident) -> str | None:
        """Why this incident recovers if no observation of this run names it (None: it stays)."""
        source = incident.source
        watch = source[len(SOURCE) + 1 :] if source.startswith(SOURCE + "/") else None
        if watch is not None and watch not in self.configured:
            return NOT_CONFIGURED
        if watch is not None and watch in self.evaluated:
            malformed = "malformed" in incident.signal.labels
            return READABLE_AGAIN if malformed else NO_LONGER_REPORTED
        if source == ERRORS_SOURCE and all(
            name in self.known or name not in self.configured for name in _named(incident)
        ):
            return EVALUATES_AGAIN
        return None


def _named(incident: Incident) -> list[str]:
    """The watches a watch-error incident names (its `watches` label, else its target)."""
    signal = incident.signal
    return (signal.labels.get("watches") or signal.target).replace(" ", "").split(",")


def evaluate_watches(
    outcomes: Iterable[WatchOutcome], links: LinksConfig, config_file: Path | None = None
) -> WatchEvaluation:
    with no_gc_pauses():
        return _evaluate_watches(outcomes, links, config_file)


def _evaluate_watches(
    outcomes: Iterable[WatchOutcome], links: LinksConfig, config_file: Path | None
) -> WatchEvaluation:
    result = WatchEvaluation()
    errors: list[WatchOutcome] = []
    for outcome in outcomes:
        name = outcome.watch.name
        result.configured.add(name)
        if outcome.error is not None:
            errors.append(outcome)
            if outcome.permanent:
                result.known.add(name)
            result.parts.append(_row(outcome.watch, "", "ERROR", None, outcome.error))
            continue
        if not (blind(outcome, "expr") or blind(outcome, "metric")):
            result.evaluated.add(name)  # only a whole answer may say what is no longer reported
        result.known.add(name)
        signals, firing_series = _watch_signals(outcome, links)
        fired = signals[: len(firing_series)]
        result.unknown_keys |= unreadable_keys(outcome)
        bad = malformed_signals(outcome)
        result.signals += signals + bad
        detail = f"{len(firing_series)} firing"
        if outcome.present is not None:
            detail += f", {len(outcome.present)} present"
        if bad:
            detail += f", {len(bad)} malformed sample(s)"
        if outcome.warnings:
            detail += "; Prometheus warnings: " + "; ".join(outcome.warnings)
        result.parts.append(_row(outcome.watch, "", "evaluated", None, detail))
        result.parts.append((outcome.watch, fired, firing_series))
        for s in bad:
            result.parts.append(_row(outcome.watch, s.target, "MALFORMED", None, s.summary, s.key))
    result.signals += error_signals(errors, config_file)
    return result


def blind(outcome: WatchOutcome, query: str) -> bool:
    """A sample of this query's answer was malformed beyond naming: any series may be behind it."""
    return any(q == query and not bad.labels for q, bad in outcome.malformed)


def unreadable_keys(outcome: WatchOutcome) -> set[str]:
    """Incident keys of series that a malformed sample of the expression names, and the watch's
    absent-metric key when its presence is unknown: they neither fire nor recover this run."""
    watch = outcome.watch
    keys = {
        incident_key(source_of(watch), _key_labels(watch, bad.labels))
        for query, bad in outcome.malformed
        if query == "expr" and bad.labels
    }
    if watch.absent_is is not None and _absence_unknown(outcome):
        keys.add(absent_key(watch))
    return keys


def malformed_signals(outcome: WatchOutcome) -> list[Signal]:
    """One warning per sample of the answer that is not in the documented shape."""
    watch, source = outcome.watch, source_of(outcome.watch)
    signals = {}
    for query, bad in outcome.malformed:
        expr = watch.expr if query == "expr" else presence_query(watch)
        key = incident_key(source, {"malformed": f"{query} {bad.identity}"})
        signals[key] = Signal(
            key=key,
            source=source,
            firing=True,
            severity=Severity.warning,
            summary=(
                f"prometheus watch {watch.name}: malformed sample {bad.identity} in the answer to "
                f"{query} {expr!r}: {bad.why}"
            ),
            target=bad.identity,
            remediation=(
                "Check what answers at prometheus.url (a proxy or a non-Prometheus server may "
                "rewrite answers); "
                + (
                    "the other samples of this watch are still evaluated"
                    if bad.labels
                    else "until a whole answer comes, nothing of this watch recovers or resolves"
                ),
            ),
            labels={"watch": watch.name, "malformed": query},
        )
    return list(signals.values())


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
    return _watch_signals(outcome, links)[0]


def _watch_signals(outcome: WatchOutcome, links: LinksConfig) -> tuple[list[Signal], list[Series]]:
    """The signals, the firing ones first, and the series of those (one per firing signal, in
    their order: no pair made per series, each is one more object for the collector)."""
    watch = outcome.watch
    keys = _Keys(watch, links)  # what is the same for every series: worked out once
    signals, firing = _firing_signals(watch, outcome.firing, links, keys)
    firing_keys = firing.keys()
    if outcome.present is None:
        return signals, list(firing.values())
    # a malformed presence sample whose labels are readable still says the series exists
    present = [
        *outcome.present,
        *(Series(b.labels, 1.0) for q, b in outcome.malformed if q == "metric" and b.labels),
    ]
    if watch.key_labels and not blind(outcome, "expr"):  # else who recovered is unknown
        unknown = unreadable_keys(outcome)
        named = keys.all_named
        firing_named = set(named(firing.values()))
        for series, values in zip(present, named(present), strict=True):
            if values in firing_named:
                continue  # its key is a firing one's: the usual case, told without making it
            key, target = keys(series.labels)
            if key not in firing_keys and key not in unknown:
                signals.append(_ok(watch, key, target, series.labels))
    if watch.absent_is is not None and not _absence_unknown(outcome):
        signals.append(absent_signal(watch, links, absent=not outcome.present))
    return signals, list(firing.values())


def _absence_unknown(outcome: WatchOutcome) -> bool:
    """Whether the metric is reported is not known this run: no well-formed presence sample, and
    a malformed one — named or not, it vouches for nothing (a proxy's null is not a series)."""
    return not outcome.present and any(q == "metric" for q, _ in outcome.malformed)


def _summary(watch: WatchConfig, series: Series) -> str:
    return render(watch.summary, series.labels, series.value, watch.name)


def _key_labels(watch: WatchConfig, labels: Mapping[str, str]) -> dict[str, str]:
    if watch.key_labels:
        return {k: labels.get(k, "") for k in watch.key_labels}
    return {k: v for k, v in labels.items() if k != "__name__"}


def _target(watch: WatchConfig, key_labels: Mapping[str, str]) -> str:
    return " / ".join(v for v in key_labels.values() if v) or watch.name


class _Keys:
    """A watch's series → (incident key, target), and what its signals share: worked out once
    per watch and run (a fleet-wide failure is thousands of series)."""

    def __init__(self, watch: WatchConfig, links: LinksConfig):
        self.watch = watch
        self.source = source_of(watch)
        self.names = sorted(watch.key_labels)  # incident_key sorts them
        self.graph = graph_link(links, watch.expr)
        self.token = watch_token(watch, links)

    def named(self, labels: Mapping[str, str]) -> str | tuple[str, ...]:
        """The values of the key labels (`key_labels` set): series naming the same values have
        one key."""
        if len(self.names) == 1:
            return labels.get(self.names[0], "")
        return tuple([labels.get(k, "") for k in self.names])

    def all_named(self, series: Iterable[Series]) -> list[str] | list[tuple[str, ...]]:
        """`named` of each series' labels, in order (a fleet-wide answer is thousands)."""
        if len(self.names) == 1:
            name = self.names[0]
            return [s.labels.get(name, "") for s in series]
        return [self.named(s.labels) for s in series]

    def __call__(self, labels: Mapping[str, str]) -> tuple[str, str]:
        watch = self.watch
        if not self.names:
            key_labels = _key_labels(watch, labels)
            return incident_key(self.source, key_labels), _target(watch, key_labels)
        get = labels.get
        if len(self.names) == 1:  # the usual `key_labels: [host]`
            value = get(self.names[0], "")
            key = f"{self.source}:{self.names[0]}={key_value(value)}"
            return stored_key(key), value or watch.name
        spelled = ",".join([f"{k}={key_value(get(k, ''))}" for k in self.names])
        key = stored_key(f"{self.source}:{spelled}")
        target = " / ".join([v for v in [get(k, "") for k in watch.key_labels] if v])
        return key, target or watch.name


def firing_signal(
    watch: WatchConfig, series: Series, links: LinksConfig, keys: _Keys | None = None
) -> Signal:
    """A deferred signal: its texts (summary, remediation, links, evidence) are rendered when read
    — when its incident changes or is told — not for every series every run. Its fingerprint is
    the watch as configured (`watch_token`), the labels (the metric's name too: a template may
    show it) and the value."""
    signals, _ = _firing_signals(watch, [series], links, keys or _Keys(watch, links))
    return signals[0]


def _firing_signals(
    watch: WatchConfig, firing: Iterable[Series], links: LinksConfig, keys: _Keys
) -> tuple[list[Signal], dict[str, Series]]:
    """`firing_signal` of each series, but of two series of one key (e.g. two instances) only
    the first; and the series of each signal's key. What the signals share is looked up once:
    a fleet-wide failure is thousands of series."""
    signals: list[Signal] = []
    series_of: dict[str, Series] = {}
    token, source, severity, graph = keys.token, keys.source, watch.severity, keys.graph
    runbook_url, dumps, deferred = watch.runbook_url, orjson.dumps, Signal.deferred
    remediation = None if watch.remediation else ()  # steps are rendered from the labels
    for series in firing:
        labels, value = series.labels, series.value
        key, target = keys(labels)
        if key in series_of:
            continue
        series_of[key] = series
        shown = labels
        if "__name__" in labels:
            shown = {k: v for k, v in labels.items() if k != "__name__"}
        # the label order is Prometheus' (sorted by name); repr(value) tells 0 from -0.0, NaN, Inf
        fingerprint = digest_bytes(dumps((token, repr(value), shown, labels.get("__name__"))))
        signal = deferred(
            key=key,
            source=source,
            firing=True,
            severity=severity,
            target=target,
            labels=shown,
            fingerprint=fingerprint,
            render=partial(_texts, watch, labels, value, links, graph),
            runbook_url=runbook_url,
            remediation=remediation,
        )
        signals.append(signal)
    return signals, series_of


def watch_token(watch: WatchConfig, links: LinksConfig) -> str:
    """What of the configuration the texts of a watch's signals depend on: a changed template or
    link setting makes every series' fingerprint differ once, so the stored texts follow."""
    return digest(TEXTS_VERSION, watch.model_dump(mode="json"), links.model_dump(mode="json"))


def _texts(
    watch: WatchConfig,
    labels: Mapping[str, str],
    value: float,
    links: LinksConfig,
    graph: Link | None,
) -> dict[str, Any]:
    """The texts of a firing series (Signal.deferred)."""
    evidence: dict[str, Any] = {}
    description = render(watch.description, labels, value, watch.name)
    if description:
        evidence["details"] = description
    evidence["value"] = format_value(value)
    return {
        "summary": render(watch.summary, labels, value, watch.name),
        "runbook_url": watch.runbook_url,
        "remediation": tuple(render(step, labels, value, watch.name) for step in watch.remediation),
        "links": _links(links, logs_query(watch, labels), graph),
        "evidence": evidence,
    }


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


def absent_key(watch: WatchConfig) -> str:
    return incident_key(source_of(watch), {"absent": watch.metric or ""})


def absent_signal(watch: WatchConfig, links: LinksConfig, absent: bool) -> Signal:
    metric = watch.metric or ""
    expr = f"absent({metric})"
    return Signal(
        key=absent_key(watch),
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
    unreadable token) is one signal naming them all. Its `cause` label says the error in a few
    words: an open incident whose cause changes is told so (`core.policy.cause_changes`). An
    outage's errors of one cause are one warning whatever their words (a timeout for one watch,
    a 503 for another), saying the first; a permanent error (a watch's own expr) is one by its
    words."""
    # (words, permanent, cause) → the first error's words and the watches
    groups: dict[tuple[str, bool, str], tuple[str, list[str]]] = {}
    for outcome in errors:
        error = outcome.error or ""
        outage = outcome.cause and not outcome.permanent
        group = ("" if outage else error, outcome.permanent, outcome.cause)
        groups.setdefault(group, (error, []))[1].append(outcome.watch.name)
    where = f"{config_file}: " if config_file else ""
    signals = []
    for (_, permanent, cause), (error, names) in groups.items():
        what = error_kind(permanent, cause)
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
                labels={"watches": ",".join(names), "cause": cause or what},
                remediation=(_REMEDIATION[what],),
            )
        )
    return signals


_REMEDIATION = {
    TOO_LARGE: "Narrow the watch's expr or metric (more selective labels, an aggregation), or "
    "raise prometheus.max_answer_bytes if the answer is meant to be that large",
    "configuration error": "Fix the watch's expr in the config (test it in Prometheus' graph page)",
    "cannot evaluate": "Check that Prometheus is up and reachable from the Prefect worker",
}


def error_kind(permanent: bool, cause: str) -> str:
    """What a watch error is, as operators read it: an answer past the cap is the query's (or
    the server's) doing, another permanent error the configuration's, the rest an outage."""
    if cause == TOO_LARGE:
        return TOO_LARGE
    return "configuration error" if permanent else "cannot evaluate"


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
