"""The durable record of one incident key, and the notifications its changes cause."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, NamedTuple, TypeVar

from pydantic import AliasChoices, Field

from fleet_alerting.core.signals import Severity, Signal, fingerprint_of


class State(StrEnum):
    pending = "pending"  # failing, not yet past open_after
    firing = "firing"  # open, operators told
    paged = "paged"  # open and paged
    resolved = "resolved"  # cleared (quietly if it never opened)


OPEN_STATES = (State.firing, State.paged)
GROUP_PREFIX = "group/"  # the source of a group incident (core.grouping)


class Kind(StrEnum):
    opened = "opened"
    paged = "paged"
    reminder = "reminder"
    resolved = "resolved"
    # operator actions (fleet_alerting.core.actions)
    acknowledged = "acknowledged"  # Slack: thread reply; PagerDuty: Events v2 acknowledge
    silenced = "silenced"  # a silence or local mute was set (Slack: thread reply)
    unsilenced = "unsilenced"  # ended by hand
    silence_expired = "silence_expired"  # ended by time while still failing: one message
    pager_acknowledged = "pager_acknowledged"  # done in PagerDuty (its webhook): Slack is told
    pager_resolved = "pager_resolved"  # resolved in PagerDuty while our check still fails
    # a matcher silence or maintenance window began on an incident already told (core.muting)
    muted = "muted"
    # a later escalation step that pages nobody, or an acknowledgement that timed out (Slack)
    escalated = "escalated"


# the source of `fleet-alerting notify-test`'s marked test messages
NOTIFY_TEST_SOURCE = "notify-test"
# what mutes an incident, as its `Acts.mute_id` begins
MUTE_SILENCE, MUTE_WINDOW = "silence", "window"


@dataclass(frozen=True)
class Acts:
    """What operators did to this failure episode (a new episode starts with none)."""

    acked_by: str | None = None
    acked_at: datetime | None = None
    # a local mute (our own sources) or an Alertmanager silence: who, until when (None with
    # `silenced_by` set: until resolved), and the Alertmanager silence id if there is one
    silenced_by: str | None = None
    silenced_until: datetime | None = None
    silence_id: str | None = None
    snoozed_until: datetime | None = None  # no reminders before this
    # a matcher silence or maintenance window muting it (core.muting): which, told how, until
    mute_id: str | None = None  # f"{MUTE_SILENCE}:<id>" | f"{MUTE_WINDOW}:<name>"
    muted_by: str | None = None
    muted_until: datetime | None = None
    changed_at: datetime | None = None  # last change; the newer record wins a concurrent write

    @property
    def silenced(self) -> bool:
        return self.silenced_by is not None


@dataclass(frozen=True)
class Page:
    """One destination paged (or told, by a later step) at one escalation step."""

    channel: str
    at: datetime
    step: int  # 1-based, as operators read it


@dataclass(frozen=True)
class Escalation:
    """Where an incident is in its policy's escalation steps (core/escalation.py), kept with the
    incident so every message and view can say who was paged when and what happens next."""

    step: int = 0  # steps run so far: the incident is on step `step` (0: none yet)
    steps: int = 0  # how many steps its policy has
    base: datetime | None = None  # step delays count from here (None: the onset)
    rounds: int = 0  # escalations again after an acknowledgement timed out
    pages: tuple[Page, ...] = ()
    next_at: datetime | None = None  # when the next step is due, unless held
    next_to: tuple[str, ...] = ()
    mention: str | None = None  # the Slack user group the current step mentions
    # the policy's: how long an acknowledgement holds the next step (None: the episode), and
    # whether the escalation then starts again from the step it was on (`ack_timeout`)
    ack_hold: timedelta | None = None
    ack_restarts: bool = False
    why: str = ""  # why the latest step ran (e.g. an acknowledgement timed out)
    # the policy's reminder intervals (`repeat`), the last one repeating; (): no reminders
    repeat: tuple[timedelta, ...] = ()


@dataclass(frozen=True)
class Incident:
    key: str
    source: str
    severity: Severity
    state: State
    onset: datetime  # when the failure began; persistence is measured from here
    # when this record last changed (not every observation: see policy); `last_seen` in old stores
    changed_at: Annotated[datetime, Field(validation_alias=AliasChoices("changed_at", "last_seen"))]
    signal: Signal  # the latest failing observation: summary, target, runbook, remediation...
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    opened_at: datetime | None = None
    paged_at: datetime | None = None
    paged_via: tuple[str, ...] = ()
    last_notified_at: datetime | None = None
    reminders: int = 0
    resolved_at: datetime | None = None
    resolution: str = ""  # why it cleared, e.g. "no longer reported"
    # the first passing check of the current run of passing checks: the failure ended here, even
    # though resolving waits for `resolve_after` of them
    recovered_at: datetime | None = None
    recovery: Signal | None = None  # the passing observation that resolved it
    thread_channel: str | None = None  # Slack thread of this incident, when a bot token is set
    thread_ts: str | None = None
    acts: Acts = Acts()
    escalation: Escalation = Escalation()
    # passes around the engine (core/inhibition.py, core/grouping.py)
    inhibited_by: str | None = None  # key of the unresolved cause silencing this incident
    group: str | None = None  # key of the group incident that tells for this member
    members: tuple[str, ...] = ()  # a group incident's unresolved members
    members_told: tuple[str, ...] = ()  # ... as of its last message

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def episode(self) -> str:
        """Which opening of this key this record is. A source may report the same onset again
        (Alertmanager keeps `startsAt` through silence → resolved → silence expired), so the
        episode is when it opened (its onset while still pending)."""
        return (self.opened_at or self.onset).isoformat()

    def duration(self, now: datetime) -> timedelta:
        """How long it failed: onset to the first passing check once resolved, else until now."""
        if self.state == State.resolved and self.recovered_at is not None:
            return self.recovered_at - self.onset
        return (self.resolved_at or now) - self.onset


@dataclass(frozen=True, slots=True)  # a storm's opening run makes two per member: 104 bytes each
class Notification:
    """One message to one channel. `id` is stable for the same event so a replay is recognised."""

    id: str
    channel: str  # a core.channels.Channel, or a named pager (pagerduty_NAME, oncall_NAME)
    kind: Kind
    at: datetime
    incident: Incident  # snapshot at the time of the event
    # a message of its own (a one-off event, a test): no incident thread, no event snapshot
    one_off: bool = False
    # set by delivery on a Slack "paged" message when a pager refused or gave up on the page:
    # "pagerduty: HTTP 400 …" (stored only with a PAGING DELAYED message and its follow-up)
    paging_failed: str = ""
    # set by delivery on a Slack "paged" message sent while its page is still owed (retrying
    # after STUCK_PAGE_AFTER): "pagerduty: HTTP 503 … — retrying (next …, outbox #23)"; stored
    # with the message that went out so, once the page ends, Slack is told how
    paging_delayed: str = ""
    # that follow-up's news, decided as the page's end is recorded: "Paged after all: pagerduty
    # took the page" or "PAGING FAILED via …"; it is sent as it is, waiting for no page
    paging_ended: str = ""
    # a follow-up telling only an operator's own `outbox drop`: it mentions nobody
    quiet: bool = False
    # set by delivery as the message goes out (never stored): a text sent late says as of when
    # it was true (`at`)
    sending_at: datetime | None = None

    def marked(self, marker: str) -> bool:
        """Whether the engine marked this message's id with `marker` (`:paged-again`…), read
        after its incident's key: a label value may spell a marker too."""
        return marker in self.id.removeprefix(self.incident.key)


