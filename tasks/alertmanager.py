"""Alertmanager as Prefect tasks: every escalation rule's query in one task run."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime

from fleet_alerting.config.schema import (
    AlertmanagerConfig,
    EscalationRule,
    StateConfig,
    WatchdogConfig,
)
from fleet_alerting.http.clients import shared_client
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.sources.alertmanager.client import Alert, AlertList, Alertmanager
from fleet_alerting.sources.alertmanager.judge import RuleFailure
from fleet_alerting.sources.alertmanager.watchdog import SOURCE, WatchdogClock, matchers
from fleet_alerting.sources.records import Malformed
from fleet_alerting.store.database import Store
from fleet_alerting.tasks.runtime import run_logger, step

WATCHDOG = "watchdog"  # the watchdog's query among the rules' (its failure names it so)


@dataclass(frozen=True)
class Escalating:
    matched: list[tuple[EscalationRule, list[Alert]]]
    failures: list[RuleFailure]
    malformed: list[Malformed]
    watchdog: AlertList | None = None  # the watchdog's answer; None: off, or no answer


@step("fetch-escalating-alerts")
async def fetch_escalating_alerts(config: AlertmanagerConfig) -> Escalating:
    """Per rule, the alerts its matchers select (Alertmanager does the matching, so its own
    semantics apply), and the watchdog's alert. Silenced and inhibited alerts are included and
    marked, so an incident of an alert that gets silenced can say why it stopped. A failing rule
    is a problem, and an alert not of the documented shape a `Malformed`, never a crash."""
    logger = run_logger()
    queries: list[tuple[EscalationRule | None, list[str]]] = [
        (rule, rule.matchers) for rule in config.rules
    ]
    if config.watchdog is not None:
        queries.append((None, matchers(config.watchdog)))  # None: the watchdog's
    client = shared_client(config.url, config.timeout.total_seconds())
    api = Alertmanager(client, config.url, config.max_answer_bytes)
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


@step("watchdog-clock")
def advance_watchdog_clock(
    state: StateConfig, config: WatchdogConfig, seen: bool | None, now: datetime
) -> WatchdogClock:
    """The watchdog's clock after this run's sighting, kept in the store for the next runs."""
    key = f"{SOURCE}:{config.alertname}"
    with Store(state) as store:
        clock = WatchdogClock.load(store.get_value(key)).after(seen, now)
        store.set_value(key, clock.dump())
    return clock
