"""The shared tail of every watch: evaluate signals, record incidents + outbox, deliver."""

from __future__ import annotations

from datetime import datetime

import httpx
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from fleet_alerting.config import Config
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.policy import Evaluation, PolicyFor
from fleet_alerting.core.signals import Signal
from fleet_alerting.core.storms import decide
from fleet_alerting.delivery.drain import DrainReport, build_notifiers, drain
from fleet_alerting.store.sqlite import Store

LOGGED_CHANGES = 100  # a storm changes thousands of incidents: the log names the first ones


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
        policies = policy_for or config.policy
        rules = config.storm_rules()
        evaluation = decide(signals, incidents, policies, rules, now, vanished_sources)
        queued = store.record(evaluation, now)
    finally:
        store.close()
    logger = get_run_logger()
    for incident in evaluation.incidents[:LOGGED_CHANGES]:
        inhibited = f" inhibited by {incident.inhibited_by}" if incident.inhibited_by else ""
        logger.info(
            "incident %s: %s%s (%s)",
            incident.key,
            incident.state,
            inhibited,
            incident.signal.summary,
        )
    if len(evaluation.incidents) > LOGGED_CHANGES:
        more = len(evaluation.incidents) - LOGGED_CHANGES
        logger.info("and %d more incident change(s) (the run's artifact lists them)", more)
    if queued:
        logger.info("queued %d notification(s)", queued)
    return evaluation


@task(name="deliver-notifications", cache_policy=NO_CACHE)
async def deliver_notifications(config: Config) -> DrainReport:
    """Drain the outbox; whatever cannot be delivered stays queued or becomes a dead letter."""
    logger = get_run_logger()
    store = Store(config.state.path)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            report = await drain(
                store,
                build_notifiers(config, client, store),
                utcnow,
                attempts_per_run=config.notify.attempts_per_run,
                give_up_after=config.notify.give_up_after,
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
    return report