# the slots' own setters: a frozen dataclass's __init__ sets each field through
# object.__setattr__, which looks the slot up again on every call
_SET_NOTIFICATION = tuple(
    Notification.__dict__[name].__set__
    for name in Notification.__dataclass_fields__  # in order: `retold` unpacks them
)


def retold(n: Notification, id: str, incident: Incident) -> Notification:
    """`dataclasses.replace(n, id=id, incident=incident)` at a third of its cost: a storm's
    opening run makes the messages of tens of thousands of incidents alike from one of them."""
    new = object.__new__(Notification)
    (
        set_id, set_channel, set_kind, set_at, set_incident, set_one_off, set_failed,
        set_delayed, set_ended, set_quiet, set_sending_at,
    ) = _SET_NOTIFICATION  # fmt: skip
    set_id(new, id)
    set_channel(new, n.channel)
    set_kind(new, n.kind)
    set_at(new, n.at)
    set_incident(new, incident)
    set_one_off(new, n.one_off)
    set_failed(new, n.paging_failed)
    set_delayed(new, n.paging_delayed)
    set_ended(new, n.paging_ended)
    set_quiet(new, n.quiet)
    set_sending_at(new, n.sending_at)
    return new


def over_at_once(
    signal: Signal, source: str, onset: datetime, now: datetime, resolution: str, told: bool
) -> Incident:
    """A one-off happening recorded as an incident that is resolved as it opens: told once (when
    `told`), whatever the policy's open_after, and never reminded or resolved again."""
    return Incident(
        key=signal.key,
        source=source,
        severity=signal.severity,
        state=State.resolved,
        onset=onset,
        changed_at=now,
        signal=signal,
        consecutive_failures=1,
        opened_at=now,
        last_notified_at=now if told else None,
        resolved_at=now,
        resolution=resolution,
    )


