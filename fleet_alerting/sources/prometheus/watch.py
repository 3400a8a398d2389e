"""PromQL watches (role agents, device-failure spikes, circuit breakers): one incident per host or
device, remediation steps and log / graph links in Slack. All queries of a run are one step,
fanned out inside it."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from fleet_alerting.config import Config
from fleet_alerting.config.schema import PrometheusConfig, WatchConfig
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.policy import cause_changes
from fleet_alerting.core.wording import count, described
from fleet_alerting.sources.prometheus.client import query_watches
from fleet_alerting.sources.prometheus.judge import (
    ERRORS_SOURCE,
    WatchOutcome,
    active_watches,
    error_kind,
    evaluate_watches,
)
from fleet_alerting.sources.watch import Observation, StoreReader, run_log, step

# a watch error's cause changed: told (a series' own label `cause` is the series')
cause_changes_told = partial(cause_changes, sources={ERRORS_SOURCE})


@step("query-prometheus")
async def run_watch_queries(
    config: PrometheusConfig, watches: list[WatchConfig]
) -> list[WatchOutcome]:
    outcomes = await query_watches(config, watches)
    logger = run_log()
    for outcome in outcomes:
        name = outcome.watch.name
        for warning in outcome.warnings:
            logger.warning("watch %s: Prometheus warning: %s", name, warning)
        if outcome.error is None:
            logger.info("watch %s: %d series firing", name, len(outcome.firing))
        elif outcome.permanent:
            kind = error_kind(outcome.permanent, outcome.cause)
            logger.error("watch %s: %s: %s", name, kind, outcome.error)
        else:
            logger.warning("watch %s: not evaluated this run: %s", name, outcome.error)
    return outcomes


def graph_links(config: Config) -> LinksConfig:
    """`links.prometheus_url` for graph links, else the URL the watches query."""
    if config.links.prometheus_url or not config.prometheus.url:
        return config.links
    return config.links.model_copy(update={"prometheus_url": config.prometheus.url})


async def observe(config: Config, now: datetime, store: StoreReader) -> Observation:
    watches = active_watches(config.prometheus)
    outcomes = await run_watch_queries(config.prometheus, watches)
    result = evaluate_watches(outcomes, graph_links(config), config.source_file)
    counters = {
        "watches": len(outcomes),
        "watch_errors": sum(o.error is not None for o in outcomes),
        "firing": sum(row["state"] == "FIRING" for row in result.rows),
    }
    troubles = [
        f"{counters['firing']} firing" if counters["firing"] else "",
        count(counters["watch_errors"], "failed query", "failed queries")
        if counters["watch_errors"]
        else "",
    ]
    seen = described(f"{count(len(outcomes), 'watch', 'watches')} queried", troubles, "none firing")
    return Observation(
        result.signals,
        seen,
        counters,
        rows=result.rows,
        unseen=result.unseen,
        announce=cause_changes_told,
    )
