"""What-if: replay recorded observations through a configuration, with a virtual clock.

Pure given the history (core.history, read from the store by the caller), the configurations and
the period. The engine is the flows' own: `core.storms.decide` (policy, inhibition, grouping,
fleet aggregates, and whatever the engine decides inside it) with the policies and storm rules
of a loaded Config, called as tasks.pipeline calls it — per watch, with that run's observations.

The clock does not step every run: a watch is evaluated at its recorded runs where an
observation changed, while one of its incidents counts failures or successes towards opening or
resolving, at the first run at or after a time one of its open incidents could fall due (any
duration of its policy or of the grouping after any time the incident records — onset, opened,
paged, last told, acknowledged, the escalation's next step — and the boundaries of every time
window in the config), and every watch at its next run after an incident that could inhibit
another changed (a cause resolving in one watch tells its symptoms in another). A run that is
none of these finds nothing to do: the engine changes an incident only on a new observation, a
count or a time that passed. tests/test_whatif_stepping.py holds this against evaluating every
run.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Any, TypeVar

from pydantic import BaseModel

from fleet_alerting.alertmanager.routing import AlertmanagerYml
from fleet_alerting.audit.noise import _series_key
from fleet_alerting.audit.noise import episodes as noise_episodes
from fleet_alerting.config import Config
from fleet_alerting.core.channels import SLACK_CHANNELS, pager_of
from fleet_alerting.core.fleet import matches_all, selector, signal_labels
from fleet_alerting.core.history import Change, History, RunClock, RunSegment
from fleet_alerting.core.incidents import Incident, Notification, State
from fleet_alerting.core.muting import LOOK_AHEAD, MaintenanceConfig, Muting, Silence, first_minute
from fleet_alerting.core.policy import PolicyConfig, PolicyFor
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.core.storms import decide
from fleet_alerting.core.windows import Window

SLACK = SLACK_CHANNELS
ALERTMANAGER_STREAM = "alertmanager"
_TICK = timedelta(microseconds=1)
T = TypeVar("T")


@dataclass(frozen=True)
class Sent:
    """One notification the replay decided (what delivery would have sent)."""

    at: datetime
    key: str
    onset: datetime
    kind: str
    channel: str
    severity: str
    alert: str  # the alert or watch it is counted under
    summary: str

    @property
    def minute(self) -> tuple[str, str, str, str]:
        """What fidelity compares: incident, kind, destination, minute."""
        return (self.key, self.kind, self.channel, self.at.strftime("%Y-%m-%dT%H:%M"))


def alert_of(incident: Incident) -> str:
    """An Alertmanager incident counts under its alertname, any other under its watch."""
    return incident.signal.labels.get("alertname") or incident.source


def sent_of(notification: Notification) -> Sent:
    incident = notification.incident
    return Sent(
        notification.at,
        incident.key,
        incident.onset,
        str(notification.kind),
        notification.channel,
        incident.severity.value,
        alert_of(incident),
        incident.signal.summary,
    )


def policies_for(config: Config) -> Callable[[str], PolicyFor]:
    """The policy each watch's runs evaluate with: the configured one; for Alertmanager's runs
    with its own debouncing (alertmanager.open_after / resolve_after), as its flow does."""
    am = config.alertmanager

    def for_stream(stream: str) -> PolicyFor:
        if stream != ALERTMANAGER_STREAM or am is None:
            return config.policy
        update = {"open_after": am.open_after, "resolve_after": am.resolve_after}
        return lambda severity: config.policy(severity).model_copy(update=update)

    return for_stream


def settings(value: Any, kind: type[T]) -> Iterator[T]:
    """Every value of `kind` in a settings model (nested models, dataclasses, lists, maps)."""
    if isinstance(value, kind):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from settings(getattr(value, name), kind)
    elif is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            yield from settings(getattr(value, f.name), kind)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from settings(item, kind)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from settings(item, kind)


def durations(value: Any) -> set[timedelta]:
    """Every positive duration in a settings model."""
    return {d for d in settings(value, timedelta) if d > timedelta(0)}


def boundaries(window: Window, day: date) -> list[datetime]:
    """Starts and ends of the occurrences of `window` from the day before `day` to a week on."""
    days = (day + timedelta(days=n) for n in range(-1, 8))
    return sorted(b for d in days if d.weekday() in window.days for b in window._bounds(d))


def _moments(value: Any) -> Iterator[datetime]:
    """The times an incident (or its acts) records."""
    for f in fields(value):
        item = getattr(value, f.name)
        if isinstance(item, datetime):
            yield item
        elif is_dataclass(item) and not isinstance(item, type | Signal):
            yield from _moments(item)


class _Timers:
    """The next moment after `now` at which time alone could change an open incident."""

    def __init__(self, config: Config, policy_for: Callable[[str], PolicyFor]):
        rules = config.storm_rules()
        self.shared = durations(rules.grouping)
        # a time window anywhere in the config (a maintenance window, business hours) may hold
        # back or release what an incident tells when it begins or ends
        self.windows = list(settings(config, Window))
        self._policy_for = policy_for
        self._spans: dict[tuple[str, Severity], list[timedelta]] = {}
        self._due: dict[str, tuple[Incident, list[datetime]]] = {}
        self._bounds: dict[tuple[int, date], list[datetime]] = {}

    def spans(self, stream: str, severity: Severity) -> list[timedelta]:
        found = self._spans.get((stream, severity))
        if found is None:
            policy: PolicyConfig = self._policy_for(stream)(severity)
            found = self._spans[(stream, severity)] = sorted(durations(policy) | self.shared)
        return found

    def due(self, incident: Incident, stream: str) -> list[datetime]:
        """Every time at which this record could fall due, in order (kept while it is the same
        record)."""
        known = self._due.get(incident.key)
        if known is not None and known[0] is incident:
            return known[1]
        moments = set(_moments(incident))  # its acts' `until` times among them
        spans = self.spans(stream, incident.severity)
        times = sorted(moments | {m + span for m in moments for span in spans})
        self._due[incident.key] = (incident, times)
        return times

    def window_bounds(self, now: datetime) -> Iterator[datetime]:
        for n, window in enumerate(self.windows):
            day = now.astimezone(window.tz).date()
            bounds = self._bounds.get((n, day))
            if bounds is None:
                bounds = self._bounds[(n, day)] = boundaries(window, day)
            index = bisect_right(bounds, now)
            if index < len(bounds):
                yield bounds[index]

    def next_after(self, incidents: Iterable[Incident], stream: str, now: datetime) -> datetime:
        best = min(self.window_bounds(now), default=datetime.max.replace(tzinfo=now.tzinfo))
        for incident in incidents:
            times = self.due(incident, stream)
            index = bisect_right(times, now)
            if index < len(times) and times[index] < best:
                best = times[index]
        return best


@dataclass(frozen=True)
class Replay:
    """What a configuration would have sent over the period, and how many evaluations it took."""

    name: str
    sent: list[Sent]
    evaluations: int
    runs: int  # how many recorded runs the period holds (what stepping every run would cost)


def replay(
    history: History,
    config: Config,
    name: str = "",
    every_run: bool = False,
    silences: Sequence[Silence] = (),
) -> Replay:
    """Every notification `config` would have caused over `history`, in time order, with the
    operators' `silences` (the store's, each in force from its start to its end) and the
    config's maintenance windows muting what they select. `every_run`: evaluate every recorded
    run instead (the reference the stepping is tested against)."""
    return _Replayer(history, config, every_run, silences).run(name)


class _Replayer:
    def __init__(
        self,
        history: History,
        config: Config,
        every_run: bool = False,
        silences: Sequence[Silence] = (),
    ):
        self.history = history
        self.every_run = every_run
        self.mutes = _Mutes(silences, config.maintenance_rules())
        self.policy_for = policies_for(config)
        rules = config.storm_rules()
        self.rules = replace(rules, inhibit_rules=rules.inhibitions())  # built once, not per run
        self.causes = [selector(tuple(r.source_matchers)) for r in self.rules.inhibitions()]
        self.timers = _Timers(config, self.policy_for)
        self.changes = sorted(history.changes, key=lambda c: c.at)
        self.streams = sorted(set(history.streams()) | {c.stream for c in self.changes})
        self.clocks = {s: RunClock(r for r in history.runs if r.stream == s) for s in self.streams}
        self.observed: dict[str, dict[str, Signal]] = {s: {} for s in self.streams}
        self.failing: dict[str, dict[str, Signal]] = {s: {} for s in self.streams}
        self.samples: dict[str, dict[str, str]] = {s: {} for s in self.streams}  # source → key
        self.whole = _whole_fleet_streams(config, self.changes)
        self.position = 0
        self.advance(history.start - _TICK)
        later = self.changes[self.position :]
        self.change_times = {s: [c.at for c in later if c.stream == s] for s in self.streams}
        self.unresolved: dict[str, Incident] = {}
        self.own: dict[str, dict[str, Incident]] = {s: {} for s in self.streams}
        self.due: list[tuple[datetime, str]] = []
        self.scheduled: dict[str, datetime] = {}

    def run(self, name: str) -> Replay:
        sent: dict[str, Sent] = {}
        evaluations = 0
        for stream in self.streams:
            self.schedule(stream, self.history.start)
        while self.due:
            now, stream = heapq.heappop(self.due)
            if self.scheduled.get(stream) != now:
                continue  # superseded by an earlier one
            del self.scheduled[stream]
            self.advance(now)
            for notification in self.evaluate(stream, now):
                sent.setdefault(notification.id, sent_of(notification))
            evaluations += 1
        in_order = sorted(sent.values(), key=lambda s: s.at)
        return Replay(name, in_order, evaluations, self.history.recorded_runs())

    def advance(self, now: datetime) -> None:
        """Apply the observations recorded up to `now`."""
        changes, position = self.changes, self.position
        while position < len(changes) and changes[position].at <= now:
            change = changes[position]
            known = self.observed[change.stream]
            failing = self.failing[change.stream]
            samples = self.samples[change.stream]
            signal = change.signal
            if signal is None:
                gone = known.pop(change.key, None)
                failing.pop(change.key, None)
                if gone is not None and samples.get(gone.source) == change.key:
                    del samples[gone.source]
                    others = (k for k, s in known.items() if s.source == gone.source)
                    replacement = next(others, None)
                    if replacement is not None:
                        samples[gone.source] = replacement
            else:
                known[change.key] = signal
                if signal.firing:
                    failing[change.key] = signal
                else:
                    failing.pop(change.key, None)
                samples.setdefault(signal.source, change.key)
            position += 1
        self.position = position

    def evaluate(self, stream: str, now: datetime) -> list[Notification]:
        _, segment = self.clocks[stream].next_run(now) or (now, _NO_RUNS)
        evaluation = decide(
            self.signals(stream),
            self.unresolved,
            self.policy_for(stream),
            self.rules,
            now,
            segment.unseen_sources,
            self.mutes.at(now),
        )
        own = self.own[stream]
        for incident in evaluation.incidents:
            if incident.state == State.resolved:
                self.unresolved.pop(incident.key, None)
                own.pop(incident.key, None)
            else:
                self.unresolved[incident.key] = own[incident.key] = incident
        self.plan(stream, now, evaluation.incidents, segment)
        return evaluation.notifications

    def signals(self, stream: str) -> list[Signal]:
        """The run's observations. An ok observation of a key with no open incident changes
        nothing, so it is left out — unless a fleet aggregate counts the stream's devices; one
        of each source stays (the sources a run names are those it may change)."""
        observed = self.observed[stream]
        if stream in self.whole or self.every_run:
            return list(observed.values())
        keys = dict.fromkeys(self.failing[stream])
        keys.update((key, None) for key in self.own[stream] if key in observed)
        keys.update((key, None) for key in self.samples[stream].values())
        return [observed[key] for key in keys]

    def plan(
        self, stream: str, now: datetime, changed: list[Incident], segment: RunSegment
    ) -> None:
        """When this stream (and the others) must be evaluated next."""
        after = now + _TICK
        if any(self.may_inhibit(i) for i in changed):
            for other in self.streams:  # its symptoms may be in another watch
                # a watch's run at this same moment comes after this one when it sorts after it
                self.schedule(other, now if other > stream else after)
        own = self.own[stream]
        observed = self.observed[stream]
        if self.every_run or any(
            _counting(i) and (i.key in observed or i.source in segment.unseen_sources)
            for i in own.values()
        ):
            self.schedule(stream, after)
        if own:
            self.schedule(stream, self.timers.next_after(own.values(), stream, now))
            self.schedule(stream, self.mutes.next_change(now))
        times = self.change_times[stream]
        index = bisect_left(times, after)
        if index < len(times):
            self.schedule(stream, times[index])

    def may_inhibit(self, incident: Incident) -> bool:
        labels = signal_labels(incident.source, incident.severity, incident.signal.labels)
        return any(cause.admits(incident.source) and cause(labels) for cause in self.causes)

    def schedule(self, stream: str, moment: datetime) -> None:
        found = self.clocks[stream].next_run(max(moment, self.history.start))
        if found is None or found[0] > self.history.end:
            return
        if stream in self.scheduled and self.scheduled[stream] <= found[0]:
            return
        self.scheduled[stream] = found[0]
        heapq.heappush(self.due, (found[0], stream))


class _Mutes:
    """The silences and maintenance windows in force at a moment, and when that next changes."""

    def __init__(self, silences: Sequence[Silence], maintenance: MaintenanceConfig):
        self.silences = list(silences)
        self.maintenance = maintenance
        self.bounds = sorted({t for s in self.silences for t in (s.starts_at, s.ends_at)})
        self._muting: dict[tuple[str, ...], Muting] = {}
        self._flip: tuple[datetime, datetime] | None = None  # (from, next window change)

    def at(self, now: datetime) -> Muting:
        active = tuple(s.id for s in self.silences if s.active(now))
        found = self._muting.get(active)
        if found is None:
            chosen = [s for s in self.silences if s.id in active]
            found = self._muting[active] = Muting(chosen, self.maintenance)
        return found

    def next_change(self, now: datetime) -> datetime:
        never = datetime.max.replace(tzinfo=now.tzinfo)
        index = bisect_right(self.bounds, now)
        best = self.bounds[index] if index < len(self.bounds) else never
        if self.maintenance.mute:
            if self._flip is None or not self._flip[0] <= now < self._flip[1]:
                self._flip = (now, self._window_change(now) or now + LOOK_AHEAD)
            best = min(best, self._flip[1])
        return best

    def _window_change(self, now: datetime) -> datetime | None:
        """The first minute at which a mute rule starts or stops muting."""
        muting = Muting((), self.maintenance)
        current = [muted for _rule, muted in muting.windows_now(now)]
        return first_minute(lambda t: [m for _r, m in muting.windows_now(t)] != current, now)


def _whole_fleet_streams(config: Config, changes: Iterable[Any]) -> set[str]:
    """Streams with a source some fleet aggregate counts: their runs need every observation."""
    devices = [selector(tuple(rule.devices)) for rule in config.fleet.offline]
    return {
        c.stream
        for c in changes
        if c.signal is not None and any(d.admits(c.signal.source) for d in devices)
    }


_NO_RUNS = RunSegment("", datetime.min, timedelta(0), 0)


def _counting(incident: Incident) -> bool:
    """Still counting towards opening or resolving: the next run decides."""
    return incident.state == State.pending or incident.consecutive_successes > 0


# --- Alertmanager's alerts, from Prometheus' ALERTS ----------------------------------------------

ESCALATION_WATCH = "alertmanager-escalation"


@dataclass(frozen=True)
class AlertEpisode:
    """One firing episode of one alert series (noise.episodes), with its labels."""

    key: str
    labels: Mapping[str, str]
    onset: datetime
    start: datetime
    end: datetime


def alert_episodes(
    firing: Iterable[Mapping[str, Any]], for_state: Iterable[Mapping[str, Any]] = ()
) -> list[AlertEpisode]:
    """The firing episodes of `ALERTS` samples as the noise statistics find them."""
    firing = list(firing)
    labels = {
        _series_key(item["metric"]): {
            k: v for k, v in item["metric"].items() if k not in ("__name__", "alertstate")
        }
        for item in firing
    }
    found = noise_episodes(firing, for_state)
    return [
        AlertEpisode(
            f"{ALERTMANAGER_STREAM}:{series}",
            labels[series],
            datetime.fromtimestamp(onset, UTC),
            datetime.fromtimestamp(start, UTC),
            datetime.fromtimestamp(end, UTC),
        )
        for series, onset, start, end in found[["series", "onset", "start", "end"]].itertuples(
            index=False
        )
    ]


def with_alerts(history: History, episodes: Iterable[AlertEpisode], config: Config) -> History:
    """`history` with its Alertmanager watch replaced by what the escalation flow would have
    observed of these episodes: an alert that an escalation rule matches fails from its start
    (its onset is the alert's activeAt, as Alertmanager's startsAt) and recovers at its end; the
    watch runs at its schedule (default every minute) over the period."""
    am = config.alertmanager
    if am is None:
        return history
    changes = [c for c in history.changes if c.stream != ALERTMANAGER_STREAM]
    for episode in episodes:
        rule = next((r for r in am.rules if matches_all(r.matchers, episode.labels)), None)
        if rule is None:
            continue  # not escalated: Alertmanager's own routes alone tell of it
        name = episode.labels.get("alertname", "")
        firing = Signal(
            key=episode.key,
            source=ALERTMANAGER_STREAM,
            firing=True,
            severity=rule.severity,
            summary=f"{name} {episode.labels.get('instance', '')}".strip(),
            since=episode.onset,
            labels=dict(episode.labels),
        )
        changes.append(Change(episode.start, ALERTMANAGER_STREAM, episode.key, firing))
        gone = replace(firing, firing=False, summary=f"{firing.summary} no longer firing")
        changes.append(Change(episode.end, ALERTMANAGER_STREAM, episode.key, gone))
    every = config.schedule.every.get(ESCALATION_WATCH, timedelta(minutes=1))
    count = int((history.end - history.start) / every) + 1
    runs = [r for r in history.runs if r.stream != ALERTMANAGER_STREAM]
    runs.append(RunSegment(ALERTMANAGER_STREAM, history.start, every, count))
    return History(history.start, history.end, changes, runs, history.recorded_runs())


PAGING_CONFIGS = ("pagerduty_configs", "opsgenie_configs", "victorops_configs")


def pages_via(am: AlertmanagerYml, receiver: str) -> bool:
    return any(am.receivers.get(receiver, {}).get(kind) for kind in PAGING_CONFIGS)


@dataclass(frozen=True)
class Routed:
    """Where Alertmanager sends one alert episode (at its start) under both configurations."""

    episode: AlertEpisode
    before: tuple[str, ...]  # receivers, current alertmanager.yml
    after: tuple[str, ...]  # receivers, proposed alertmanager.yml
    paged_before: bool
    paged_after: bool


def route(
    episodes: Iterable[AlertEpisode], current: AlertmanagerYml, proposed: AlertmanagerYml
) -> list[Routed]:
    routed = []
    for episode in episodes:
        before = tuple(current.receivers_for(episode.labels, episode.start))
        after = tuple(proposed.receivers_for(episode.labels, episode.start))
        routed.append(
            Routed(
                episode,
                before,
                after,
                any(pages_via(current, r) for r in before),
                any(pages_via(proposed, r) for r in after),
            )
        )
    return routed


# --- comparing two replays ---------------------------------------------------------------------


@dataclass(frozen=True)
class Episode:
    """One failure episode of one incident key, as a replay told it."""

    key: str
    onset: datetime
    severity: str
    alert: str
    summary: str
    paged_at: datetime | None
    messages: int  # Slack messages (primary and mirror)

    @property
    def to_page(self) -> timedelta | None:
        return None if self.paged_at is None else self.paged_at - self.onset


def episodes(result: Replay) -> dict[tuple[str, datetime], Episode]:
    found: dict[tuple[str, datetime], Episode] = {}
    for s in result.sent:
        ident = (s.key, s.onset)
        known = found.get(ident) or Episode(s.key, s.onset, s.severity, s.alert, s.summary, None, 0)
        # a pager paged (pagerduty, oncall, or a named one: pagerduty_secondary)
        if pager_of(s.channel) and s.kind == "paged" and known.paged_at is None:
            known = _with(known, paged_at=s.at)
        if s.channel in SLACK:
            known = _with(known, messages=known.messages + 1)
        found[ident] = known
    return found


def first_pages(result: Replay) -> dict[str, list[timedelta]]:
    """Per pager channel (pagerduty, pagerduty_secondary, …): onset → its first page, for each
    episode it paged — so a change to a later escalation step shows."""
    first: dict[tuple[str, str, datetime], datetime] = {}
    for s in result.sent:
        if pager_of(s.channel) and s.kind == "paged":
            ident = (s.channel, s.key, s.onset)
            first[ident] = min(first.get(ident, s.at), s.at)
    waits: dict[str, list[timedelta]] = {}
    for (channel, _key, onset), at in first.items():
        waits.setdefault(channel, []).append(at - onset)
    return waits


def _with(episode: Episode, **changes: Any) -> Episode:
    return replace(episode, **changes)


@dataclass(frozen=True)
class Shift:
    """An episode whose paging differs between the two configurations."""

    episode: Episode  # as the current configuration told it (the proposed one's if it is new)
    before: datetime | None  # paged at, current configuration
    after: datetime | None  # paged at, proposed configuration

    @property
    def delay(self) -> timedelta | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before


@dataclass
class Comparison:
    current: Replay
    proposed: Replay
    before: dict[tuple[str, datetime], Episode]
    after: dict[tuple[str, datetime], Episode]
    routed: list[Routed] = field(default_factory=list)  # Alertmanager's own routes, if asked
    # what the outbox sent in the period (None: the store no longer keeps all of it)
    sent: Replay | None = None

    @classmethod
    def of(
        cls,
        current: Replay,
        proposed: Replay,
        routed: list[Routed] | None = None,
        sent: Replay | None = None,
    ) -> Comparison:
        return cls(current, proposed, episodes(current), episodes(proposed), routed or [], sent)

    @cached_property
    def sent_episodes(self) -> dict[tuple[str, datetime], Episode]:
        return episodes(self.sent) if self.sent else {}

    def paged_as_sent(self, episode: Episode) -> datetime | None:
        """When this episode was really paged (None: it was not, or nothing sent is known)."""
        found = self.sent_episodes.get((episode.key, episode.onset))
        return None if found is None else found.paged_at

    def unrouted_pages(self) -> list[Routed]:
        """Alert episodes Alertmanager paged for under the current routes and would not."""
        return [r for r in self.routed if r.paged_before and not r.paged_after]

    def lost(self) -> list[Shift]:
        """Paged under the current configuration, not under the proposed one."""
        return [
            Shift(e, e.paged_at, None)
            for ident, e in sorted(self.before.items(), key=_by_time)
            if e.paged_at is not None and self._paged_after(ident) is None
        ]

    def gained(self) -> list[Shift]:
        return [
            Shift(e, None, e.paged_at)
            for ident, e in sorted(self.after.items(), key=_by_time)
            if e.paged_at is not None and self._paged_before(ident) is None
        ]

    def delayed(self) -> list[Shift]:
        """Paged under both, later under the proposed one."""
        shifts = []
        for ident, e in sorted(self.before.items(), key=_by_time):
            after = self._paged_after(ident)
            if e.paged_at is not None and after is not None and after > e.paged_at:
                shifts.append(Shift(e, e.paged_at, after))
        return shifts

    def blocking(self, accepted: Iterable[str]) -> list[Shift]:
        """The CI gate: critical episodes that paged and would not, unless their key is
        accepted as intended."""
        allowed = set(accepted)
        critical = Severity.critical.value
        lost = [s for s in self.lost() if s.episode.severity == critical]
        lost += [
            Shift(_routed_episode(r), r.episode.start, None)
            for r in self.unrouted_pages()
            if r.episode.labels.get("severity") == critical
        ]
        return [s for s in lost if s.episode.key not in allowed]

    def _paged_after(self, ident: tuple[str, datetime]) -> datetime | None:
        found = self.after.get(ident)
        return None if found is None else found.paged_at

    def _paged_before(self, ident: tuple[str, datetime]) -> datetime | None:
        found = self.before.get(ident)
        return None if found is None else found.paged_at


def _routed_episode(routed: Routed) -> Episode:
    episode = routed.episode
    name = episode.labels.get("alertname", "")
    return Episode(
        episode.key, episode.onset, Severity.critical.value, name, name, episode.start, 0
    )


def _by_time(item: tuple[tuple[str, datetime], Episode]) -> tuple[datetime, str]:
    return item[0][1], item[0][0]
