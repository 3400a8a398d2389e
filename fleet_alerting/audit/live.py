"""I/O at the edge of the audit: live Alertmanager config, Prometheus series, dashboards, and
gathering every input into an AuditInput."""

from __future__ import annotations

import glob as globmod
import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from fleet_alerting.alertmanager.routing import AlertmanagerYml
from fleet_alerting.audit.loader import (
    AuditInputError,
    gather_secret_files,
    load_alertmanager,
    load_alertmanager_text,
    load_expectations,
    load_rules,
    read_text,
)
from fleet_alerting.audit.model import (
    AuditInput,
    DeliveryRecord,
    Expectations,
    PrometheusUnavailable,
    Rule,
    SeriesSource,
    SilenceRecord,
)
from fleet_alerting.audit.noise import (
    IncidentRecord,
    NoiseStats,
    NoiseThresholds,
    compact,
    compute,
)
from fleet_alerting.config.secrets import redact
from fleet_alerting.http.errors import shown_url


def fetch_running_config(url: str, timeout: float = 10.0) -> str:
    """The running configuration's original text from Alertmanager's /api/v2/status."""
    source = f"{url.rstrip('/')}/api/v2/status"
    try:
        resp = httpx.get(source, timeout=timeout)
        resp.raise_for_status()
        return str(resp.json()["config"]["original"])
    except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
        raise AuditInputError(source, None, f"cannot read the running config: {exc}") from None


class PrometheusSeries:
    """SeriesSource over the Prometheus HTTP API (/api/v1/series, /api/v1/label/__name__)."""

    def __init__(self, url: str, timeout: float = 10.0, client: httpx.Client | None = None):
        self.url = url.rstrip("/")
        self.shown = shown_url(self.url)
        self.client = client or httpx.Client(timeout=timeout)
        self._names: set[str] | None = None

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            resp = self.client.get(self.url + path, params=params)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            reason = redact(str(exc) or type(exc).__name__).replace(self.url, self.shown)
            raise PrometheusUnavailable(
                f"Prometheus at {self.shown} is unreachable ({reason})"
            ) from None
        if resp.status_code >= 500:
            raise PrometheusUnavailable(f"Prometheus at {self.shown} answered {resp.status_code}")
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "status" not in body:
            kind = resp.headers.get("content-type", "no content type").split(";")[0]
            raise PrometheusUnavailable(
                f"{self.shown} is not a Prometheus HTTP API: {path} answered "
                f"{resp.status_code} with {kind}"
            )
        if body.get("status") != "success" or "data" not in body:
            error = redact(str(body.get("error", "no data")))
            raise PrometheusUnavailable(f"Prometheus at {self.shown} answered an error: {error}")
        return body["data"]

    def check(self) -> None:
        """Fail early (PrometheusUnavailable) unless the URL answers as Prometheus does."""
        self._get("/api/v1/status/buildinfo")

    def raw_samples(self, selector: str, seconds: int, at: float) -> list[dict[str, Any]]:
        """Every raw sample of `selector` in the `seconds` before `at` (a range selector in an
        instant query: exact samples, no step, no lookback)."""
        data = self._get("/api/v1/query", {"query": f"{selector}[{seconds}s]", "time": f"{at:.3f}"})
        return list(data.get("result") or []) if isinstance(data, dict) else []

    def series_exists(self, selector: str) -> bool:
        return bool(self._get("/api/v1/series", {"match[]": selector}))

    def metric_names(self) -> set[str]:
        if self._names is None:
            self._names = set(self._get("/api/v1/label/__name__/values"))
        return set(self._names)


HISTORY_WINDOW = timedelta(days=7)


