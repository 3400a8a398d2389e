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


def prefect_logs_and_artifacts() -> str:
    """What the Prefect API stored: every log line (flushed first) and artifact."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter
    from prefect.logging.handlers import APILogHandler

    async def read() -> str:
        async with get_client() as client:
            logs = await client.read_logs(log_filter=LogFilter(), limit=200)
            artifacts = await client.read_artifacts()
        return "\n".join([log.message for log in logs] + [str(a.data) for a in artifacts])

    APILogHandler().flush()
    return asyncio.run(read())


def seen_everywhere(text: str) -> bool:
    return any(c in text for c in (WEBHOOK_CANARY, KEY_CANARY, MIRROR_CANARY))


@pytest.mark.integration
def test_secrets_never_leak(
    prefect_api: str, config_file: Path, caplog: pytest.LogCaptureFixture, capsys
) -> None:

    from fleet_alerting.flows.watches import blackbox_probe

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

    stored = server_side_text = prefect_logs_and_artifacts()
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


# --- echoed credentials in every encoding: Prometheus basic auth, the Fleet API token ----------

PROM_USER = "fleet-alerting"
PROM_CANARY = "CANARYpr0m/pw+=ü"  # reserved characters and a non-ASCII one: every encoding differs
FLEET_CANARY = "CANARYfl33t.tok~en/42"


def encoded_forms(secret: str, user: str | None = None) -> dict[str, str]:
    """How a server, a proxy or a log line may spell a secret it was sent."""
    import base64
    import json
    from urllib.parse import quote, quote_plus

    forms = {
        "raw": secret,
        "url-encoded": quote(secret, safe=""),
        "form-encoded": quote_plus(secret),
        "JSON-escaped": json.dumps(secret)[1:-1],
    }
    for name, value in (
        {"secret": secret} | ({"user:password": f"{user}:{secret}"} if user else {})
    ).items():
        for style, encode in (
            ("base64", base64.b64encode),
            ("base64url", base64.urlsafe_b64encode),
        ):
            padded = encode(value.encode()).decode()
            forms[f"{style} of {name}"] = padded
            forms[f"{style} of {name}, unpadded"] = padded.rstrip("=")
    return forms


def echo_of(header: str, secret: str, user: str | None = None) -> str:
    """An error body that quotes the request's Authorization header and the secret in every form."""
    forms = encoded_forms(secret, user)
    return f"refused Authorization: {header}; seen as " + " | ".join(forms.values())


class EchoingPrometheus(FakeServer):
    """A Prometheus behind a broken proxy: 500, quoting the credentials it was sent."""

    def handle(self, request: Request) -> Response:
        echo = echo_of(request.headers.get("authorization", ""), PROM_CANARY, PROM_USER)
        return Response(500, {"status": "error", "errorType": "internal", "error": echo})


class EchoingFleetApi(FakeServer):
    def handle(self, request: Request) -> Response:
        echo = echo_of(request.headers.get("authorization", ""), FLEET_CANARY)
        body = {"code": "INTERNAL", "message": echo, "hint": echo, "correlationId": "c-1"}
        return Response(500, body)


def leaked_forms(text: str) -> list[str]:
    forms = {
        **{
            f"Prometheus password, {k}": v for k, v in encoded_forms(PROM_CANARY, PROM_USER).items()
        },
        **{f"Fleet API token, {k}": v for k, v in encoded_forms(FLEET_CANARY).items()},
    }
    return [name for name, value in forms.items() if value in text] + (
        ["CANARY"] if "CANARY" in text else []
    )


