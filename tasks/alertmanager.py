"""Alertmanager as Prefect tasks: every escalation rule's query in one task run."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import httpx

from fleet_alerting.config.schema import AlertmanagerConfig, EscalationRule
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.sources.alertmanager.client import Alert, Alertmanager
from fleet_alerting.sources.alertmanager.judge import RuleFailure
from fleet_alerting.sources.records import Malformed
from fleet_alerting.tasks.runtime import run_logger, step


@step("fetch-escalating-alerts")
async def fetch_escalating_alerts(
    config: AlertmanagerConfig,
) -> tuple[list[tuple[EscalationRule, list[Alert]]], list[RuleFailure], list[Malformed]]:
    """Per rule, the alerts its matchers select (Alertmanager does the matching, so its own
    semantics apply). Silenced and inhibited alerts are included and marked, so an incident of an
    alert that gets silenced can say why it stopped. A failing rule is a problem, and an alert not
    of the documented shape a `Malformed`, never a crash."""
    logger = run_logger()
    async with httpx.AsyncClient(timeout=config.timeout.total_seconds()) as client:
        api = Alertmanager(client, config.url, config.max_answer_bytes)
        answers = await asyncio.gather(
            *(api.escalation_alerts(rule.matchers) for rule in config.rules),
            return_exceptions=True,
        )
    matched, failed = [], defaultdict(list)  # (error, permanent) → rule names
    malformed: dict[str, Malformed] = {}
    for rule, answer in zip(config.rules, answers, strict=True):
        if isinstance(answer, AdapterError):
            failed[(str(answer), answer.permanent)].append(rule.name)
            logger.error("escalation rule %s: %s", rule.name, answer)
        elif isinstance(answer, BaseException):
            raise answer
        else:
            matched.append((rule, answer.alerts))
            for bad in answer.malformed:
                malformed.setdefault(bad.identity, bad)
                logger.warning("escalation rule %s: malformed alert %s", rule.name, bad)
            logger.info("escalation rule %s: %d alert(s)", rule.name, len(answer.alerts))
    # one problem per distinct error: Alertmanager down is one message, not one per rule
    failures = [
        RuleFailure(error, tuple(names), permanent) for (error, permanent), names in failed.items()
    ]
    return matched, failures, list(malformed.values())