_Record = TypeVar("_Record", "Incident", "Escalation", "Acts")


def evolve(record: _Record, **changes: Any) -> _Record:
    """`dataclasses.replace` for the engine's records (Incident, Escalation, Acts: frozen, every
    field in __init__, no __post_init__): the same new record without calling __init__, which
    costs ~13 µs for an Incident's 28 fields — and a storm's opening run replaces each of tens of
    thousands of incidents about ten times."""
    if not record.__dataclass_fields__.keys() >= changes.keys():
        unknown = sorted(changes.keys() - record.__dataclass_fields__.keys())
        raise TypeError(f"{type(record).__name__} has no field {unknown[0]!r}")
    values = record.__dict__.copy()
    values.update(changes)
    return _made(type(record), values)


def rekeyed(incident: Incident, key: str, signal: Signal) -> Incident:
    """`evolve(incident, key=key, signal=signal)` without its keyword arguments and checks: how
    a storm's opening run makes each of tens of thousands of incidents like one of them."""
    values = incident.__dict__.copy()
    values["key"] = key
    values["signal"] = signal
    return _made(Incident, values)


def grouped_in(incident: Incident, group: str) -> Incident:
    """`evolve(incident, group=group)`, as `rekeyed`: each member of a storm's group is marked."""
    values = incident.__dict__.copy()
    values["group"] = group
    return _made(Incident, values)


def _made(kind: type[_Record], values: dict[str, Any]) -> _Record:
    new = object.__new__(kind)
    object.__setattr__(new, "__dict__", values)  # frozen: its own __setattr__ refuses
    return new


class Brief(NamedTuple):
    """What the engine compares to let a steady failure be (`policy._steadiness`), kept in
    columns of the incident's row so that a run reads no more than this for an incident that
    stays as it is."""

    state: str
    source: str
    fingerprint: str | None  # fingerprint_of(incident.signal)
    failures: int  # consecutive_failures
    successes: int  # consecutive_successes
    onset: datetime
    notified_at: datetime | None  # last_notified_at
    acted: bool  # operators acted on it (acknowledged, silenced, snoozed): the full check decides
    # what the storm passes look at first (core.inhibition, core.grouping)
    inhibited_by: str | None
    group: str | None

    @classmethod
    def of(cls, incident: Incident) -> Brief:
        return cls(
            incident.state.value,
            incident.source,
            fingerprint_of(incident.signal),
            incident.consecutive_failures,
            incident.consecutive_successes,
            incident.onset,
            incident.last_notified_at,
            full_check(incident),
            incident.inhibited_by,
            incident.group,
        )


def full_check(incident: Incident) -> bool:
    """A brief's `acted`: operators acted on the incident, or its escalation counts from another
    instant than its onset (which the brief keeps) — an acknowledgement timed out, the clock
    went back."""
    return incident.acts != _NO_ACTS or incident.escalation.base is not None


_NO_ACTS = Acts()

Load = Callable[[Collection[str]], Mapping[str, Incident]]


# a pending record as the engine starts one: `Records` fills in what a brief knows of it
_PENDING = Incident(
    key="",
    source="",
    severity=Severity.info,
    state=State.pending,
    onset=datetime.min,
    changed_at=datetime.min,
    signal=Signal(key="", source="", firing=True, severity=Severity.info, summary=""),
)


def _pending_as_observed(brief: Brief, signal: Signal) -> bool:
    """`Records.pending_as_observed` of a brief read for the signal's key."""
    return not (
        brief.state != State.pending
        or brief.acted
        or brief.notified_at is not None
        or brief.inhibited_by is not None
        or brief.group is not None
        or brief.source != signal.source
        or brief.source.startswith(GROUP_PREFIX)
        or not signal.firing
        or brief.fingerprint != fingerprint_of(signal)
    )


