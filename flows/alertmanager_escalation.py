"""Page critical Alertmanager alerts (fleet offline, API down) that persist past the window."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from fleet_alerting.config import Config
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.incidents import Incident
from fleet_alerting.core.policy import PolicyConfig, PolicyFor
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.flows.common import (
    DEFAULT_CONFIG,
    RunFailed,
    Summary,
    count,
    described,
    finish,
    load,
    publish,
    store_errors_fail_the_run,
)
from fleet_alerting.sources.alertmanager.judge import (
    SOURCE,
    alert_key,
    failure_signals,
    gone,
    malformed_signals,
    to_signals,
)
from fleet_alerting.sources.alertmanager.watchdog import retired, sighting, watchdog_signal
from fleet_alerting.tasks.alertmanager import (
    Escalating,
    advance_watchdog_clock,
    fetch_escalating_alerts,
)
from fleet_alerting.tasks.pipeline import deliver_notifications, record_signals
from fleet_alerting.tasks.runtime import watch_flow


def escalation_policies(config: Config) -> PolicyFor:
    """The configured policy per severity, with Alertmanager's own debouncing respected: one
    observation opens, one absence resolves (by default)."""
    am = config.alertmanager
    assert am is not None
    update = {"open_after": am.open_after, "resolve_after": am.resolve_after}

    def policy_for(severity: Severity) -> PolicyConfig:
        return config.policy(severity).model_copy(update=update)

    return policy_for


def watchdog_signals(config: Config, found: Escalating, now: datetime) -> list[Signal]:
    """The dead man's switch: its clock advanced by this run's sighting, and its signal."""
    am = config.alertmanager
    if am is None or am.watchdog is None:
        return []
    answer = found.watchdog
    alerts = None if answer is None else answer.alerts
    seen = sighting(am.watchdog, alerts, answer.malformed if answer else [], now)
    clock = advance_watchdog_clock(config.state, am.watchdog, seen, now)
    signal = watchdog_signal(am.watchdog, seen, clock, now)
    return [] if signal is None else [signal]


@watch_flow("alertmanager-escalation")
@store_errors_fail_the_run
async def alertmanager_escalation(config_path: str = DEFAULT_CONFIG) -> Summary:
    config = load(config_path)
    am = config.alertmanager
    if am is None:
        raise RunFailed(f"{config.source_file}: alertmanager: section missing (url, rules)")
    now = utcnow()
    found = await fetch_escalating_alerts(am)
    matched, failures, malformed = found.matched, found.failures, found.malformed
    signals = to_signals(matched, now, am.url, config.links)
    signals += failure_signals(failures) + malformed_signals(malformed)
    signals += watchdog_signals(config, found, now)
    rules = [rule.name for rule in am.rules]

    def vanish(incidents: Iterable[Incident]) -> list[Signal]:
        incidents = list(incidents)
        return gone(signals, incidents, rules, failures, malformed) + retired(
            incidents, am.watchdog
        )

    evaluation = record_signals(
        config, signals, now, vanish=vanish, policy_for=escalation_policies(config)
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
    counters = {
        "alerts": len(rows),
        "firing": sum(s.firing for s in signals if s.source == SOURCE),
        "rule_problems": len(failures),
        "malformed_alerts": len(malformed),
    }
    troubles = [
        f"{counters['firing']} firing" if counters["firing"] else "",
        count(len(failures), "rule query failure") if failures else "",
        count(len(malformed), "malformed alert") if malformed else "",
    ]
    seen = described(f"{count(len(rows), 'alert')} matched", troubles, "none firing")
    return finish(seen, counters, evaluation, report)
