"""The shared tail of every watch: evaluate signals, record incidents + outbox, deliver.

Both are plain parts of the watch's flow run, not task runs of their own: a task run costs serve
and its Prefect server ~21-24 ms of CPU each (its states sent as events, recorded by the server)
and shows the operator nothing the run does not — their log lines are the run's, a failure fails
the run with the same message, neither has retries to show (bench/README.md, soak.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import Connection

from fleet_alerting.config import Config
from fleet_alerting.core.channels import pager_of
from fleet_alerting.core.escalation import went_back
from fleet_alerting.core.incidents import MUTE_SILENCE, Incident
from fleet_alerting.core.incidents import unseen as unnamed
from fleet_alerting.core.muting import MaintenanceConfig, MuteChange, Muting, mute_changes
from fleet_alerting.core.policy import Evaluation, PolicyFor
from fleet_alerting.core.signals import Signal
from fleet_alerting.core.storms import StormRules, decide
from fleet_alerting.delivery.deliver import deliver
from fleet_alerting.delivery.drain import DrainReport
from fleet_alerting.http.clients import shared_client
from fleet_alerting.sources.watch import Announce, Unseen
from fleet_alerting.store import history, silences
from fleet_alerting.store.actions import history as action_history
from fleet_alerting.store.actions import record_mutes
from fleet_alerting.store.database import Retention, Store
from fleet_alerting.tasks.runtime import run_logger, tracked

LOGGED_CHANGES = 100  # a storm changes thousands of incidents: the log names the first ones


def record_signals(
    config: Config,
    signals: list[Signal],
    now: datetime,
    unseen_sources: dict[str, str] | None = None,
    policy_for: PolicyFor | None = None,
    unseen: Unseen | None = None,
    announce: Announce | None = None,
) -> Evaluation:
    """One transaction: incident changes and the notifications they cause.

    `unseen_sources` maps a source to a reason: that source's open incidents which the signals
    no longer mention count as recovered (a host gone from a query result, a target removed).
    `unseen`, given the unresolved incidents the signals do not name, returns ok-signals for those
    a source knows to be over (finer than a whole source: only what this run could observe).
    `announce`, given the incidents before and the evaluation, adds what the engine does not tell
    (a changed cause of an open incident), in the same transaction.
    `policy_for` overrides the configured policies (a source with its own debouncing)."""
    with Store(config.state) as store:
        evaluation, queued = evaluate_and_record(
            store,
            signals,
            policy_for or config.policy,
            now,
            unseen_sources,
            unseen,
            announce,
            config.storm_rules(),
            config.maintenance_rules(),
        )
        pruned = store.prune(now, retention(config))
        pruned |= history.prune(store, now, config.state.retention.history)
        publish_actions(store, list(evaluation.incidents))
    logger = run_logger()
    for kind, count in pruned.items():
        if count:
            logger.info("deleted %d %s past their retention", count, kind)
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


def evaluate_and_record(
    store: Store,
    signals: list[Signal],
    policy_for: PolicyFor,
    now: datetime,
    unseen_sources: dict[str, str] | None = None,
    unseen: Unseen | None = None,
    announce: Announce | None = None,
    rules: StormRules | None = None,
    maintenance: MaintenanceConfig | None = None,
) -> tuple[Evaluation, int]:
    """The task's body without Prefect: read, evaluate and record in one write transaction, so
    two processes (five flows every minute, a `run` on top) never evaluate the same keys at once.
    The store's silences in force and the maintenance windows mute what they select."""
    muting = Muting(silences.active(store, now), maintenance)
    newly_muted: dict[str, int] = {}

    observed: list[Signal] = []
    mutes: list[MuteChange] = []  # begun or ended: the incidents' audit trail
    back = [timedelta(0)]  # how far the clock went back since the records were written

    def decide_now(incidents: Mapping[str, Incident]) -> Evaluation:
        everything = signals + (unseen(unnamed(incidents, signals)) if unseen is not None else [])
        observed[:] = everything
        evaluation = decide(
            everything, incidents, policy_for, rules or StormRules(), now, unseen_sources, muting
        )
        if announce is not None:
            evaluation = announce(incidents, evaluation, policy_for, now)
        newly_muted.update(_newly_silenced(incidents, evaluation.incidents))
        mutes[:] = mute_changes(incidents, evaluation)
        back[0] = went_back(incidents, evaluation.incidents, now)
        return evaluation

    def remember(conn: Connection) -> int:
        record_mutes(conn, mutes, now)
        return history.record(conn, store.dialect, observed, unseen_sources, now)

    result = store.evaluate(decide_now, now, also=remember)
    silences.record_muted(store, newly_muted, now)
    if back[0]:
        run_logger().warning(
            "this machine's clock went back %s since it last wrote the open incidents (an NTP "
            "step? a restored snapshot?): their escalation steps, reminders and acknowledgement "
            "timeouts keep the time that had passed instead of waiting for the clock",
            timedelta(seconds=round(back[0].total_seconds())),
        )
    return result