class Records(Mapping[str, Incident]):
    """The unresolved incidents as a store read them: every incident's `Brief`, and its full
    record (texts, acts, thread...) parsed only when asked for — in one query for many keys
    (`preload`, iteration over values or items)."""

    def __init__(self, briefs: Mapping[str, Brief], load: Load):
        self._briefs = briefs
        self._load = load
        self._full: dict[str, Incident] = {}  # read, or built from the brief when asked for
        self._observed: dict[str, Signal] = {}  # known from the brief (`pending_as_observed`)
        self._read = 0

    def brief(self, key: str) -> Brief | None:
        return self._briefs.get(key)

    def glance(self, key: str) -> Brief | Incident:
        """The full record if it was read, else the brief (KeyError if neither)."""
        return self._full.get(key) or self._briefs[key]

    def glances(self) -> Iterator[tuple[str, Brief | Incident]]:
        """Every key with its `glance`, in the order of iteration."""
        full = self._full  # looked up as it grows: a pass may read records as it goes
        for key, brief in self._briefs.items():
            yield key, full.get(key) or brief

    @property
    def loaded(self) -> int:
        """How many records were read in full."""
        return self._read

    def pending_as_observed(self, signal: Signal) -> bool:
        """Whether the record of `signal`'s incident is known from its brief alone, and if so
        keep it as if read: a pending failure (never opened, so never told, paged or threaded)
        that no operator acted on, not inhibited or grouped, not a group, observed again with
        the fingerprint it was stored with (so its stored signal is this one's equal). The
        engine starts a pending record from nothing and changes nothing else of it before it
        opens, so every other field holds its default. A storm's opening run is tens of
        thousands of these: they are not read and parsed."""
        brief = self._briefs.get(signal.key)
        if brief is None or not _pending_as_observed(brief, signal):
            return False
        self._observed.setdefault(signal.key, signal)
        return True

    def observe(self, signals: Iterable[Signal]) -> list[Brief | None]:
        """Per signal (one per key), its brief if its record is known from it
        (`pending_as_observed`), else None; the records of the others are read, in one query."""
        briefs, full, observed = self._briefs, self._full, self._observed
        known: list[Brief | None] = []
        wanted = []
        for signal in signals:
            key = signal.key
            brief = briefs.get(key)
            if brief is None:
                known.append(None)
            elif key in observed or _pending_as_observed(brief, signal):
                observed.setdefault(key, signal)
                known.append(brief)
            else:
                known.append(None)
                if key not in full:
                    wanted.append(key)
        self.preload(wanted)
        return known

    def _from_brief(self, key: str) -> Incident:
        """Built on each ask and not kept: in a storm's opening run the passes ask for each of
        tens of thousands once or twice, and the engine's copy replaces it at once."""
        brief, signal = self._briefs[key], self._observed[key]
        return evolve(
            _PENDING,
            key=key,
            source=brief.source,
            severity=signal.severity,
            onset=brief.onset,
            changed_at=brief.onset,  # not in the brief; read only of group incidents
            signal=signal,
            consecutive_failures=brief.failures,
            consecutive_successes=brief.successes,
        )

    def preload(self, keys: Collection[str]) -> None:
        wanted = [
            k for k in keys if k in self._briefs and k not in self._full and k not in self._observed
        ]
        if wanted:
            found = self._load(wanted)
            self._read += len(found)
            self._full.update(found)

    def __getitem__(self, key: str) -> Incident:
        found = self._full.get(key)
        if found is None:
            if key in self._observed:
                return self._from_brief(key)
            if key not in self._briefs:
                raise KeyError(key)
            self.preload([key])
            found = self._full.get(key)
            if found is None:  # not a KeyError: `get` would take it for "no record"
                raise LookupError(f"incident {key!r}: its stored record was not read back")
        return found

    def __contains__(self, key: object) -> bool:
        return key in self._briefs

    def known(self) -> Collection[str]:
        """The keys, as `in` asks of them without a call to `__contains__` per key."""
        return self._briefs.keys()

    def get(self, key: str, default: Any = None) -> Any:
        # a storm's opening asks each pass for the record of every new key: no KeyError raised
        if key not in self._briefs:
            return default
        return super().get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._briefs)

    def __len__(self) -> int:
        return len(self._briefs)

    def values(self):  # type: ignore[override]
        self.preload(self._briefs)
        return super().values()

    def items(self):  # type: ignore[override]
        self.preload(self._briefs)
        return super().items()

    def keys(self):  # type: ignore[override]
        # dict(records) asks for the keys and then every record: load them at once
        self.preload(self._briefs)
        return super().keys()


