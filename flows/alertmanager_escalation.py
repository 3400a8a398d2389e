"""Page critical Alertmanager alerts (fleet offline, API down) that persist past the window."""

from __future__ import annotations

from fleet_alerting.config import Config
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.policy import PolicyConfig, PolicyFor
from fleet_alerting.core.signals import Severity
from fleet_alerting.flows.common import (
    DEFAULT_CONFIG,
    RunFailed,
    finish,
    load,
    publish,
    store_errors_fail_the_run,
    summarize,
)
from fleet_alerting.sources.alertmanager.judge import (
    SOURCE,
    alert_key,
    failure_signals,
    gone,
    malformed_signals,
    to_signals,
)
from fleet_alerting.tasks.alertmanager import fetch_escalating_alerts
from fleet_alerting.tasks.pipeline import deliver_notifications, record_signals
from fleet_alerting.tasks.runtime import run_logger, watch_flow


def escalation_policies(config: Config) -> PolicyFor:
    """The configured policy per severity, with Alertmanager's own debouncing respected: one
    observation opens, one absence resolves (by default)."""
    am = config.alertmanager
    assert am is not None
    update = {"open_after": am.open_after, "resolve_after": am.resolve_after}

    def policy_for(severity: Severity) -> PolicyConfig:
        return config.policy(severity).model_copy(update=update)

    return policy_for


@watch_flow("alertmanager-escalation")
@store_errors_fail_the_run
async def alertmanager_escalation(config_path: str = DEFAULT_CONFIG) -> dict[str, int]:
    config = load(config_path)
    am = config.alertmanager
    if am is None:
        raise RunFailed(f"{config.source_file}: alertmanager: section missing (url, rules)")
    now = utcnow()
    matched, failures, malformed = await fetch_escalating_alerts(am)
    signals = to_signals(matched, now, am.url, config.links)
    signals += failure_signals(failures) + malformed_signals(malformed)
    rules = [rule.name for rule in am.rules]
    evaluation = record_signals(
        config,
        signals,
        now,
        vanish=lambda incidents: gone(signals, incidents, rules, failures, malformed),
        policy_for=escalation_policies(config),
    )
    report = await deliver_notifications(config)
    rows, seen = [], set()
    for rule, alerts in matched:
        for alert in alerts:
            if alert.fingerprint in seen:
                continue
            seen.add(alert.fingerprint)
            rows.append(
                {
                    "key": alert_key(alert),
                    "alert": alert.name,
                    "rule": rule.name,
                    "target": alert.labels.get("instance", ""),
                    "state": alert.state if alert.firing(now) else "not firing",
                    "starts_at": alert.starts_at.isoformat(),
                    "silenced_by": ", ".join(alert.silenced_by),
                    "inhibited_by": ", ".join(alert.inhibited_by),
                }
            )
    await publish("alertmanager-escalation", rows, evaluation, report)
    summary = {
        "alerts": len(rows),
        "firing": sum(s.firing for s in signals if s.source == SOURCE),
        "rule_problems": len(failures),
        "malformed_alerts": len(malformed),
    }
    summary |= summarize(evaluation, report)
    run_logger().info("alertmanager escalation: %s", summary)
    return finish(summary, report)
