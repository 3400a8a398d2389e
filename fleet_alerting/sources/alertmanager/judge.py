"""Alertmanager alerts → signals. Pure: the alerts each escalation rule matched.

One signal per alert fingerprint, onset = `startsAt`, so the engine pages once the alert has
persisted past the policy's window however late we first saw it, and the PagerDuty dedup_key
(= incident key) stays the same across runs. Silenced or inhibited alerts are not firing: an open
incident for one resolves, and one that never opened never pages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import orjson

from fleet_alerting.config.schema import EscalationRule
from fleet_alerting.core.batch import no_gc_pauses
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.incidents import Incident
from fleet_alerting.core.keys import key_value, signal_key, stored_key
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.policy import recover_unseen
from fleet_alerting.core.recipes import (
    ALERTMANAGER,
    MAKERS,
    Args,
    alert_remediation,
    alert_runbook,
    alert_target,
    alertmanager_args,
    alertmanager_texts,
)
from fleet_alerting.core.signals import (
    TEXTS_VERSION,
    Severity,
    Signal,
    digest,
    digest_bytes,
)
from fleet_alerting.sources.alertmanager.client import Alert
from fleet_alerting.sources.alertmanager.shapes import FINGERPRINT
from fleet_alerting.sources.records import Malformed, malformed_signal

SOURCE = "alertmanager"
API_SOURCE = f"{SOURCE}-api"  # Alertmanager unreachable or refusing a rule's query
RECORDS_SOURCE = f"{SOURCE}-records"  # alerts not of the documented shape
GONE = "no longer listed by Alertmanager (resolved)"
ANSWERS_AGAIN = "Alertmanager answers again"
READABLE_AGAIN = "no malformed alert of that name in Alertmanager's answer any more"


def alert_key(alert: Alert) -> str:
    """`signal_key(SOURCE, fingerprint=…)`, spelled out: one label needs no sorting."""
    return stored_key(f"{SOURCE}:fingerprint={key_value(alert.fingerprint)}")


def to_signals(
    matched: Sequence[tuple[EscalationRule, Sequence[Alert]]],
    alertmanager_url: str,
    links: LinksConfig,
) -> list[Signal]:
    """The first rule (in config order) that matched an alert decides its severity."""
    signals: dict[str, Signal] = {}
    settings = _settings(links)
    with no_gc_pauses():  # thousands of alerts: see core.batch
        for rule, alerts in matched:
            token = digest(TEXTS_VERSION, rule.name, rule.severity, alertmanager_url, settings)
            for alert in alerts:
                key = alert_key(alert)
                if key not in signals:
                    signals[key] = deferred_signal(
                        alert, rule, alertmanager_url, links, token, key, settings
                    )
    return list(signals.values())


def deferred_signal(
    alert: Alert,
    rule: EscalationRule,
    alertmanager_url: str,
    links: LinksConfig,
    token: str,
    key: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Signal:
    """`to_signal`, its texts (summary, links, evidence...) rendered when read — when its
    incident is told or read — not for every alert every run, and kept by a store as their
    recipe (core.recipes: made from the render's own arguments, when a store asks). Its
    fingerprint is all the texts depend on: the rule and settings (`token`), the alert's labels,
    annotations, state. Its remediation (the annotation's lines) is known without rendering: a
    storm's group compares every member's, and renders only those it lists."""
    labels = alert.labels
    firing = alert.firing
    seen = (token, firing, alert.starts_at, labels, alert.annotations, alert.receivers)
    seen += (alert.generator_url, alert.silenced_by, alert.inhibited_by)
    return Signal.deferred(
        key=key or alert_key(alert),
        source=SOURCE,
        firing=firing,
        severity=rule.severity,
        target=_target(alert),
        labels=labels,
        fingerprint=digest_bytes(orjson.dumps(seen)),
        render=partial(texts, alert, rule.name, alertmanager_url, links, settings),
        runbook_url=alert_runbook(alert.annotations),
        since=alert.starts_at,
        remediation=alert_remediation(alert.annotations),
    )


def _args(alert: Alert, rule: str, alertmanager_url: str, settings: Mapping[str, Any]) -> Args:
    return alertmanager_args(
        rule,
        alertmanager_url,
        settings,
        alert.name,
        alert.annotations,
        alert.firing,
        alert.silenced_by,
        alert.inhibited_by,
        alert.receivers,
        alert.generator_url,
    )


def _recipe(
    alert: Alert,
    rule: str,
    alertmanager_url: str,
    links: LinksConfig,
    settings: Mapping[str, Any] | None = None,
) -> tuple[str, Args]:
    """The recipe of `texts` with these arguments (core.recipes.MAKERS)."""
    return ALERTMANAGER, _args(alert, rule, alertmanager_url, settings or _settings(links))


def _settings(links: LinksConfig) -> dict[str, Any]:
    return links.model_dump(mode="json")


@dataclass(frozen=True)
class RuleFailure:
    """Escalation rules whose query failed the same way (Alertmanager down: every rule)."""

    error: str
    rules: tuple[str, ...]
    permanent: bool  # a 400 for the rule's matchers: the configuration must change

    @property
    def problem(self) -> str:
        return f"Alertmanager rule{'s' if len(self.rules) > 1 else ''} {', '.join(self.rules)}"


def failure_signals(failures: Iterable[RuleFailure]) -> list[Signal]:
    """One warning per distinct failure, naming the rules that could not run."""
    return [
        Signal(
            key=signal_key(API_SOURCE, problem=f.problem),
            source=API_SOURCE,
            firing=True,
            severity=Severity.warning,
            summary=f"{f.problem}: {f.error}",
            target=", ".join(f.rules),
            remediation=(
                ("Fix the rule's matchers in the config (amtool's matcher syntax)",)
                if f.permanent
                else ("Check that Alertmanager is up and reachable from the Prefect worker",)
            ),
            labels={"rules": ",".join(f.rules)},
        )
        for f in failures
    ]


def malformed_signals(malformed: Iterable[Malformed]) -> list[Signal]:
    """One warning per alert of the answer that does not have the documented shape; the
    well-formed alerts beside it are escalated as usual."""
    return [
        malformed_signal(
            RECORDS_SOURCE,
            "alert",
            bad,
            f"Alertmanager listed a malformed alert, {bad.identity}: {bad.why}",
            bad.labels.get("instance") or bad.labels.get("alertname") or bad.identity,
            "The alert cannot be escalated until it is well formed: check what posts it to "
            "Alertmanager, and the alert in the Alertmanager UI",
        )
        for bad in malformed
    ]


def unreadable_keys(malformed: Iterable[Malformed]) -> set[str]:
    """Incident keys of alerts whose fingerprint is known but whose record is malformed: whether
    they still fire is unknown this run."""
    return {
        signal_key(SOURCE, fingerprint=bad.identity.removeprefix(FINGERPRINT))
        for bad in malformed
        if bad.identity.startswith(FINGERPRINT)
    }


def unnamed(malformed: Iterable[Malformed]) -> bool:
    """A malformed alert without a readable fingerprint: it may be any alert's record."""
    return any(not bad.identity.startswith(FINGERPRINT) for bad in malformed)


def restart_doubt(started: datetime | None, answered_at: datetime, grace: timedelta) -> str | None:
    """Why Alertmanager's answer may lack alerts that still fire — it started (by its own
    clock, as is `answered_at`) less than `grace` ago, so Prometheus may not have re-sent them
    yet — or None."""
    if started is None:
        return "its status tells no start time (uptime; `restart_grace: 0s` stops asking)"
    up = answered_at - started
    if up < grace:
        return (
            f"Alertmanager started {format_duration(max(up, timedelta(0)))} ago, less than "
            f"alertmanager.restart_grace ({format_duration(grace, exact=True)}): Prometheus may "
            "not have re-sent its alerts yet"
        )
    return None


def unseen(
    signals: Sequence[Signal],
    incidents: Iterable[Incident],
    rules: Iterable[str],
    failures: Sequence[RuleFailure] = (),
    malformed: Iterable[Malformed] = (),
    absence_doubt: str | None = None,
) -> list[Signal]:
    """Ok-signals for what this run's answers no longer list. Only a complete answer (every rule
    answered) that can vouch for absence (no `absence_doubt`) may resolve an alert's incident or
    a malformed-alert warning; an alert named only by a malformed record stays as it is, and a
    malformed record without a fingerprint keeps every alert's incident as it is (it may be any of
    them). A rule failure resolves only once every rule it names ran (or failed for a reason of
    its own): an outage never resolves a rule's configuration error."""
    incidents = list(incidents)
    configured = set(rules)
    unknown = {r for f in failures if not f.permanent for r in f.rules}
    out = [
        s
        for s in recover_unseen(signals, incidents, API_SOURCE, ANSWERS_AGAIN)
        if not (set((s.labels.get("rules") or "").split(",")) & configured & unknown)
    ]
    if not failures and absence_doubt is None:
        malformed = list(malformed)
        if not unnamed(malformed):
            unreadable = unreadable_keys(malformed)
            out += [
                s
                for s in recover_unseen(signals, incidents, SOURCE, GONE)
                if s.key not in unreadable
            ]
        out += recover_unseen(signals, incidents, RECORDS_SOURCE, READABLE_AGAIN)
    return out


def to_signal(
    alert: Alert, rule: EscalationRule, alertmanager_url: str, links: LinksConfig
) -> Signal:
    return Signal(
        key=alert_key(alert),
        source=SOURCE,
        firing=alert.firing,
        severity=rule.severity,
        target=_target(alert),
        since=alert.starts_at,
        labels=dict(alert.labels),
        **texts(alert, rule.name, alertmanager_url, links),
    )


def texts(
    alert: Alert,
    rule: str,
    alertmanager_url: str,
    links: LinksConfig,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What operators read of the alert's signal (its TEXTS), without building the signal
    (`settings`: the links' as JSON, if at hand)."""
    _name, args = _recipe(alert, rule, alertmanager_url, links, settings)
    return alertmanager_texts(alert.labels, args, links)


MAKERS[texts] = _recipe  # a store keeps an alert's texts as their recipe


def _target(alert: Alert) -> str:
    return alert_target(alert.labels, alert.name)