def _newly_silenced(before: Mapping[str, Incident], after: list[Incident]) -> dict[str, int]:
    """Per silence id, the incidents it began to mute in this evaluation."""
    counts: dict[str, int] = {}
    for incident in after:
        mute_id = incident.acts.mute_id
        if mute_id is None or not mute_id.startswith(f"{MUTE_SILENCE}:"):
            continue
        prior = before.get(incident.key)
        if prior is None or prior.onset != incident.onset or prior.acts.mute_id != mute_id:
            silence_id = mute_id.split(":", 1)[1]
            counts[silence_id] = counts.get(silence_id, 0) + 1
    return counts


def retention(config: Config) -> Retention:
    kept = config.state.retention
    return Retention(
        kept.resolved_incidents,
        kept.sent_notifications,
        kept.dead_letters,
        kept.actions,
        kept.expired_silences,
    )


def publish_actions(store: Store, incidents: list[Incident]) -> None:
    """The actions trail (store/actions.py) of this run's incidents that operators acted on."""
    keys = sorted({i.key for i in incidents if i.acts.changed_at is not None})
    rows = [r for key in keys for r in action_history(store, key)]
    if rows and tracked():  # a plain run has no UI to show it in
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(
            "\n".join(["| incident | action trail |", "|---|---|"])
            + "".join(f"\n| `{r.incident_key}` | {r.line().replace('|', '/')} |" for r in rows),
            key="incident-actions",
            description="who acknowledged, silenced or snoozed what, when, from where",
            # called in a worker thread of an async flow run, where Prefect would otherwise
            # hand back a coroutine nobody awaits (and the artifact never made)
            _sync=True,
        )


async def deliver_notifications(config: Config) -> DrainReport:
    """Drain the outbox in claimed lanes (safe beside any other run draining the same store);
    whatever cannot be delivered stays queued or becomes a dead letter. Each notifier uses its
    configured timeout per request. The report also lists the pages still owed after the drain
    (queued after a failure, in this run or an earlier one): the run must not end green."""
    logger = run_logger()
    with Store(config.state) as store:
        report = await deliver(config, store, shared_client("notifiers"))
        if not report.store_errors:
            report.owed_pages = [
                item
                for item in store.outbox(("queued",))
                if pager_of(item.notification.channel) and item.last_error
            ]
    report.store_errors[:] = [
        error if error.startswith(store.where) else f"{store.where}: {error}"
        for error in report.store_errors
    ]
    for item, receipt in report.sent:
        logger.info("sent %s %s: %s", item.notification.channel, item.notification.kind, receipt)
    for item, reason in report.retrying:
        logger.warning(
            "kept queued %s %s: %s", item.notification.channel, item.notification.kind, reason
        )
    for item, reason in report.withdrawn:
        logger.info(
            "withdrawn %s %s: %s", item.notification.channel, item.notification.kind, reason
        )
    for item, reason in report.dead:
        logger.error(
            "dead letter %s %s: %s", item.notification.channel, item.notification.kind, reason
        )
    for warning in report.warnings:
        logger.error("%s", warning)
    return report
