"""`fleet-alerting notify-test`: a marked test message through the real outbox and delivery to the
local fakes of Slack (webhook and Web API), PagerDuty and Grafana OnCall; per destination
delivered (receipt), retrying (why) or refused (why)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.cli import main
from tests.fakes.http import Response
from tests.fakes.oncall import OnCallServer
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.fakes.slack_api import SlackApiServer

PD_KEY = "CANARYkey" + "x" * 23


def write_config(folder: Path, notify: dict, policies: dict | None = None) -> Path:
    """`policies`: the channels a test leaves unconfigured, off (fail closed otherwise)."""
    config = {"state": {"path": "state.sqlite"}, "notify": notify}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config | ({"policies": policies} if policies else {})))
    return path


def secret(folder: Path, name: str, value: str) -> dict:
    (folder / name).write_text(value)
    return {"file": name}


def slack_and_pagerduty(folder: Path, slack: SlackWebhookServer, pd: PagerDutyServer) -> Path:
    """A config with a Slack webhook and PagerDuty (no mirror, no OnCall)."""
    return write_config(
        folder,
        {
            "slack": {"webhook": secret(folder, "s.url", f"{slack.url}/services/CANARY1x")},
            "pagerduty": {
                "routing_key": secret(folder, "pd.key", PD_KEY),
                "url": f"{pd.url}/v2/enqueue",
            },
        },
        {"critical": {"mirror": False}},
    )


def test_every_destination_delivered(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with (
        SlackWebhookServer() as slack,
        SlackWebhookServer() as mirror,
        PagerDutyServer() as pd,
        OnCallServer("CANARYoncall0000token") as oncall,
    ):
        config = write_config(
            tmp_path,
            {
                "slack": {
                    "webhook": secret(tmp_path, "s.url", f"{slack.url}/services/T0/B0/CANARY1x"),
                    "mirror_webhook": secret(tmp_path, "m.url", f"{mirror.url}/services/CANARY2x"),
                    "channel": "#ops",
                    "mirror_channel": "#ops-mirror",
                },
                "pagerduty": {
                    "routing_key": secret(tmp_path, "pd.key", PD_KEY),
                    "url": f"{pd.url}/v2/enqueue",
                },
                "oncall": {"webhook": secret(tmp_path, "oc.url", oncall.webhook_url)},
            },
        )
        assert main(["notify-test", "--config", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "slack → Slack #ops (webhook): delivered (Slack webhook #ops: 200 ok)",
        "mirror → Slack mirror #ops-mirror: delivered (Slack webhook #ops-mirror: 200 ok)",
        f"pagerduty trigger → PagerDuty: delivered (PagerDuty Events API: trigger success "
        f"{pd.events[0]['dedup_key']})",
        f"pagerduty resolve → PagerDuty: delivered (PagerDuty Events API: resolve success "
        f"{pd.events[0]['dedup_key']})",
        f"oncall trigger → Grafana OnCall: delivered (Grafana OnCall webhook: alerting "
        f"{oncall.alerts[0]['alert_uid']} → HTTP 200)",
        f"oncall resolve → Grafana OnCall: delivered (Grafana OnCall webhook: ok "
        f"{oncall.alerts[0]['alert_uid']} → HTTP 200)",
    ]
    # clearly marked, and the pages are resolved at once
    assert "TEST notification" in slack.messages[0]["text"]
    assert "TEST notification" in mirror.messages[0]["text"]
    assert [e["event_action"] for e in pd.events] == ["trigger", "resolve"]
    assert "TEST notification" in pd.events[0]["payload"]["summary"] and not pd.open
    assert [a["state"] for a in oncall.alerts] == ["alerting", "ok"] and not oncall.open
    assert "CANARY" not in "\n".join(out)


def test_retrying_and_refused_say_why(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        config = slack_and_pagerduty(tmp_path, slack, pd)
        slack.fail_next = [Response(404, "channel_not_found")]
        pd.fail_next = [Response(503, {"status": "unavailable"})]
        assert main(["notify-test", "--config", str(config)]) == 1
        out = capsys.readouterr().out.splitlines()
    assert out == [
        "mirror: not configured (notify.slack.mirror_webhook): skipped",
        "oncall: not configured (notify.oncall): skipped",
        "slack → Slack #operations (webhook): refused (Slack webhook #operations "
        "answered HTTP 404: channel_not_found)",
        "pagerduty trigger → PagerDuty: retrying (PagerDuty Events API answered HTTP 503: "
        '{"status": "unavailable"}); stays queued, the next run retries it',
        "pagerduty resolve → PagerDuty: not sent yet (waits for the trigger); stays queued",
    ]


def test_a_test_never_sends_what_real_runs_queued(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Only the test's own messages are drained; the real ones wait for the next run."""
    now = datetime.now(UTC)
    with SlackApiServer("CANARY-bot-token") as api:
        config = write_config(
            tmp_path,
            {
                "slack": {
                    "bot_token": secret(tmp_path, "bot.token", "CANARY-bot-token"),
                    "api_url": f"{api.url}/api",
                    "min_interval": 0,
                }
            },
            {"critical": {"page": []}},
        )
        store = Store(tmp_path / "state.sqlite")
        real = Signal("blackbox|api", "blackbox", True, Severity.warning, "api down")
        store.record(evaluate([real], {}, lambda _s: PolicyConfig(open_after=1), now), now)
        assert main(["notify-test", "--to", "slack", "--config", str(config)]) == 0
        out = capsys.readouterr().out.splitlines()
        assert len(api.posted) == 1 and "TEST notification" in api.posted[0].body["text"]
        assert api.posted[0].thread_ts is None  # a test message starts no incident thread
    assert out[0].startswith("slack → Slack #operations (bot, threads): delivered (")
    (queued,) = Store(tmp_path / "state.sqlite").outbox(("queued",))
    assert queued.notification.incident.key == "blackbox|api"


