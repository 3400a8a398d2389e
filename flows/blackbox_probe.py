"""Probe HTTP targets (Fleet API `/api/healthz` and `/`, device `/healthz`); alert on failures."""

from __future__ import annotations

from prefect import flow, get_run_logger

from fleet_alerting.core.clock import utcnow
from fleet_alerting.flows.common import (
    DEFAULT_CONFIG,
    config_dir,
    load,
    problem_signals,
    publish,
    summarize,
)
from fleet_alerting.sources.blackbox.client import SOURCE, ProbeResult, to_signal
from fleet_alerting.tasks.blackbox import probe_targets, resolve_targets
from fleet_alerting.tasks.pipeline import deliver_notifications, record_signals


@flow(name="blackbox-probe")
async def blackbox_probe(config_path: str = DEFAULT_CONFIG) -> dict[str, int]:
    config = load(config_path)
    now = utcnow()
    targets, problems = resolve_targets(config.blackbox, config_dir(config))
    results = await probe_targets(targets, config.blackbox)
    unknown = [r for r in results if r.unknown]
    signals = [to_signal(r) for r in results if not r.unknown]
    signals += problem_signals(f"{SOURCE}-config", problems)
    signals += problem_signals(f"{SOURCE}-local", [_exhausted(unknown)] if unknown else [])
    vanished = {f"{SOURCE}-config": "targets readable again", f"{SOURCE}-local": "probing again"}
    if not unknown:  # an unprobed target is not "no longer probed": resolve nothing by absence
        vanished[SOURCE] = "no longer probed"
    evaluation = record_signals(config, signals, now, vanished_sources=vanished)
    report = await deliver_notifications(config)
    rows = [
        {
            "key": to_signal(r).key,
            "target": r.target.name,
            "url": r.target.url,
            "severity": r.target.severity.value,
            "result": "ok" if r.ok else ("UNKNOWN" if r.unknown else "FAIL"),
            "status": r.status,
            "latency_ms": r.latency_ms,
            "tls_days_left": r.tls_days_left,
            "error": r.error or "",
        }
        for r in results
    ]
    await publish("blackbox-probe", rows, evaluation, report)
    summary = {
        "targets": len(results),
        "failing": sum(not r.ok and not r.unknown for r in results),
        "unknown": len(unknown),
        "target_problems": len(problems),
    }
    summary |= summarize(evaluation, report)
    get_run_logger().info("blackbox probe: %s", summary)
    return summary


def _exhausted(unknown: list[ProbeResult]) -> str:
    names = ", ".join(r.target.name for r in unknown[:5]) + (" …" if len(unknown) > 5 else "")
    return (
        f"local resources exhausted: {len(unknown)} target(s) not probed ({unknown[0].error}): "
        f"{names}. Their incidents are left as they were."
    )
