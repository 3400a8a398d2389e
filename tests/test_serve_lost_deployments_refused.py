"""serve registers again what its Prefect server lost, when the server refuses or fails the
create: serve keeps serving, says it, counts only what is scheduled, and never runs one watch
twice at once (the review of revive5; each failed before its fix)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import NAMESPACE_URL, uuid4, uuid5

import pytest

from tests.fakes.http import Request, Response
from tests.test_serve_lost_deployments import Creating


def _planned(flow: str, name: str):
    from fleet_alerting.deployments.schedules import SCHEDULES, Planned

    watch = next(s for s in SCHEDULES if s.flow == flow)
    watch = watch.model_copy(update={"name": name}) if hasattr(watch, "model_copy") else watch
    return Planned(watch, {"config_path": "unused.yaml"}, None, timedelta(seconds=10))


def _serve(server, served: dict, seconds: float = 1.0) -> list[str]:
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    from fleet_alerting.deployments.serve import run_due
    from fleet_alerting.flows import get_flow

    flows = {d: get_flow(p.schedule.flow) for d, p in served.items()}
    said: list[str] = []

    async def serve_for() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await run_due(flows, stop, 0.2, said.append, served)

    settings = {PREFECT_API_URL: f"{server.url}/api", PREFECT_CLIENT_MAX_RETRIES: 0}
    with temporary_settings(settings):
        asyncio.run(serve_for())
    return said


@pytest.mark.parametrize("status", [502, 504])
def test_a_proxys_502_page_at_the_create_again_does_not_kill_serve(status: int) -> None:
    """A server re-created behind nginx flaps: the create answers 502 'Bad Gateway' (HTML/text).
    Prefect's _create does exc.response.json() on it -> JSONDecodeError, which _register_lost
    does not catch: run_due raises, serve exits with a traceback."""
    lost = uuid4()
    with Creating([], lambda _n: Response(status, "<html>nginx error page</html>")) as server:
        try:
            _serve(server, {lost: _planned("prometheus-watches", "scheduled")})
        except Exception as exc:
            pytest.fail(f"run_due raised on a 502 page at the create again: {exc!r}")


def test_one_deployment_the_server_refuses_does_not_keep_the_others_lost() -> None:
    """Five lost (an empty database); the server refuses one for good (422). `break` on the
    first refusal: every 20 s the same one is tried first and the others are never created."""
    from fleet_alerting.deployments.schedules import SCHEDULES, Planned

    ids = [uuid4() for _ in SCHEDULES[:3]]
    served = {
        d: Planned(s, {"config_path": "unused.yaml"}, None, timedelta(seconds=10))
        for d, s in zip(ids, SCHEDULES[:3], strict=True)
    }
    first = str(uuid5(NAMESPACE_URL, SCHEDULES[0].flow))
    refuse = lambda name: Response(422, {"detail": "refused"}) if name == first else None  # noqa: E731
    with Creating([], refuse) as server:
        _serve(server, served, 1.0)
    wanted = sorted(str(uuid5(NAMESPACE_URL, s.flow)) for s in SCHEDULES[1:3])
    assert sorted(server.created) == wanted, [s.flow for s in SCHEDULES[:3]]


def test_a_lost_deployment_that_cannot_be_registered_again_is_said() -> None:
    """The server refuses the create (its disk full: 500): serve says nothing at all and
    fleet_alerting_deployments_scheduled still counts the lost deployment."""
    from fleet_alerting.deployments.watch_runs import RUNS

    kept, lost = uuid4(), uuid4()
    planned = _planned("prometheus-watches", "scheduled")
    RUNS.expect({}, deployments=2)
    RUNS.begin(datetime.now(UTC))
    with Creating([kept], lambda _n: Response(500, {"detail": "disk full"})) as server:
        said = _serve(server, {kept: planned, lost: planned})
    assert [line for line in said if "lost" in line], said
    assert RUNS.deployments_scheduled() == 1


class RefusingAtStart(Creating):
    pass


@pytest.mark.parametrize(
    "refusal",
    [Response(422, {"detail": "schedule refused"}), Response(502, "<html>Bad Gateway</html>")],
)
def test_a_server_refusing_a_deployment_at_start_exits_2_in_one_line(
    refusal: Response,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """register() at start: Prefect wraps the refused create (any error of it) in
    DeploymentApplyError, a RuntimeError; serve_all catches only ServeError and httpx errors."""
    from fleet_alerting.deployments.serve import serve_all
    from tests.test_self_watch import make_config

    make_config(tmp_path, blackbox={})
    refuse = lambda _n: refusal  # noqa: E731
    with RefusingAtStart([], refuse) as server:
        api = f"{server.url}/api"
        monkeypatch.setenv("PREFECT_API_URL", api)
        from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

        with temporary_settings({PREFECT_API_URL: api, PREFECT_CLIENT_MAX_RETRIES: 0}):
            try:
                code = serve_all(str(tmp_path / "config.yaml"))
            except Exception as exc:
                pytest.fail(f"serve_all raised instead of exit 2: {exc!r}")
    assert code == 2


from tests.test_serve_prefect_silent import (  # noqa: E402
    PrefectServer,
    _deployments,
    prefect_server,  # noqa: F401
    stopped,
    write_config,
)


@pytest.mark.integration
def test_a_deployment_lost_while_its_run_is_in_flight_does_not_get_a_second_run_at_once(
    tmp_path: Path,
    prefect_server: PrefectServer,  # noqa: F811
) -> None:
    """concurrency_limit=1 and serve's `active` guard are per deployment id: the deployment
    deleted while its run is in flight is registered again under a new id, and the new one's
    due run starts beside the old run still in flight: two runs of one watch at once."""
    import os
    import time

    import httpx

    from tests.fakes.deadmans_switch import DeadMansSwitch
    from tests.fakes.http import FakeServer
    from tests.servers import free_port, start_serve, wait_until

    class SlowPrometheus(FakeServer):
        def handle(self, request: Request) -> Response:
            empty = {"status": "success", "data": {"resultType": "vector", "result": []}}
            return Response(200, empty, delay=35.0)

    def running() -> list[dict]:
        body = {"flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}}}
        answer = httpx.post(f"{prefect_server.url}/flow_runs/filter", json=body, timeout=10)
        return answer.json()

    log = tmp_path / "serve.log"
    with DeadMansSwitch() as switch, SlowPrometheus() as prometheus:
        config = write_config(
            tmp_path,
            switch,
            free_port(),
            prometheus={"url": prometheus.url, "timeout": "60s"},
            schedule={"every": {"prometheus-watches": "10s"}},
        )
        env = os.environ | {
            "PREFECT_API_URL": prefect_server.url,
            "PREFECT_HOME": str(tmp_path / "serve-home"),
        }
        serve = start_serve(config, env, log)
        most = 0
        try:
            wait_until(lambda: len(running()) == 1, 90, "a run in flight")
            before = _deployments(prefect_server)["scheduled"]
            httpx.delete(f"{prefect_server.url}/deployments/{before['id']}").raise_for_status()
            ends = time.monotonic() + 45
            while time.monotonic() < ends:
                most = max(most, len(running()))
                time.sleep(0.5)
            said = log.read_text()
        finally:
            stopped(serve)
    assert "registered again" in said, said[-2000:]
    assert most == 1, f"{most} runs of prometheus-watches in flight at once"
