"""Zigbee coordinator decisions: observations + first-seen-open times + now → signals and a row.

Pure: no MQTT, no store, no clock. Each check of each coordinator has its own incident key:
broker (unreachable / auth refused: an MQTT problem), offline, health, permit_join, and one per
topic whose payload was unparseable. A check that could not be made this run (broker down,
coordinator offline) emits nothing, so its incident neither resolves nor counts a failure.

Each failing check says its cause in the `cause` label (auth refused / unreachable, offline / no
retained state, unhealthy / no answer): when the cause of an open incident changes, operators are
told once (`core.policy.cause_changes`). An auto-close is always reported in one message of its own
(`auto_close_report`), whatever the policy's open_after: the window may be closed before the
incident would have opened.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from fleet_alerting.config.schema import ZigbeeCoordinator, ZigbeeWindow
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.incidents import Incident, Kind, Notification, State, over_at_once
from fleet_alerting.core.keys import signal_key
from fleet_alerting.core.matchers import compile_go_regex
from fleet_alerting.core.policy import Evaluation
from fleet_alerting.core.signals import Signal
from fleet_alerting.sources.zigbee.client import (
    INFO,
    STATE,
    CloseResult,
    Observation,
    broker_of,
    close_command,
)

SOURCE = "zigbee"
DEVICE_SOURCE = "zigbee-device"  # per-device availability, one incident per device


@dataclass(frozen=True)
class PermitJoin:
    """Where a coordinator's joining stands against its planned window."""

    open: bool
    open_since: datetime | None = None  # first seen open (kept in the store between runs)
    ends_at: datetime | None = None  # 2.x permit_join_end, or 1.x now + permit_join_timeout
    deadline: datetime | None = None  # latest moment joining may be open
    violation: str | None = None  # why it is past the planned window


def deadline(window: ZigbeeWindow, opened: datetime) -> tuple[datetime, str]:
    """Latest moment joining that opened at `opened` may stay open, and the rule that says so:
    `max_duration` after opening, and no later than the end of the scheduled window it opened in
    (opened outside every scheduled window: at once)."""
    latest, rule = opened + window.max_duration, f"planned {format_duration(window.max_duration)}"
    if window.scheduled:
        spans = [s for w in window.scheduled if (s := w.occurrence(opened))]
        if not spans:
            names = "; ".join(str(w) for w in window.scheduled)
            return opened, f"opened outside the scheduled windows ({names})"
        end = max(span_end for _, span_end in spans)
        if end < latest:
            latest, rule = end, "scheduled window ends " + end.strftime("%a %H:%M %Z")
    return latest, rule


def judge_permit_join(
    obs: Observation, open_since: datetime | None, now: datetime, skew: timedelta
) -> PermitJoin | None:
    """None when it cannot be judged (no readable bridge/info, or the coordinator not online)."""
    info = obs.info
    if info is None or obs.state != "online":
        return None
    if not info.permit_join:
        return PermitJoin(open=False)
    since = open_since or now
    latest, rule = deadline(obs.coordinator.permit_join, since)
    end = info.permit_join_end
    if end is None and info.permit_join_timeout:  # 1.x with a timeout: seconds left
        end = now + timedelta(seconds=info.permit_join_timeout)
    verdict = PermitJoin(True, since, end, latest)
    seen = f"counted from {_clock(since)}, when it was first seen open"
    if end is not None:  # the end is known in advance
        if end > latest + skew:
            over = format_duration(end - latest)
            why = (
                f"joining ends {_clock(end)}, {over} after the latest planned end {_clock(latest)}"
            )
            return replace(verdict, violation=f"{why} ({rule}, {seen})")
    elif now > latest:  # 1.x without a timeout: judge by how long it has been open
        lasted = format_duration(now - since)
        return replace(verdict, violation=f"open for {lasted} since first seen ({rule}, {seen})")
    return verdict


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S %Z")


def key(coordinator: ZigbeeCoordinator, check: str, **extra: str) -> str:
    return signal_key(SOURCE, coordinator=coordinator.name, check=check, **extra)


def _signal(
    c: ZigbeeCoordinator,
    check: str,
    firing: bool,
    summary: str,
    topic: str | None = None,
    evidence: dict[str, object] | None = None,
    cause: str | None = None,
    first_steps: tuple[str, ...] = (),
) -> Signal:
    labels = {"coordinator": c.name, "check": check, "broker": broker_of(c).label}
    labels |= {"topic": topic} if topic else {}
    labels |= {"cause": cause} if cause and firing else {}
    return Signal(
        key=key(c, check, **({"topic": topic} if topic else {})),
        source=SOURCE,
        firing=firing,
        severity=c.severity,
        summary=summary,
        target=f"{c.broker.rstrip('/')} {c.base_topic}",
        runbook_url=c.runbook_url,
        remediation=(*first_steps, *c.remediation) if firing else (),
        labels=labels,
        evidence={k: v for k, v in (evidence or {}).items() if v is not None},
    )


