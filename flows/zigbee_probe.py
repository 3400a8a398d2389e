"""Watch Zigbee2MQTT coordinators over MQTT: offline, broker down, unhealthy, joining left open."""

from __future__ import annotations

from fleet_alerting.core.clock import utcnow
from fleet_alerting.flows.common import (
    DEFAULT_CONFIG,
    Summary,
    count,
    described,
    finish,
    load,
    publish,
    store_errors_fail_the_run,
)
from fleet_alerting.sources.zigbee.judge import cause_changes
from fleet_alerting.tasks.pipeline import deliver_notifications, record_signals
from fleet_alerting.tasks.runtime import watch_flow
from fleet_alerting.tasks.zigbee import log_run, watch_coordinators


@watch_flow("zigbee-probe")
@store_errors_fail_the_run
async def zigbee_probe(config_path: str = DEFAULT_CONFIG) -> Summary:
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
    firing = [s.labels.get("check") for s in run.signals if s.firing]
    counters = {"coordinators": len(run.rows)} | {
        name: firing.count(check) for name, check, _said in ZIGBEE_TROUBLES
    }
    troubles = [count(counters[n], *said) for n, _check, said in ZIGBEE_TROUBLES if counters[n]]
    seen = described(f"{count(len(run.rows), 'coordinator')} checked", troubles, "all well")
    return finish(seen, counters, evaluation, report)


# counter, the check whose firing signals it counts, how a sentence says it
ZIGBEE_TROUBLES: list[tuple[str, str, tuple[str, str]]] = [
    ("offline", "offline", ("offline", "offline")),
    ("broker_errors", "broker", ("broker error", "broker errors")),
    ("unhealthy", "health", ("unhealthy", "unhealthy")),
    ("permit_join_past_window", "permit_join", ("joining open past its window",) * 2),
    ("unparseable", "payload", ("unparseable payload", "unparseable payloads")),
    ("devices_not_online", "availability", ("device not online", "devices not online")),
]