def process_arguments() -> str:
    """Every readable process's command line on this machine (a secret must never be an argv)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            found.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return "\n".join(found)


@pytest.mark.integration
def test_echoed_credentials_never_leak_in_any_encoding(
    prefect_api: str, config_file: Path, caplog: pytest.LogCaptureFixture, capsys
) -> None:
    """Prometheus (basic auth) and the Fleet API (bearer token) answer 500 quoting the
    credentials they got, in every encoding; the errors reach incidents, the outbox, logs,
    artifacts, the CLI and the MCP / Slack incident list — masked everywhere."""

    from fleet_alerting.config import load_config
    from fleet_alerting.flows.watches import fleet_events, prometheus_watches
    from fleet_alerting.sources.fleet_events.client import FleetApi
    from fleet_alerting.surfaces.fleet_queries import FleetQueries

    folder = config_file.parent
    (folder / "prom.password").write_text(PROM_CANARY + "\n")
    (folder / "fleet.token").write_text(FLEET_CANARY + "\n")
    with EchoingPrometheus() as prom, EchoingFleetApi() as fleet:
        config_file.write_text(
            yaml.safe_dump(
                {
                    "state": {"path": "state.sqlite"},
                    "notify": {"dry_run": True, "outbox_file": "outbox.jsonl"},
                    "policies": {"warning": {"open_after": 1}},
                    "prometheus": {
                        "url": prom.url,
                        "basic_auth": {
                            "username": PROM_USER,
                            "password": {"file": "prom.password"},
                        },
                    },
                    "fleet_api": {"url": fleet.url, "token": {"file": "fleet.token"}},
                }
            )
        )
        with caplog.at_level("DEBUG"):
            watched = asyncio.run(prometheus_watches(str(config_file)))
            events = asyncio.run(fleet_events(str(config_file)))
        config = load_config(config_file)
        token = config.fleet_api.token.resolve()

        async def queries() -> str:
            import httpx

            async with httpx.AsyncClient() as client:
                asked = FleetQueries(config, FleetApi(client, fleet.url, token))
                listed = await asked.open_incidents()
                try:
                    await asked.recent_events()
                except Exception as exc:  # the MCP tool and /fleet answer with this message
                    return f"{listed}\n{exc}"
            raise AssertionError("the echoing Fleet API answered")

        answers = asyncio.run(queries())
    # the error paths really ran and the credentials were really sent
    assert prom.requests[0].headers["authorization"].startswith("Basic ")
    assert fleet.requests[0].headers["authorization"] == f"Bearer {FLEET_CANARY}"
    assert watched["watch_errors"] >= 1 and events["api_problems"] == 1

    db = sqlite3.connect(folder / "state.sqlite")
    tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    stored = "\n".join(
        str(row) for table in tables for row in db.execute(f'SELECT * FROM "{table}"')
    )
    # the echoes reached incidents and outbox rows
    assert "refused Authorization: Basic " in stored
    assert "refused Authorization: Bearer " in stored
    main(["incidents", "--config", str(config_file)])
    main(["outbox", "--config", str(config_file)])
    cli = capsys.readouterr()
    assert "HTTP 500" in cli.out + cli.err
    for where, text in {
        "python logs": caplog.text,
        "prefect logs and artifacts": prefect_logs_and_artifacts(),
        "store (incidents, outbox, every table)": stored,
        "local outbox": (folder / "outbox.jsonl").read_text(),
        "cli": cli.out + cli.err,
        "MCP / Slack answers": answers,
        "process arguments": process_arguments(),
    }.items():
        assert not leaked_forms(text), f"{leaked_forms(text)} leaked into the {where}"


def test_every_secret_the_config_can_hold_is_masked_in_every_form(tmp_path: Path) -> None:
    """Each secret reference of the schema, resolved, then echoed back in every encoding, whole
    and across the cut of an error message: nothing of it is left in the message."""
    import httpx

    from fleet_alerting.config import load_config
    from fleet_alerting.config.checks import secret_refs
    from fleet_alerting.http.errors import AdapterError, check_response
    from fleet_alerting.sources.prometheus.client import auth_for

    files = {
        "slack.url": "https://hooks.example.org/services/T0/B0/CANARYslackWebhook00000",
        "mirror.url": "https://hooks.example.org/services/T0/B1/CANARYmirrorWebhook0000",
        "bot.token": "xoxb-CANARY-bot-token-0000",
        "pd.key": "CANARYpagerdutyRoutingKey000000",
        "oncall.url": "https://oncall.example.org/integrations/v1/formatted_webhook/CANARYon/",
        "pg.password": "CANARYpg pass/word+=ü",
        "fleet.token": FLEET_CANARY,
        "signing.secret": "CANARYsigningSecret0000",
        "pd-webhook.secret": "CANARYpdWebhook/Secret==",
        "mcp.token": "CANARYmcpToken~0000",
        "mqtt.password": "CANARYmqtt:pass@word",
        "prom.password": PROM_CANARY,
    }
    for name, value in files.items():
        (tmp_path / name).write_text(value + "\n")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "state": {
                    "url": "postgresql+psycopg://fleet@127.0.0.1/fleet",
                    "password": {"file": "pg.password"},
                },
                "notify": {
                    "slack": {
                        "webhook": {"file": "slack.url"},
                        "mirror_webhook": {"file": "mirror.url"},
                        "bot_token": {"file": "bot.token"},
                    },
                    "pagerduty": {"routing_key": {"file": "pd.key"}},
                    "oncall": {"webhook": {"file": "oncall.url"}},
                },
                "fleet_api": {"url": "http://127.0.0.1:1", "token": {"file": "fleet.token"}},
                "operators": {
                    "slack_app": {"signing_secret": {"file": "signing.secret"}},
                    "pagerduty_webhook": {"secret": {"file": "pd-webhook.secret"}},
                    "mcp": {"token": {"file": "mcp.token"}},
                },
                "zigbee": {
                    "coordinators": [
                        {"name": "z", "username": "u", "password": {"file": "mqtt.password"}}
                    ]
                },
                "prometheus": {
                    "url": "http://127.0.0.1:1",
                    "basic_auth": {"username": PROM_USER, "password": {"file": "prom.password"}},
                },
            }
        )
    )
    config = load_config(config_file)
    refs = dict(secret_refs(config))
    assert len(refs) == len(files)  # every secret field of the schema is in this config
    secrets = [ref.resolve().get_secret_value() for ref in refs.values()]
    auth_for(config.prometheus)  # basic auth: the header's form of user:password
    assert sorted(secrets) == sorted(files.values())
    forms = [
        (secret, name, form)
        for secret in secrets
        for name, form in encoded_forms(
            secret, PROM_USER if secret == PROM_CANARY else None
        ).items()
    ]
    for secret, name, form in forms:
        for pad in (0, 150, 195):
            body = "e" * pad + f"echo {form} end"
            request = httpx.Request("GET", "http://127.0.0.1:1/")
            try:
                check_response(httpx.Response(500, text=body, request=request), "Upstream")
            except AdapterError as exc:
                message = str(exc)
            assert form[:10] not in message, f"{name} of {secret[:8]}… leaked: {message[-80:]!r}"
