"""The engine: signals + current incidents + policies + now → changed incidents + notifications.

Pure: no I/O, no clock, no Prefect. Everything a source, a store or a notifier needs to know about
*whether* to tell someone is decided here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field

from fleet_alerting.core import actions
from fleet_alerting.core.incidents import (
    OPEN_STATES,
    Brief,
    Incident,
    Kind,
    Notification,
    Records,
    State,
)
from fleet_alerting.core.model import Duration, Model, PositiveDuration
from fleet_alerting.core.signals import Severity, Signal, fingerprint_of


class PolicyConfig(Model):
    """What happens to an incident of one severity."""

    open_after: int = Field(2, ge=1, description="consecutive failures that open an incident")
    resolve_after: int = Field(2, ge=1, description="consecutive successes that resolve it")
    notify: list[Literal["slack"]] = ["slack"]
    page: list[Literal["pagerduty", "oncall"]] = []
    page_after: Duration = timedelta(minutes=5)
    repeat: PositiveDuration | None = None  # 0 would remind on every run
    mirror: bool = False
    # an acknowledge before the page holds it this long (None: for the rest of the episode)
    ack_holds_page: Duration | None = None
    # maintenance windows (the config's `maintenance.windows`) muting this severity: inside
    # any of `mute_time_intervals`, outside all of `active_time_intervals` (core.muting)
    mute_time_intervals: list[str] = Field(default=[], max_length=20)
    active_time_intervals: list[str] = Field(default=[], max_length=20)

    def channels(self) -> list[str]:
        """Who is told of an incident of this severity: `notify`, plus the mirror of Slack."""
        return [*self.notify, *(["slack_mirror"] if self.mirror and "slack" in self.notify else [])]


def default_policies() -> dict[Severity, PolicyConfig]:
    return {
        Severity.critical: PolicyConfig(
            page=["pagerduty"], repeat=timedelta(minutes=30), mirror=True
        ),
        Severity.warning: PolicyConfig(),
        Severity.info: PolicyConfig(notify=[]),
    }


PolicyFor = Callable[[Severity], PolicyConfig]


@dataclass(frozen=True)
class Evaluation:
    incidents: list[Incident]  # new or changed, to be stored (an unchanged failure is not listed)
    notifications: list[Notification]  # to be queued in the same transaction


def evaluate(
    signals: Iterable[Signal],
    incidents: Mapping[str, Incident],
    policy_for: PolicyFor,
    now: datetime,
) -> Evaluation:
    changed: list[Incident] = []
    notifications: list[Notification] = []
    policy_for = _per_severity(policy_for)
    latest = _last_per_key(signals)
    if isinstance(incidents, Records):  # what stays as it is is never read in full
        latest = [s for s in latest if not _steady(incidents.brief(s.key), s, policy_for, now)]
        incidents.preload([s.key for s in latest])
    for signal in latest:
        current = incidents.get(signal.key)
        if signal.firing:
            updated, sent = _on_failure(current, signal, policy_for(signal.severity), now)
        elif current is not None and current.state != State.resolved:
            updated, sent = _on_success(current, signal, policy_for(current.severity), now)
        else:
            continue
        if updated is current:
            continue
        changed.append(updated)
        notifications.extend(sent)
    return Evaluation(changed, notifications)


def vanished(
    signals: Iterable[Signal], incidents: Iterable[Incident], source: str, why: str
) -> list[Signal]:
    """Ok-signals for this source's unresolved incidents that the latest observation no longer
    mentions (a host gone from a query result), so they resolve by hysteresis like any recovery."""
    seen = {s.key for s in signals}
    return [
        replace(i.signal, firing=False, summary=why)
        for i in incidents
        if i.source == source and i.state != State.resolved and i.key not in seen
    ]


def _per_severity(policy_for: PolicyFor) -> PolicyFor:
    """`policy_for`, asked once per severity (Config.policy builds the defaults on each call,
    and a fleet-wide failure asks for every one of thousands of signals)."""
    known: dict[Severity, PolicyConfig] = {}

    def policy(severity: Severity) -> PolicyConfig:
        found = known.get(severity)
        if found is None:
            found = known[severity] = policy_for(severity)
        return found

    return policy


def _last_per_key(signals: Iterable[Signal]) -> list[Signal]:
    return list({s.key: s for s in signals}.values())


_OPEN = {state.value for state in OPEN_STATES}


def _steady(brief: Brief | None, signal: Signal, policy_for: PolicyFor, now: datetime) -> bool:
    """`_unchanged` on the stored brief alone, erring towards "look closer": an open failure
    observed again the same, with nothing due (operators' acts are left to the full check)."""
    if brief is None or not signal.firing or brief.state not in _OPEN or brief.acted:
        return False
    policy = policy_for(signal.severity)
    return (
        brief.successes == 0
        and brief.failures >= policy.open_after
        and brief.fingerprint == fingerprint_of(signal)
        and not (
            policy.page and brief.state == State.firing and now - brief.onset >= policy.page_after
        )
        and not (
            policy.repeat is not None
            and brief.notified_at is not None
            and now - brief.notified_at >= policy.repeat
        )
    )


def _on_failure(
    current: Incident | None, signal: Signal, policy: PolicyConfig, now: datetime
) -> tuple[Incident, list[Notification]]:
    if current is not None and _unchanged(current, signal, policy, now):
        return current, []  # the same failure observed again: nothing to store, nobody to tell
    signal = signal.rendered()  # it is stored, and may be told
    if current is None or current.state == State.resolved:
        incident = Incident(
            key=signal.key,
            source=signal.source,
            severity=signal.severity,
            state=State.pending,
            onset=signal.since or now,
            changed_at=now,
            signal=signal,
            consecutive_failures=1,
        )
    else:
        incident = replace(
            current,
            severity=signal.severity,
            changed_at=now,
            signal=signal,
            # counted only up to what opening needs, so a steady failure leaves the record alone
            consecutive_failures=min(current.consecutive_failures + 1, policy.open_after),
            consecutive_successes=0,
            recovered_at=None,
        )
    sent: list[Notification] = []
    if incident.state == State.pending and incident.consecutive_failures >= policy.open_after:
        incident = replace(incident, state=State.firing, opened_at=now)
        incident, sent = _tell(incident, policy, Kind.opened, now, sent)
    if not incident.is_open:
        return incident, sent
    incident, expired = actions.expire(incident, policy.channels(), now)
    sent += expired
    if _page_due(incident, policy, now):
        incident = replace(incident, state=State.paged, paged_at=now, paged_via=tuple(policy.page))
        sent += [_notification(incident, pager, Kind.paged, now) for pager in policy.page]
        incident, sent = _tell(incident, policy, Kind.paged, now, sent)
    elif _reminder_due(incident, policy, now):
        incident = replace(incident, reminders=incident.reminders + 1)
        incident, sent = _tell(incident, policy, Kind.reminder, now, sent)
    return incident, sent


def _unchanged(current: Incident, signal: Signal, policy: PolicyConfig, now: datetime) -> bool:
    return (
        current.is_open
        and current.consecutive_successes == 0
        and current.consecutive_failures >= policy.open_after
        and not _page_due(current, policy, now)
        and not _reminder_due(current, policy, now)
        and not actions.expiry_due(current, now)
        and fingerprint_of(current.signal) == fingerprint_of(signal)  # the costliest test last
    )


def _page_due(incident: Incident, policy: PolicyConfig, now: datetime) -> bool:
    return (
        bool(policy.page)
        and incident.state == State.firing
        and now - incident.onset >= policy.page_after
        and not actions.holds_page(incident, policy.ack_holds_page, now)
    )


def _reminder_due(incident: Incident, policy: PolicyConfig, now: datetime) -> bool:
    return (
        policy.repeat is not None
        and incident.last_notified_at is not None
        and now - incident.last_notified_at >= policy.repeat
        and not actions.holds_reminder(incident, now)
    )


def _on_success(
    current: Incident, signal: Signal, policy: PolicyConfig, now: datetime
) -> tuple[Incident, list[Notification]]:
    if current.state == State.pending:  # never opened: clear quietly (a flap)
        return replace(
            current, state=State.resolved, resolved_at=now, changed_at=now, recovered_at=now
        ), []
    incident = replace(
        current,
        changed_at=now,
        consecutive_failures=0,
        consecutive_successes=current.consecutive_successes + 1,
        # the failure ended at the first passing check, not at the resolve_after-th
        recovered_at=current.recovered_at if current.consecutive_successes else now,
    )
    if incident.consecutive_successes < policy.resolve_after:
        return incident, []
    incident = replace(
        incident,
        state=State.resolved,
        resolved_at=now,
        resolution=signal.summary,
        recovery=signal.rendered(),
    )
    sent = [_notification(incident, pager, Kind.resolved, now) for pager in current.paged_via]
    return _tell(incident, policy, Kind.resolved, now, sent)


def _tell(
    incident: Incident,
    policy: PolicyConfig,
    kind: Kind,
    now: datetime,
    sent: list[Notification],
) -> tuple[Incident, list[Notification]]:
    channels = policy.channels()
    muted = actions.silenced_at(incident, now) and not actions.closes(incident, kind)
    if not channels or muted:  # muted: recorded, told to nobody
        return incident, sent
    incident = replace(incident, last_notified_at=now)
    return incident, sent + [_notification(incident, c, kind, now) for c in channels]


def _notification(incident: Incident, channel: str, kind: Kind, now: datetime) -> Notification:
    """Its id names the episode as well as the onset: a re-opened incident with the onset of an
    earlier one is told (and paged) again, while replaying one evaluation queues nothing twice."""
    seq = incident.reminders if kind == Kind.reminder else 0
    ident = f"{incident.key}|{incident.onset.isoformat()}|{incident.episode}|{kind}|{seq}|{channel}"
    return Notification(id=ident, channel=channel, kind=kind, at=now, incident=incident)


def notify_channels(
    incident: Incident,
    policy: PolicyConfig,
    kind: Kind,
    now: datetime,
    channels: Iterable[str] | None = None,
) -> list[Notification]:
    """Messages of `kind` about `incident` to `channels` (default: the policy's), for the passes
    around `evaluate` (inhibition, grouping) that decide to tell someone later or differently."""
    chosen = policy.channels() if channels is None else channels
    return [_notification(incident, channel, kind, now) for channel in chosen]
