"""A watch's steps run as Prefect task runs: Prefect looks at each argument itself (an earlier
step's result still shows as the next step's input) but does not walk into it (the whole config,
every signal — a share of serve's CPU per run)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from fleet_alerting.tasks.runtime import step


class WalkedDict(dict):
    """A dict that counts how often something lists its items."""

    walks = 0

    def items(self) -> Any:
        WalkedDict.walks += 1
        return super().items()


@step("make-a-result")
def make_a_result(n: int) -> list[int]:
    return [n]


@step("use-the-result")
def use_the_result(config: dict, made: list[int]) -> str:
    return f"{type(config).__name__} {made}"


@flow(name="steps-and-arguments")
def two_steps() -> str:
    config = WalkedDict({f"key-{n}": {"nested": [n]} for n in range(50)})
    return use_the_result(config, made=make_a_result(1))


async def inputs_of_its_task_runs(run_id: Any) -> dict[str, dict[str, list[Any]]]:
    of_run = FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
    async with get_client() as client:
        runs = await client.read_task_runs(flow_run_filter=of_run)
    ids = {run.id: run.name.rsplit("-", 1)[0] for run in runs}
    return {
        ids[run.id]: {arg: [ids.get(i.id) for i in found] for arg, found in run.task_inputs.items()}
        for run in runs
    }


def test_a_step_gets_its_arguments_unchanged_and_prefect_does_not_walk_them(
    prefect_api: str,
) -> None:
    WalkedDict.walks = 0
    state = two_steps(return_state=True)
    assert state.result() == "WalkedDict [1]"
    assert WalkedDict.walks == 0, "Prefect walked into a step's argument"
    run_id = state.state_details.flow_run_id
    deadline, inputs = time.monotonic() + 30, {}
    while len(inputs) < 2 and time.monotonic() < deadline:
        inputs = asyncio.run(inputs_of_its_task_runs(run_id))
        time.sleep(0.2)
    assert inputs["use-the-result"]["made"] == ["make-a-result"], inputs  # the edge in the UI
