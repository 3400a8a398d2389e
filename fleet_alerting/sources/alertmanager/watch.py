"""Page critical Alertmanager alerts (fleet offline, API down) that persist past the window.
Every escalation rule's query is one step."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from fleet_alerting.config import Config
from fleet_alerting.config.schema import AlertmanagerConfig, EscalationRule, WatchdogConfig
from fleet_alerting.core.clock import CLOCK_SKEW, ahead_by
from fleet_alerting.core.incidents import Incident
from fleet_alerting.core.policy import PolicyConfig, PolicyFor
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.core.wording import count, described
from fleet_alerting.http.clients import shared_client
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.sources.alertmanager import watchdog
from fleet_alerting.sources.alertmanager.client import Alert, AlertList, Alertmanager, Status
from fleet_alerting.sources.alertmanager.judge import (
    RECORDS_SOURCE,
    SOURCE,
    RuleFailure,
    alert_key,
    failure_signals,
    malformed_signals,
    restart_doubt,
    to_signals,
    unseen,
)
from fleet_alerting.sources.records import Malformed
from fleet_alerting.sources.watch import Observation, StoreReader, run_log, step

WATCHDOG = "watchdog"  # the watchdog's query among the rules' (its failure names it so)


@dataclass(frozen=True)
class Escalating:
    matched: list[tuple[EscalationRule, list[Alert]]]
    failures: list[RuleFailure]
    malformed: list[Malformed]
    watchdog: AlertList | None = None  # the watchdog's answer; None: off, or no answer
    answered_at: datetime | None = None  # Alertmanager's clock, by an answer's Date header


@step("fetch-escalating-alerts")
async def fetch_escalating_alerts(config: AlertmanagerConfig) -> Escalating:
    """Per rule, the alerts its matchers select (Alertmanager does the matching, so its own
    semantics apply), and the watchdog's alert. Silenced and inhibited alerts are included and
    marked, so an incident of an alert that gets silenced can say why it stopped. A failing rule
    is a problem, and an alert not of the documented shape a `Malformed`, never a crash."""
    logger = run_log()
    queries: list[tuple[EscalationRule | None, list[str]]] = [
        (rule, rule.matchers) for rule in config.rules
    ]
    if config.watchdog is not None:
        queries.append((None, watchdog.matchers(config.watchdog)))  # None: the watchdog's
    api = _api(config)
    answers = await asyncio.gather(
        *(api.escalation_alerts(selects) for _, selects in queries), return_exceptions=True
    )
    found = Escalating([], [], [])
    failed = defaultdict(list)  # (error, permanent) → rule names
    malformed: dict[str, Malformed] = {}
    for (rule, _), answer in zip(queries, answers, strict=True):
        name = rule.name if rule is not None else WATCHDOG
        if isinstance(answer, AdapterError):
            if rule is not None or (str(answer), answer.permanent) not in failed:
                failed[(str(answer), answer.permanent)].append(name)  # else: already told
            logger.error("escalation rule %s: %s", name, answer)
            continue
        if isinstance(answer, BaseException):
            raise answer
        found = replace(found, answered_at=found.answered_at or answer.answered_at)
        if rule is None:
            found = replace(found, watchdog=answer)
        else:
            found.matched.append((rule, answer.alerts))
        for bad in answer.malformed:
            malformed.setdefault(bad.identity, bad)
            logger.warning("escalation rule %s: malformed alert %s", name, bad)
        logger.info("escalation rule %s: %d alert(s)", name, len(answer.alerts))
    # one problem per distinct error: Alertmanager down is one message, not one per rule
    found.failures.extend(
        RuleFailure(error, tuple(names), permanent) for (error, permanent), names in failed.items()
    )
    found.malformed.extend(malformed.values())
    return found


def clock_key(config: WatchdogConfig) -> str:
    return f"{watchdog.SOURCE}:{config.alertname}"


def advance_watchdog_clock(
    store: StoreReader, config: WatchdogConfig, seen: bool | None, now: datetime
) -> watchdog.WatchdogClock:
    """The watchdog's clock after this run's sighting (the run keeps it for the next runs)."""
    return watchdog.WatchdogClock.load(store.get_value(clock_key(config))).after(seen, now)


def escalation_policies(config: Config) -> PolicyFor:
    """The configured policy per severity, with Alertmanager's own debouncing respected: one
    observation opens, one absence resolves (by default)."""
    am = config.alertmanager
    assert am is not None
    update = {"open_after": am.open_after, "resolve_after": am.resolve_after}

    def policy_for(severity: Severity) -> PolicyConfig:
        return config.policy(severity).model_copy(update=update)

    return policy_for


def watchdog_signals(
    config: Config, found: Escalating, now: datetime, store: StoreReader, kept: dict[str, Any]
) -> tuple[list[Signal], bool | None]:
    """The dead man's switch: its clock advanced by this run's sighting (kept for the next run),
    its signal, and the sighting."""
    am = config.alertmanager
    if am is None or am.watchdog is None:
        return [], None
    answer = found.watchdog
    alerts = None if answer is None else answer.alerts
    seen = watchdog.sighting(am.watchdog, alerts, answer.malformed if answer else [])
    clock = advance_watchdog_clock(store, am.watchdog, seen, now)
    kept[clock_key(am.watchdog)] = clock.dump()
    signal = watchdog.watchdog_signal(am.watchdog, seen, clock, now)
    return ([] if signal is None else [signal]), seen


@step("fetch-alertmanager-status")
async def fetch_status(config: AlertmanagerConfig) -> Status:
    return await _api(config).status()


def _api(config: AlertmanagerConfig) -> Alertmanager:
    client = shared_client(config.url, config.timeout.total_seconds())
    return Alertmanager(client, config.url, config.max_answer_bytes)


UNREADABLE_SINCE = "alertmanager:status-unreadable-since"


async def absence_doubt(
    am: AlertmanagerConfig,
    watchdog_seen: bool | None,
    gone: int,
    now: datetime,
    store: StoreReader,
    kept: dict[str, Any],
) -> str | None:
    """Why this run's answer cannot vouch that the `gone` open incidents it no longer names are
    over (None: it can). Alertmanager keeps alerts in memory: just restarted, it answers a
    complete, empty list until Prometheus re-sends. Its status is asked only when something
    would resolve by absence, so a steady run costs no request. A status that cannot be read
    holds for `restart_grace` from the first run that could not read it, then — the Watchdog
    listed: Prometheus sends again — no longer (else it would hold for as long as it lasts)."""
    if not gone:
        return None
    if am.watchdog is not None and not watchdog_seen:
        return f"the always-firing alert {am.watchdog.alertname} is missing from its answer"
    if not am.restart_grace:
        return None
    try:
        status = await fetch_status(am)
    except AdapterError as exc:
        doubt = f"its start time is unknown ({exc}; `restart_grace: 0s` stops asking)"
        since = _unreadable_since(store.get_value(UNREADABLE_SINCE), now, am.restart_grace)
        kept[UNREADABLE_SINCE] = {"since": since.isoformat(), "last": now.isoformat()}
        if am.watchdog is None or now - since < am.restart_grace:
            return doubt
        run_log().warning(
            "Alertmanager's status unreadable since %s (%s): the Watchdog listed vouches",
            f"{since:%Y-%m-%d %H:%M:%S} UTC",
            exc,
        )
        return None
    kept[UNREADABLE_SINCE] = None
    return restart_doubt(status.uptime, status.answered_at or now, am.restart_grace)


UNREADABLE_SPELL = timedelta(minutes=15)  # runs that cannot read it this close are one spell


def _unreadable_since(stored: Any, now: datetime, grace: timedelta) -> datetime:
    """Since when the status has been unreadable, run after run: a spell that ended (no run
    could not read it for a while) is not counted on — a restart weeks later holds afresh."""
    if not isinstance(stored, dict):
        return now
    try:
        since, last = (datetime.fromisoformat(stored[k]) for k in ("since", "last"))
    except (KeyError, TypeError, ValueError):
        return now
    spell = max(grace, UNREADABLE_SPELL)
    return since if timedelta(0) <= now - last <= spell and since <= last else now


def gone_count(store: StoreReader, signals: list[Signal]) -> int:
    """How many open incidents of Alertmanager's alerts (or malformed records) this run does not
    name: what an answer that vouches for absence resolves."""
    named = {s.key for s in signals}
    return sum(len(store.open_keys(source) - named) for source in (SOURCE, RECORDS_SOURCE))


async def observe(config: Config, now: datetime, store: StoreReader) -> Observation:
    am = config.alertmanager
    assert am is not None
    found = await fetch_escalating_alerts(am)
    matched, failures, malformed = found.matched, found.failures, found.malformed
    _warn_of_clocks_ahead(matched, now)
    _warn_of_our_clock_ahead(found.answered_at, now)
    signals = to_signals(matched, am.url, config.links)
    signals += failure_signals(failures) + malformed_signals(malformed)
    kept: dict[str, Any] = {}
    watched, watchdog_seen = watchdog_signals(config, found, now, store, kept)
    signals += watched
    gone = 0 if failures else gone_count(store, signals)  # a failed rule resolves no absence
    doubt = await absence_doubt(am, watchdog_seen, gone, now, store, kept)
    if doubt is not None:
        run_log().warning(
            "%s no longer listed by Alertmanager kept open this run: %s",
            count(gone, "incident"),
            doubt,
        )
    rules = [rule.name for rule in am.rules]

    def over(incidents: Iterable[Incident]) -> list[Signal]:
        incidents = list(incidents)
        return unseen(signals, incidents, rules, failures, malformed, doubt) + watchdog.unseen(
            incidents, am.watchdog
        )

    rows = _rows(found)
    counters = {
        "alerts": len(rows),
        "firing": sum(s.firing for s in signals if s.source == SOURCE),
        "rule_problems": len(failures),
        "malformed_alerts": len(malformed),
    }
    troubles = [
        f"{counters['firing']} firing" if counters["firing"] else "",
        count(len(failures), "rule query failure") if failures else "",
        count(len(malformed), "malformed alert") if malformed else "",
    ]
    return Observation(
        signals,
        described(f"{count(len(rows), 'alert')} matched", troubles, "none firing"),
        counters,
        rows=rows,
        unseen=over,
        policy_for=escalation_policies(config),
        values=kept,
    )


def _warn_of_clocks_ahead(matched: list[tuple[EscalationRule, list[Alert]]], now: datetime) -> None:
    ahead = [a for _, alerts in matched for a in alerts if a.starts_at > now + CLOCK_SKEW]
    if ahead:
        run_log().warning(
            "%d alert(s) start later than this machine's clock, up to %s ahead: their incidents "
            "count from now (escalation and paging too); check the clocks (NTP) of Prometheus "
            "and Alertmanager",
            len(ahead),
            ahead_by(max(a.starts_at for a in ahead), now),
        )


def _warn_of_our_clock_ahead(answered_at: datetime | None, now: datetime) -> None:
    """Harmless to what fires (Alertmanager's state decides), but every time this machine
    stamps — onsets of alerts first seen, escalation — is off by as much."""
    if answered_at is not None and now > answered_at + CLOCK_SKEW:
        run_log().warning(
            "this machine's clock runs %s ahead of Alertmanager's (its answer's Date): check the "
            "clocks (NTP) of this machine and of Alertmanager's host",
            ahead_by(now, answered_at),
        )


def _rows(found: Escalating) -> list[dict[str, Any]]:
    """One row per alert (an alert several rules match once)."""
    rows, seen = [], set()
    for rule, alerts in found.matched:
        for alert in alerts:
            if alert.fingerprint in seen:
                continue
            seen.add(alert.fingerprint)
            rows.append(
                {
                    "key": alert_key(alert),
                    "alert": alert.name,
                    "rule": rule.name,
                    "target": alert.labels.get("instance", ""),
                    "state": alert.state if alert.firing else "not firing",
                    "starts_at": alert.starts_at.isoformat(),
                    "silenced_by": ", ".join(alert.silenced_by),
                    "inhibited_by": ", ".join(alert.inhibited_by),
                }
            )
    return rows
