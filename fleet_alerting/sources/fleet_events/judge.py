"""Fleet API events: the cursor across runs, which events alert, which belong to an incident.

Pure functions of events, stored state and `now`.

The cursor: `/health/events/recent` returns the newest N events, so consecutive polls overlap and
events can arrive late (another process writes them with its own clock). The cursor keeps a high
water mark and the ids seen within `lookback` of it: an event is new when its id is not among them
and it is not older than the window. Ids come from the API (fixture shape) or are a digest of the
event (live shape), so they are stable across polls and restarts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from fleet_alerting.config import Config
from fleet_alerting.config.schema import FleetApiConfig
from fleet_alerting.core.clock import CLOCK_SKEW
from fleet_alerting.core.incidents import Incident, Kind, Notification, over_at_once
from fleet_alerting.core.keys import signal_key
from fleet_alerting.core.links import LinksConfig, logql_selector, logs_link
from fleet_alerting.core.policy import Evaluation
from fleet_alerting.core.signals import Link, Severity, Signal
from fleet_alerting.sources.fleet_events.client import SEVERITY_RANK, FleetEvent
from fleet_alerting.sources.records import Malformed, malformed_signal

SOURCE = "fleet-events"
API_SOURCE = f"{SOURCE}-api"  # the Fleet API unreachable or refusing
RECORDS_SOURCE = f"{SOURCE}-records"  # events of neither documented shape
CURSOR_KEY = "fleet-events:cursor"
_SEVERITY = {"error": Severity.critical, "warn": Severity.warning}


@dataclass(frozen=True)
class Cursor:
    high_water: datetime | None = None
    seen: dict[str, str] = field(default_factory=dict)  # event identity → timestamp (ISO)

    def to_json(self) -> dict[str, object]:
        hw = self.high_water.isoformat() if self.high_water else None
        return {"high_water": hw, "seen": dict(sorted(self.seen.items()))}

    @classmethod
    def from_json(cls, value: object) -> Cursor:
        if not isinstance(value, dict):
            return cls()
        hw = value.get("high_water")
        return cls(datetime.fromisoformat(hw) if hw else None, dict(value.get("seen") or {}))


@dataclass(frozen=True)
class Advance:
    new: list[FleetEvent]  # oldest first
    cursor: Cursor
    possible_gap: bool  # the page was full and reached no further back than the cursor
    ahead: list[FleetEvent] = field(default_factory=list)  # stamped past `now` + CLOCK_SKEW


def advance(
    cursor: Cursor, events: Sequence[FleetEvent], lookback: timedelta, limit: int, now: datetime
) -> Advance:
    """The events not reported yet, and the cursor after them. The cursor counts an event stamped
    later than `now` (a clock running ahead, local time without an offset) as of `now`: one such
    event would otherwise lift the high water mark over every honest event to come, and they
    would all look older than the window. An id still in the page stays in `seen`, however old
    its (clamped) time, so such an event is reported once; one stored ahead and no longer listed
    is forgotten."""
    hw = min(cursor.high_water, now) if cursor.high_water else None  # a cursor stored ahead heals
    floor = hw - lookback if hw else None
    unique = {e.identity: e for e in events}.values()
    stamp = {e.identity: min(e.timestamp, now) for e in unique}
    new = sorted(
        (
            e
            for e in unique
            if not _listed(e, cursor, stamp) and (floor is None or stamp[e.identity] >= floor)
        ),
        key=lambda e: (e.timestamp, e.id),
    )
    high = max([*stamp.values(), *([hw] if hw else [])], default=None)
    seen = dict(cursor.seen) | {e.identity: stamp[e.identity].isoformat() for e in new}
    if high is not None:
        keep_from = high - lookback
        seen = {i: t for i, t in seen.items() if i in stamp or _within(t, keep_from, now)}
    gap = hw is not None and len(events) >= limit and _reaches_not_back(unique, cursor, stamp, hw)
    ahead = [e for e in new if e.timestamp > now + CLOCK_SKEW]
    return Advance(new, Cursor(high, seen), gap, ahead)


def _listed(event: FleetEvent, cursor: Cursor, stamp: dict[str, datetime]) -> bool:
    """Whether `event` was reported before: by its identity, or — a cursor written when a
    given id alone was remembered, with the event's time as of then (never later than that
    run's clock) — by that id with a time at most CLOCK_SKEW before the event's."""
    if event.identity in cursor.seen:
        return True
    remembered = cursor.seen.get(event.id) if event.given_id else None
    if remembered is None:
        return False
    before = stamp[event.identity] - datetime.fromisoformat(remembered)
    return timedelta(0) <= before <= CLOCK_SKEW


def _reaches_not_back(
    listed: Iterable[FleetEvent], cursor: Cursor, stamp: dict[str, datetime], hw: datetime
) -> bool:
    """Whether a page's oldest event is newer than the last run's newest and was not listed
    then: events between the two may never have been listed (by identity — clamped to now, the
    times of a feed whose clock runs ahead would all look newer)."""
    oldest = min(listed, key=lambda e: (e.timestamp, e.id), default=None)
    return oldest is not None and not _listed(oldest, cursor, stamp) and stamp[oldest.identity] > hw


def _within(moment: str, start: datetime, end: datetime) -> bool:
    return start <= datetime.fromisoformat(moment) <= end


def malformed_signals(malformed: Iterable[Malformed]) -> list[Signal]:
    """One warning per event of the feed that has neither documented shape (it is left out of
    the cursor and the table; every well-formed event beside it is still reported)."""
    return [
        malformed_signal(
            RECORDS_SOURCE,
            "event",
            bad,
            f"Fleet API /health/events/recent: malformed {bad.identity}: {bad.why}",
            bad.identity,
            "Check the Fleet API's event writer: this event cannot be reported until it has "
            "the documented shape",
        )
        for bad in malformed
    ]


def matches_type(event: FleetEvent, types: Iterable[str]) -> bool:
    return any(event.type == t or event.type.startswith(t + ".") for t in types)


def alerting(events: Iterable[FleetEvent], config: FleetApiConfig) -> list[FleetEvent]:
    floor = SEVERITY_RANK[config.alert_severity]
    return [e for e in events if matches_type(e, config.alert_types) and e.rank >= floor]


def correlation_logql(log_labels: dict[str, str], correlation_id: str) -> str:
    return f"{logql_selector(**log_labels)} |= {json.dumps(correlation_id)}"


def correlation_link(
    links: LinksConfig, log_labels: dict[str, str], event: FleetEvent
) -> Link | None:
    if not event.correlation_id:
        return None
    return logs_link(links, correlation_logql(log_labels, event.correlation_id), "Logs")


def event_signal(event: FleetEvent, config: Config) -> Signal:
    fleet = config.fleet_api or FleetApiConfig(url="http://unset")
    link = correlation_link(config.links, fleet.log_labels, event)
    where = f" on {event.target}" if event.target else ""
    return Signal(
        key=signal_key(SOURCE, event=event.identity),
        source=SOURCE,
        firing=True,
        severity=_SEVERITY.get(event.severity, Severity.info),
        summary=f"{event.type}{where}: {event.message}",
        target=event.target,
        since=event.timestamp,
        correlation_ids=(event.correlation_id,) if event.correlation_id else (),
        links=(link,) if link else (),
        evidence={"event": event.type, "fleet_severity": event.severity},
    )


def event_notifications(events: Iterable[FleetEvent], config: Config, now: datetime) -> Evaluation:
    """One-off events bypass incident hysteresis: each is recorded as an incident that is over at
    once, with one notification per channel its severity's policy tells. Ids are per event, so a
    replay after a crash queues nothing twice."""
    incidents, notifications = [], []
    for event in events:
        signal = event_signal(event, config)
        channels = config.policy(signal.severity).channels()
        onset = min(event.timestamp, now)
        incident = over_at_once(
            signal, SOURCE, onset, now, "one-off Fleet API event", told=bool(channels)
        )
        incidents.append(incident)
        notifications += [
            Notification(f"{signal.key}|event|{c}", c, Kind.opened, now, incident, one_off=True)
            for c in channels
        ]
    return Evaluation(incidents, notifications)


HOST_LABELS = ("instance", "host", "device", "deviceId", "target")
# alerts may be about anything the Fleet runs; a Zigbee device is a device by its topic
ABOUT_THE_FLEET = {"alertmanager", "zigbee-device"}


def may_concern(incident: Incident) -> bool:
    """Whether a Fleet API event could be about this incident: it names a device or host (a host
    label, a URL target) or comes from a source about the Fleet's things. Not so: a metric gone
    from Prometheus, a watch's or a source's own errors."""
    signal = incident.signal
    return (
        incident.source in ABOUT_THE_FLEET
        or "://" in signal.target
        or any(signal.labels.get(k) for k in HOST_LABELS)
    )


def identifiers(incident: Incident) -> set[str]:
    """What an event's `target` may be called for this incident: target, host, device labels."""
    signal = incident.signal
    names = {signal.target} | {signal.labels.get(k, "") for k in HOST_LABELS}
    for name in list(names):
        if "://" in name:
            names.add(urlsplit(name).hostname or "")
        elif ":" in name:
            names.add(name.split(":")[0])
    return {n for n in names if n}


def related_events(
    events: Sequence[FleetEvent], incident: Incident, now: datetime, minutes: int, limit: int
) -> tuple[list[FleetEvent], str]:
    """Events of the incident's target/device; if none, every event of the last `minutes`."""
    names = identifiers(incident)
    mine = [e for e in events if e.target and e.target in names]
    if mine:
        scope = f"events for {', '.join(sorted({e.target for e in mine}))}"
    else:
        since = now - timedelta(minutes=minutes)
        mine = [e for e in events if e.timestamp >= since]
        scope = f"all events of the last {minutes} min"
    newest = sorted(mine, key=lambda e: e.timestamp, reverse=True)
    return newest[:limit], scope
