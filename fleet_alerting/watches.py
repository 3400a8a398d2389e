"""Prometheus watches, pure: query results → signals, template rendering, log and graph links.

A watch's expression lists what is failing (one series per failing thing). Its `metric`, queried
as `count by (key labels) (metric)`, lists what exists: a key present there but not in the
expression has recovered; a key in neither is "no longer reported" (resolved by hysteresis through
`vanished_sources`); no series at all is the absent signal when the watch has `absent_is`.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet_alerting.config import LinksConfig, PrometheusConfig, Severity, WatchConfig
from fleet_alerting.links import logql_selector, logs_link, prometheus_graph_url
from fleet_alerting.signals import Link, Signal

SOURCE = "prometheus"
ERRORS_SOURCE = "prometheus-errors"
NO_VALUE = "<no value>"  # what Prometheus' Go templates print for a missing label
RECOVERED = "recovered: no longer matches the watch expression"
NO_LONGER_REPORTED = "no longer reported: the series disappeared from Prometheus"


def source_of(watch: WatchConfig) -> str:
    return f"{SOURCE}/{watch.name}"


def incident_key(source: str, labels: Mapping[str, str]) -> str:
    """The `signal_key` format, without its keyword arguments (a label may be called `source`)."""
    return source + ":" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


# templates ----------------------------------------------------------------------------------
# The subset of Prometheus alert templating that summaries and steps need:
# {{ $labels.NAME }}, {{ $value }}, {{ $watch }}, optionally piped to humanize,
# humanizeDuration or humanizePercentage.

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)
_EXPRESSION = re.compile(
    r"^\s*\$(?:labels\.(?P<label>[A-Za-z_][A-Za-z0-9_]*)|(?P<var>value|watch))"
    r"\s*(?:\|\s*(?P<func>humanize|humanizeDuration|humanizePercentage)\s*)?$"
)
TEMPLATE_HELP = (
    "use {{ $labels.NAME }}, {{ $value }} or {{ $watch }}, optionally "
    "| humanize, | humanizeDuration or | humanizePercentage"
)


def check_template(template: str) -> None:
    """ValueError naming the first placeholder this renderer does not understand."""
    for match in _PLACEHOLDER.finditer(template):
        if not _EXPRESSION.match(match.group(1)):
            raise ValueError(f"unknown template expression {match.group(0)!r}: {TEMPLATE_HELP}")
    rest = _PLACEHOLDER.sub("", template)
    if "{{" in rest or "}}" in rest:
        raise ValueError(f"unbalanced {{{{ or }}}} in template: {TEMPLATE_HELP}")


def render(template: str, labels: Mapping[str, str], value: float | None, watch: str = "") -> str:
    parts = _compiled(template)
    if len(parts) == 1 and isinstance(parts[0], str):
        return parts[0]
    return "".join(
        part if isinstance(part, str) else _evaluate(part, labels, value, watch) for part in parts
    )


@functools.lru_cache(maxsize=1024)
def _compiled(template: str) -> tuple[str | re.Match[str], ...]:
    """Literal text and parsed placeholders, parsed once per template (a watch renders the same
    templates for every series of a fleet-wide failure)."""
    parts: list[str | re.Match[str]] = []
    last = 0
    for match in _PLACEHOLDER.finditer(template):
        parts.append(template[last : match.start()])
        parsed = _EXPRESSION.match(match.group(1))
        parts.append(parsed if parsed else match.group(0))  # invalid: refused at config load
        last = match.end()
    parts.append(template[last:])
    return tuple(p for p in parts if p != "") or ("",)


def _evaluate(
    parsed: re.Match[str], labels: Mapping[str, str], value: float | None, watch: str
) -> str:
    if parsed["label"]:
        return labels.get(parsed["label"], NO_VALUE)
    if parsed["var"] == "watch":
        return watch
    if value is None:
        return NO_VALUE
    func = parsed["func"]
    if func == "humanize":
        return humanize(value)
    if func == "humanizeDuration":
        return humanize_duration(value)
    if func == "humanizePercentage":
        return f"{value * 100:.4g}%"
    return format_value(value)


def format_value(value: float) -> str:
    value = float(value)
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def humanize(value: float) -> str:
    """Prometheus' humanize: SI prefixes, 4 significant digits (1234 → 1.234k, 0.005 → 5m)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:.4g}"
    prefixes = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"]
    if abs(value) < 1:
        prefixes = ["", "m", "u", "n", "p", "f", "a", "z", "y"]
        index = 0
        while abs(value) < 1 and index < len(prefixes) - 1:
            value, index = value * 1000, index + 1
        return f"{value:.4g}{prefixes[index]}"
    index = 0
    while abs(value) >= 1000 and index < len(prefixes) - 1:
        value, index = value / 1000, index + 1
    return f"{value:.4g}{prefixes[index]}"


def humanize_duration(value: float) -> str:
    """Prometheus' humanizeDuration: 1d 2h 3m 4s; below a second in ms/us/ns."""
    if not math.isfinite(value):
        return f"{value:.4g}"
    if value == 0:
        return "0s"
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value >= 1:
        whole = int(value)
        days, hours = whole // 86400, whole // 3600 % 24
        minutes, seconds = whole // 60 % 60, whole % 60
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{value:.4g}s"
    return sign + humanize(value) + "s"


# the shipped watches -----------------------------------------------------------------------

ROLE_AGENT_LOGS = {"service": "role-agent", "host": "{{ $labels.host }}"}
RUNBOOKS = "https://wiki.fleet.example.org/runbooks"
ABSENT_STEPS = [
    "Open Prometheus → Status → Targets: is the node job (node_exporter, :9100) of every Pi "
    "listed and UP? In the Fleet deployment node_exporter was never scraped: add the job.",
    "On a Pi: curl -s localhost:9100/metrics | grep role_agent_ — node_exporter must run with "
    "--collector.textfile.directory pointing where the role agent writes its .prom file",
    "ls -l /var/lib/prometheus/node-exporter/*.prom — does the role agent write the file at all?",
    "Watch the Prometheus graph link: the series appear again and this incident resolves",
]