def alert_history(
    series: SeriesSource, start: datetime, end: datetime, window: timedelta = HISTORY_WINDOW
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Raw `ALERTS{alertstate="firing"}` and `ALERTS_FOR_STATE` samples of [start, end], fetched
    a window at a time (a quarter in one response would be one huge JSON document)."""
    firing: list[dict[str, Any]] = []
    for_state: list[dict[str, Any]] = []
    t = end
    while t > start:
        w = min(window, t - start)
        secs, at = int(w.total_seconds()), t.timestamp()
        firing += map(compact, series.raw_samples('ALERTS{alertstate="firing"}', secs, at))
        for_state += map(compact, series.raw_samples("ALERTS_FOR_STATE", secs, at))
        t -= w
    return firing, for_state


def noise_statistics(
    series: SeriesSource,
    am: AlertmanagerYml,
    rules: list[Rule],
    expectations: Expectations,
    start: datetime,
    end: datetime,
    incidents: Iterable[IncidentRecord] = (),
    thresholds: NoiseThresholds | None = None,
) -> NoiseStats:
    """The quarter's noise statistics; an alert pages when its route reaches a paging receiver."""
    firing, for_state = alert_history(series, start, end)
    by_key = {(r.name, r.labels.get("severity", "")): r for r in rules if r.kind == "alert"}
    paging = expectations.paging_receivers

    def pages(name: str, severity: str) -> bool:
        rule = by_key.get((name, severity))
        labels = rule.routing_labels if rule else {"alertname": name, "severity": severity}
        return bool(paging.intersection(am.receivers_for(labels)))

    return compute(firing, for_state, start, end, list(by_key), pages, incidents, thresholds)


def load_dashboards(pattern: str) -> dict[str, Any]:
    out = {}
    for f in sorted(globmod.glob(pattern, recursive=True)):
        try:
            out[f] = json.loads(read_text(f))
        except json.JSONDecodeError as exc:
            raise AuditInputError(f, exc.lineno, f"invalid JSON: {exc.msg}") from None

    return out


def gather_inputs(
    *,
    alertmanager_file: str | None,
    rules_glob: str,
    expectations_file: str,
    now: datetime,
    alertmanager_url: str | None = None,
    prometheus_url: str | None = None,
    dashboards_glob: str | None = None,
    noise_days: float | None = None,
    incidents: Iterable[IncidentRecord] = (),
    silences: list[SilenceRecord] | None = None,
    deliveries: list[DeliveryRecord] | None = None,
) -> AuditInput:
    """Everything the checks need. With a Prometheus URL and `noise_days`, the firing history
    of the `noise_days` before `now` (and the watches' `incidents`) become noise statistics.
    A Prometheus that does not answer leaves the online checks out and says why (`offline`):
    the offline checks still make a report."""
    running = None
    if alertmanager_url:
        source = f"{alertmanager_url.rstrip('/')}/api/v2/status"
        running = load_alertmanager_text(fetch_running_config(alertmanager_url), source)
    if alertmanager_file:
        am, am_source = load_alertmanager(alertmanager_file), alertmanager_file
        base_dir = str(Path(alertmanager_file).resolve().parent)
    elif running is not None:
        am, am_source, running, base_dir = running, f"{alertmanager_url} (running)", None, "."
    else:
        raise AuditInputError("alertmanager", None, "give an alertmanager file or URL")
    series: PrometheusSeries | None = None
    offline = None
    if prometheus_url:
        series = PrometheusSeries(prometheus_url)
        try:
            series.check()
        except PrometheusUnavailable as exc:
            series, offline = None, str(exc)
    rules = load_rules(rules_glob)
    expectations = load_expectations(expectations_file)
    noise = None
    if series is not None and noise_days:
        try:
            noise = noise_statistics(
                series, am, rules, expectations, now - timedelta(days=noise_days), now, incidents
            )
        except PrometheusUnavailable as exc:
            series, offline = None, str(exc)
    return AuditInput(
        am=am,
        rules=rules,
        expectations=expectations,
        noise=noise,
        now=now,
        am_source=am_source,
        running=running,
        secret_files=gather_secret_files(am.raw, base_dir),
        series=series,
        dashboards=load_dashboards(dashboards_glob) if dashboards_glob else None,
        silences=silences,
        deliveries=deliveries,
        offline=offline,
    )