def signals(
    obs: Observation, permit: PermitJoin | None, closed: CloseResult | None = None
) -> list[Signal]:
    c = obs.coordinator
    if obs.broker_error:
        cause = "auth refused" if obs.auth_refused else "unreachable"
        summary = f"{obs.broker_error} — MQTT, not Zigbee ({c.name})"
        return [_signal(c, "broker", True, summary, cause=cause)]
    out = [_signal(c, "broker", False, f"MQTT broker for {c.name} reachable")]
    for topic in (STATE, INFO):
        problem = obs.problems.get(topic)
        summary = f"unparseable {topic} from {c.name}: {problem}" if problem else "readable"
        out.append(_signal(c, "payload", problem is not None, summary, topic=topic))
    if STATE not in obs.problems:
        if obs.state == "online":
            out.append(_signal(c, "offline", False, f"Zigbee coordinator {c.name} is online"))
        else:
            why = "bridge/state offline" if obs.state else "no retained bridge/state"
            summary = f"Zigbee coordinator {c.name} is offline ({why})"
            out.append(_signal(c, "offline", True, summary, cause=why))
    if obs.health is not None and obs.state == "online":
        healthy = obs.health.healthy is True
        how = "healthy" if healthy else f"unhealthy: {obs.health.detail}"
        cause = "no answer" if obs.health.healthy is None else "unhealthy"
        summary = f"Zigbee coordinator {c.name} {how}"
        out.append(_signal(c, "health", not healthy, summary, cause=cause))
    if permit is not None:
        out.append(_permit_signal(obs, permit, closed))
    return out


def _permit_signal(obs: Observation, permit: PermitJoin, closed: CloseResult | None) -> Signal:
    c = obs.coordinator
    if permit.violation is None:
        state = "open within the planned window" if permit.open else "closed"
        return _signal(c, "permit_join", False, f"Permit join on {c.name} {state}")
    if closed is not None and closed.closed:  # told in the auto-close report of its own
        summary = f"Permit join on {c.name} closed automatically: {closed.detail}"
        return _signal(c, "permit_join", False, summary)
    summary = f"Permit join on {c.name} open past the planned window: {permit.violation}"
    if closed is not None:
        summary += " — auto-close: " + closed.detail
    evidence = {
        "permit_join_end": permit.ends_at.isoformat() if permit.ends_at else None,
        "open_since": permit.open_since.isoformat() if permit.open_since else None,
        "zigbee2mqtt": obs.info.version if obs.info else None,
        "auto_close": None if closed is None else ("closed" if closed.closed else "NOT closed"),
    }
    major = obs.info.major if obs.info else 2
    close = (f"Close joining: {close_command(c, major)}",)
    return _signal(c, "permit_join", True, summary, evidence=evidence, first_steps=close)


def row(
    obs: Observation, permit: PermitJoin | None, now: datetime, closed: CloseResult | None = None
) -> dict[str, object]:
    """One line of the run's table artifact."""
    c = obs.coordinator

    def left(moment: datetime | None) -> str:
        if moment is None:
            return ""
        delta = moment - now
        return (
            format_duration(delta)
            if delta >= timedelta(0)
            else "over by " + format_duration(-delta)
        )

    if obs.broker_error:
        state = "MQTT: " + ("auth refused" if obs.auth_refused else "unreachable")
    else:
        state = obs.state or ("unparseable" if STATE in obs.problems else "no retained state")
    if permit is None:
        joining = "unknown"
    elif not permit.open:
        joining = "closed"
    else:
        joining = "OPEN past window" if permit.violation else "open"
        if closed is not None:
            joining += ", closed automatically" if closed.closed else ", auto-close NOT confirmed"
    health = (
        ""
        if obs.health is None
        else {True: "healthy", False: "UNHEALTHY"}.get(obs.health.healthy, "no answer")
    )
    return {
        "coordinator": c.name,
        "broker": c.broker,
        "state": state,
        "health": health,
        "permit_join": joining,
        "joining_ends_in": left(permit.ends_at) if permit else "",
        "window_left": left(permit.deadline) if permit and permit.open else "",
        "devices_not_online": sum(v != "online" for v in obs.availability.values()),
        "problems": "; ".join(f"{t}: {why}" for t, why in obs.problems.items()) or "",
        "error": obs.broker_error or "",
    }


