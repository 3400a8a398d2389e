"""serve asks every 20 s how many of its deployments the Prefect server still has, and registers
again those it lost. The server's answer is outside input: a count alone (short, or not a
number) changes nothing — only the deployments read back by id name the lost ones — and an
error status is no answer (serve keeps serving), never a reason to register or to exit."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import pytest

from fleet_alerting.deployments.serve import lost_deployments
from tests.fakes.http import FakeServer, Request, Response


class Deployments(FakeServer):
    """Prefect's `/deployments/count` and `/deployments/filter` over the deployments `kept`, the
    count answered as `count` says (None: the true one)."""

    def __init__(self, kept: list[UUID], count: Response | None = None) -> None:
        super().__init__()
        self.kept, self.count = kept, count

    def handle(self, request: Request) -> Response:
        if request.path.endswith("/csrf-token"):
            return Response(404)
        asked = set(request.json()["deployments"]["id"]["any_"]) if request.body else set()
        there = [d for d in self.kept if str(d) in asked]
        if request.path.endswith("/deployments/count"):
            return self.count or Response(200, json.dumps(len(there)))
        if request.path.endswith("/deployments/filter"):
            return Response(200, [_deployment(d) for d in there])
        return Response(404, {"detail": "Not Found"})


def _deployment(deployment_id: UUID) -> dict[str, Any]:
    from prefect.client.schemas.responses import DeploymentResponse

    return DeploymentResponse(id=deployment_id, name="scheduled", flow_id=uuid4()).model_dump(
        mode="json"
    )


def _lost(server: Deployments, ids: list[UUID]) -> list[UUID]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    async def ask() -> list[UUID]:
        async with get_client() as client:
            return await lost_deployments(client, ids)

    settings = {PREFECT_API_URL: f"{server.url}/api", PREFECT_CLIENT_MAX_RETRIES: 0}
    with temporary_settings(settings):
        return asyncio.run(ask())


def test_the_deployments_the_server_lost_are_named_by_reading_them_back() -> None:
    kept, gone = uuid4(), uuid4()
    with Deployments([kept]) as server:
        assert _lost(server, [kept, gone]) == [gone]


def test_all_there_is_one_count_and_nothing_lost() -> None:
    ids = [uuid4(), uuid4()]
    with Deployments(ids) as server:
        assert _lost(server, ids) == []
        assert [r.path for r in server.requests if "deployments" in r.path] == [
            "/api/deployments/count"
        ]


@pytest.mark.parametrize(
    "count",
    [
        Response(200, "0"),  # short, but every deployment reads back
        Response(200, '"two"'),
        Response(200, "not json"),
        Response(500, {"detail": "Internal Server Error"}),
        Response(502, "Bad Gateway"),
        Response(404, {"detail": "Not Found"}),  # a proxy in front without the route
    ],
)
def test_an_odd_count_loses_nothing_and_does_not_raise(count: Response) -> None:
    ids = [uuid4(), uuid4()]
    with Deployments(ids, count) as server:
        assert _lost(server, ids) == []


class Creating(Deployments):
    """A server that has lost serve's deployments: creates flows, and answers each deployment
    create as `create(name)` says (None: created, a new id)."""

    def __init__(self, kept, create) -> None:
        super().__init__(kept)
        self.create = create
        self.created: list[str] = []

    def handle(self, request: Request) -> Response:
        if request.path.endswith("/health"):
            return Response(200, "true")
        if request.path.endswith("/admin/version"):
            import prefect

            return Response(200, f'"{prefect.__version__}"')
        if "/flow_runs/filter" in request.path or "get_scheduled_flow_runs" in request.path:
            return Response(200, [])
        if request.path.endswith("/flows/"):
            from prefect.client.schemas.objects import Flow

            name = request.json()["name"]
            flow = Flow(id=uuid5(NAMESPACE_URL, name), name=name)
            return Response(201, flow.model_dump(mode="json"))
        if request.method == "POST" and request.path.endswith("/deployments/"):
            name = request.json()["flow_id"]
            refused = self.create(name)
            if refused is not None:
                return refused
            from prefect.client.schemas.responses import DeploymentResponse

            self.created.append(name)
            made = DeploymentResponse(id=uuid4(), name=name, flow_id=uuid4())
            return Response(201, made.model_dump(mode="json"))
        return super().handle(request)


def test_a_lost_deployment_the_server_refuses_to_create_again_keeps_serve_serving() -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    from fleet_alerting.deployments.schedules import SCHEDULES, Planned
    from fleet_alerting.deployments.serve import run_due
    from fleet_alerting.flows import get_flow

    watch = next(s for s in SCHEDULES if s.flow == "prometheus-watches")
    planned = Planned(watch, {"config_path": "unused.yaml"}, None, timedelta(seconds=10))
    kept, lost = uuid4(), uuid4()
    flows = {d: get_flow(watch.flow) for d in (kept, lost)}
    said: list[str] = []

    async def serve_for(seconds: float) -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await run_due(flows, stop, 0.2, said.append, {kept: planned, lost: planned})

    refuse = lambda _name: Response(500, {"detail": "Internal Server Error"})  # noqa: E731
    with Creating([kept], refuse) as server:
        settings = {PREFECT_API_URL: f"{server.url}/api", PREFECT_CLIENT_MAX_RETRIES: 0}
        with temporary_settings(settings):
            asyncio.run(serve_for(1.0))
        created = [
            r for r in server.requests if r.method == "POST" and r.path.endswith("/deployments/")
        ]
    assert created, "serve did not try to register the lost deployment again"
    assert not [line for line in said if "registered again" in line], said
    assert set(flows) == {kept, lost}  # still lost: asked about again at the next check
