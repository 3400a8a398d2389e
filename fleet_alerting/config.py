"""The YAML configuration, validated once at load.

Errors name the file, the line, the key path and what was expected, and never echo the value
(an inline secret must not reach a terminal or a log). Relative paths are relative to the config
file's folder, so a config and its secrets/ and targets move together.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from fleet_alerting.secrets import SecretRef
from fleet_alerting.windows import ScheduledWindow


class Severity(StrEnum):
    critical = "critical"
    warning = "warning"
    info = "info"


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$")


def parse_duration(value: object) -> object:
    """'90s', '5m', '1h30m', '2d' or a number of seconds → timedelta."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match and value.strip():
            days, hours, minutes, seconds, millis = match.groups()
            return timedelta(
                days=int(days or 0),
                hours=int(hours or 0),
                minutes=int(minutes or 0),
                seconds=float(seconds or 0),
                milliseconds=int(millis or 0),
            )
        raise ValueError("expected a duration such as 30s, 5m, 1h30m or a number of seconds")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _relative_to_config(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    return path if path.is_absolute() or base is None else Path(base) / path


ConfigPath = Annotated[Path, AfterValidator(_relative_to_config)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSecret(SecretRef):
    """SecretRef whose file path is relative to the config file."""

    file: ConfigPath | None = None


class PolicyConfig(Model):
    """What happens to an incident of one severity."""

    open_after: int = Field(2, ge=1, description="consecutive failures that open an incident")
    resolve_after: int = Field(2, ge=1, description="consecutive successes that resolve it")
    notify: list[Literal["slack"]] = ["slack"]
    page: list[Literal["pagerduty", "oncall"]] = []
    page_after: Duration = timedelta(minutes=5)
    repeat: Duration | None = None
    mirror: bool = False


def default_policies() -> dict[Severity, PolicyConfig]:
    return {
        Severity.critical: PolicyConfig(
            page=["pagerduty"], repeat=timedelta(minutes=30), mirror=True
        ),
        Severity.warning: PolicyConfig(),
        Severity.info: PolicyConfig(notify=[]),
    }


class SlackConfig(Model):
    webhook: FileSecret | None = None
    channel: str = "#operations"
    mirror_webhook: FileSecret | None = None
    mirror_channel: str = "#operations-mirror"
    timeout: Duration = timedelta(seconds=10)
    # With a bot token (chat:write), incidents get a thread: first message via chat.postMessage,
    # later updates and the Fleet API event snapshot as replies. `channel`/`mirror_channel` are
    # then channel names or ids the bot is a member of.
    bot_token: FileSecret | None = None
    api_url: str = "https://slack.com/api"
    min_interval: Duration = timedelta(seconds=1)  # Slack allows ~1 message/s per channel


class PagerDutyConfig(Model):
    routing_key: FileSecret
    url: str = "https://events.pagerduty.com/v2/enqueue"
    timeout: Duration = timedelta(seconds=10)


class OnCallConfig(Model):
    """Grafana OnCall "Formatted Webhook" integration; its URL embeds a token, so it is a secret."""

    webhook: FileSecret
    timeout: Duration = timedelta(seconds=10)


class NotifyConfig(Model):
    outbox_file: ConfigPath = Path("state/outbox.jsonl")
    slack: SlackConfig | None = None
    pagerduty: PagerDutyConfig | None = None
    oncall: OnCallConfig | None = None
    attempts_per_run: int = Field(3, ge=1)
    give_up_after: Duration = timedelta(hours=24)


class StateConfig(Model):
    path: ConfigPath = Path("state/fleet-alerting.sqlite")


class LinksConfig(Model):
    """Where operators click through to: Grafana Explore (Loki) and Prometheus graphs."""

    grafana_url: str | None = None
    loki_datasource_uid: str = "loki"
    prometheus_url: str | None = None


class HttpTarget(Model):
    name: str
    url: str = Field(pattern=r"^https?://")
    severity: Severity = Severity.warning
    expected_status: list[int] = [200]
    module: str = "http_2xx"
    runbook_url: str | None = None
    remediation: list[str] = []
    labels: dict[str, str] = {}


class FileSdTargets(Model):
    """Targets from Prometheus file_sd JSON files (`[{targets: [host:port], labels: {}}]`)."""

    files: list[str]
    path: str = "/healthz"
    scheme: Literal["http", "https"] = "http"
    severity: Severity = Severity.warning
    expected_status: list[int] = [200]
    module: str = "http_2xx"
    runbook_url: str | None = None
    remediation: list[str] = []


class BlackboxConfig(Model):
    mode: Literal["direct", "exporter"] = "direct"
    exporter_url: str | None = None
    concurrency: int = Field(100, ge=1, le=1000)
    timeout: Duration = timedelta(seconds=5)
    targets: list[HttpTarget] = []
    file_sd: list[FileSdTargets] = []


_MATCHER = re.compile(r'^\s*[A-Za-z_]\w*\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|[^"\s]*)\s*$')


def _check_matcher(value: str) -> str:
    if not _MATCHER.match(value):
        raise ValueError('expected an Alertmanager matcher such as severity="critical"')
    return value


Matcher = Annotated[str, AfterValidator(_check_matcher)]


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


class AlertmanagerConfig(Model):
    url: str = Field(pattern=r"^https?://")
    timeout: Duration = timedelta(seconds=10)
    rules: list[EscalationRule] = Field(default_factory=default_escalation_rules)
    # Alertmanager already debounces (`for:`), so one observation opens and one absence resolves.
    open_after: int = Field(1, ge=1)
    resolve_after: int = Field(1, ge=1)


class FleetApiConfig(Model):
    """The Fleet API (behind Caddy, which strips /api): events feed and incident snapshots."""

    url: str = Field(pattern=r"^https?://")
    token: FileSecret | None = None
    timeout: Duration = timedelta(seconds=10)
    limit: int = Field(200, ge=1, le=200)
    alert_types: list[str] = ["command.failed", "audio.upload"]
    alert_severity: Literal["info", "warn", "error"] = "error"
    log_labels: dict[str, str] = {"service": "fleet-api"}
    snapshot_minutes: int = Field(15, ge=1)
    snapshot_max_events: int = Field(20, ge=1, le=40)
    lookback: Duration = timedelta(minutes=30)  # late events within this window still count


class SlackAppConfig(Model):
    """`/fleet` slash commands. `run` is allowed only for the listed Slack user or channel ids."""

    signing_secret: FileSecret
    host: str = "127.0.0.1"
    port: int = 3000
    allowed_users: list[str] = []
    allowed_channels: list[str] = []
    answer_within: Duration = timedelta(seconds=2.5)  # Slack gives up after 3 s


class McpConfig(Model):
    """The MCP server. Over HTTP it requires its own bearer token (never the Fleet API's)."""

    token: FileSecret | None = None
    host: str = "127.0.0.1"
    port: int = 8765


class OperatorsConfig(Model):
    slack_app: SlackAppConfig | None = None
    mcp: McpConfig = McpConfig()


class ZigbeeWindow(Model):
    """When pairing may be open: at most `max_duration` at a time and, if `scheduled` is given,
    only inside one of those windows, e.g. "Tue 10:00-10:15 Europe/Zagreb"."""

    max_duration: Duration = timedelta(seconds=60)
    scheduled: list[ScheduledWindow] = []


class ZigbeeCoordinator(Model):
    """One Zigbee2MQTT instance, watched over its MQTT broker."""

    name: str = Field(min_length=1)
    broker: str = Field("mqtt://127.0.0.1:1883", pattern=r"^mqtts?://[^/:]+(:\d+)?/?$")
    username: str | None = None
    password: FileSecret | None = None
    tls: bool = False  # also implied by an mqtts:// broker URL
    ca_file: ConfigPath | None = None
    base_topic: str = Field("zigbee2mqtt", min_length=1, pattern=r"^[^#+]+$")
    severity: Severity = Severity.warning
    permit_join: ZigbeeWindow = ZigbeeWindow()
    health_check: bool = False
    auto_close: bool = False
    runbook_url: str | None = None
    remediation: list[str] = []


class ZigbeeConfig(Model):
    timeout: Duration = timedelta(seconds=5)  # connect, retained read, health check, read-back
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
    from fleet_alerting.watches import check_template  # the grammar lives beside the renderer

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
    runbook_url: str | None = None
    remediation: list[Template] = []
    absent_remediation: list[str] = []
    logs: dict[str, Template] = {}  # LogQL stream selector, e.g. {service: role-agent, host: ...}
    logs_line_filter: Template | None = None  # `|= "..."` after the selector
    enabled: bool = True

    @model_validator(mode="after")
    def _absent_needs_metric(self) -> WatchConfig:
        if self.absent_is is not None and not self.metric:
            raise ValueError("absent_is needs `metric`: the series whose absence is the signal")
        return self


class PrometheusConfig(Model):
    """PromQL watches over the HTTP API. The shipped watches (role agents, device failures,
    circuit breakers) are on unless `default_watches: false`; a watch in `watches` with the same
    name replaces the shipped one."""

    url: str | None = Field(None, pattern=r"^https?://")
    bearer_token: FileSecret | None = None
    basic_auth: BasicAuth | None = None
    timeout: Duration = timedelta(seconds=10)
    default_watches: bool = True
    role_agent_stale_after: Duration = timedelta(minutes=15)
    device_failures_threshold: float = Field(5, ge=0)
    device_failures_window: Duration = timedelta(minutes=5)
    watches: list[WatchConfig] = []

    @model_validator(mode="after")
    def _one_auth(self) -> PrometheusConfig:
        if self.bearer_token and self.basic_auth:
            raise ValueError("give bearer_token or basic_auth, not both")
        names = [w.name for w in self.watches]
        if len(names) != len(set(names)):
            raise ValueError("watch names must be unique")
        return self


class Config(Model):
    state: StateConfig = StateConfig()
    notify: NotifyConfig = NotifyConfig()
    policies: dict[Severity, PolicyConfig] = Field(default_factory=default_policies)
    links: LinksConfig = LinksConfig()
    blackbox: BlackboxConfig = BlackboxConfig()
    alertmanager: AlertmanagerConfig | None = None
    fleet_api: FleetApiConfig | None = None
    operators: OperatorsConfig = OperatorsConfig()
    zigbee: ZigbeeConfig = ZigbeeConfig()
    prometheus: PrometheusConfig = PrometheusConfig()
    source_file: Path | None = Field(None, exclude=True)

    def policy(self, severity: Severity) -> PolicyConfig:
        return self.policies.get(severity) or default_policies()[severity]


class ConfigError(Exception):
    """Every problem of one config file, one per line: `file:line: key.path: what was expected`."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__("\n".join(problems))


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(path, [f"{path}: cannot read config: {exc.strerror}"]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(path, [f"{where}: malformed YAML: {problem}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, [f"{path}:1: expected a mapping of sections at the top level"])
    try:
        config = Config.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise ConfigError(path, [_describe(path, node, err) for err in exc.errors()]) from None
    return config.model_copy(update={"source_file": path})


def _describe(path: Path, root: yaml.Node | None, error: Any) -> str:
    loc = [part for part in error["loc"] if not _is_pydantic_branch(part)]
    key_path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    line = _line_of(root, loc)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    return f"{path}:{line}: {key_path or '(top level)'}: {message}"


def _is_pydantic_branch(part: object) -> bool:
    # Unions add loc entries such as 'function-after[...]' or 'FileSecret'; they are not keys.
    return isinstance(part, str) and (
        "[" in part or part in {"FileSecret", "SecretRef", "timedelta", "none"}
    )


def _line_of(node: yaml.Node | None, loc: list[Any]) -> int:
    """Line (1-based) of the deepest YAML node along the key path."""
    line = node.start_mark.line + 1 if node else 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
            if child is None:  # unknown key: point at the key itself
                child = next((k for k, _ in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line
