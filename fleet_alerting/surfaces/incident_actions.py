"""One way to act on an incident, whoever asks (a Slack click, the CLI, an MCP tool, PagerDuty):
acknowledge, silence (Alertmanager silence or local mute), unsilence, snooze.

The decision is core.actions; this module does the I/O around it: the Alertmanager silence API,
the store (incident + outbox + audit in one transaction) and, after it, draining the outbox so a
PagerDuty acknowledge or a Slack thread reply goes out at once rather than with the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from fleet_alerting.config import Config
from fleet_alerting.config.secrets import redact
from fleet_alerting.core import actions
from fleet_alerting.core.durations import format_duration, parse_duration
from fleet_alerting.core.incidents import Incident
from fleet_alerting.core.wording import no_such
from fleet_alerting.delivery.deliver import deliver as deliver_outbox
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.sources.alertmanager.client import Alertmanager
from fleet_alerting.store import actions as audit
from fleet_alerting.store.database import Store

# Alertmanager silences need an end: "until resolved" there lasts this long (Unsilence ends it).
ALERTMANAGER_UNTIL_RESOLVED = timedelta(days=7)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str  # for the operator: what happened, or why not
    incident: Incident | None = None


def parse_for(value: str | None) -> timedelta | None:
    """ "1h", "4h", "24h", "90" (seconds, as everywhere in the config) … → a duration;
    "resolved" / None → until resolved."""
    if value in (None, "", "resolved", "until-resolved"):
        return None
    duration = parse_duration(_seconds(value))
    if duration <= timedelta(0):
        raise ValueError("a duration above zero, e.g. 1h")
    return duration


def _seconds(text: str) -> str | float:
    """A bare number typed on a command line is seconds, as a bare number in the config is."""
    try:
        return float(text)
    except ValueError:
        return text


async def perform(
    config: Config,
    key: str,
    action: actions.Action,
    *,
    actor: str,
    via: str,
    now: datetime,
    duration: timedelta | None = None,
    client: httpx.AsyncClient | None = None,
    deliver: bool = True,
) -> Outcome:
    with Store(config.state) as store:
        async with _client(client) as http:
            outcome = await _perform(store, config, key, action, actor, via, now, duration, http)
            if deliver and outcome.ok:
                await deliver_outbox(config, store, http)
        return outcome


async def _perform(
    store: Store,
    config: Config,
    key: str,
    action: actions.Action,
    actor: str,
    via: str,
    now: datetime,
    duration: timedelta | None,
    http: httpx.AsyncClient,
) -> Outcome:
    incident = store.incident(key)
    if incident is None:
        audit.record(
            store,
            key,
            action=action,
            actor=actor,
            via=via,
            now=now,
            outcome="refused: no such incident",
        )
        return Outcome(False, no_such("incident", key))
    channels = config.policy(incident.severity).channels()
    detail: dict[str, object] = {}
    until = now + duration if duration is not None else None
    if action == "ack":
        decide = lambda i: actions.acknowledge(i, actor, now, channels)  # noqa: E731
    elif action == "snooze":
        if until is None:
            return Outcome(False, "Snooze needs a duration, e.g. 1h.")
        detail["until"] = until
        decide = lambda i: actions.snooze(i, actor, now, until)  # noqa: E731
    elif action == "silence":
        silence_id = None
        detail["until"] = until or "resolved"
        if actions.silences_in_alertmanager(incident) and incident.is_open:
            if incident.acts.silenced:
                return Outcome(False, f"Already silenced by {incident.acts.silenced_by}.")
            try:
                silence_id = await _am_silence(config, http, incident, actor, now, until)
            except AdapterError as exc:
                return _failed(store, key, action, actor, via, now, exc)
            detail["silence_id"] = silence_id
        decide = lambda i: actions.silence(i, actor, now, until, channels, silence_id)  # noqa: E731
    elif action == "unsilence":
        if incident.acts.silence_id:
            detail["silence_id"] = incident.acts.silence_id
            try:
                await _am(config, http).expire_silence(incident.acts.silence_id)
            except AdapterError as exc:
                return _failed(store, key, action, actor, via, now, exc)
        failing = _still_failing(store, incident)
        decide = lambda i: actions.unsilence(i, actor, now, channels, failing)  # noqa: E731
    else:
        return Outcome(False, f"Unknown action {action!r}.")
    change = audit.apply(
        store, key, decide, action=action, actor=actor, via=via, now=now, detail=detail
    )
    if change is None:
        return Outcome(False, no_such("incident", key))
    if change.refused:
        return Outcome(False, f"Not done: {change.refused}.", change.incident)
    return Outcome(True, describe(action, actor, now, duration, detail), change.incident)


def _still_failing(store: Store, incident: Incident) -> bool:
    """A group fails while one of its members does (its own record counts no passes)."""
    if not incident.members:
        return incident.consecutive_successes == 0
    members = (store.incident(key) for key in incident.members)
    return any(m is not None and m.consecutive_successes == 0 for m in members)


def describe(
    action: str, actor: str, now: datetime, duration: timedelta | None, detail: dict[str, object]
) -> str:
    when = f"{now:%H:%M} UTC"
    span = f"for {format_duration(duration)}" if duration is not None else "until resolved"
    if action == "ack":
        return f"Acknowledged by {actor} {when}."
    if action == "snooze":
        return f"Reminders snoozed by {actor} {span}."
    if action == "silence":
        where = f" (Alertmanager silence {detail['silence_id']})" if "silence_id" in detail else ""
        return f"Silenced by {actor} {span}{where}."
    return f"Silence lifted by {actor} {when}."


def _am(config: Config, http: httpx.AsyncClient) -> Alertmanager:
    if config.alertmanager is None:
        raise AdapterError("alertmanager: not configured", permanent=True)
    return Alertmanager(http, config.alertmanager.url, config.alertmanager.max_answer_bytes)


async def _am_silence(
    config: Config,
    http: httpx.AsyncClient,
    incident: Incident,
    actor: str,
    now: datetime,
    until: datetime | None,
) -> str:
    labels = incident.signal.labels
    if not labels.get("alertname"):
        raise AdapterError("the alert's labels are unknown: cannot build matchers", permanent=True)
    link = next((x.url for x in incident.signal.links if x.text == "Alertmanager"), "")
    comment = f"fleet-alerting incident {incident.key}" + (f" {link}" if link else "")
    return await _am(config, http).create_silence(
        actions.silence_matchers(labels),
        now,
        until or now + ALERTMANAGER_UNTIL_RESOLVED,
        created_by=actor,
        comment=comment,
    )


def _failed(
    store: Store, key: str, action: str, actor: str, via: str, now: datetime, exc: AdapterError
) -> Outcome:
    reason = redact(str(exc))
    audit.record(
        store, key, action=action, actor=actor, via=via, now=now, outcome=f"failed: {reason}"
    )
    return Outcome(False, f"Alertmanager refused: {reason}")


class _client:
    """The caller's client, or one of our own for this call."""

    def __init__(self, client: httpx.AsyncClient | None):
        self.given = client
        self.own: httpx.AsyncClient | None = None

    async def __aenter__(self) -> httpx.AsyncClient:
        if self.given is not None:
            return self.given
        self.own = httpx.AsyncClient(timeout=10)
        return self.own

    async def __aexit__(self, *exc: object) -> None:
        if self.own is not None:
            await self.own.aclose()
