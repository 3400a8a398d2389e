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
            state = asyncio.run(blackbox_probe(str(config_file), return_state=True))
    # the failure paths really ran: a retry (Slack 500), a dead letter (PagerDuty 400: the run
    # ends Failed saying so) and an unreachable mirror; and the secrets were really used
    assert state.is_failed() and state.message.endswith("(1 dead letter(s))")
    assert "page to pagerduty undelivered: " in state.message
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
    queued = db.execute("SELECT count(*) FROM outbox WHERE status = 'queued'").fetchone()[0]
    assert queued >= 2
    main(["outbox", "--config", str(config_file)])
    cli = capsys.readouterr()
    outbox_file = (
        (folder / "outbox.jsonl").read_text() if (folder / "outbox.jsonl").exists() else ""
    )
    for where, text in {
        "python logs": caplog.text,
        "prefect logs and artifacts": server_side_text,
        "the run's state": state.message,
        "store": stored_text,
        "cli": cli.out + cli.err,
        "local outbox": outbox_file,
    }.items():
        leaks = [line for line in text.splitlines() if seen_everywhere(line)]
        assert not leaks, f"a secret leaked into the {where}: {leaks}"


# --- precise redaction -----------------------------------------------------------------------

TOKEN = "CANARYtok3nPadded0000000000"  # shaped like a Slack webhook token


class Echo(FakeServer):
    """Answers 500 with a body that echoes the request path after `pad` characters, so the
    token straddles the 200-character cut of error messages."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def handle(self, request: Request) -> Response:
        return Response(500, "e" * self.pad + f"no such hook {request.path} here")


@pytest.mark.parametrize("pad", [180, 186, 190, 199])
def test_a_token_across_the_cut_never_leaks(pad: int, tmp_path: Path) -> None:
    """Redaction before truncation: cut first, the head of the token ('CANARYtok3n…') would
    survive, since only whole secrets are recognised."""
    from datetime import UTC, datetime

    import httpx

    from fleet_alerting.config.secrets import SecretRef
    from fleet_alerting.core.policy import PolicyConfig, evaluate
    from fleet_alerting.core.signals import Severity, Signal
    from fleet_alerting.delivery.drain import drain
    from fleet_alerting.delivery.notifiers.slack_webhook import SlackWebhook
    from fleet_alerting.store.database import Store

    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    signal = Signal("k", "test", True, Severity.warning, "api down", target="api")
    policy = PolicyConfig(open_after=1)
    store = Store(tmp_path / "state.sqlite")
    store.record(evaluate([signal], {}, lambda _s: policy, now), now)
    with Echo(pad - len("no such hook /services/T0000/B0000/")) as echo:
        (tmp_path / "hook.url").write_text(f"{echo.url}/services/T0000/B0000/{TOKEN}")
        url = SecretRef(file=tmp_path / "hook.url").resolve()

        async def deliver() -> str:
            async with httpx.AsyncClient() as client:
                hook = SlackWebhook(client, url, "Slack webhook #ops-mirror")
                report = await drain(store, {"slack": hook}, lambda: now, attempts_per_run=1)
            return report.retrying[0][1]

        reason = asyncio.run(deliver())
    assert "HTTP 500" in reason and "#ops-mirror" in reason  # the channel name stays readable
    stored = store.outbox(("queued",))[0].last_error or ""
    for text in (reason, stored):
        heads = [TOKEN[:n] for n in range(6, len(TOKEN) + 1)]
        assert not [h for h in heads if h in text], f"a token prefix leaked: {text[-60:]!r}"
        assert "***" in text  # the echoed path (it holds the token) is masked as a whole


def test_only_secret_values_are_masked_not_path_words() -> None:
    from urllib.parse import quote

    from fleet_alerting.config.secrets import redact, register

    hook = "https://hooks.example.org/services/T0CANARY1/B0CANARY2/CANARYwebhookToken00000000"
    register(hook)
    text = "posted to #ops-mirror via services/integrations at hooks.example.org"
    assert redact(text) == text
    assert redact(f"POST {hook} failed") == "POST *** failed"
    assert "CANARY" not in redact("echo: /services/T0CANARY1/B0CANARY2/CANARYwebhookToken00000000")
    assert "CANARY" not in redact("token CANARYwebhookToken00000000 refused")
    # a secret with reserved characters, seen URL-encoded or decoded
    odd = "CANARY/odd key+value=1"
    register(f"https://oncall.example.org/integrations/v1/formatted_webhook/{quote(odd, safe='')}/")
    assert "CANARY" not in redact(f"echo {odd}")
    assert "formatted_webhook" in redact("/integrations/v1/formatted_webhook/ not found")


# --- the PostgreSQL store's password ----------------------------------------------------------

PG_CANARY = "CANARYpgPassw0rd4"


def test_the_postgres_password_never_leaks(postgres, tmp_path: Path, capsys) -> None:
    """`state.password` logs in (the role needs it), yet check-config, the CLI and a refused
    login never show it."""
    from fleet_alerting.store.backend import dispose_engines

    postgres.add_password_user("canary", PG_CANARY)
    url = postgres.create_database("canary_store", owner="canary")
    (tmp_path / "pg.password").write_text(PG_CANARY + "\n")
    config = tmp_path / "config.yaml"
    state = {"url": url, "password": {"file": "pg.password"}}
    config.write_text(yaml.safe_dump({"state": state, "notify": {"dry_run": True}}))
    assert main(["check-config", str(config)]) == 0
    checked = capsys.readouterr()
    assert f"state: PostgreSQL {url}, password from secret file" in checked.out
    assert main(["incidents", "--config", str(config)]) == 0  # logged in with the password
    assert main(["outbox", "--config", str(config)]) == 0
    listed = capsys.readouterr()
    (tmp_path / "pg.password").write_text("CANARYwrong0000\n")
    assert main(["incidents", "--config", str(config)]) == 1
    refused = capsys.readouterr()
    assert refused.err.strip() == (
        f"state.url {url}: the server refused the login (password authentication failed); "
        "check the user in state.url and the secret in state.password"
    )
    for text in (checked.out + checked.err, listed.out + listed.err, refused.out + refused.err):
        assert "CANARY" not in text
    dispose_engines()  # this process's pooled connections to the test's database
