"""The dead man's switch, pure: is the always-firing alert still listed by Alertmanager?

Prometheus fires the Watchdog rule (`expr: vector(1)`) forever and resends it to Alertmanager;
when Alertmanager has not listed it for `missing_after`, something between them is broken
(Prometheus down, the rule not loaded, Alertmanager unreachable from Prometheus): a critical
incident of its own. The clock, kept in the store between runs, counts from the last sighting,
or (never seen, or after a run that got no answer) from the first answered run that looked: an
Alertmanager that does not answer is already its own warning, and it is not counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from fleet_alerting.config.schema import WatchdogConfig
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.incidents import Incident, State
from fleet_alerting.core.keys import signal_key
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.sources.alertmanager.client import Alert
from fleet_alerting.sources.records import Malformed

SOURCE = "alertmanager-watchdog"
SEEN_AGAIN = "Alertmanager lists the always-firing alert again: the alerting pipeline works"
NOT_CONFIGURED = "this watchdog is no longer configured"
REMEDIATION = (
    "Check that Prometheus is up and evaluating rules (its /-/ready and /rules pages)",
    "Check that the always-firing rule is loaded: an alerting rule with `alert: {name}` and "
    "`expr: vector(1)` in Prometheus' /rules page, without errors",
    "Check that Prometheus reaches Alertmanager: Prometheus' /status page lists it, and "
    "prometheus_notifications_errors_total is not growing",
    "Check that Alertmanager is up and lists the alert: amtool alert query alertname={name}",
)


def watchdog_key(config: WatchdogConfig) -> str:
    return signal_key(SOURCE, alertname=config.alertname)


def matchers(config: WatchdogConfig) -> list[str]:
    return [f'alertname="{config.alertname}"']  # the schema allows a metric name only


def sighting(
    config: WatchdogConfig,
    alerts: Sequence[Alert] | None,
    malformed: Sequence[Malformed],
) -> bool | None:
    """True: listed; False: not listed; None: unknown (no answer, or a malformed record that may
    be it). Its endsAt is not compared with our clock: Alertmanager lists no alert whose endsAt
    passed by its clock, and ours may run ahead of it."""
    if alerts is None:
        return None
    if any(a.labels.get("alertname") == config.alertname for a in alerts):
        return True
    return None if malformed else False


@dataclass(frozen=True)
class WatchdogClock:
    """What the store keeps between runs."""

    last_seen: datetime | None = None
    looking_since: datetime | None = None  # the first answered run since the last unanswered one

    @classmethod
    def load(cls, value: Any) -> WatchdogClock:
        """From the store's JSON; anything unreadable is a clock that starts now."""
        if not isinstance(value, dict):
            return cls()
        return cls(_moment(value.get("last_seen")), _moment(value.get("looking_since")))

    def dump(self) -> dict[str, str | None]:
        return {
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "looking_since": self.looking_since.isoformat() if self.looking_since else None,
        }

    def after(self, seen: bool | None, now: datetime) -> WatchdogClock:
        if seen is None:
            return replace(self, looking_since=None)
        return WatchdogClock(now if seen else self.last_seen, self.looking_since or now)

    def missing_since(self, now: datetime) -> datetime:
        known = [m for m in (self.last_seen, self.looking_since) if m is not None]
        return max(known) if known else now


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def watchdog_signal(
    config: WatchdogConfig, seen: bool | None, clock: WatchdogClock, now: datetime
) -> Signal | None:
    """Firing once the alert is missing for `missing_after` (onset: since when it is missing),
    ok when it is listed; None (the incident keeps its state) while it is unknown or missing for
    less. `clock` is the one after this run's sighting."""
    if seen is None:
        return None
    name, key = config.alertname, watchdog_key(config)
    common = {"key": key, "source": SOURCE, "severity": Severity.critical, "target": name}
    if seen:
        return Signal(firing=False, summary=SEEN_AGAIN, **common)
    since = clock.missing_since(now)
    if now - since < config.missing_after:
        return None
    last = f"last listed {_when(clock.last_seen)}" if clock.last_seen else "never listed"
    looked = f"looked for since {_when(clock.looking_since or since)}"
    return Signal(
        firing=True,
        summary=(
            f"Alerting pipeline broken: Alertmanager does not list the always-firing alert "
            f"{name} ({last}; {looked})"
        ),
        since=since,
        remediation=tuple(step.format(name=name) for step in REMEDIATION),
        labels={"alertname": name},
        evidence={"missing_after": format_duration(config.missing_after, exact=True)},
        **common,
    )


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z") if moment else "never"


def unseen(incidents: Iterable[Incident], config: WatchdogConfig | None) -> list[Signal]:
    """Ok-signals for open watchdog incidents of an alertname no longer configured."""
    current = watchdog_key(config) if config is not None else None
    return [
        replace(i.signal, firing=False, summary=NOT_CONFIGURED)
        for i in incidents
        if i.source == SOURCE and i.state != State.resolved and i.key != current
    ]
