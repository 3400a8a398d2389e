"""Watch Zigbee2MQTT coordinators over MQTT: offline, broker down, unhealthy, joining left open."""

from __future__ import annotations

from fleet_alerting.core.clock import utcnow
from fleet_alerting.flows.common import (
    DEFAULT_CONFIG,
    finish,
    load,
    publish,
    store_errors_fail_the_run,
    summarize,
)
from fleet_alerting.sources.zigbee.judge import cause_changes
from fleet_alerting.tasks.pipeline import deliver_notifications, record_signals
from fleet_alerting.tasks.runtime import run_logger, watch_flow
from fleet_alerting.tasks.zigbee import log_run, watch_coordinators


@watch_flow("zigbee-probe")
@store_errors_fail_the_run
async def zigbee_probe(config_path: str = DEFAULT_CONFIG) -> dict[str, int]:
    config = load(config_path)
    now = utcnow()
    run = await watch_coordinators(config, now)
    log_run(run)
    evaluation = record_signals(config, run.signals, now, announce=cause_changes)
    report = await deliver_notifications(config)
    changes: dict[str, list[str]] = {}
    for incident in evaluation.incidents:
        labels = incident.signal.labels
        changes.setdefault(labels.get("coordinator", ""), []).append(
            f"{labels.get('check')}: {incident.state}"
        )
    rows = [r | {"changes": ", ".join(changes.get(str(r["coordinator"]), []))} for r in run.rows]
    await publish("zigbee-probe", rows, evaluation, report)
    firing = [s for s in run.signals if s.firing]
    summary = {
        "coordinators": len(run.rows),
        "offline": sum(s.labels.get("check") == "offline" for s in firing),
        "broker_errors": sum(s.labels.get("check") == "broker" for s in firing),
        "unhealthy": sum(s.labels.get("check") == "health" for s in firing),
        "permit_join_past_window": sum(s.labels.get("check") == "permit_join" for s in firing),
        "unparseable": sum(s.labels.get("check") == "payload" for s in firing),
        "devices_not_online": sum(s.labels.get("check") == "availability" for s in firing),
    }
    summary |= summarize(evaluation, report)
    run_logger().info("zigbee probe: %s", summary)
    return finish(summary, report)
