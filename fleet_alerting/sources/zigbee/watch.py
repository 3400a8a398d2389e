"""Watch Zigbee2MQTT coordinators over MQTT: offline, broker down, unhealthy, joining left open.
One step reads every broker, judges, and closes joining left open if asked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from fleet_alerting.config import Config
from fleet_alerting.core.policy import Evaluation, cause_changes
from fleet_alerting.core.signals import Signal
from fleet_alerting.core.wording import count, described
from fleet_alerting.sources.watch import Observation, Row, StoreReader, run_log, step
from fleet_alerting.sources.zigbee import judge as zigbee
from fleet_alerting.sources.zigbee.client import close_permit_join, observe_all

OPEN_SINCE = "zigbee:permit_join_open_since"  # store value: {coordinator: first seen open}


@dataclass(frozen=True)
class Coordinators:
    """Every coordinator's signals and row; auto-close reports and permit-join clocks to keep."""

    signals: list[Signal]
    rows: list[Row]
    reports: Evaluation
    kept: dict[str, Any]


@step("watch-coordinators")
async def watch_coordinators(config: Config, now: datetime, store: StoreReader) -> Coordinators:
    zconfig = config.zigbee
    observations = await observe_all(zconfig.coordinators, zconfig)
    signals: list[Signal] = []
    rows: list[Row] = []
    reports = Evaluation([], [])
    stored: dict[str, str] = store.get_value(OPEN_SINCE) or {}
    open_since = dict(stored)
    for obs in observations:
        name = obs.coordinator.name
        since = datetime.fromisoformat(stored[name]) if name in stored else None
        permit = zigbee.judge_permit_join(obs, since, now, zconfig.clock_skew)
        if permit is not None and permit.open_since is None:
            open_since.pop(name, None)
        elif permit is not None and permit.open_since is not None:
            open_since[name] = permit.open_since.isoformat()
        closed = None
        if zigbee.should_close(obs, permit) and obs.info is not None and permit is not None:
            closed = await close_permit_join(obs.coordinator, obs.info.major, zconfig)
            channels = config.policy(obs.coordinator.severity).channels()
            report = zigbee.auto_close_report(obs, permit, closed, channels, now)
            reports.incidents.extend(report.incidents)
            reports.notifications.extend(report.notifications)
        signals += zigbee.signals(obs, permit, closed)
        signals += zigbee.device_signals(obs)
        rows.append(zigbee.row(obs, permit, now, closed))
    signals += zigbee.unseen(store.unresolved(zigbee.SOURCE).values(), zconfig.coordinators)
    devices = store.unresolved(zigbee.DEVICE_SOURCE).values()
    signals += zigbee.unseen_devices(devices, observations, signals)
    kept: dict[str, Any] = {OPEN_SINCE: open_since} if open_since != stored else {}
    return Coordinators(signals, rows, reports, kept)


async def observe(config: Config, now: datetime, store: StoreReader) -> Observation:
    run = await watch_coordinators(config, now, store)
    logger = run_log()
    for signal in run.signals:
        if signal.firing:
            logger.warning("%s", signal.summary)
    firing = [s.labels.get("check") for s in run.signals if s.firing]
    counters = {"coordinators": len(run.rows)} | {
        name: firing.count(check) for name, check, _said in ZIGBEE_TROUBLES
    }
    troubles = [count(counters[n], *said) for n, _check, said in ZIGBEE_TROUBLES if counters[n]]
    return Observation(
        run.signals,
        described(f"{count(len(run.rows), 'coordinator')} checked", troubles, "all well"),
        counters,
        rows=run.rows,
        announce=partial(cause_changes, sources={zigbee.SOURCE}),
        one_offs=run.reports,
        values=run.kept,
        rows_after=lambda evaluation: with_changes(run.rows, evaluation),
    )


def with_changes(rows: list[Row], evaluation: Evaluation) -> list[Row]:
    """Each coordinator's row with the incident changes of its checks in this run."""
    changes: dict[str, list[str]] = {}
    for incident in evaluation.incidents:
        labels = incident.signal.labels
        changes.setdefault(labels.get("coordinator", ""), []).append(
            f"{labels.get('check')}: {incident.state}"
        )
    return [r | {"changes": ", ".join(changes.get(str(r["coordinator"]), []))} for r in rows]


# counter, the check whose firing signals it counts, how a sentence says it
ZIGBEE_TROUBLES: list[tuple[str, str, tuple[str, str]]] = [
    ("offline", "offline", ("offline", "offline")),
    ("broker_errors", "broker", ("broker error", "broker errors")),
    ("unhealthy", "health", ("unhealthy", "unhealthy")),
    ("permit_join_past_window", "permit_join", ("joining open past its window",) * 2),
    ("unparseable", "payload", ("unparseable payload", "unparseable payloads")),
    ("devices_not_online", "availability", ("device not online", "devices not online")),
]
