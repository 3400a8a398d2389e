"""the server stops answering between serve's poll and the start of a triggered run
(here: the one request that would set it Running gets a 503). The run never became Running — it
is still Scheduled on the server — but serve keeps its id in `started` for as long as the server
lists it, so it is never started again: the operator's `fleet-alerting trigger` / `/fleet run`
is lost, while the server shows the run Late forever. Nothing was started, so a retry could not
run it twice. A real Prefect server behind an HTTP relay (a local fake) that fails that request."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prefect import flow

from fleet_alerting.deployments.serve import run_due
from tests.fakes.http import FakeServer, Request, Response

pytestmark = pytest.mark.integration


@flow(name="review-blip")
async def on_demand() -> None:
    return None


class Relay(FakeServer):
    """Forwards every request to the real server; the first `set_state` of `run_id` gets 503."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream.removesuffix("/api")
        self.run_id = ""
        self.failed = 0
        self.client = httpx.Client(timeout=30)
        handler = self.server.RequestHandlerClass
        handler.do_PATCH = handler.do_GET  # type: ignore[attr-defined]  # Prefect's engine PATCHes

    def handle(self, request: Request) -> Response:
        set_state = f"/flow_runs/{self.run_id}/set_state"
        if self.run_id and request.path.endswith(set_state) and not self.failed:
            self.failed += 1
            return Response(503, {"detail": "Service Unavailable"})
        headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length")}
        answer = self.client.request(
            request.method,
            f"{self.upstream}{request.path}",
            params={k: v for k, v in request.query.items()},
            headers=headers,
            content=request.body,
        )
        kept = {"content-type": answer.headers.get("content-type", "application/json")}
        return Response(answer.status_code, answer.content, kept)


def test_a_triggered_run_whose_start_met_a_blip_still_runs(prefect_api: str) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    with (
        Relay(prefect_api) as relay,
        temporary_settings({PREFECT_API_URL: f"{relay.url}/api", PREFECT_CLIENT_MAX_RETRIES: 0}),
    ):
        state, failed = asyncio.run(_trigger_then_serve(relay))
    assert failed == 1, (
        f"the blip was not met: {[(r.method, r.path) for r in relay.requests][-15:]}"
    )
    assert state == "Completed", f"the triggered run is {state} after the server answered again"


async def _trigger_then_serve(relay: Relay) -> tuple[str, int]:
    from prefect.client.orchestration import get_client

    deployment_id = await (
        await on_demand.ato_deployment(name="blip", concurrency_limit=1)
    ).aapply()
    async with get_client() as client:
        run = await client.create_flow_run_from_deployment(deployment_id)
    relay.run_id = str(run.id)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(8, stop.set)
    await run_due({deployment_id: on_demand}, stop, 1.0, lambda _: None)
    async with get_client() as client:
        return (await client.read_flow_run(run.id)).state_name, relay.failed
