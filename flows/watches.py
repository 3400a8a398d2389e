"""Every watch flow, built by one factory from the registry: load the config, observe, evaluate
and record, deliver, publish the run's table, and say what the run saw and changed."""

from __future__ import annotations

from typing import Any

from fleet_alerting.core.clock import utcnow
from fleet_alerting.flows.common import (
    DEFAULT_CONFIG,
    RunFailed,
    Summary,
    finish,
    load,
    publish,
    store_errors_fail_the_run,
)
from fleet_alerting.sources.registry import WATCHES, flow_attribute
from fleet_alerting.sources.watch import Watch
from fleet_alerting.tasks.observe import observe
from fleet_alerting.tasks.pipeline import deliver_notifications, record_signals
from fleet_alerting.tasks.runtime import watch_flow


def watch_flow_of(watch: Watch) -> Any:
    """The watch's flow: named as the watch, one parameter (`config_path`), the run's summary as
    its result. (No docstring on the flow itself: Prefect would show it as the flow's.)"""

    async def run(config_path: str = DEFAULT_CONFIG) -> Summary:
        loaded = load(config_path)
        config = loaded.config
        if watch.required and not watch.configured(config):
            raise RunFailed(f"{config.source_file}: {watch.required}")
        now = utcnow()
        observed = await observe(watch, config, now)
        evaluation = record_signals(
            config,
            observed.signals,
            now,
            unseen_sources=observed.unseen_sources,
            policy_for=observed.policy_for,
            unseen=observed.unseen,
            announce=observed.announce,
        )
        report = await deliver_notifications(config)
        await publish(config, watch.name, observed.table(evaluation), evaluation, report)
        return finish(observed.seen, observed.counters, evaluation, report, loaded.stale)

    run.__name__ = run.__qualname__ = flow_attribute(watch)
    run.__module__ = __name__
    return watch_flow(watch.name)(store_errors_fail_the_run(run))


# each flow a module attribute: entry points (`flows/watches.py:blackbox_probe`) name them so
globals().update({flow_attribute(w): watch_flow_of(w) for w in WATCHES})
