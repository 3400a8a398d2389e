"""`fleet_alerting_incidents_open{state}` says `muted` for an incident a silence or maintenance
window holds — planned work — not `firing`: a Prometheus rule on firing criticals would page for
it. Scraped from serve's metrics endpoint over a real SQLite store the pipeline wrote."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from fleet_alerting.config import Config
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.muting import Silence
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.deployments.watch_runs import WatchRuns
from fleet_alerting.store import silences
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.incident_actions import perform
from fleet_alerting.surfaces.metrics import metrics_endpoint
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.servers import free_port
from tests.test_self_watch import make_config, scrape

WHOLE_DAY = {"start_time": "00:00", "end_time": "24:00"}
ALWAYS = {"name": "always", "time_intervals": [{"times": [WHOLE_DAY]}]}


def device(name: str) -> Signal:
    return Signal(
        f"blackbox:target={name}", "blackbox", True, Severity.critical, f"{name} down",
        target=name, labels={"yard": name.split("-")[0]},
    )  # fmt: skip


def test_muted_incidents_are_not_counted_as_firing(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        metrics={"listen": f"127.0.0.1:{free_port()}"},
        policies={"critical": {"open_after": 1, "page_after": "1h"}},
        grouping={"enabled": False},
        maintenance={
            "windows": [ALWAYS],
            "mute": [{"matchers": ['yard="east"'], "mute_time_intervals": ["always"]}],
        },
    )
    now = utcnow() - timedelta(minutes=1)
    with Store(config.state) as store:
        silences.add(
            store,
            Silence("s1" * 8, ('target="north-1"',), now, now + timedelta(hours=1), "ana"),
        )
    signals = [device(n) for n in ("east-1", "north-1", "south-1", "west-1")]
    with Store(config.state) as store:
        rules, maintenance = config.storm_rules(), config.maintenance_rules()
        evaluate_and_record(
            store, signals, config.policy, now, rules=rules, maintenance=maintenance
        )
    outcome = asyncio.run(
        perform(
            config, "blackbox:target=south-1", "silence", actor="bo", via="cli", now=now,
            duration=timedelta(hours=1), deliver=False,
        )
    )  # fmt: skip
    assert outcome.ok, outcome.message

    states = open_states(config)
    # the window's (east), the silence by matchers' (north), the operator's (south); west fails
    assert states == {"muted": 3, "firing": 1}


def open_states(config: Config) -> dict[str, float]:
    """fleet_alerting_incidents_open by state, as /metrics says it."""
    with metrics_endpoint(config, WatchRuns(), lambda _line: None) as url:
        assert url is not None
        got = scrape(url)
    return {
        dict(labels)["state"]: value
        for (name, labels), value in got.items()
        if name == "fleet_alerting_incidents_open"
    }
