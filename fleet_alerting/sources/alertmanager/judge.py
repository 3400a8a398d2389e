"""Alertmanager alerts → signals. Pure: the alerts each escalation rule matched, and `now`.

One signal per alert fingerprint, onset = `startsAt`, so the engine pages once the alert has
persisted past the policy's window however late we first saw it, and the PagerDuty dedup_key
(= incident key) stays the same across runs. Silenced or inhibited alerts are not firing: an open
incident for one resolves, and one that never opened never pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote

from fleet_alerting.config.schema import EscalationRule
from fleet_alerting.core.keys import signal_key
from fleet_alerting.core.links import LinksConfig, logql_selector, logs_link
from fleet_alerting.core.signals import Link, Signal
from fleet_alerting.sources.alertmanager.client import Alert

SOURCE = "alertmanager"


def alert_key(alert: Alert) -> str:
    return signal_key(SOURCE, fingerprint=alert.fingerprint)


def to_signals(
    matched: Sequence[tuple[EscalationRule, Sequence[Alert]]],
    now: datetime,
    alertmanager_url: str,
    links: LinksConfig,
) -> list[Signal]:
    """The first rule (in config order) that matched an alert decides its severity."""
    signals: dict[str, Signal] = {}
    for rule, alerts in matched:
        for alert in alerts:
            key = alert_key(alert)
            if key not in signals:
                signals[key] = to_signal(alert, rule, now, alertmanager_url, links)
    return list(signals.values())


def to_signal(
    alert: Alert, rule: EscalationRule, now: datetime, alertmanager_url: str, links: LinksConfig
) -> Signal:
    labels, notes = alert.labels, alert.annotations
    target = labels.get("instance") or labels.get("job") or alert.name
    summary = notes.get("summary") or f"{alert.name} on {target}"
    firing = alert.firing(now)
    if not firing:
        summary = _why_not_firing(alert, now)
    evidence: dict[str, object] = {"alertname": alert.name, "rule": rule.name}
    if alert.receivers:
        evidence["receivers"] = ", ".join(alert.receivers)
    if notes.get("description"):
        evidence["description"] = notes["description"][:500]
    alert_links = [Link("Alertmanager", _alertmanager_link(alertmanager_url, alert))]
    if alert.generator_url:
        alert_links.append(Link("Source", alert.generator_url))
    host = labels.get("host") or labels.get("instance", "").split(":")[0]
    if host:
        logs = logs_link(links, logql_selector(host=host), f"Logs of {host}")
        if logs:
            alert_links.append(logs)
    return Signal(
        key=alert_key(alert),
        source=SOURCE,
        firing=firing,
        severity=rule.severity,
        summary=summary,
        target=target,
        since=alert.starts_at,
        runbook_url=notes.get("runbook_url") or notes.get("runbook") or None,
        remediation=tuple(
            line.strip() for line in notes.get("remediation", "").splitlines() if line.strip()
        ),
        links=tuple(alert_links),
        labels=dict(labels),
        evidence=evidence,
    )


def _why_not_firing(alert: Alert, now: datetime) -> str:
    if alert.silenced_by:
        return f"{alert.name} silenced in Alertmanager ({', '.join(alert.silenced_by)})"
    if alert.inhibited_by:
        return f"{alert.name} inhibited in Alertmanager"
    return f"{alert.name} resolved in Alertmanager"


def _alertmanager_link(url: str, alert: Alert) -> str:
    matchers = ",".join(f'{k}="{v}"' for k, v in sorted(alert.labels.items()))
    query = quote("{" + matchers + "}")
    return f"{url.rstrip('/')}/#/alerts?silenced=true&inhibited=true&filter={query}"
