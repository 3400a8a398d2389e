"""`serve` reads the config file at every run. An edit that makes it invalid (a typo) must not
silence every watch: in the same process the config read last is used, the run still observes,
tells and pages, and then fails saying why (so the run's state, the metrics and the heartbeat
tell a human). A process with no valid read to fall back on (a plain `run`) fails at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from fleet_alerting.flows.common import RunFailed, RunIncomplete
from fleet_alerting.flows.watches import blackbox_probe
from tests.fakes.http import FakeServer, Request, Response


class Target(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.status = 200

    def handle(self, request: Request) -> Response:
        return Response(self.status, "ok")


def write(config_file: Path, url: str, typo: bool = False) -> None:
    policy = {"open_after": 1}
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {"dry_run": True, "outbox_file": "outbox.jsonl"},
        "policies": {"critical": policy | ({"page_afer": "1m"} if typo else {})},
        "blackbox": {"targets": [{"name": "API", "url": url, "severity": "critical"}]},
    }
    config_file.write_text(yaml.safe_dump(config))


def test_an_invalid_edit_keeps_the_watch_running_on_the_config_read_last(
    config_file: Path,
) -> None:
    with Target() as target:
        url = f"http://127.0.0.1:{target.port}/api/healthz"
        write(config_file, url)
        asyncio.run(blackbox_probe.fn(str(config_file)))  # read, valid
        write(config_file, url, typo=True)
        target.status = 503
        with pytest.raises(RunIncomplete) as failed:
            asyncio.run(blackbox_probe.fn(str(config_file)))
    assert "invalid configuration (ran with the one read " in str(failed.value)
    assert "page_afer" in str(failed.value)
    assert failed.value.result["opened"] == 1  # observed and told all the same
    assert "opened" in (config_file.parent / "outbox.jsonl").read_text()


def test_with_no_valid_read_before_an_invalid_config_fails_the_run(tmp_path: Path) -> None:
    config_file = tmp_path / "config.yaml"
    write(config_file, "http://127.0.0.1:9/", typo=True)
    with pytest.raises(RunFailed, match="invalid configuration:"):
        asyncio.run(blackbox_probe.fn(str(config_file)))
