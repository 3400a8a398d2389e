"""The YAML configuration, validated once at load.

Errors name the file, the line, the key path and what was expected, and never echo the value
(an inline secret must not reach a terminal or a log). Relative paths are relative to the config
file's folder, so a config and its secrets/ and targets move together.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
    model_validator,
)

from fleet_alerting.config.fields import (
    ConfigPath,
    FileSecret,
    HttpUrl,
    Port,
    StatusCode,
    answer_cap,
    at_least,
    at_most,
)
from fleet_alerting.config.notifiers.oncall import OnCallConfig
from fleet_alerting.config.notifiers.pagerduty import PagerDutyConfig
from fleet_alerting.config.notifiers.slack import SlackConfig
from fleet_alerting.core.channels import Channel, pager_key, pager_of
from fleet_alerting.core.fleet import FleetConfig
from fleet_alerting.core.grouping import GroupingConfig
from fleet_alerting.core.inhibition import InhibitRule
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.matchers import LABEL_NAME, check_matcher, compile_go_regex
from fleet_alerting.core.model import Duration, Model, PositiveDuration
from fleet_alerting.core.muting import MaintenanceConfig
from fleet_alerting.core.policy import PolicyConfig, default_policies
from fleet_alerting.core.signals import Severity
from fleet_alerting.core.storms import StormRules
from fleet_alerting.core.templates import check_template
from fleet_alerting.core.urls import credential_in_query, split_url
from fleet_alerting.core.watches import WATCH_PACKAGES
from fleet_alerting.core.windows import ScheduledWindow


class NotifyConfig(Model):
    # dry_run: every message goes to `outbox_file` (JSON lines) instead of its channel. Only when
    # said explicitly: a channel a policy names but the config does not configure is an error.
    dry_run: bool = False
    # defaults are validated too, so they are relative to the config file like any given path
    outbox_file: ConfigPath = Field(Path("state/outbox.jsonl"), validate_default=True)
    slack: SlackConfig | None = None
    pagerduty: PagerDutyConfig | None = None
    oncall: OnCallConfig | None = None
    attempts_per_run: int = Field(3, ge=1, le=20)
    give_up_after: PositiveDuration = timedelta(hours=24)

    def configured_channels(self) -> set[str]:
        slack, channels = self.slack, set()
        if slack and (slack.webhook or slack.bot_token):
            channels.add(Channel.slack)
        if slack and (slack.mirror_webhook or slack.bot_token):
            channels.add(Channel.slack_mirror)
        for pager in (self.pagerduty, self.oncall):
            if pager is not None:
                channels.update(pager.secrets())
        return channels


def _kept(days: int) -> Any:
    """A retention: at least a day (a run must still see what it just resolved), at most 10
    years (the store is not an archive; export what must be kept longer)."""
    return Field(timedelta(days=days), ge=timedelta(days=1), le=timedelta(days=3650))


class RetentionConfig(Model):
    """How long history stays in the store; older rows are deleted as runs go by."""

    resolved_incidents: Duration = _kept(90)
    sent_notifications: Duration = _kept(30)
    dead_letters: Duration = _kept(90)
    # what runs observed, for `fleet-alerting what-if` (a quarter and some to spare)
    history: Duration = _kept(100)
    # the audit trail (acks, silences, snoozes, mutes begun and ended): as long as history, so
    # what-if counts what operators did by hand over any period it replays, and past resolved
    # incidents, so `incidents --show` never shows a kept incident without its trail
    actions: Duration = _kept(100)
    # silences by matchers, after they end: as long as history, so what-if replays every
    # silence of any period it can replay (and the quarterly audit checks the quarter's)
    expired_silences: Duration = _kept(100)


_POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg")


def _postgres_url(value: str) -> str:
    """A PostgreSQL URL with a host and a database, and no password (that is a secret: it goes in
    `state.password`). The value is never quoted back: it might hold one."""
    parts = split_url(value, "expected postgresql+psycopg://USER@HOST:PORT/DATABASE")
    if parts.scheme not in _POSTGRES_SCHEMES:
        raise ValueError(
            "expected postgresql+psycopg://USER@HOST:PORT/DATABASE (PostgreSQL through psycopg; "
            "for SQLite give state.path instead)"
        )
    if parts.password is not None or credential_in_query(parts.query):
        raise ValueError(
            "a password in the URL is an inline secret: remove it and give "
            "state.password: {file: PATH}"
        )
    if not parts.hostname or not parts.path.strip("/") or "/" in parts.path.strip("/"):
        raise ValueError(
            "expected postgresql+psycopg://USER@HOST:PORT/DATABASE (host and database)"
        )
    return value


PostgresUrl = Annotated[str, AfterValidator(_postgres_url)]


class StateConfig(Model):
    """Where incidents and the outbox live: one SQLite file (`path`, the default) on one host, or a
    PostgreSQL database (`url`, `password`) shared by workers on several hosts."""

    path: ConfigPath | None = None
    url: PostgresUrl | None = None
    password: FileSecret | None = None
    connect_timeout: Annotated[PositiveDuration, at_most(timedelta(minutes=5))] = timedelta(
        seconds=10
    )
    retention: RetentionConfig = RetentionConfig()

    @model_validator(mode="before")
    @classmethod
    def _one_store(cls, value: object) -> object:
        """Exactly one of path and url; neither: the default SQLite file beside the config."""
        if not isinstance(value, dict):
            return value
        if value.get("url") is not None and value.get("path") is not None:
            raise ValueError(
                "give one of state.path (a SQLite file, one host) and state.url (PostgreSQL), "
                "not both"
            )
        if value.get("url") is None:
            if value.get("password") is not None:
                raise ValueError("state.password is the PostgreSQL password: give state.url too")
            if value.get("connect_timeout") is not None:
                raise ValueError(
                    "state.connect_timeout is how long to wait for PostgreSQL: give state.url too"
                )
            if value.get("path") is None:
                return {**value, "path": "state/fleet-alerting.sqlite"}
        return value


class HttpTarget(Model):
    name: str
    url: HttpUrl = Field(pattern=r"^https?://")
    severity: Severity = Severity.warning
    expected_status: list[StatusCode] = Field([200], min_length=1)
    module: str = "http_2xx"
    runbook_url: HttpUrl | None = None
    remediation: list[str] = []
    labels: dict[str, str] = {}


class FileSdTargets(Model):
    """Targets from Prometheus file_sd JSON files (`[{targets: [host:port], labels: {}}]`)."""

    files: list[str]
    path: str = "/healthz"
    scheme: Literal["http", "https"] = "http"
    severity: Severity = Severity.warning
    expected_status: list[StatusCode] = Field([200], min_length=1)
    module: str = "http_2xx"
    runbook_url: HttpUrl | None = None
    remediation: list[str] = []


class BlackboxConfig(Model):
    mode: Literal["direct", "exporter"] = "direct"
    exporter_url: HttpUrl | None = None
    concurrency: int = Field(100, ge=1, le=1000)
    timeout: PositiveDuration = timedelta(seconds=5)
    targets: list[HttpTarget] = []
    file_sd: list[FileSdTargets] = []


Matcher = Annotated[str, AfterValidator(check_matcher)]


class EscalationRule(Model):
    """Alerts matching all `matchers` (Alertmanager syntax, sent as `filter`) escalate."""

    name: str
    matchers: list[Matcher] = Field(min_length=1)
    severity: Severity = Severity.critical  # the policy their incidents follow


def default_escalation_rules() -> list[EscalationRule]:
    return [
        EscalationRule(name="critical", matchers=['severity="critical"']),
        EscalationRule(
            name="fleet-api-blackbox",
            matchers=[
                'alertname=~"Blackbox.*|ProbeFailed|EndpointDown"',
                'instance=~".*/api/healthz|.*/"',
            ],
        ),
    ]


class WatchdogConfig(Model):
    """The dead man's switch: an always-firing alert (a Prometheus rule `expr: vector(1)`) that
    Alertmanager has not listed for `missing_after` means the alerting pipeline is broken."""

    alertname: str = Field("Watchdog", pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    missing_after: Annotated[
        Duration, at_least(timedelta(minutes=1)), at_most(timedelta(days=1))
    ] = timedelta(minutes=5)


class AlertmanagerConfig(Model):
    url: HttpUrl = Field(pattern=r"^https?://")
    timeout: PositiveDuration = timedelta(seconds=10)
    rules: list[EscalationRule] = Field(default_factory=default_escalation_rules)
    # Alertmanager already debounces (`for:`), so one observation opens and one absence resolves.
    open_after: int = Field(1, ge=1, le=1000)
    resolve_after: int = Field(1, ge=1, le=1000)
    watchdog: WatchdogConfig | None = WatchdogConfig()  # null: no dead man's switch
    max_answer_bytes: int = answer_cap()
    # a restarted Alertmanager lists no alert until Prometheus re-sends them (its resend delay,
    # 1m, plus an evaluation): until it is up this long, an alert it does not list is not over
    restart_grace: Annotated[Duration, at_least(timedelta(0)), at_most(timedelta(hours=1))] = (
        timedelta(minutes=3)
    )


class FleetApiConfig(Model):
    """The Fleet API (behind Caddy, which strips /api): events feed and incident snapshots."""

    url: HttpUrl = Field(pattern=r"^https?://")
    token: FileSecret | None = None
    timeout: PositiveDuration = timedelta(seconds=10)
    limit: int = Field(200, ge=1, le=200)
    alert_types: list[str] = ["command.failed", "audio.upload"]
    alert_severity: Literal["info", "warn", "error"] = "error"
    log_labels: dict[str, str] = {"service": "fleet-api"}
    snapshot_minutes: int = Field(15, ge=1)
    snapshot_max_events: int = Field(20, ge=1, le=40)
    lookback: Duration = timedelta(minutes=30)  # late events within this window still count
    max_answer_bytes: int = answer_cap()


class SlackAppConfig(Model):
    """`/fleet` slash commands. `run` is allowed only for the listed Slack user or channel ids."""

    signing_secret: FileSecret
    host: str = "127.0.0.1"
    port: Port = 3000
    allowed_users: list[str] = []
    allowed_channels: list[str] = []
    answer_within: PositiveDuration = timedelta(seconds=2.5)  # Slack gives up after 3 s


class McpConfig(Model):
    """The MCP server. Over HTTP it requires its own bearer token (never the Fleet API's)."""

    token: FileSecret | None = None
    host: str = "127.0.0.1"
    port: Port = 8765


class PagerDutyWebhookConfig(Model):
    """PagerDuty webhook v3 subscription (served by `slack-app` at /pagerduty/webhook): its
    signing secret verifies `X-PagerDuty-Signature`."""

    secret: FileSecret


class OperatorsConfig(Model):
    slack_app: SlackAppConfig | None = None
    pagerduty_webhook: PagerDutyWebhookConfig | None = None
    mcp: McpConfig = McpConfig()


class ZigbeeWindow(Model):
    """When pairing may be open: at most `max_duration` at a time and, if `scheduled` is given,
    only inside one of those windows, e.g. "Tue 10:00-10:15 Europe/Zagreb"."""

    max_duration: PositiveDuration = timedelta(seconds=60)
    scheduled: list[ScheduledWindow] = []


def _check_regex(value: str) -> str:
    try:
        compile_go_regex(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return value


class ZigbeeAvailability(Model):
    """Per-device availability (`<base>/<device>/availability`, `online`/`offline` or
    `{"state": …}`): the listed `devices` (one that publishes nothing is itself a warning), or
    with no list every device whose friendly name fully matches `match`."""

    devices: list[str] = []
    match: Annotated[str, AfterValidator(_check_regex)] = ".*"
    severity: Severity | None = None  # default: the coordinator's


def _mqtt_broker(value: str) -> str:
    parts = split_url(value, "expected mqtt://HOST:PORT or mqtts://HOST:PORT")
    if parts.username is not None or parts.password is not None:
        raise ValueError("give the user and password as username and password: {file: PATH}")
    return value


class ZigbeeCoordinator(Model):
    """One Zigbee2MQTT instance, watched over its MQTT broker."""

    name: str = Field(min_length=1)
    broker: Annotated[str, AfterValidator(_mqtt_broker)] = Field(
        "mqtt://127.0.0.1:1883", pattern=r"^mqtts?://[^/:]+(:\d+)?/?$"
    )
    username: str | None = None
    password: FileSecret | None = None
    tls: bool = False  # also implied by an mqtts:// broker URL
    ca_file: ConfigPath | None = None
    base_topic: str = Field("zigbee2mqtt", min_length=1, pattern=r"^[^#+]+$")
    severity: Severity = Severity.warning
    permit_join: ZigbeeWindow = ZigbeeWindow()
    health_check: bool = False
    availability: ZigbeeAvailability | None = None
    auto_close: bool = False
    runbook_url: HttpUrl | None = None
    remediation: list[str] = []


class ZigbeeConfig(Model):
    # connect, retained read, health check, read-back
    timeout: PositiveDuration = timedelta(seconds=5)
    max_payload_bytes: int = Field(512 * 1024, ge=1024)
    clock_skew: Duration = timedelta(seconds=5)  # tolerance on permit_join_end
    coordinators: list[ZigbeeCoordinator] = []

    @model_validator(mode="after")
    def _unique_names(self) -> ZigbeeConfig:
        names = [c.name for c in self.coordinators]
        if len(names) != len(set(names)):
            raise ValueError("coordinator names must be unique (they key the incidents)")
        return self


# --- prometheus watches -------------------------------------------------------------------------


def _check_template(value: str) -> str:
    check_template(value)
    return value


Template = Annotated[str, AfterValidator(_check_template)]


class BasicAuth(Model):
    username: str
    password: FileSecret


class WatchConfig(Model):
    """One PromQL watch: every series of `expr` is a failing thing, keyed by `key_labels`.

    `metric` names the series the expression is built on: a key still present there but gone
    from `expr` has recovered; a key gone from both is "no longer reported"; no series of it at
    all is itself a signal when `absent_is` gives a severity."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    expr: str = Field(min_length=1)
    severity: Severity = Severity.warning
    key_labels: list[str] = []
    metric: str | None = None
    absent_is: Severity | None = None
    summary: Template
    description: Template = ""
    runbook_url: HttpUrl | None = None
    remediation: list[Template] = []
    absent_remediation: list[str] = []
    logs: dict[str, Template] = {}  # LogQL stream selector, e.g. {service: role-agent, host: ...}
    logs_line_filter: Template | None = None  # `|= "..."` after the selector
    enabled: bool = True

    @field_validator("key_labels")
    @classmethod
    def _each_label_once(cls, labels: list[str]) -> list[str]:
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"listed more than once: {', '.join(twice)}")
        unnamed = [label for label in labels if not LABEL_NAME.match(label)]
        if unnamed:
            raise ValueError(f"not a Prometheus label name: {', '.join(map(repr, unnamed))}")
        return labels

    @model_validator(mode="after")
    def _absent_needs_metric(self) -> WatchConfig:
        if self.absent_is is not None and not self.metric:
            raise ValueError("absent_is needs `metric`: the series whose absence is the signal")
        return self


class PrometheusConfig(Model):
    """PromQL watches over the HTTP API. The shipped watches (role agents, device failures,
    circuit breakers) are on unless `default_watches: false`; a watch in `watches` with the same
    name replaces the shipped one."""

    url: HttpUrl | None = Field(None, pattern=r"^https?://")
    bearer_token: FileSecret | None = None
    basic_auth: BasicAuth | None = None
    timeout: PositiveDuration = timedelta(seconds=10)
    default_watches: bool = True
    role_agent_stale_after: PositiveDuration = timedelta(minutes=15)
    device_failures_threshold: float = Field(5, ge=0)
    device_failures_window: PositiveDuration = timedelta(minutes=5)
    watches: list[WatchConfig] = []
    max_answer_bytes: int = answer_cap()

    @model_validator(mode="after")
    def _one_auth(self) -> PrometheusConfig:
        if self.bearer_token and self.basic_auth:
            raise ValueError("give bearer_token or basic_auth, not both")
        names = [w.name for w in self.watches]
        if len(names) != len(set(names)):
            raise ValueError("watch names must be unique")
        return self


WatchName = Literal[tuple(WATCH_PACKAGES)]  # type: ignore[valid-type]


def _at_least_10s(every: timedelta) -> timedelta:
    if every < timedelta(seconds=10):
        raise ValueError("an interval of at least 10s is expected")
    return every


class ScheduleConfig(Model):
    """`fleet-alerting serve`: how often each configured watch runs (default every minute), so an
    incident pages at most one interval after `page_after`."""

    every: dict[WatchName, Annotated[Duration, AfterValidator(_at_least_10s)]] = {}
    # Prefect's database: finished runs (with their task runs, logs, artifacts; ~30 KB a run)
    # and events (~130 KB a run) older than these are deleted, so it stays bounded
    # 3 days by default: five watches a minute then keep ~0.65 GB of runs on a small VPS's disk;
    # incidents and their history live in this project's store, not in Prefect's runs
    keep_runs: Annotated[Duration, at_least(timedelta(hours=1)), at_most(timedelta(days=365))] = (
        timedelta(days=3)
    )
    keep_events: Annotated[Duration, at_least(timedelta(hours=1)), at_most(timedelta(days=30))] = (
        timedelta(hours=6)
    )


def _listen_address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("expected HOST:PORT, a port 1-65535 (e.g. 127.0.0.1:9464)")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError("expected an IP address as HOST (127.0.0.1: this machine only)") from None
    return value


class MetricsConfig(Model):
    """`serve` exposes Prometheus metrics at http://LISTEN/metrics (README, "When the alerter
    itself fails"). Absent or `enabled: false`: no endpoint."""

    enabled: bool = True
    listen: Annotated[str, AfterValidator(_listen_address)] = "127.0.0.1:9464"


class HeartbeatConfig(Model):
    """A dead man's switch (Healthchecks.io style): `serve` GETs the URL every `every` while all
    is well, POSTs `URL/fail` with the reason otherwise. The URL holds its token: a secret."""

    url: FileSecret
    every: Annotated[
        PositiveDuration, at_least(timedelta(seconds=1)), at_most(timedelta(hours=1))
    ] = timedelta(minutes=1)


class ReviewConfig(Model):
    """What the what-if report and the quarterly review count as working hours: a page outside
    every window interrupts someone off hours."""

    business_hours: list[ScheduledWindow] = Field(
        default_factory=lambda: ["Mon-Fri 09:00-17:00 UTC"],  # type: ignore[list-item]
        min_length=1,
        max_length=14,
        validate_default=True,
    )


class Config(Model):
    # defaults validated too, so their relative paths are relative to the config file
    state: StateConfig = Field(default_factory=dict, validate_default=True)  # type: ignore[arg-type]
    notify: NotifyConfig = Field(default_factory=dict, validate_default=True)  # type: ignore[arg-type]
    policies: dict[Severity, PolicyConfig] = Field(default_factory=default_policies)
    links: LinksConfig = LinksConfig()
    blackbox: BlackboxConfig = BlackboxConfig()
    alertmanager: AlertmanagerConfig | None = None
    fleet_api: FleetApiConfig | None = None
    operators: OperatorsConfig = OperatorsConfig()
    zigbee: ZigbeeConfig = ZigbeeConfig()
    prometheus: PrometheusConfig = PrometheusConfig()
    # storms (core/storms.py): fleet-level aggregates, Alertmanager-style inhibition and grouping
    fleet: FleetConfig = FleetConfig()
    inhibit_rules: list[InhibitRule] | None = None  # None: the shipped rules; [] turns them off
    grouping: GroupingConfig = GroupingConfig()
    # silences by matchers live in the store; recurring maintenance windows here (core.muting)
    maintenance: MaintenanceConfig = MaintenanceConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    metrics: MetricsConfig | None = None
    heartbeat: HeartbeatConfig | None = None
    review: ReviewConfig = ReviewConfig()
    source_file: Path | None = Field(None, exclude=True)

    def storm_rules(self) -> StormRules:
        return StormRules(self.fleet, self.inhibit_rules, self.grouping)

    @field_validator("policies", mode="before")
    @classmethod
    def _over_severity_defaults(cls, value: object) -> object:
        """`policies: {critical: {page_after: 45s}}` changes that one setting: the rest is the
        critical default (paging PagerDuty), not the generic one (paging nobody)."""
        if not isinstance(value, dict):
            return value
        defaults = default_policies()
        merged = dict(value)
        for severity, given in value.items():
            default = defaults.get(severity) if isinstance(severity, str) else None
            if default is not None and isinstance(given, dict):
                # steps replace the default's notify and page
                replaced = {"notify", "page", "page_after"} if "steps" in given else set()
                merged[severity] = default.model_dump(exclude_unset=True, exclude=replaced) | given
            elif default is not None and given is None:
                merged[severity] = default.model_dump(exclude_unset=True)
        return merged

    def policy(self, severity: Severity) -> PolicyConfig:
        return self.policies.get(severity) or default_policies()[severity]

    def maintenance_rules(self) -> MaintenanceConfig:
        """`maintenance` with the policies' own mute/active time intervals as rules."""
        return self.maintenance.with_policies(self.policies)

    @model_validator(mode="after")
    def _policy_windows_exist(self) -> Config:
        for severity, policy in self.policies.items():
            names = [*policy.mute_time_intervals, *policy.active_time_intervals]
            unknown = self.maintenance.unknown_windows(names)
            if unknown:
                raise ValueError(
                    f"policies.{severity.value}: no window named {unknown[0]!r} in "
                    "maintenance.windows"
                )
        return self

    def channel_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Fail closed: every policy that tells or pages a channel the config does not configure,
        as (key path, message). The loader turns them into config errors, so such a message is
        never silently written to a local file. Nothing to check in a dry run."""
        if self.notify.dry_run:
            return []
        configured = self.notify.configured_channels()
        problems = []
        for severity, policy in (default_policies() | self.policies).items():
            given = "policies" in self.model_fields_set and severity in self.policies
            for key, channel in _named_channels(policy):
                if channel in configured:
                    continue
                where = ("policies", severity.value, *key) if given else ("notify",)
                origin = "policy" if given else "default policy"
                # a config that sends somewhere is live: a dry run would silence all of it
                problems.append(
                    (
                        where,
                        f"{origin} {severity.value!r} names channel {channel!r}, which is not "
                        f"configured: {_how_to_configure(channel)}"
                        f"{_or_leave_out(bool(configured), given, severity.value, key)}",
                    )
                )
        return problems


def _or_leave_out(live: bool, given: bool, severity: str, key: tuple[str | int, ...]) -> str:
    """The other way out of an unconfigured channel: on a config that sends somewhere (live),
    leave the channel out, never a dry run (which would silence what it sends)."""
    if not live:
        return ", or set notify.dry_run: true"
    if key[0] == "mirror":
        return ""  # `mirror: false` is said already
    return (
        ", or remove it from the policy"
        if given
        else f", or set policies.{severity}.{key[0]} without it"
    )


def _named_channels(policy: PolicyConfig) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(key path in the policy, channel) for every channel the policy tells or pages."""
    if policy.steps is None:
        yield from ((("notify",), c) for c in policy.notify)
    if Channel.slack_mirror in policy.channels():
        yield ("mirror",), Channel.slack_mirror
    yield from ((("page",), c) for c in policy.page)
    for i, step in enumerate(policy.steps or []):
        yield from ((("steps", i, "to"), c) for c in step.to)


_HOW_TO_CONFIGURE = {
    Channel.slack: "set notify.slack.webhook or notify.slack.bot_token",
    Channel.slack_mirror: (
        "set notify.slack.mirror_webhook or notify.slack.bot_token, or mirror: false"
    ),
    Channel.pagerduty: "set notify.pagerduty.routing_key",
    Channel.oncall: "set notify.oncall.webhook",
}
_NAMED_SECRET = {Channel.pagerduty: "routing_keys", Channel.oncall: "webhooks"}


def _how_to_configure(channel: str) -> str:
    name, pager = pager_key(channel), pager_of(channel)
    if name is None or pager is None:
        return _HOW_TO_CONFIGURE[channel]
    return f"set notify.{pager}.{_NAMED_SECRET[pager]}.{name}"