def unseen(incidents: Mapping[str, Incident], signals: Iterable[Signal]) -> list[Incident]:
    """The incidents these signals do not name: all that may have vanished (of `Records`, only
    these are read in full)."""
    seen = {s.key for s in signals}
    keys = [key for key in incidents if key not in seen]
    if isinstance(incidents, Records):
        incidents.preload(keys)
    return [incidents[key] for key in keys]


class Overlay(Mapping[str, Incident]):
    """`before` with `changed` over it — `dict(before) | changed` without reading every record
    of `Records` (the storm passes look at most incidents only through `glance`)."""

    def __init__(self, before: Mapping[str, Incident], changed: Mapping[str, Incident]):
        self.before = before
        self.changed = changed
        # asked for every incident by each storm pass: the kind of `before` is looked at once
        self._glance_before = (
            before.glance if isinstance(before, Records | Overlay) else before.__getitem__
        )
        # ... and so is whether a key is one of it (a Records' keys are its briefs')
        self._known_before = before.known() if isinstance(before, Records) else before

    def glance(self, key: str) -> Brief | Incident:
        found = self.changed.get(key)
        if found is not None:
            return found
        return self._glance_before(key)

    def glances(self) -> Iterator[tuple[str, Brief | Incident]]:
        """Every key with its `glance`, in the order of iteration."""
        for key, was, made in self.pairs():
            yield key, was if made is None else made

    def pairs(self) -> Iterator[tuple[str, Brief | Incident | None, Incident | None]]:
        """Every key, in the order of iteration, with its glance in `before` (None: a key only
        `changed` holds) and its record in `changed` (None: left as it was read) — what a storm
        pass asks of each incident, in one loop over the briefs."""
        changed = self.changed
        if type(self.before) is Records:
            full = self.before._full  # looked up as it grows, as `Records.glances` does
            for key, brief in self.before._briefs.items():
                yield key, full.get(key) or brief, changed.get(key)
        else:
            for key, seen in glances(self.before):
                yield key, seen, changed.get(key)
        known = self._known_before
        for key in [k for k in changed if k not in known]:
            yield key, None, changed[key]

    def unresolved(self, keys: Iterable[str]) -> list[str]:
        """Those of `keys` whose records (as `glance` sees them) are unresolved, in order: a
        group asks this of each of its members on every run."""
        changed, before = self.changed, self.before
        if type(before) is not Records:
            return [k for k in keys if k in self and self.glance(k).state != State.resolved]
        full, briefs = before._full, before._briefs
        found = []
        for key in keys:
            seen = changed.get(key) or full.get(key) or briefs.get(key)
            if seen is not None and seen.state != State.resolved:
                found.append(key)
        return found

    def preload(self, keys: Collection[str]) -> None:
        if isinstance(self.before, Records | Overlay):
            self.before.preload([k for k in keys if k not in self.changed])

    def __getitem__(self, key: str) -> Incident:
        found = self.changed.get(key)
        return self.before[key] if found is None else found

    def __contains__(self, key: object) -> bool:
        return key in self.changed or key in self._known_before

    def __iter__(self) -> Iterator[str]:
        yield from self.before
        known = self._known_before
        yield from (k for k in self.changed if k not in known)

    def __len__(self) -> int:
        known = self._known_before
        return len(self.before) + sum(k not in known for k in self.changed)


def glance(incidents: Mapping[str, Incident], key: str) -> Brief | Incident:
    """What the record of `key` says of its state, source, inhibition and group — from its
    brief when the full record has not been read (`Records`, `Overlay`)."""
    # the exact type first: each storm pass asks this of every incident, and isinstance against
    # these Mapping ABCs costs more than the glance itself
    if type(incidents) in _GLANCING or isinstance(incidents, Records | Overlay):
        return incidents.glance(key)
    return incidents[key]


def glances(incidents: Mapping[str, Incident]) -> Iterator[tuple[str, Brief | Incident]]:
    """`(key, glance(incidents, key))` for every key, as iterating `incidents` lists them: a
    storm pass looks at every incident, and this costs no call per incident."""
    if type(incidents) in _GLANCING or isinstance(incidents, Records | Overlay):
        return incidents.glances()
    return iter(incidents.items())


_GLANCING = (Records, Overlay)
