"""Silences by matchers from every surface (CLI `silence add|query|expire`, Slack `/fleet silence`,
MCP): stored in the store (store/silences.py), applied by the engine at its next run
(core.muting), and — when they can select Alertmanager-sourced incidents — created in
Alertmanager too, so its own receivers go quiet, and expired there with ours. Every add and
expire is recorded in the actions trail (key `silence:<id>`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx

from fleet_alerting.config import Config
from fleet_alerting.config.secrets import redact
from fleet_alerting.core.actions import ALERTMANAGER_SOURCE
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.fleet import selector
from fleet_alerting.core.incidents import Incident
from fleet_alerting.core.matchers import Matcher, MatcherError, parse_matchers
from fleet_alerting.core.muting import Muting, Silence, labels_of
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.sources.alertmanager.client import Alertmanager
from fleet_alerting.store import actions as audit
from fleet_alerting.store import silences
from fleet_alerting.store.database import Store
from fleet_alerting.store.errors import StoreError

MAX_SILENCE = timedelta(days=365)
T = TypeVar("T")


@dataclass(frozen=True)
class SilenceOutcome:
    ok: bool
    message: str
    silence: Silence | None = None
    warnings: list[str] = field(default_factory=list)


def parse_silence_matchers(texts: list[str]) -> list[Matcher]:
    """Matchers from words such as `target="pi-video-03"` or `{a="b", c=~"d.*"}`; refused as
    Alertmanager refuses them, and refused if every one matches the empty string (such a
    silence would mute everything)."""
    found = [m for text in texts for m in parse_matchers(text)]
    if not found:
        raise MatcherError('at least one matcher, e.g. target="pi-video-03"')
    if all(m.matches({}) for m in found):
        raise MatcherError("at least one matcher must not match the empty string")
    return found


def alertmanager_matchers(matchers: list[Matcher]) -> list[dict[str, object]] | None:
    """The silence as Alertmanager API v2 matchers — its `source` matchers dropped (alerts have
    no such label) — or None when it cannot select an Alertmanager-sourced incident, or would
    select every alert there."""
    if not selector(tuple(str(m) for m in matchers)).admits(ALERTMANAGER_SOURCE):
        return None
    rest = [m for m in matchers if m.name != "source"]
    if not rest or all(m.matches({}) for m in rest):
        return None
    return [
        {"name": m.name, "value": m.value, "isRegex": "~" in m.op, "isEqual": m.op[0] == "="}
        for m in rest
    ]


async def add_silence(
    config: Config,
    texts: list[str],
    duration: timedelta,
    *,
    author: str,
    comment: str,
    via: str,
    now: datetime,
    client: httpx.AsyncClient | None = None,
) -> SilenceOutcome:
    try:
        matchers = parse_silence_matchers(texts)
    except MatcherError as exc:
        return SilenceOutcome(False, f"refused: {exc}")
    if not timedelta(0) < duration <= MAX_SILENCE:
        return SilenceOutcome(False, f"refused: a duration above 0 and at most {MAX_SILENCE.days}d")
    silence = Silence(
        id=silences.new_id(),
        matchers=tuple(str(m) for m in matchers),
        starts_at=now,
        ends_at=now + duration,
        author=author,
        comment=comment,
        created_at=now,
    )
    store = await _off_loop(Store, config.state)
    try:
        await _off_loop(silences.add, store, silence)
        warnings, am_id = [], None
        in_am = alertmanager_matchers(matchers)
        if in_am is not None and config.alertmanager is not None:
            try:
                am_id = await _with_am(
                    config,
                    client,
                    lambda am: am.create_silence(
                        in_am,
                        now,
                        silence.ends_at,
                        created_by=author,
                        comment=f"fleet-alerting silence {silence.short_id}: {comment}".strip(),
                    ),
                )
                await _off_loop(silences.set_alertmanager_id, store, silence.id, am_id)
                silence = Silence(**{**silence.__dict__, "alertmanager_id": am_id})
            except AdapterError as exc:
                warnings.append(
                    f"Alertmanager refused the silence ({redact(str(exc))}): "
                    "its own receivers still notify"
                )
        detail = {"matchers": list(silence.matchers), "until": silence.ends_at, "comment": comment}
        if am_id:
            detail["alertmanager_id"] = am_id
        await _off_loop(_record, store, silence, "silence add", author, via, now, warnings, detail)
        open_incidents = await _off_loop(store.incidents)
    finally:
        await _off_loop(store.close)
    where = f" (and Alertmanager silence {am_id})" if am_id else ""
    message = (
        f"Silence {silence.short_id} by {author} until {silence.ends_at:%Y-%m-%d %H:%M} UTC "
        f"({format_duration(duration)}): {' '.join(silence.matchers)}{where}"
    )
    if not any(silence.matches(labels_of(i)) for i in open_incidents):
        message += (
            "; it matches no open incident now (an incident's labels: `fleet-alerting incidents"
            " --json`)"
        )
    return SilenceOutcome(not warnings, message, silence, warnings)


async def expire_silence(
    config: Config,
    typed_id: str,
    *,
    actor: str,
    via: str,
    now: datetime,
    client: httpx.AsyncClient | None = None,
) -> SilenceOutcome:
    store = await _off_loop(Store, config.state)
    try:
        try:
            found = await _off_loop(silences.find, store, typed_id)
        except silences.NoSuchSilence as exc:
            return SilenceOutcome(False, str(exc))
        if found.ends_at <= now:
            return SilenceOutcome(False, f"silence {found.short_id} already ended", found)
        expired = await _off_loop(silences.expire, store, found.id, actor, now)
        warnings = []
        if found.alertmanager_id and config.alertmanager is not None:
            try:
                am_id = found.alertmanager_id
                await _with_am(config, client, lambda am: am.expire_silence(am_id))
            except AdapterError as exc:
                warnings.append(
                    f"Alertmanager did not expire silence {found.alertmanager_id} "
                    f"({redact(str(exc))}): expire it there"
                )
        detail = {"alertmanager_id": found.alertmanager_id}
        await _off_loop(_record, store, found, "silence expire", actor, via, now, warnings, detail)
    finally:
        await _off_loop(store.close)
    return SilenceOutcome(
        not warnings, f"Silence {found.short_id} expired by {actor}", expired, warnings
    )


async def _off_loop(call: Callable[..., T], *args: Any) -> T:
    """A store step in a worker thread: a write can wait for the store's write lock (an
    evaluation holds it) up to its busy timeout, and the surfaces' event loop (the Slack app,
    the MCP server) keeps answering meanwhile."""
    return await asyncio.to_thread(call, *args)


def _record(
    store: Store,
    silence: Silence,
    action: str,
    actor: str,
    via: str,
    now: datetime,
    warnings: list[str],
    detail: dict[str, Any],
) -> None:
    """The actions trail's row for a silence (its key: `silence:<id>`)."""
    outcome = "done" if not warnings else f"done; {warnings[0]}"
    audit.record(
        store,
        f"silence:{silence.id}",
        action=action,
        actor=actor,
        via=via,
        now=now,
        outcome=outcome,
        detail=detail,
    )


