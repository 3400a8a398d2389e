"""A Prefect server that answers its poll with an HTTP error status — a 500, or a
reverse proxy's 502 for a Prefect server that is gone — is a server that does not answer. The
README: with PREFECT_API_URL serve "does not exit when that server goes away ... keeps polling";
run_due must treat it as it treats a ConnectError (no run starts, ask again), not raise out of
serve (serve_all turns the escaping httpx.HTTPError into exit 2)."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from fleet_alerting.deployments.serve import run_due
from tests.fakes.http import FakeServer, Request, Response


class Failing(FakeServer):
    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status

    def handle(self, request: Request) -> Response:
        if request.path.endswith("/csrf-token"):
            return Response(404)  # no CSRF support, as an older server
        if request.path.endswith("/health"):
            return Response(200, "true")  # it answered when serve started (and /health still does)
        if request.path.endswith("/admin/version"):
            import prefect

            return Response(200, f'"{prefect.__version__}"')
        return Response(self.status, {"detail": "Internal Server Error"})


async def _poll_for(seconds: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    await run_due({uuid4(): object()}, stop, 0.2, lambda _: None)


@pytest.mark.parametrize("status", [500, 502])
def test_a_poll_answered_with_an_http_error_keeps_serve_polling(status: int) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    with (
        Failing(status) as server,
        temporary_settings({PREFECT_API_URL: f"{server.url}/api", PREFECT_CLIENT_MAX_RETRIES: 0}),
    ):
        try:
            asyncio.run(_poll_for(4.5))  # Prefect's client takes ~2 s over a 502 even unretried
        except Exception as exc:
            pytest.fail(f"run_due raised on an HTTP {status} poll (serve exits 2): {exc!r}")
        polls = [r for r in server.requests if "flow_runs" in r.path]
        assert len(polls) >= 2, f"serve stopped asking after HTTP {status}: {len(polls)} poll(s)"
