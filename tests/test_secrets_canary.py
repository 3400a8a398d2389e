"""Canary: secret values set in the config never reach logs, artifacts, the outbox, dead-letter
reasons, CLI output or exceptions — on the success path and on every failure path."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import yaml

from fleet_alerting.surfaces.cli import main
from tests.fakes.http import FakeServer, Request, Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.servers import free_port

WEBHOOK_CANARY = "CANARYwebhookT0000B0000"
KEY_CANARY = "CANARYkey" + "x" * 23  # 32 characters, a valid-looking routing key
MIRROR_CANARY = "CANARYmirror9999"


class Down(FakeServer):
    def handle(self, request: Request) -> Response:
        return Response(500, "down")


def seen_everywhere(text: str) -> bool:
    return any(c in text for c in (WEBHOOK_CANARY, KEY_CANARY, MIRROR_CANARY))


@pytest.mark.integration
def test_secrets_never_leak(
    prefect_api: str, config_file: Path, caplog: pytest.LogCaptureFixture, capsys
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter

    from fleet_alerting.flows.blackbox_probe import blackbox_probe

    folder = config_file.parent
    with SlackWebhookServer() as slack, PagerDutyServer() as pd, Down() as api:
        (folder / "slack.url").write_text(f"{slack.url}/services/{WEBHOOK_CANARY}")
        (folder / "mirror.url").write_text(f"http://127.0.0.1:{free_port()}/{MIRROR_CANARY}")
        (folder / "pd.key").write_text(KEY_CANARY)
        config_file.write_text(
            yaml.safe_dump(
                {
                    "state": {"path": "state.sqlite"},
                    "notify": {
                        "outbox_file": "outbox.jsonl",
                        "attempts_per_run": 1,
                        "slack": {
                            "webhook": {"file": "slack.url"},
                            "mirror_webhook": {"file": "mirror.url"},
                        },
                        "pagerduty": {
                            "routing_key": {"file": "pd.key"},
                            "url": f"{pd.url}/v2/enqueue",
                        },
                    },
                    "policies": {
                        "critical": {
                            "open_after": 1,
                            "page": ["pagerduty"],
                            "page_after": 0,
                            "mirror": True,
                        }
                    },
                    "blackbox": {
                        "targets": [
                            {"name": "api", "url": f"{api.url}/api/healthz", "severity": "critical"}
                        ]
                    },
                }
            )
        )
        slack.fail_next = [Response(500, f"echoing {WEBHOOK_CANARY}")]
        pd.fail_next = [Response(400, {"status": "invalid event", "message": KEY_CANARY})]
        with caplog.at_level("DEBUG"):
            result = asyncio.run(blackbox_probe(str(config_file)))
    # the failure paths really ran: a retry (Slack 500), a dead letter (PagerDuty 400) and an
    # unreachable mirror; and the secrets were really used
    assert result["dead_letters"] == 1 and result["notifications_queued"] >= 2
    assert pd.requests[0].json()["routing_key"] == KEY_CANARY
    assert slack.requests[0].path == f"/services/{WEBHOOK_CANARY}"

    async def server_side() -> str:
        async with get_client() as client:
            logs = await client.read_logs(log_filter=LogFilter(), limit=200)
            artifacts = await client.read_artifacts()
        return "\n".join([log.message for log in logs] + [str(a.data) for a in artifacts])

    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    stored = server_side_text = asyncio.run(server_side())
    assert "dead letter" in stored  # the logs and artifacts were read
    db = sqlite3.connect(folder / "state.sqlite")
    rows = db.execute("SELECT data, coalesce(last_error, '') FROM outbox").fetchall()
    stored_text = "\n".join(a + b for a, b in rows)
    assert "HTTP 500" in stored_text
    main(["outbox", "--config", str(config_file)])
    cli = capsys.readouterr()
    outbox_file = (
        (folder / "outbox.jsonl").read_text() if (folder / "outbox.jsonl").exists() else ""
    )
    for where, text in {
        "python logs": caplog.text,
        "prefect logs and artifacts": server_side_text,
        "store": stored_text,
        "cli": cli.out + cli.err,
        "local outbox": outbox_file,
    }.items():
        leaks = [line for line in text.splitlines() if seen_everywhere(line)]
        assert not leaks, f"a secret leaked into the {where}: {leaks}"
