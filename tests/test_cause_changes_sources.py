"""The cause-change follow-up (core.policy.cause_changes) as the Prometheus watch runs it tells
a watch error's cause only: a series' own label `cause` is never a reply (review of truth5)."""

from datetime import UTC, datetime, timedelta

from fleet_alerting.config.schema import WatchConfig
from fleet_alerting.core.incidents import Kind
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity
from fleet_alerting.delivery.notifiers.slack_webhook import render
from fleet_alerting.sources.prometheus.judge import Series, WatchOutcome, evaluate_watches
from fleet_alerting.sources.prometheus.watch import cause_changes_told

T0 = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
WATCH = WatchConfig(
    name="UpstreamFailing",
    expr="upstream_failing == 1",
    severity=Severity.warning,
    key_labels=["host"],
    summary="Upstream on {{ $labels.host }} failing",
)
POLICY = PolicyConfig(open_after=1, repeat=None, mirror=False)


def run(outcomes, incidents, now):
    ev = evaluate_watches(outcomes, LinksConfig())
    result = evaluate(ev.signals, incidents, lambda _s: POLICY, now)
    result = cause_changes_told(incidents, result, lambda _s: POLICY, now)  # the watch's `announce`
    incidents.update({i.key: i for i in result.incidents})
    return result.notifications


def test_a_series_label_named_cause_is_not_a_watch_error_cause() -> None:
    """A Prometheus series' own label `cause` (app data, changing with the series) is taken for
    the watch's error cause: each change is a Slack 'cause changed' reply."""
    incidents: dict = {}
    told = []
    for i, c in enumerate(["disk", "net", "disk", "net"]):
        out = WatchOutcome(WATCH, firing=[Series({"host": "a", "cause": c}, 1.0)])
        told += [
            n for n in run([out], incidents, T0 + timedelta(minutes=i)) if n.kind == Kind.reminder
        ]
    assert [n.incident.signal.summary for n in told] == []


def test_cause_change_reply_puts_a_series_label_password_in_slack() -> None:
    """Markup is escaped (&lt;!channel&gt;), but the raw label value, URL password included,
    goes into the 'cause changed' reply; the opening message did not show that label at all."""
    incidents: dict = {}
    texts = []
    for i, c in enumerate(["<!channel> http://u:hunter2@x/", "<!here>"]):
        out = WatchOutcome(WATCH, firing=[Series({"host": "a", "cause": c}, 1.0)])
        for n in run([out], incidents, T0 + timedelta(minutes=i)):
            texts.append(str(render(n)))
    joined = "\n".join(texts)
    assert "hunter2" not in joined


OTHER = WatchConfig(
    name="AgentStale",
    expr="time() - role_agent_last_run_timestamp > 900",
    severity=Severity.warning,
    summary="stale",
)


def test_cause_changes_bypass_grouping_and_the_per_run_message_bound() -> None:
    """As tasks.pipeline runs it: storms.decide (grouping, max_messages_per_run) then `announce`.
    100 series of one watch open as one group message; when their `cause` label changes, every
    member gets its own Slack reply in the same run: 100 messages, past the bound decide keeps."""
    from fleet_alerting.core.storms import StormRules, decide

    rules = StormRules()
    incidents: dict = {}
    counts = []
    for i, c in enumerate(["disk", "net"]):
        series = [Series({"host": f"h{k}", "cause": c}, 1.0) for k in range(100)]
        ev = evaluate_watches([WatchOutcome(WATCH, firing=series)], LinksConfig())
        now = T0 + timedelta(minutes=i)
        result = decide(ev.signals, incidents, lambda _s: POLICY, rules, now)
        result = cause_changes_told(incidents, result, lambda _s: POLICY, now)
        incidents.update({inc.key: inc for inc in result.incidents})
        counts.append(len([n for n in result.notifications if n.channel.startswith("slack")]))
    limit = rules.grouping.max_messages_per_run
    assert counts[1] <= limit, f"Slack messages per run {counts} (bound {limit})"


OTHER = WatchConfig(
    name="AgentStale",
    expr="time() - role_agent_last_run_timestamp > 900",
    severity=Severity.warning,
    summary="stale",
)


def test_one_outage_met_as_a_timeout_by_one_watch_and_a_503_by_another_is_one_warning() -> None:
    """One outage met as a timeout by one watch and a 503 by another, then the other way round,
    is one warning: no new incident opens and nothing is told while it lasts (watch errors
    were grouped and keyed by their words)."""
    incidents: dict = {}
    faces = {
        "503": "Prometheus answered HTTP 503",
        "timeout": "Prometheus timed out at http://prom/api/v1/query (ReadTimeout)",
    }
    runs = [("503", "503"), ("timeout", "503"), ("503", "timeout"), ("503", "503")]
    told = []
    for i, (fa, fb) in enumerate(runs):
        outs = [
            WatchOutcome(w, error=faces[f], cause="not answering")
            for w, f in ((WATCH, fa), (OTHER, fb))
        ]
        sent = run(outs, incidents, T0 + timedelta(minutes=i))
        if i:
            told += [f"{n.kind}:{n.incident.key}" for n in sent]
    assert told == []
