"""Operator actions on an incident — acknowledge, silence (a local mute or an Alertmanager silence),
snooze, unsilence — and what they change in what the engine tells whom. Pure, like the engine.

- **Acknowledge**: who and when are recorded; reminders and further escalation steps stop, for the
  policy's `ack_timeout` (then the engine escalates again, core/escalation.py) or `ack_holds_page`
  (None: for the rest of this failure episode); already paged: the pagers that can take it
  (PagerDuty, each routing key paged) get an acknowledge. Slack gets a thread reply.
- **Silence**: Alertmanager-sourced incidents get a real silence (the surface creates it and hands
  its id here); our own sources get a local mute. Either way, until it ends the incident keeps being
  recorded but tells and pages nobody (a pager resolve of an earlier page still goes); a page
  already out gets an acknowledge, as when a window begins (a group's member has none: its
  group's page went). A mute that ends (by time or by hand) while the failure persists says so
  in one message, and pages again what it acknowledged (Unsilence: only while the check fails,
  and not when a step it held is owed, which pages on the next run).
- **Snooze**: no reminders until then; a new failure still opens, and pages follow the policy.
- A failure that resolves and comes back is a new episode: a new record, unacknowledged, unmuted.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from fleet_alerting.core.channels import SLACK_CHANNELS, Channel, pager_of
from fleet_alerting.core.incidents import (
    MUTE_SILENCE,
    MUTE_WINDOW,
    Acts,
    Incident,
    Kind,
    Notification,
    Page,
    State,
)

ALERTMANAGER_SOURCE = "alertmanager"  # sources.alertmanager.judge.SOURCE (core imports no source)
ACKNOWLEDGING_PAGERS = (
    Channel.pagerduty,
)  # Grafana OnCall's formatted webhook knows no acknowledge
# ends the id of the Slack "paged" message of a mute that ended by paging again what it held
PAGED_AGAIN = ":paged-again"
Action = Literal["ack", "silence", "unsilence", "snooze"]
ACTIONS: tuple[Action, ...] = ("ack", "silence", "unsilence", "snooze")


@dataclass(frozen=True)
class Change:
    """The result of one action: the incident to store and what to queue, or why nothing changed."""

    incident: Incident
    notifications: list[Notification]
    refused: str | None = None


def silences_in_alertmanager(incident: Incident) -> bool:
    return incident.source == ALERTMANAGER_SOURCE


def silence_matchers(labels: Mapping[str, str]) -> list[dict[str, object]]:
    """Alertmanager API v2 matchers for one alert: every label, equal — so at least alertname
    and the grouping labels, and nothing broader than this alert."""
    return [
        {"name": name, "value": value, "isRegex": False, "isEqual": True}
        for name, value in sorted(labels.items())
    ]


# --- what the engine asks -------------------------------------------------------------------


def silenced_at(incident: Incident, now: datetime) -> bool:
    acts = incident.acts
    return acts.silenced and (acts.silenced_until is None or now < acts.silenced_until)


def closes(incident: Incident, kind: Kind) -> bool:
    """A resolve of an incident told before it was silenced still goes: every destination that
    saw it firing hears that it ended. Not an Alertmanager incident's: its silence there is what
    ends it here, and the silence was told."""
    return (
        kind == Kind.resolved
        and incident.last_notified_at is not None
        and not silences_in_alertmanager(incident)
    )


def holds_page(incident: Incident, hold: timedelta | None, now: datetime) -> bool:
    """An ack (for `hold`, None: for the episode) or a silence keeps a not-yet-sent page back."""
    acts = incident.acts
    if silenced_at(incident, now):
        return True
    if acts.acked_at is None:
        return False
    return hold is None or now < acts.acked_at + hold


def holds_reminder(incident: Incident, now: datetime) -> bool:
    acts = incident.acts
    snoozed = acts.snoozed_until is not None and now < acts.snoozed_until
    return acts.acked_at is not None or snoozed or silenced_at(incident, now)


def expiry_due(incident: Incident, now: datetime) -> bool:
    acts = incident.acts
    return acts.silenced and acts.silenced_until is not None and now >= acts.silenced_until


def expire(
    incident: Incident, channels: Sequence[str], now: datetime
) -> tuple[Incident, list[Notification]]:
    """A mute that ran out while the failure persists: lift it and say so, once (a page the
    silence acknowledged goes again after this run's step: `silence_ended`)."""
    if not expiry_due(incident, now):
        return incident, []
    incident = replace(incident, acts=_lifted(incident.acts, now))
    if not channels:
        return incident, []
    incident = replace(incident, last_notified_at=now)
    return incident, [notification(incident, c, Kind.silence_expired, now) for c in channels]


# --- the actions ----------------------------------------------------------------------------


def _ack_refused(incident: Incident) -> str | None:
    if incident.state == State.resolved:
        return "already resolved"
    if incident.acts.acked_at is not None:
        return f"already acknowledged by {incident.acts.acked_by}"
    return None


def _acked(incident: Incident, actor: str, now: datetime) -> Incident:
    acts = replace(incident.acts, acked_by=actor, acked_at=now, changed_at=now)
    return replace(incident, acts=acts, changed_at=now)


def acknowledge(incident: Incident, actor: str, now: datetime, channels: Sequence[str]) -> Change:
    if refused := _ack_refused(incident):
        return Change(incident, [], refused)
    pagers = _held_pages(incident)
    incident = _acked(incident, actor, now)
    return Change(incident, _to(incident, [*pagers, *_closing(channels)], Kind.acknowledged, now))


def silence(
    incident: Incident,
    actor: str,
    now: datetime,
    until: datetime | None,
    channels: Sequence[str],
    silence_id: str | None = None,
) -> Change:
    """Mute until `until` (None: until resolved). For an Alertmanager incident, `silence_id` is the
    silence the caller created there."""
    if incident.state == State.resolved:
        return Change(incident, [], "already resolved")
    if silences_in_alertmanager(incident) and not silence_id:
        return Change(incident, [], "an Alertmanager incident needs an Alertmanager silence")
    if until is not None and until <= now:
        return Change(incident, [], "the silence would end before it begins")
    acts = replace(
        incident.acts,
        silenced_by=actor,
        silenced_until=until,
        silence_id=silence_id,
        changed_at=now,
    )
    pagers = _held_pages(incident)
    incident = replace(incident, acts=acts, changed_at=now)
    # a page already out is acknowledged, as when a window begins: its pager's own escalation
    # would keep ringing the on-call for what operators silenced
    return Change(incident, _to(incident, [*_closing(channels), *pagers], Kind.silenced, now))


def unsilence(
    incident: Incident,
    actor: str,
    now: datetime,
    channels: Sequence[str],
    failing: bool | None = None,
) -> Change:
    """`failing`: whether the failure goes on (None: the record's own check says; a group's
    caller asks its members)."""
    if not incident.acts.silenced:
        return Change(incident, [], _not_silenced(incident.acts))
    silenced = incident
    incident = replace(incident, acts=_lifted(incident.acts, now), changed_at=now)
    if incident.state == State.resolved:
        return Change(incident, [])
    # (else the window's end, or the restarted step of an ack that timed out, pages again)
    if incident.acts.mute_id is None and _still_owed(incident, failing):
        incident, again = silence_ended(silenced, incident, [], _closing(channels), now)
        if again:
            return Change(incident, again)
    return Change(incident, _to(incident, _slack(channels), Kind.unsilenced, now))


def _not_silenced(acts: Acts) -> str:
    """Why unsilence cannot help, and what ends the mute there is."""
    kind, _, name = (acts.mute_id or "").partition(":")
    if kind == MUTE_SILENCE:
        return f"not silenced by hand; muted by silence {name} (`silence expire {name}` ends it)"
    if kind == MUTE_WINDOW:
        return f"not silenced by hand; muted by the maintenance window {name!r} (config)"
    return "not silenced"


def snooze(incident: Incident, actor: str, now: datetime, until: datetime) -> Change:
    if incident.state == State.resolved:
        return Change(incident, [], "already resolved")
    if silences_in_alertmanager(incident):
        return Change(incident, [], "snooze is for our own sources; silence it in Alertmanager")
    if until <= now:
        return Change(incident, [], "the snooze would end before it begins")
    acts = replace(incident.acts, snoozed_until=until, changed_at=now)
    return Change(replace(incident, acts=acts, changed_at=now), [])


def pager_acknowledged(
    incident: Incident, actor: str, now: datetime, channels: Sequence[str]
) -> Change:
    """Acknowledged in PagerDuty: recorded like an ack here, told in Slack, not echoed back."""
    if refused := _ack_refused(incident):
        return Change(incident, [], refused)
    incident = _acked(incident, actor, now)
    return Change(incident, _to(incident, _closing(channels), Kind.pager_acknowledged, now))


def pager_resolved(
    incident: Incident, actor: str, now: datetime, channels: Sequence[str]
) -> Change:
    """Resolved in PagerDuty while our check still fails: the incident stays open here (it
    resolves when the check passes), counts as acknowledged (no reminders, no second page this
    episode), and Slack is told plainly that the failure goes on."""
    if incident.state == State.resolved:
        return Change(incident, [], "already resolved here")
    acts = incident.acts
    if acts.acked_at is None:
        acts = replace(acts, acked_by=actor, acked_at=now)
    incident = replace(incident, acts=replace(acts, changed_at=now), changed_at=now)
    return Change(incident, _to(incident, _slack(channels), Kind.pager_resolved, now))


def newer_acts(stored: Incident | None, incoming: Incident) -> Incident:
    """`incoming` (an evaluation from a read before an action) with the stored record's acts when
    those changed later, so an action between read and write is not lost."""
    if stored is None or stored.onset != incoming.onset:
        return incoming
    if stored.state == State.resolved and incoming.state != State.resolved:
        return incoming  # a new episode with the same onset (an Alertmanager alert back)
    theirs, ours = stored.acts.changed_at, incoming.acts.changed_at
    if theirs is not None and (ours is None or theirs > ours):
        return replace(incoming, acts=stored.acts)
    return incoming


def with_stored_acts(
    incidents: Iterable[Incident], stored: Mapping[str, Incident]
) -> list[Incident]:
    return [newer_acts(stored.get(i.key), i) for i in incidents]


def silence_ended(
    silenced: Incident,
    incident: Incident,
    stepped: Sequence[Notification],
    channels: Sequence[str],
    now: datetime,
) -> tuple[Incident, list[Notification]]:
    """An operator's silence over (ran out, or lifted) on a page it acknowledged (`silenced`:
    the record it held; `incident`: after this run's step, which sent `stepped`): the page goes
    again as at a window's end (`paged_again`: resolve, then trigger), recorded as a page
    (`repaged`), and Slack (`channels`) hears it as a "paged" message that waits for the pages —
    the step's own "paged" message if one is due now, saying the silence ended. Nothing to page
    again: (incident, [])."""
    paging = [n.channel for n in stepped if n.kind == Kind.paged]
    resolving = {n.channel for n in stepped if n.kind == Kind.resolved}  # an ack timed out
    again = paged_again(incident, silenced, now, paging)
    if not [n for n in again if n.kind == Kind.paged or n.channel not in resolving]:
        return incident, []  # this run's step pages them again itself
    pagers = [n.channel for n in again if n.kind == Kind.paged]
    if pagers:
        incident = replace(repaged(incident, pagers, now), last_notified_at=now)
        again = paged_again(incident, silenced, now, paging)
    again = [n for n in again if n.kind == Kind.paged or n.channel not in resolving]
    resolves = [n for n in again if n.kind == Kind.resolved]
    pages = [n for n in again if n.kind == Kind.paged]
    if any(n.kind == Kind.paged and n.channel in SLACK_CHANNELS for n in stepped):
        note = f"{incident.signal.summary} (was silenced by {silenced.acts.silenced_by}, "
        told = replace(incident, signal=replace(incident.signal, summary=note + "which has ended)"))
        said = [
            replace(n, incident=told) if n.kind == Kind.paged and n.channel in SLACK_CHANNELS else n
            for n in stepped
        ]
        return incident, [*resolves, *pages, *said]
    said = [paged_again_told(incident, c, now) for c in channels]
    return incident, [*resolves, *pages, *said, *stepped]


# --- helpers ----------------------------------------------------------------------------------


def _still_owed(incident: Incident, failing: bool | None) -> bool:
    """Whether lifting a silence by hand is what pages again: not while the check passes (it may
    resolve), nor when the escalation restarted under the silence (an acknowledgement timed
    out): its step, due again, pages on the next run."""
    esc = incident.escalation
    restarted = any(p.step > esc.step for p in esc.pages)
    if failing is None:
        failing = incident.consecutive_successes == 0
    return failing and not restarted


def _pages_out(incident: Incident) -> list[str]:
    """The pages out that a pager can acknowledge (PagerDuty's: Grafana OnCall's formatted
    webhook knows none). A group's member has none of its own: its group's page went."""
    if incident.group is not None:
        return []
    return [p for p in incident.paged_via if pager_of(p) in ACKNOWLEDGING_PAGERS]


def _held_pages(incident: Incident) -> list[str]:
    """The pages out (`_pages_out`) that an acknowledge can hold, while nobody acknowledged
    them."""
    if incident.state != State.paged or incident.acts.acked_at is not None:
        return []
    return _pages_out(incident)


def _lifted(acts: Acts, now: datetime) -> Acts:
    return replace(acts, silenced_by=None, silenced_until=None, silence_id=None, changed_at=now)


def _slack(channels: Sequence[str]) -> list[str]:
    """Actions are told in the incident's own channel (its thread), not the mirror."""
    return [c for c in channels if c == Channel.slack]


def _closing(channels: Sequence[str]) -> list[str]:
    """What closes a firing message (acknowledged, silenced) goes wherever it was told: the
    incident's thread and the mirror channel."""
    return [c for c in channels if c in SLACK_CHANNELS]


def _to(
    incident: Incident, channels: Sequence[str], kind: Kind, now: datetime
) -> list[Notification]:
    return [notification(incident, c, kind, now) for c in channels]


def closing_words(
    incident: Incident, told: Incident, channels: Sequence[str], now: datetime
) -> list[Notification]:
    """A silence, window or inhibition that begins on an incident already told (`told`: the
    record as it was): a closing word to every destination that saw it firing, and to the pager
    that can take it (PagerDuty) an acknowledge of its page."""
    return [notification(incident, c, Kind.muted, now) for c in [*channels, *_pages_out(told)]]


def paged_again(
    incident: Incident, told: Incident, now: datetime, paging: Collection[str] = ()
) -> list[Notification]:
    """A mute that ends on a paged incident still failing: each page `closing_words`
    acknowledged (`told`: the record as it was) is paged again (`paging`: pagers the engine
    pages now anyway). PagerDuty Events v2 folds a `trigger` whose dedup_key names an open alert
    — an acknowledged one too — into that alert, which stays acknowledged, and has no event that
    un-acknowledges: so the held page is resolved, then triggered again with the same dedup_key,
    which opens a new incident there and notifies the on-call. A page an operator acknowledged
    stays acknowledged."""
    if incident.state != State.paged or incident.acts.acked_at is not None:
        return []
    pagers = _pages_out(told)
    resolves = [notification(incident, p, Kind.resolved, now) for p in pagers]
    again = [notification(incident, p, Kind.paged, now) for p in pagers if p not in paging]
    return resolves + again


def paged_again_told(incident: Incident, channel: str, now: datetime) -> Notification:
    """Slack's word that a mute ended paging again (`repaged`): a "paged" message, told as one
    once the pagers took the page (or PAGING FAILED)."""
    n = notification(incident, channel, Kind.paged, now)
    return replace(n, id=n.id + PAGED_AGAIN)


def repaged(incident: Incident, pagers: Sequence[str], now: datetime) -> Incident:
    """The incident with `paged_again`'s pages recorded as pages of the step it is on: its
    Slack message waits for them and names them, and `Paged:` lists their times."""
    esc = incident.escalation
    pages = esc.pages + tuple(Page(p, now, esc.step) for p in pagers)
    return replace(incident, escalation=replace(esc, pages=pages))


def reopened(
    incident: Incident, paged_before: Sequence[str], pagers: Sequence[str], now: datetime
) -> list[Notification]:
    """A step that pages a PagerDuty page of this episode again (an acknowledgement that timed
    out): its alert is still open there, acknowledged or not, and would fold the new trigger in
    without notifying anyone, so it is resolved first (see `paged_again`)."""
    again = [p for p in pagers if p in paged_before and pager_of(p) in ACKNOWLEDGING_PAGERS]
    return [notification(incident, p, Kind.resolved, now) for p in again]


def notification(incident: Incident, channel: str, kind: Kind, now: datetime) -> Notification:
    """Actions can repeat within an episode (silence, unsilence, silence again): the moment is
    part of the id."""
    ident = f"{incident.key}|{incident.onset.isoformat()}|{kind}|{now.isoformat()}|{channel}"
    return Notification(id=ident, channel=channel, kind=kind, at=now, incident=incident)
