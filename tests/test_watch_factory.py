"""One factory builds every watch flow from a registry: a throwaway watch, registered nowhere but
here, runs through it as the shipped ones do — observed, recorded, told, summarized — and what it
keeps goes through the run's one store call. The registry is the one list of watches: entry
points, schedules, the config's watch names and prefect.yaml agree with it."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import time
import typing
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import fleet_alerting.sources as sources
from fleet_alerting.config import Config
from fleet_alerting.config.schema import WatchName
from fleet_alerting.core.incidents import Incident
from fleet_alerting.core.keys import signal_key
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.deployments.schedules import CONFIGURED, SCHEDULES
from fleet_alerting.flows import ENTRYPOINTS, get_flow
from fleet_alerting.flows.watches import watch_flow_of
from fleet_alerting.sources.registry import WATCHES
from fleet_alerting.sources.watch import Observation, StoreReader, run_log, step
from fleet_alerting.store.database import Store
from fleet_alerting.tasks.observe import keep
from tests.fakes.saas import SlackWebhookServer

ROOT = Path(__file__).parents[1]
SOURCE = "toy"
RUNS = "toy:runs"  # what the toy keeps for its next run
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class ToyWatch:
    """Fails on its first run; on later runs says nothing of the thing, but vouches it is over."""

    name: str = "toy-watch"
    section: str = "toy"
    description: str = "a watch that exists only in this test"
    required: str | None = None

    def configured(self, config: Config) -> bool:
        return True

    async def observe(self, config: Config, now: datetime, store: StoreReader) -> Observation:
        runs = store.get_value(RUNS, 0)
        thing = Signal(signal_key(SOURCE, thing="a"), SOURCE, True, Severity.warning, "a fails")
        signals = [thing] if runs == 0 else []

        def over(incidents: typing.Iterable[Incident]) -> list[Signal]:
            return [replace(i.signal, firing=False, summary="a is over") for i in incidents]

        failing = sum(s.firing for s in signals)
        return Observation(
            signals,
            f"1 thing checked, {failing} failing",
            {"things": 1, "failing": failing},
            rows=[{"key": thing.key, "thing": "a"}],
            unseen=over,
            values={RUNS: runs + 1},
        )


def toy_config(tmp_path: Path, slack: str) -> Path:
    (tmp_path / "slack.url").write_text(f"{slack}/services/T000/B000/XXXX\n")
    told = {"open_after": 1, "resolve_after": 1, "notify": ["slack"], "mirror": False, "page": []}
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state": {"path": "state.sqlite"},
                "notify": {"attempts_per_run": 1, "slack": {"webhook": {"file": "slack.url"}}},
                "policies": {"warning": told, "critical": told},
            }
        )
    )
    return config


def test_a_throwaway_watch_runs_through_the_factory(tmp_path: Path) -> None:
    flow = watch_flow_of(ToyWatch())
    assert flow.name == "toy-watch"
    with SlackWebhookServer() as slack:
        config = toy_config(tmp_path, slack.url)
        first = asyncio.run(flow.fn(str(config)))
        second = asyncio.run(flow.fn(str(config)))
        told = [m["text"] for m in slack.messages]
    assert first["summary"] == "1 thing checked, 1 failing; opened 1 incident, told slack"
    assert (first["things"], first["failing"], first["opened"]) == (1, 1, 1)
    assert second["summary"] == "1 thing checked, 0 failing; resolved 1 incident, told slack"
    assert len(told) == 2 and "a is over" in told[1]
    with Store(tmp_path / "state.sqlite") as store:
        assert store.get_value(RUNS) == 2  # kept by the run, once per run
        assert store.unresolved(SOURCE) == {}


@dataclass(frozen=True)
class WritingWatch(ToyWatch):
    async def observe(self, config: Config, now: datetime, store: Any) -> Observation:
        store.set_value(RUNS, 99)  # a watch that would write beside the engine's path
        raise AssertionError("unreachable")


def test_a_watch_reads_the_store_and_never_writes_it(tmp_path: Path) -> None:
    with SlackWebhookServer() as slack:
        config = toy_config(tmp_path, slack.url)
        with pytest.raises(AttributeError, match="set_value"):
            asyncio.run(watch_flow_of(WritingWatch()).fn(str(config)))
    with Store(tmp_path / "state.sqlite") as store:
        assert store.get_value(RUNS) is None


@step("toy-count")
def count_things() -> int:
    run_log().info("toy counted %d thing", 1)
    return 1


@dataclass(frozen=True)
class SteppingWatch(ToyWatch):
    async def observe(self, config: Config, now: datetime, store: StoreReader) -> Observation:
        return Observation([], f"{count_things()} thing checked", {"things": 1})


@pytest.mark.integration
def test_a_watch_step_is_a_task_run_and_its_log_the_run_log(
    prefect_api: str, tmp_path: Path
) -> None:
    """Sources know no Prefect, yet a run shows a watch's steps as task runs and its log lines
    in the run's log, as the Prefect UI showed them before the factory."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    with SlackWebhookServer() as slack:
        config = toy_config(tmp_path, slack.url)
        state = asyncio.run(watch_flow_of(SteppingWatch())(str(config), return_state=True))
    assert state.is_completed(), state
    run_id = state.state_details.flow_run_id

    async def shown() -> tuple[list[str], list[str]]:
        async with get_client() as client:
            of_run = FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
            tasks = await client.read_task_runs(flow_run_filter=of_run)
            logs = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
            lines = await client.read_logs(log_filter=logs)
        return sorted(t.name.rsplit("-", 1)[0] for t in tasks), [line.message for line in lines]

    expected = {"toy counted 1 thing", "1 thing checked; nothing to tell"}
    deadline = time.monotonic() + 30  # the run's logs reach the server in the background
    steps, lines = asyncio.run(shown())
    while not expected <= set(lines) and time.monotonic() < deadline:
        steps, lines = asyncio.run(shown())
    assert steps == ["toy-count"]  # evaluating, recording, delivering: the run's own parts
    assert expected <= set(lines)


