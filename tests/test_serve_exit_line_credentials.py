"""README — "The URL is said without user, password or query." serve's line for a
Prefect server that failed a request (stderr, and the heartbeat's last words) is the httpx error
with the full request URL: PREFECT_API_URL's user:password and query are said as they are.
(The same exit-2 path is what an HTTP 500 at a poll takes, test_poll_http_error.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_alerting.deployments.serve import serve_all
from tests.test_self_watch import make_config
from tests.test_serve_poll_http_error import Failing


def test_a_failed_request_is_said_without_the_api_urls_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_config(tmp_path, blackbox={})
    with Failing(500) as server:
        api = f"http://operator:hunter2@127.0.0.1:{server.port}/api"
        monkeypatch.setenv("PREFECT_API_URL", api)
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: api}):
            code = serve_all(str(tmp_path / "config.yaml"))
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if line.startswith("serve:")]
    assert code == 2, err
    assert "hunter2" not in "\n".join(said), said