def test_an_unconfigured_destination_asked_for_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with SlackWebhookServer() as slack:
        config = write_config(
            tmp_path,
            {"slack": {"webhook": secret(tmp_path, "s.url", f"{slack.url}/x")}},
            {"critical": {"mirror": False, "page": []}},
        )
        assert main(["notify-test", "--to", "oncall", "--config", str(config)]) == 1
    said = capsys.readouterr()
    assert said.out == ""  # a live config: nothing goes to a local outbox
    assert said.err.splitlines() == [
        "fleet-alerting notify-test: oncall is not configured (notify.oncall): nothing to test"
    ]
    assert slack.messages == []


def test_a_test_after_a_failed_one_names_the_back_off(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The first test's failure makes PagerDuty back off: the second test says so, with when
    and the outbox number, instead of blaming the trigger."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        notify = {
            "slack": {"webhook": secret(tmp_path, "s.url", f"{slack.url}/services/CANARY1x")},
            "pagerduty": {
                "routing_key": secret(tmp_path, "pd.key", PD_KEY),
                "url": f"{pd.url}/v2/enqueue",
            },
        }
        config = write_config(tmp_path, notify, {"critical": {"mirror": False}})
        pd.fail_next = [Response(503, {"status": "unavailable"})]
        args = ["notify-test", "--to", "pagerduty", "--config", str(config)]
        assert main(args) == 1
        capsys.readouterr()
        assert main(args) == 1
        out = capsys.readouterr().out.splitlines()
    with Store(tmp_path / "state.sqlite") as store:
        backoff = store.queue.destination("pagerduty")
        queued = store.outbox(("queued",))
        trigger = max(i.id for i in queued if i.notification.kind == "paged")
    assert backoff.blocked_until is not None
    until = f"{backoff.blocked_until:%H:%M:%S}Z"
    assert out[0] == (
        f"pagerduty trigger → PagerDuty: not sent yet (PagerDuty backs off until {until} after "
        "1 failure in a row (last: PagerDuty Events API answered HTTP 503: "
        '{"status": "unavailable"}); '
        f"outbox #{trigger}, sent by the first run after then — run notify-test again after "
        f"{until}); stays queued"
    )
    assert out[1].startswith("pagerduty resolve → PagerDuty: not sent yet (PagerDuty backs off")
    assert len(pd.requests) == 1


def test_a_test_page_left_queued_is_not_told_as_a_real_page_by_the_next_run(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """PagerDuty down during notify-test: its trigger and resolve stay queued; the next run
    delivers them. Its summary must not say "told pagerduty" as if it had paged someone."""
    import asyncio

    import httpx

    from fleet_alerting.config import load_config
    from fleet_alerting.core.clock import utcnow
    from fleet_alerting.core.policy import Evaluation
    from fleet_alerting.delivery.deliver import deliver
    from fleet_alerting.flows.common import summarize, what_changed

    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        path = slack_and_pagerduty(tmp_path, slack, pd)
        pd.fail_next = [Response(503, {"status": "unavailable"})]
        assert main(["notify-test", "--to", "pagerduty", "--config", str(path)]) == 1
        capsys.readouterr()
        config = load_config(path)

        async def next_run() -> str:
            with Store(config.state) as store:
                async with httpx.AsyncClient() as client:
                    later = utcnow() + timedelta(hours=1)  # the retry and back-off due
                    report = await deliver(config, store, client, now=lambda: later)
            return what_changed(summarize(Evaluation([], []), report), report)

        said = asyncio.run(next_run())
    assert [e["event_action"] for e in pd.events] == ["trigger", "resolve"]
    assert said == "delivered to pagerduty what a notify-test left queued"
