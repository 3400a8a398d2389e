"""Probe HTTP targets (Fleet API `/api/healthz` and `/`, device `/healthz`); alert on failures."""

from __future__ import annotations

from fleet_alerting.core.clock import utcnow
from fleet_alerting.flows.common import (
    DEFAULT_CONFIG,
    Summary,
    config_dir,
    count,
    described,
    finish,
    listed,
    load,
    problem_signals,
    publish,
    store_errors_fail_the_run,
)
from fleet_alerting.sources.blackbox.client import SOURCE, exporter_outage, gone, to_signal
from fleet_alerting.tasks.blackbox import probe_targets, resolve_targets
from fleet_alerting.tasks.pipeline import deliver_notifications, record_signals
from fleet_alerting.tasks.runtime import watch_flow


@watch_flow("blackbox-probe")
@store_errors_fail_the_run
async def blackbox_probe(config_path: str = DEFAULT_CONFIG) -> Summary:
    config = load(config_path)
    now = utcnow()
    targets, problems = resolve_targets(config.blackbox, config_dir(config))
    results = await probe_targets(targets, config.blackbox)
    observed = [r for r in results if r.observed]
    signals = [to_signal(r) for r in observed] + problem_signals(f"{SOURCE}-config", problems)
    signals += exporter_outage(results, config.blackbox.exporter_url or "")
    evaluation = record_signals(
        config,
        signals,
        now,
        vanish=lambda incidents: gone(signals, incidents, results, complete=not problems),
    )
    report = await deliver_notifications(config)
    rows = [
        {
            "key": to_signal(r).key,
            "target": r.target.name,
            "url": r.target.url,
            "severity": r.target.severity.value,
            "result": "ok" if r.ok else "FAIL" if r.observed else "NOT PROBED",
            "status": r.status,
            "latency_ms": r.latency_ms,
            "tls_days_left": r.tls_days_left,
            "error": r.error or "",
        }
        for r in results
    ]
    await publish("blackbox-probe", rows, evaluation, report)
    failing = [r.target.name for r in observed if not r.ok]
    counters = {
        "targets": len(results),
        "failing": len(failing),
        "not_probed": len(results) - len(observed),
        "target_problems": len(problems),
    }
    troubles = [
        f"{len(failing)} failing ({listed(failing)})" if failing else "",
        f"{counters['not_probed']} not probed" if counters["not_probed"] else "",
        count(len(problems), "targets file problem") if problems else "",
    ]
    seen = described(f"{count(len(results), 'target')} probed", troubles, "all healthy")
    return finish(seen, counters, evaluation, report)
