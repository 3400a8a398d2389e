"""PromQL watches (role agents, device-failure spikes, circuit breakers): one incident per host or
device, remediation steps and log / graph links in Slack."""

from __future__ import annotations

from fleet_alerting.config import Config
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.flows.common import (
    DEFAULT_CONFIG,
    RunFailed,
    Summary,
    count,
    described,
    finish,
    load,
    publish,
    store_errors_fail_the_run,
)
from fleet_alerting.sources.prometheus.judge import active_watches, evaluate_watches
from fleet_alerting.tasks.pipeline import deliver_notifications, record_signals
from fleet_alerting.tasks.prometheus import run_watch_queries
from fleet_alerting.tasks.runtime import watch_flow


def graph_links(config: Config) -> LinksConfig:
    """`links.prometheus_url` for graph links, else the URL the watches query."""
    if config.links.prometheus_url or not config.prometheus.url:
        return config.links
    return config.links.model_copy(update={"prometheus_url": config.prometheus.url})


@watch_flow("prometheus-watches")
@store_errors_fail_the_run
async def prometheus_watches(config_path: str = DEFAULT_CONFIG) -> Summary:
    config = load(config_path)
    if not config.prometheus.url:
        raise RunFailed(f"{config_path}: prometheus.url is not set")
    now = utcnow()
    watches = active_watches(config.prometheus)
    outcomes = await run_watch_queries(config.prometheus, watches)
    result = evaluate_watches(outcomes, graph_links(config), config.source_file)
    evaluation = record_signals(config, result.signals, now, vanish=result.vanished)
    report = await deliver_notifications(config)
    await publish("prometheus-watches", result.rows, evaluation, report)
    counters = {
        "watches": len(outcomes),
        "watch_errors": sum(o.error is not None for o in outcomes),
        "firing": sum(row["state"] == "FIRING" for row in result.rows),
    }
    troubles = [
        f"{counters['firing']} firing" if counters["firing"] else "",
        count(counters["watch_errors"], "failed query") if counters["watch_errors"] else "",
    ]
    seen = described(f"{count(len(outcomes), 'watch', 'watches')} queried", troubles, "none firing")
    return finish(seen, counters, evaluation, report)