def default_watches(config: PrometheusConfig) -> list[WatchConfig]:
    stale = int(config.role_agent_stale_after.total_seconds())
    window = int(config.device_failures_window.total_seconds())
    range_ = f"{window // 60}m" if window % 60 == 0 else f"{window}s"
    threshold = format_value(config.device_failures_threshold)
    return [
        WatchConfig(
            name="RoleAgentFailure",
            expr="role_agent_last_run_success == 0",
            severity=Severity.critical,
            key_labels=["host"],
            metric="role_agent_last_run_success",
            absent_is=Severity.warning,
            summary="Role agent on {{ $labels.host }} failed its last run",
            description='role_agent_last_run_success{host="{{ $labels.host }}"} is '
            "{{ $value }}: the last converge of this host's role did not succeed.",
            runbook_url=f"{RUNBOOKS}/role-agent-failure",
            remediation=[
                "ssh {{ $labels.host }}",
                "systemctl list-timers 'role-agent*' and systemctl status role-agent.service — "
                "when did the timer last fire, what did the run exit with?",
                "journalctl -u role-agent.service -n 200 --no-pager (or the Logs link) — find the "
                "step that failed (package, template, service restart, disk full…)",
                "Fix the cause, then re-run the agent: sudo systemctl start role-agent.service",
                "cat the agent's .prom file in node_exporter's textfile directory: "
                "role_agent_last_run_success must read 1",
                "Watch the Prometheus graph link return to 1; this incident resolves by itself",
            ],
            absent_remediation=ABSENT_STEPS,
            logs=ROLE_AGENT_LOGS,
        ),
        WatchConfig(
            name="RoleAgentStale",
            expr=f"time() - role_agent_last_run_timestamp > {stale}",
            severity=Severity.warning,
            key_labels=["host"],
            metric="role_agent_last_run_timestamp",
            absent_is=Severity.warning,
            summary="Role agent on {{ $labels.host }} has not run for "
            "{{ $value | humanizeDuration }}",
            description=f"The last run of the role agent is older than {stale}s: the timer is "
            "stopped, the run hangs, or the host is down.",
            runbook_url=f"{RUNBOOKS}/role-agent-stale",
            remediation=[
                "ssh {{ $labels.host }} — if it does not answer, the Pi is down or off the "
                "network: check power and its switch port first",
                "systemctl list-timers 'role-agent*' — is the timer active and scheduled?",
                "systemctl status role-agent.service — a run stuck in 'activating' blocks the "
                "timer: sudo systemctl stop role-agent.service",
                "sudo systemctl enable --now role-agent.timer, then sudo systemctl start "
                "role-agent.service to run it now",
                "Watch role_agent_last_run_timestamp move forward in the graph link",
            ],
            absent_remediation=ABSENT_STEPS,
            logs=ROLE_AGENT_LOGS,
        ),
        WatchConfig(
            name="UpstreamDeviceFailuresSpike",
            expr=f"sum by (deviceId, reason) (increase(upstream_device_failures_total[{range_}]))"
            f" > {threshold}",
            severity=Severity.warning,
            key_labels=["deviceId", "reason"],
            metric="upstream_device_failures_total",
            summary="{{ $value | humanize }} failed Fleet API calls to device "
            f"{{{{ $labels.deviceId }}}} ({{{{ $labels.reason }}}}) in {range_}",
            description="The Fleet API keeps failing to reach this device; after 5 failures in "
            "30 s its circuit breaker opens and commands to it are refused.",
            runbook_url=f"{RUNBOOKS}/device-failures",
            remediation=[
                "Open the Logs link: the Fleet API's errors for {{ $labels.deviceId }} say which "
                "call fails ({{ $labels.reason }})",
                "From the VPS: curl -sS http://{{ $labels.deviceId }}:<port>/healthz — timeout or "
                "refused means the device agent or the network, 401 means a token mismatch",
                "ssh {{ $labels.deviceId }}; systemctl status of the device's player agent; "
                "journalctl -u it -n 200",
                "Restart the device agent (sudo systemctl restart …) or fix the token / network",
                "Watch the graph link: the increase drops below the threshold within "
                f"{range_} and this incident resolves",
            ],
            logs={"service": "fleet-api"},
            logs_line_filter="{{ $labels.deviceId }}",
        ),
        WatchConfig(
            name="CircuitBreakerOpen",
            expr="circuit_breaker_state == 1",
            severity=Severity.warning,
            key_labels=["deviceId"],
            metric="circuit_breaker_state",
            summary="Circuit breaker to device {{ $labels.deviceId }} is open",
            description="The Fleet API stopped calling this device after 5 failures; it retries "
            "after 30 s and closes the breaker on the first success.",
            runbook_url=f"{RUNBOOKS}/circuit-breaker-open",
            remediation=[
                "Open the Logs link: why did the last calls to {{ $labels.deviceId }} fail?",
                "ping / ssh {{ $labels.deviceId }} — is the device up and on the network?",
                "curl -sS http://{{ $labels.deviceId }}:<port>/healthz from the VPS",
                "Restart the device agent if it hangs; the breaker closes by itself on the next "
                "successful call (within ~30 s)",
                "If it reopens again and again, check UpstreamDeviceFailuresSpike for the reason",
            ],
            logs={"service": "fleet-api"},
            logs_line_filter="{{ $labels.deviceId }}",
        ),
    ]


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