def test_what_a_watch_keeps_is_stored_together_or_not_at_all(tmp_path: Path) -> None:
    """Its one-off notifications and its values (a cursor) commit in one transaction."""
    policy = PolicyConfig(open_after=1, notify=["slack"], mirror=False)
    signal = Signal(signal_key(SOURCE, thing="b"), SOURCE, True, Severity.warning, "b fails")
    told = evaluate([signal], {}, lambda _s: policy, T0)
    assert told.notifications
    with Store(tmp_path / "state.sqlite") as store:
        with pytest.raises(TypeError):  # a value that cannot be stored
            keep(store, Observation([], "", {}, one_offs=told, values={RUNS: object()}), T0)
        assert store.outbox(("queued",)) == [] and store.get_value(RUNS) is None
        keep(store, Observation([], "", {}, one_offs=told, values={RUNS: 1}), T0)
        assert len(store.outbox(("queued",))) == len(told.notifications)
        assert store.get_value(RUNS) == 1


def test_every_source_package_with_a_watch_is_registered_once() -> None:
    exported = []
    for package in pkgutil.iter_modules(sources.__path__):
        if package.ispkg:
            module = importlib.import_module(f"{sources.__name__}.{package.name}")
            exported += [module.WATCH] if hasattr(module, "WATCH") else []
    assert sorted(w.name for w in exported) == sorted(w.name for w in WATCHES)
    assert len({w.name for w in WATCHES}) == len(WATCHES)


def test_entry_points_schedules_and_config_names_follow_the_registry() -> None:
    names = [w.name for w in WATCHES]
    assert sorted(typing.get_args(WatchName)) == sorted(names)
    assert [s.flow for s in SCHEDULES if s.parameters == {"config_path": "."}] == names
    assert list(CONFIGURED) == names
    for watch in WATCHES:
        flow = get_flow(watch.name)
        assert flow.name == watch.name
        assert list(flow.parameters.properties) == ["config_path"]
    assert set(ENTRYPOINTS) == {*names, "quarterly-audit"}


def test_prefect_yaml_is_written_from_the_schedules() -> None:
    """`python -m fleet_alerting.deployments.prefect_yaml > prefect.yaml` after a watch changes."""
    from fleet_alerting.deployments.prefect_yaml import render

    assert (ROOT / "prefect.yaml").read_text() == render()
    declared = yaml.safe_load(render())["deployments"]
    by_entrypoint = {d["entrypoint"]: d for d in declared}
    for s in SCHEDULES:
        module, function = ENTRYPOINTS[s.flow].removeprefix("fleet_alerting.").split(":")
        deployment = by_entrypoint[f"{module.replace('.', '/')}.py:{function}"]
        assert deployment["description"] == s.description
        assert deployment["name"] == s.name
        assert set(deployment["parameters"]) == set(s.parameters)
    assert len(declared) == len(SCHEDULES)


def test_listing_the_watches_loads_no_schema_no_client_and_no_prefect() -> None:
    """Every CLI start lists the schedules: the registry stays light."""
    import subprocess
    import sys

    listed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, fleet_alerting.deployments.schedules, fleet_alerting.flows; "
            "print(sorted(m for m in sys.modules if m.startswith(('prefect', 'httpx', 'aiomqtt'))"
            " or m in ('fleet_alerting.config.schema', 'fleet_alerting.sources.blackbox.client')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.strip() == "[]"
