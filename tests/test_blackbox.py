"""Blackbox probing end to end: local HTTP targets (healthy, 500, hanging), the direct prober and a
real blackbox_exporter from Debian, the flow with Slack and PagerDuty test servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from fleet_alerting.config.schema import BlackboxConfig
from fleet_alerting.core.signals import Severity
from fleet_alerting.sources.blackbox.client import ProbeTarget, load_targets, probe_all
from fleet_alerting.store.database import Store
from tests.fakes.http import FakeServer, Request, Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.servers import Server, free_port, http_ready, require_binary


class Targets(FakeServer):
    """/ok answers 200, /broken 500, /hang after 3 s; /api/healthz is switchable."""

    def __init__(self) -> None:
        super().__init__()
        self.api_status = 500

    def handle(self, request: Request) -> Response:
        if request.path == "/ok":
            return Response(200, "ok")
        if request.path == "/broken":
            return Response(500, "boom")
        if request.path == "/hang":
            return Response(200, "late", delay=3)
        if request.path == "/api/healthz":
            return Response(self.api_status, {"status": "ok" if self.api_status == 200 else "down"})
        return Response(404, "not found")


@pytest.fixture(scope="module")
def targets() -> Iterator[Targets]:
    with Targets() as server:
        yield server


def probe_targets(base: str) -> list[ProbeTarget]:
    return [
        ProbeTarget("healthy", f"{base}/ok", Severity.warning),
        ProbeTarget("broken", f"{base}/broken", Severity.warning),
        ProbeTarget("hanging", f"{base}/hang", Severity.warning),
        ProbeTarget("refused", f"http://127.0.0.1:{free_port()}/healthz", Severity.warning),
    ]


def outcomes(results: list) -> dict[str, tuple[bool, int | None, str | None]]:
    return {r.target.name: (r.ok, r.status, r.error) for r in results}


def test_direct_prober(targets: Targets) -> None:
    config = BlackboxConfig(mode="direct", timeout=timedelta(seconds=1))
    results = asyncio.run(probe_all(probe_targets(targets.url), config))
    got = outcomes(results)
    assert got["healthy"] == (True, 200, None)
    assert got["broken"] == (False, 500, "HTTP 500 (expected 200)")
    assert got["hanging"] == (False, None, "timed out after 1s")
    assert got["refused"][0] is False and got["refused"][2].startswith("cannot connect")
    assert results[0].latency_ms is not None and results[0].latency_ms < 1000


@pytest.fixture(scope="module")
def blackbox_exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = require_binary("prometheus-blackbox-exporter")
    workdir = tmp_path_factory.mktemp("blackbox")
    modules = yaml.safe_load(Path("config/blackbox.yml").read_text())
    modules["modules"]["http_2xx"]["timeout"] = "1s"
    (workdir / "blackbox.yml").write_text(yaml.safe_dump(modules))
    port = free_port()
    server = Server(
        [
            binary,
            f"--config.file={workdir / 'blackbox.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        workdir,
        http_ready(f"http://127.0.0.1:{port}/-/healthy"),
        "blackbox_exporter",
    )
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.mark.integration
def test_through_blackbox_exporter_matches_direct(targets: Targets, blackbox_exporter: str) -> None:
    config = BlackboxConfig(
        mode="exporter", exporter_url=blackbox_exporter, timeout=timedelta(seconds=1)
    )
    got = outcomes(asyncio.run(probe_all(probe_targets(targets.url), config)))
    assert got["healthy"] == (True, 200, None)
    assert got["broken"][:2] == (False, 500)
    assert got["hanging"][0] is False
    assert got["refused"][0] is False
    # an unknown module is the exporter's 400, reported against the target, not a crash
    bad = ProbeTarget("bad module", f"{targets.url}/ok", Severity.warning, module="nope")
    (result,) = asyncio.run(probe_all([bad], config))
    assert not result.ok and "blackbox_exporter HTTP 400" in result.error


def test_file_sd_targets_from_the_fleet_reference(tmp_path: Path) -> None:
    reference = Path(__file__).parents[1] / "config" / "targets"
    (tmp_path / "broken.json").write_text('[{"targets": ["x:1"], "labels": ')
    (tmp_path / "wrong.json").write_text('[{"targets": "pi-x:1"}]')
    config = BlackboxConfig.model_validate(
        {
            "file_sd": [
                {"files": [f"{reference}/targets-*.json"], "path": "/healthz"},
                {"files": ["broken.json", "wrong.json", "missing-*.json"]},
            ]
        }
    )
    found, problems = load_targets(config, tmp_path)
    urls = sorted(t.url for t in found)
    assert urls == [
        "http://pi-audio-01:8081/healthz",
        "http://pi-audio-02:8081/healthz",
        "http://pi-camera-01:8083/healthz",
        "http://pi-video-01:8082/healthz",
    ]
    assert [p.split(": ", 1)[1] for p in problems] == [
        "not valid JSON: Expecting value",
        "[0].targets: expected a list of host:port strings",
        "no file_sd file matches",
    ]
    assert problems[0].startswith(f"{tmp_path}/broken.json:1")


def write_config(path: Path, targets_url: str, slack: str, pd: str, **policy: object) -> None:
    (path.parent / "slack.url").write_text(f"{slack}/services/T000/B000/XXXX\n")
    (path.parent / "pd.key").write_text("P" * 32)
    critical = {"open_after": 2, "resolve_after": 2, "page": ["pagerduty"], "page_after": "0s"}
    critical["mirror"] = False  # no mirror configured (fail closed)
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {
            "outbox_file": "outbox.jsonl",
            "slack": {"webhook": {"file": "slack.url"}},
            "pagerduty": {"routing_key": {"file": "pd.key"}, "url": f"{pd}/v2/enqueue"},
        },
        "policies": {"critical": critical | policy},
        "blackbox": {
            "timeout": "1s",
            "targets": [
                {
                    "name": "Fleet API",
                    "url": f"{targets_url}/api/healthz",
                    "severity": "critical",
                    "runbook_url": "https://wiki.example/runbooks/api-down",
                    "remediation": ["docker compose ps api", "docker compose up -d api"],
                },
                {"name": "player", "url": f"{targets_url}/ok"},
            ],
            "file_sd": [{"files": ["nope.json"]}],
        },
    }
    path.write_text(yaml.safe_dump(config))


@pytest.mark.integration
def test_flow_opens_pages_and_resolves(
    prefect_api: str, targets: Targets, config_file: Path
) -> None:
    from fleet_alerting.flows.watches import blackbox_probe

    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        write_config(config_file, targets.url, slack.url, pd.url)
        targets.api_status = 500
        first = asyncio.run(blackbox_probe(str(config_file)))
        assert (first["failing"], first["target_problems"]) == (1, 1)
        assert slack.messages == [] and pd.events == []
        asyncio.run(blackbox_probe(str(config_file)))
        targets.api_status = 200
        asyncio.run(blackbox_probe(str(config_file)))
        last = asyncio.run(blackbox_probe(str(config_file)))
    assert last["failing"] == 0
    assert [e["event_action"] for e in pd.events] == ["trigger", "resolve"]
    texts = [m["text"] for m in slack.messages]
    api_texts = [t for t in texts if "Fleet API" in t]
    assert [t.split(" ")[0] for t in api_texts] == ["[CRITICAL]", "[CRITICAL]", "[RESOLVED"]
    assert api_texts[-1].startswith("[RESOLVED after ") and "now: Fleet API is up" in api_texts[-1]
    opened = next(m for m in slack.messages if "Fleet API" in m["text"])
    blocks = json.dumps(opened["blocks"])
    assert (
        "docker compose up -d api" in blocks and "https://wiki.example/runbooks/api-down" in blocks
    )
    # the broken targets file became a warning of its own, while the targets kept being probed
    assert any("nope.json: no file_sd file matches" in t for t in texts)
    store = Store(config_file.parent / "state.sqlite")
    assert [i.source for i in store.incidents()] == ["blackbox-config"]
