"""Audit data: findings, rules, expectations and the input every check receives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from fleet_alerting.alertmanager.routing import AlertmanagerYml

if TYPE_CHECKING:
    from fleet_alerting.audit.noise import NoiseStats

LEVELS = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    check_id: str
    level: str  # error | warning | info
    alert: str = ""
    route_path: str = ""
    receiver: str = ""
    message: str = ""
    subject: str = ""  # what distinguishes findings of one check on one alert/route: a metric,
    # a selector, a missing annotation, a drifted key, the check an online note skipped

    @property
    def key(self) -> str:
        """Identity across quarters (the message may change wording, the subject does not)."""
        return "|".join((self.check_id, self.alert, self.route_path, self.receiver, self.subject))


@dataclass(frozen=True)
class Rule:
    name: str  # alert name, or record name for recording rules
    expr: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    kind: str = "alert"  # alert | record
    file: str = ""
    line: int = 0
    group: str = ""

    @property
    def routing_labels(self) -> dict[str, str]:
        return {"alertname": self.name, **self.labels}

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Expectation:
    must_reach: tuple[str, ...] = ()
    must_not_reach: tuple[str, ...] = ()
    pages: bool | None = None
    required_annotations: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Expectations:
    paging_receivers: frozenset[str] = frozenset()
    severities: dict[str, Expectation] = field(default_factory=dict)
    alerts: dict[str, Expectation] = field(default_factory=dict)
    required_annotations: tuple[str, ...] = ("summary", "runbook_url")
    required_group_by: tuple[str, ...] = ("alertname", "instance")
    secret_rotation_days: int = 180
    coverage_ignore: tuple[str, ...] = (
        "^go_",
        "^process_",
        "^promhttp_",
        "^prometheus_",
        "^scrape_",
        "^net_conntrack_",
        "^ALERTS",
    )

    def for_rule(self, rule: Rule) -> Expectation:
        """The severity's expectation with the alert's overrides on top."""
        base = self.severities.get(rule.labels.get("severity", ""), Expectation())
        over = self.alerts.get(rule.name)
        if over is None:
            return base
        return Expectation(
            must_reach=over.must_reach or base.must_reach,
            must_not_reach=over.must_not_reach or base.must_not_reach,
            pages=base.pages if over.pages is None else over.pages,
            required_annotations=over.required_annotations
            if over.required_annotations is not None
            else base.required_annotations,
        )

    def annotations_for(self, rule: Rule) -> tuple[str, ...]:
        own = self.for_rule(rule).required_annotations
        return self.required_annotations if own is None else own


@dataclass(frozen=True)
class SecretFile:
    """Facts about a file named by a `*_file` key, gathered by the loader (checks stay pure)."""

    config_path: str  # where in alertmanager.yml, e.g. receivers[2].pagerduty_configs[0]...
    path: str
    exists: bool
    git_tracked: bool = False
    mode: int = 0
    mtime: datetime | None = None


class SeriesSource(Protocol):
    """What the online checks need from Prometheus."""

    def series_exists(self, selector: str) -> bool: ...

    def metric_names(self) -> set[str]: ...

    def raw_samples(self, selector: str, seconds: int, at: float) -> list[dict[str, Any]]: ...


class PrometheusUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class SilenceRecord:
    """A silence by matchers from the incident store (the audit never reads the store)."""

    id: str
    matchers: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    author: str
    comment: str
    muted: int  # incidents it muted


FIRING_KINDS = ("opened", "paged", "reminder", "silence_expired")
CLOSING_KINDS = ("resolved", "acknowledged", "pager_acknowledged", "silenced", "muted")


@dataclass(frozen=True)
class DeliveryRecord:
    """What one destination was sent about one episode of one incident, and whether the
    incident has resolved since."""

    incident_key: str
    episode: str
    channel: str
    kinds: tuple[str, ...]  # notification kinds delivered, in order
    resolved: bool


@dataclass
class AuditInput:
    am: AlertmanagerYml
    rules: list[Rule]
    expectations: Expectations
    now: datetime
    am_source: str = "alertmanager.yml"
    running: AlertmanagerYml | None = None  # live /api/v2/status config, for drift
    secret_files: list[SecretFile] = field(default_factory=list)
    series: SeriesSource | None = None
    dashboards: dict[str, Any] | None = None  # file name -> dashboard JSON
    noise: NoiseStats | None = None  # the quarter's firing history, when Prometheus was asked
    # from the incident store, when the audit is given one (None: those checks are skipped)
    silences: list[SilenceRecord] | None = None
    deliveries: list[DeliveryRecord] | None = None
    offline: str | None = None  # why a Prometheus URL given did not serve the online checks

    @property
    def alert_rules(self) -> list[Rule]:
        return [r for r in self.rules if r.kind == "alert"]


Check = Callable[[AuditInput], list[Finding]]
