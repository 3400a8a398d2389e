"""What runs observed, as the store keeps it for replay (store/history.py writes it, the what-if
audit replays it): per incident key only its changes (failing, ok, no longer observed), and per
stream of runs (one watch) the times it ran, as segments of regular runs (a run a little off
its segment's beat still extends it).

Pure: plain data, the compact form of a signal and back, and the arithmetic of run times.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from fleet_alerting.core.signals import Severity, Signal, fingerprint_of

# how far off its segment's beat a run may start and still extend the segment (at most a
# quarter of the interval): scheduled runs start a few milliseconds to a second late
JITTER = timedelta(seconds=2)
_ROUNDINGS = tuple(timedelta(milliseconds=ms) for ms in (1000, 100, 10, 1))


class Status(StrEnum):
    failing = "failing"
    ok = "ok"
    unobserved = "unobserved"  # the run no longer names the key (a target removed, a host gone)


def stream_of(signals: Iterable[Signal], unseen_sources: Iterable[str] = ()) -> str:
    """Which watch a run belongs to: the families of its sources ("blackbox" for blackbox and
    blackbox-config, "zigbee" for zigbee and zigbee-device, "prometheus" for prometheus/<watch>)."""
    sources = {s.source for s in signals} | set(unseen_sources)
    families = {source.replace("/", "-").split("-", 1)[0] for source in sources}
    return "+".join(sorted(families))


def status_of(signal: Signal) -> Status:
    return Status.failing if signal.firing else Status.ok


def signature(signal: Signal) -> str:
    """What must differ for an observation to be recorded again: what the engine compares."""
    return f"{status_of(signal)}|{signal.severity}|{fingerprint_of(signal)}"


def signal_record(signal: Signal) -> dict[str, Any]:
    """What replay needs of a signal: what the engine compares and matches on (key, source,
    severity, state, onset, labels, fingerprint) and what a report names (summary, target).
    Remediation, links and evidence are not kept: they change what a message says, not whether
    it is sent."""
    return {
        "source": signal.source,
        "severity": signal.severity.value,
        "firing": signal.firing,
        "summary": signal.summary,
        "target": signal.target,
        "since": signal.since.isoformat() if signal.since else None,
        "labels": signal.labels,
        "fingerprint": fingerprint_of(signal),
    }


def signal_from(key: str, record: Mapping[str, Any]) -> Signal:
    since = record.get("since")
    return Signal(
        key=key,
        source=record["source"],
        firing=bool(record["firing"]),
        severity=Severity(record["severity"]),
        summary=record.get("summary", ""),
        target=record.get("target", ""),
        since=datetime.fromisoformat(since) if since else None,
        labels=dict(record.get("labels") or {}),
        fingerprint=record["fingerprint"],
    )


@dataclass(frozen=True)
class Change:
    """From `at` on, runs of `stream` observe `key` as `signal` (None: not at all)."""

    at: datetime
    stream: str
    key: str
    signal: Signal | None


@dataclass(frozen=True)
class RunSegment:
    """`count` runs of `stream`, the first at `first`, then every `every` (their mean interval:
    each within about `tolerance` of its real start, see `joined`); `unseen_sources` is the
    run's sources whose open incidents the run does not name recover (source → reason)."""

    stream: str
    first: datetime
    every: timedelta
    count: int
    unseen_sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def last(self) -> datetime:
        return self.first + self.every * (self.count - 1)

    def at_or_after(self, moment: datetime) -> datetime | None:
        """The first run of this segment at or after `moment`."""
        if moment <= self.first:
            return self.first
        if moment > self.last or not self.every:
            return None
        steps = -((self.first - moment) // self.every)  # ceiling of (moment - first) / every
        return self.first + self.every * steps


def tolerance(every: timedelta) -> timedelta:
    return min(every / 4, JITTER)


def joined(first: datetime, every: timedelta, count: int, now: datetime) -> timedelta | None:
    """The interval of the segment of `count` runs (the first at `first`, then every `every`)
    once the run at `now` joins it, or None when that run starts a segment of its own. A second
    run sets the interval; a later one joins when it starts within `tolerance` of the next beat
    (first + count × every). Exactly regular runs keep their interval, so their replay is exact;
    jittered ones get the roundest interval (whole seconds, then tenths...) that keeps the run
    within tolerance of its beat — the schedule's own, so replayed durations between runs are
    whole intervals as the schedule meant them — and each is replayed on its beat."""
    if count == 1:
        return now - first if now > first else None
    beat = first + every * count
    if not every or abs(now - beat) > tolerance(every):
        return None
    if now == beat:
        return every
    mean = (now - first) / count
    for unit in _ROUNDINGS:
        rounded = unit * round(mean / unit)
        if rounded and abs(first + rounded * count - now) <= tolerance(every):
            return rounded
    return mean


def on_beat(changes: Sequence[Change], runs: Sequence[RunSegment]) -> list[Change]:
    """Each change moved to the beat of the run that observed it, as its segment replays that
    run (a change recorded a little after its run's beat would otherwise wait for the next run).
    `runs` in time order per stream; a change no segment holds stays as it is."""
    segments: dict[str, list[RunSegment]] = {}
    for segment in runs:
        segments.setdefault(segment.stream, []).append(segment)
    firsts = {stream: [s.first for s in found] for stream, found in segments.items()}
    moved = []
    for change in changes:
        found = segments.get(change.stream, [])
        index = bisect_right(firsts.get(change.stream, []), change.at) - 1
        beat = _beat(found[index], change.at) if index >= 0 else None
        moved.append(replace(change, at=beat) if beat is not None else change)
    return moved


def _beat(segment: RunSegment, at: datetime) -> datetime | None:
    if segment.count < 2 or not segment.every:
        return None
    step = min(round((at - segment.first) / segment.every), segment.count - 1)
    beat = segment.first + segment.every * step
    return beat if beat != at else None


@dataclass
class History:
    """A period's observations: the changes in time order (those before `start` give each key's
    state at `start`), and every stream's run segments in time order."""

    start: datetime
    end: datetime
    changes: list[Change]
    runs: list[RunSegment]
    # the runs the store holds, where `runs` stands in for some it does not (a watch replayed
    # from Prometheus' ALERTS on its schedule); None: `runs` are all recorded
    recorded: int | None = None

    def streams(self) -> list[str]:
        return sorted({r.stream for r in self.runs})

    def recorded_runs(self) -> int:
        return sum(r.count for r in self.runs) if self.recorded is None else self.recorded


class RunClock:
    """The runs of one stream: the next run at or after a moment, across its segments."""

    def __init__(self, segments: Iterable[RunSegment]):
        self.segments = sorted(segments, key=lambda s: s.first)
        self._lasts = [s.last for s in self.segments]

    def next_run(self, moment: datetime) -> tuple[datetime, RunSegment] | None:
        for index in range(bisect_left(self._lasts, moment), len(self.segments)):
            segment = self.segments[index]
            found = segment.at_or_after(moment)
            if found is not None:
                return found, segment
        return None
