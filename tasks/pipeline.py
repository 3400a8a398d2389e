"""The shared tail of every watch: evaluate signals, record incidents + outbox, deliver."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from fleet_alerting.config import Config
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.policy import Evaluation, PolicyFor, evaluate, vanished
from fleet_alerting.core.signals import Signal
from fleet_alerting.delivery.drain import (
    MAX_WAIT,
    DrainReport,
    build_notifiers,
    drain,
    lease_for,
)
from fleet_alerting.store.sqlite import Store


@task(name="evaluate-and-record", cache_policy=NO_CACHE)
def record_signals(
    config: Config,
    signals: list[Signal],
    now: datetime,
    vanished_sources: dict[str, str] | None = None,
    policy_for: PolicyFor | None = None,
) -> Evaluation:
    """One transaction: incident changes and the notifications they cause.

    `vanished_sources` maps a source to a reason: that source's open incidents which the signals
    no longer mention count as recovered (a host gone from a query result, a target removed).
    `policy_for` overrides the configured policies (a source with its own debouncing)."""
    store = Store(config.state.path)
    try:
        incidents = store.unresolved()
        for source, reason in (vanished_sources or {}).items():
            signals = signals + vanished(signals, incidents.values(), source, reason)
        evaluation = evaluate(signals, incidents, policy_for or config.policy, now)
        queued = store.record(evaluation, now)
    finally:
        store.close()
    logger = get_run_logger()
    for incident in evaluation.incidents:
        logger.info("incident %s: %s (%s)", incident.key, incident.state, incident.signal.summary)
    if queued:
        logger.info("queued %d notification(s)", queued)
    return evaluation


@task(name="deliver-notifications", cache_policy=NO_CACHE)
async def deliver_notifications(config: Config) -> DrainReport:
    """Drain the outbox in claimed lanes (safe beside any other run draining the same store);
    whatever cannot be delivered stays queued or becomes a dead letter. Each notifier uses its
    configured timeout per request."""
    logger = get_run_logger()
    store = Store(config.state.path)
    try:
        async with httpx.AsyncClient() as client:
            report = await drain(
                store,
                build_notifiers(config, client, store),
                utcnow,
                attempts_per_run=config.notify.attempts_per_run,
                give_up_after=config.notify.give_up_after,
                lease=timedelta(seconds=lease_for(config, MAX_WAIT)),
            )
        store.prune_sent(utcnow())
    finally:
        store.close()
    for item, receipt in report.sent:
        logger.info("sent %s %s: %s", item.notification.channel, item.notification.kind, receipt)
    for item, reason in report.retrying:
        logger.warning(
            "kept queued %s %s: %s", item.notification.channel, item.notification.kind, reason
        )
    for item, reason in report.dead:
        logger.error(
            "dead letter %s %s: %s", item.notification.channel, item.notification.kind, reason
        )
    for warning in report.warnings:
        logger.error("%s", warning)
    return report