def query(config: Config, now: datetime, include_expired: bool = False) -> list[dict[str, Any]]:
    """Silences in force (or to come, or with `include_expired` every one) and every maintenance
    window rule, each with the open incidents it mutes now."""
    stored, muted_counts, open_incidents = _stored(config, now, include_expired)
    labelled = [(i.key, labels_of(i)) for i in open_incidents]
    rows = []
    for s in stored:
        mutes = [key for key, labels in labelled if s.active(now) and s.matches(labels)]
        rows.append(_silence_row(s, now, mutes, muted_counts.get(s.id, 0)))
    muting = Muting((), config.maintenance_rules())
    for rule, times in zip(muting.maintenance.mute, muting.schedules(now), strict=True):
        selects = selector(tuple(rule.matchers))
        mutes = [key for key, labels in labelled if times.muting and selects(labels)]
        rows.append(
            {
                "kind": "window",
                "id": "/".join(rule.mute_time_intervals or rule.active_time_intervals),
                "matchers": list(rule.matchers),
                "mute_time_intervals": list(rule.mute_time_intervals),
                "active_time_intervals": list(rule.active_time_intervals),
                "state": "muting" if times.muting else "not muting now",
                "ends_at": _iso(times.lifts),  # muting now: when it lifts
                "next_starts_at": _iso(times.next_start),
                "next_ends_at": _iso(times.next_end),
                "time_zones": list(times.zones),
                "when": times.when(),  # "next 2026-12-08 01:00–02:00 UTC (…)"
                "schedule": times.describe(),  # the same with its windows' name and matchers
                "mutes_now": mutes,
            }
        )
    return rows


def _stored(
    config: Config, now: datetime, include_expired: bool
) -> tuple[list[Silence], dict[str, int], list[Incident]]:
    """The store's silences, their counts and the open incidents; nothing yet without a store
    (a listing never creates one)."""
    try:
        store = Store(config.state, create=False)
    except StoreError:
        return [], {}, []
    with store:
        return (
            silences.listing(store, now, include_expired),
            silences.muted_counts(store),
            store.incidents(),
        )


def _silence_row(s: Silence, now: datetime, mutes: list[str], muted: int) -> dict[str, Any]:
    state = "active" if s.active(now) else ("pending" if s.starts_at > now else "expired")
    return {
        "kind": "silence",
        "id": s.id,
        "matchers": list(s.matchers),
        "state": state,
        "starts_at": _iso(s.starts_at),
        "ends_at": _iso(s.ends_at),
        "author": s.author,
        "comment": s.comment,
        "expired_by": s.expired_by,
        "alertmanager_id": s.alertmanager_id,
        "mutes_now": mutes,
        "muted_total": muted,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


async def _with_am(config: Config, client: httpx.AsyncClient | None, call: Any) -> Any:
    assert config.alertmanager is not None
    if client is not None:
        return await call(Alertmanager(client, config.alertmanager.url))
    async with httpx.AsyncClient(timeout=config.alertmanager.timeout.total_seconds()) as own:
        return await call(Alertmanager(own, config.alertmanager.url))