def unseen(
    incidents: Iterable[Incident], coordinators: Iterable[ZigbeeCoordinator]
) -> list[Signal]:
    """Ok-signals for open incidents that no check will speak of again: their coordinator left the
    config, or its health check was turned off."""
    health = {c.name: c.health_check for c in coordinators}
    return [
        replace(i.signal, firing=False, summary=f"{labels.get('check')} check no longer made")
        for i in incidents
        if i.source == SOURCE
        and i.state != State.resolved
        and (
            (labels := i.signal.labels).get("coordinator") not in health
            or (labels.get("check") == "health" and not health[labels["coordinator"]])
        )
    ]


def should_close(obs: Observation, permit: PermitJoin | None) -> bool:
    return bool(obs.coordinator.auto_close and permit is not None and permit.violation)


def device_signals(obs: Observation) -> list[Signal]:
    """One signal per watched device of a coordinator whose topics could be read: online is ok,
    offline, unparseable or (for a listed device) nothing published is a failure."""
    c, spec = obs.coordinator, obs.coordinator.availability
    if spec is None or obs.broker_error:
        return []
    if spec.devices:
        names = list(spec.devices)
    else:
        pattern = compile_go_regex(spec.match)
        names = sorted(d for d in obs.availability if pattern.matches(d))
    out = []
    for device in names:
        state = obs.availability.get(device)
        if state == "online":
            summary = f"Zigbee device {device} on {c.name} is online"
        elif state == "offline":
            summary = f"Zigbee device {device} on {c.name} is offline"
        elif state is None:
            summary = f"Zigbee device {device} on {c.name} publishes no availability"
        else:
            summary = f"Zigbee device {device} on {c.name}: {state} availability"
        out.append(
            Signal(
                key=signal_key(DEVICE_SOURCE, coordinator=c.name, device=device),
                source=DEVICE_SOURCE,
                firing=state != "online",
                severity=spec.severity or c.severity,
                summary=summary,
                target=f"{c.base_topic}/{device}",
                runbook_url=c.runbook_url,
                labels={
                    "coordinator": c.name,
                    "device": device,
                    "check": "availability",
                    "broker": broker_of(c).label,
                },
            )
        )
    return out


def unseen_devices(
    incidents: Iterable[Incident], observations: Iterable[Observation], seen: Iterable[Signal]
) -> list[Signal]:
    """Ok-signals for open device incidents no longer reported by a coordinator that was read
    (a device removed, availability turned off, the coordinator gone from the config); a
    coordinator whose broker is down says nothing about its devices."""
    read = {o.coordinator.name for o in observations if not o.broker_error}
    unread = {o.coordinator.name for o in observations if o.broker_error}
    keys = {s.key for s in seen}
    return [
        replace(i.signal, firing=False, summary=f"{i.signal.target} no longer reported")
        for i in incidents
        if i.source == DEVICE_SOURCE
        and i.state != State.resolved
        and i.key not in keys
        and (
            i.signal.labels.get("coordinator") in read
            or i.signal.labels.get("coordinator") not in unread
        )
    ]


def auto_close_report(
    obs: Observation,
    permit: PermitJoin,
    closed: CloseResult,
    channels: Iterable[str],
    now: datetime,
) -> Evaluation:
    """One message for one auto-close: joining was open past the window, it was closed
    automatically, verified or not. Recorded as an incident that is over at once (like a one-off
    event), so it is told whatever the policy's open_after; its ids name the window and the
    outcome, so a retried close of the same window is told again only if the outcome changed."""
    c = obs.coordinator
    verified = "verified" if closed.closed else "NOT verified"
    outcome = "closed automatically" if closed.closed else "auto-close NOT confirmed"
    summary = (
        f"Permit join on {c.name} was open past the planned window ({permit.violation}) — "
        f"{outcome}: {closed.detail}"
    )
    signal = replace(
        _signal(
            c,
            "auto_close",
            True,
            summary,
            evidence={
                "open_since": permit.open_since.isoformat() if permit.open_since else None,
                "permit_join_end": permit.ends_at.isoformat() if permit.ends_at else None,
                "auto_close": verified,
                "zigbee2mqtt": obs.info.version if obs.info else None,
            },
        ),
        since=permit.open_since,
    )
    onset = permit.open_since or now
    channels = list(channels)
    incident = over_at_once(signal, SOURCE, onset, now, outcome, told=bool(channels))
    window = onset.isoformat()
    notifications = [
        Notification(
            f"{signal.key}|{window}|auto_close|{verified}|{ch}", ch, Kind.opened, now, incident
        )
        for ch in channels
    ]
    return Evaluation([incident], notifications)
