"""Escalation against a real Alertmanager from Debian (loopback, clustering off): alerts posted
through its API with a startsAt in the past; the flow pages PagerDuty and Grafana OnCall test
servers, threads in a Slack Web API test server with Fleet API event snapshots."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from fleet_alerting.http.errors import AdapterError
from fleet_alerting.sources.alertmanager.client import Alertmanager
from fleet_alerting.store.database import Store
from tests.fakes.fleet_api import FleetApiServer
from tests.fakes.oncall import OnCallServer
from tests.fakes.saas import PagerDutyServer
from tests.fakes.slack_api import SlackApiServer
from tests.servers import free_port, start_alertmanager

AM_CONFIG = """\
route:
  receiver: ops
  group_by: [alertname]
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
receivers:
  - name: ops
  - name: pager
inhibit_rules:
  - source_matchers: ['alertname="FleetOffline"']
    target_matchers: ['alertname="DeviceDown"']
"""
BOT = "xoxb-test-bot-token"
FLEET = "fleet-test-token"


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    server, url = start_alertmanager(tmp_path / "alertmanager", AM_CONFIG)
    yield url
    server.stop()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def post_alert(url: str, age: timedelta, ended: bool = False, **labels: str) -> None:
    now = datetime.now(UTC)
    alert = {
        "labels": labels,
        "annotations": {"summary": f"{labels['alertname']} on {labels.get('instance', '?')}"},
        "startsAt": iso(now - age),
        "generatorURL": "http://prometheus.example/graph?g0.expr=up",
    }
    if ended:
        alert["endsAt"] = iso(now - timedelta(seconds=1))
    httpx.post(f"{url}/api/v2/alerts", json=[alert]).raise_for_status()


def silence(url: str, **labels: str) -> str:
    now = datetime.now(UTC)
    body = {
        "matchers": [
            {"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in labels.items()
        ],
        "startsAt": iso(now),
        "endsAt": iso(now + timedelta(hours=1)),
        "createdBy": "test",
        "comment": "maintenance",
    }
    response = httpx.post(f"{url}/api/v2/silences", json=body)
    response.raise_for_status()
    return response.json()["silenceID"]


def run(coro):
    return asyncio.run(coro)


def test_adapter_reads_states_filters_and_the_running_config(alertmanager: str) -> None:
    post_alert(alertmanager, timedelta(minutes=10), alertname="FleetOffline", severity="critical")
    post_alert(alertmanager, timedelta(minutes=10), alertname="DeviceDown", severity="critical")
    post_alert(alertmanager, timedelta(minutes=3), alertname="Noisy", severity="critical")
    post_alert(
        alertmanager, timedelta(minutes=9), ended=True, alertname="Gone", severity="critical"
    )
    silence_id = silence(alertmanager, alertname="Noisy")

    async def go():
        async with httpx.AsyncClient() as client:
            api = Alertmanager(client, alertmanager)
            everything = await api.alerts(filter=['severity="critical"'])
            active_only = await api.alerts(silenced=False, inhibited=False)
            status = await api.status()
            with pytest.raises(AdapterError) as bad:
                await api.alerts(filter=["{broken"])
            return everything, active_only, status, bad.value

    everything, active_only, status, bad = run(go())
    states = {a.name: (a.state, a.silenced_by, bool(a.inhibited_by)) for a in everything}
    assert states == {
        "FleetOffline": ("active", (), False),
        "DeviceDown": ("suppressed", (), True),
        "Noisy": ("suppressed", (silence_id,), False),
    }  # "Gone" ended: Alertmanager no longer lists it
    assert [a.name for a in active_only] == ["FleetOffline"]
    offline = next(a for a in everything if a.name == "FleetOffline")
    now = datetime.now(UTC)
    assert offline.ends_at > now and offline.firing  # firing alerts carry a future endsAt
    assert status.config_original.strip().startswith("global:")  # the running, expanded YAML
    assert "inhibit_rules" in status.config_original and status.cluster_status == "disabled"
    assert bad.permanent and "HTTP 400" in str(bad) and "bad matcher format" in str(bad)


def test_unreachable_alertmanager_is_retryable() -> None:
    async def go():
        async with httpx.AsyncClient(timeout=1) as client:
            await Alertmanager(client, f"http://127.0.0.1:{free_port()}").alerts()

    with pytest.raises(AdapterError) as caught:
        run(go())
    assert not caught.value.permanent and "unreachable" in str(caught.value)


def write_config(path: Path, am: str, pd: str, oncall: str, slack: str, fleet: str) -> None:
    (path.parent / "pd.key").write_text("P" * 32)
    (path.parent / "oncall.url").write_text(oncall)
    (path.parent / "bot.token").write_text(BOT)
    (path.parent / "fleet.token").write_text(FLEET)
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {
            "outbox_file": "outbox.jsonl",
            "slack": {
                "bot_token": {"file": "bot.token"},
                "api_url": f"{slack}/api",
                "channel": "#operations",
                "mirror_channel": "#operations-mirror",
                "min_interval": "0s",
            },
            "pagerduty": {"routing_key": {"file": "pd.key"}, "url": f"{pd}/v2/enqueue"},
            "oncall": {"webhook": {"file": "oncall.url"}},
        },
        "policies": {
            "critical": {"page": ["pagerduty", "oncall"], "page_after": "5m", "mirror": True}
        },
        "links": {"grafana_url": "https://grafana.example"},
        # no Watchdog rule, and an Alertmanager started just now: an absent alert is over
        "alertmanager": {"url": am, "watchdog": None, "restart_grace": "0s"},
        "fleet_api": {"url": fleet, "token": {"file": "fleet.token"}},
    }
    path.write_text(yaml.safe_dump(config))


def fleet_events() -> list[dict]:
    now = datetime.now(UTC)
    return [
        {
            "timestamp": iso(now - timedelta(minutes=i)),
            "type": "command.failed",
            "target": f"pi-audio-0{i}",
            "message": f"play failed {i}",
            "severity": "error",
            "metadata": {"correlationId": f"corr-{i}"},
        }
        for i in (1, 2)
    ]


@pytest.mark.integration
def test_escalation_pages_once_never_when_silenced_and_resolves(
    prefect_api: str, alertmanager: str, config_file: Path
) -> None:
    from fleet_alerting.flows.watches import alertmanager_escalation

    api = "https://fleet.example.org/api/healthz"
    post_alert(  # matched by the blackbox rule (not by severity): failing for 10 min → pages
        alertmanager,
        timedelta(minutes=10),
        alertname="BlackboxProbeFailed",
        instance=api,
        severity="warning",
    )
    post_alert(  # critical but 1 min young: told, not yet paged
        alertmanager,
        timedelta(minutes=1),
        alertname="FleetOffline",
        severity="critical",
        instance="pi-audio-01:9100",
    )
    post_alert(  # critical, old, silenced: never
        alertmanager,
        timedelta(minutes=30),
        alertname="AudioPlayerDown",
        severity="critical",
        instance="pi-audio-02:8081",
    )
    silence(alertmanager, alertname="AudioPlayerDown")
    post_alert(alertmanager, timedelta(hours=1), alertname="DiskFull", severity="warning")
    with (
        PagerDutyServer() as pd,
        OnCallServer() as oncall,
        SlackApiServer(BOT) as slack,
        FleetApiServer(FLEET) as fleet,
    ):
        fleet.events = fleet_events()
        write_config(config_file, alertmanager, pd.url, oncall.webhook_url, slack.url, fleet.url)
        first = run(alertmanager_escalation(str(config_file)))
        second = run(alertmanager_escalation(str(config_file)))
        post_alert(  # resolved at the source
            alertmanager,
            timedelta(minutes=10),
            ended=True,
            alertname="BlackboxProbeFailed",
            instance=api,
            severity="warning",
        )
        silence(alertmanager, alertname="FleetOffline")  # silenced before its window passed
        third = run(alertmanager_escalation(str(config_file)))
    fingerprints = {
        a["labels"]["alertname"]: a["fingerprint"]
        for a in httpx.get(f"{alertmanager}/api/v2/alerts").json()
    }
    assert (first["alerts"], first["firing"]) == (3, 2)  # DiskFull matches no rule
    assert second["notifications_sent"] == 0  # nothing repeated
    # PagerDuty: one trigger, one resolve, same dedup_key (the fingerprint)
    assert [e["event_action"] for e in pd.events] == ["trigger", "resolve"]
    keys = {e["dedup_key"] for e in pd.events}
    assert len(keys) == 1 and keys.pop().startswith("alertmanager:fingerprint=")
    assert pd.open == set() and not pd.triggers_while_open
    assert [a["state"] for a in oncall.alerts] == ["alerting", "ok"]
    # Slack: one thread per escalated alert, replies carry the stored thread_ts
    parents = slack.top_level("C0OPS")
    assert sorted((p.original or p.body)["text"].split(" | ")[0] for p in parents) == [
        "[CRITICAL] BlackboxProbeFailed on https://fleet.example.org/api/healthz",
        "[CRITICAL] FleetOffline on pi-audio-01:9100",
    ]  # as posted; edited in place since to where each stands (chat.update)
    assert any(p.body["text"].startswith("Resolved after ") for p in parents)
    assert slack.orphans == []
    store = Store(config_file.parent / "state.sqlite")
    by_name = {i.signal.labels["alertname"]: i for i in store.incidents(include_resolved=True)}
    assert "AudioPlayerDown" not in by_name  # silenced from the start: never an incident
    api_incident, offline = by_name["BlackboxProbeFailed"], by_name["FleetOffline"]
    assert (api_incident.state, offline.state) == ("resolved", "resolved")
    assert offline.paged_at is None and "silenced" in offline.resolution
    api_parent = next(p for p in parents if p.ts == api_incident.thread_ts)
    assert api_incident.thread_channel == "C0OPS"
    texts = [r.body["text"] for r in slack.replies(api_parent.ts)]
    assert texts[0].startswith("Fleet API events") and "corr-1" in texts[0]
    assert "Paged pagerduty, oncall" in texts[1] and texts[2].startswith("[RESOLVED after ")
    snapshot = json.dumps(slack.replies(api_parent.ts)[0].body["blocks"])
    assert "corr-1" in snapshot and "corr-2" in snapshot and "grafana.example/explore" in snapshot
    offline_snapshot = json.dumps(slack.replies(offline.thread_ts)[0].body["blocks"])
    assert "corr-1" in offline_snapshot and "corr-2" not in offline_snapshot  # its device only
    # the mirror got every message, top-level, saying what it mirrors
    mirrored = slack.top_level("C0MIRROR")
    assert len(mirrored) == 5 and all(
        "mirror of #operations" in json.dumps(m.body) for m in mirrored
    )
    assert third["resolved"] == 2 and fingerprints == {
        "FleetOffline": offline.key.split("=")[1],
        "AudioPlayerDown": fingerprints["AudioPlayerDown"],
        "DiskFull": fingerprints["DiskFull"],
    }


@pytest.mark.integration
def test_alertmanager_down_is_one_warning_and_resolves_nothing(
    prefect_api: str, tmp_path: Path
) -> None:
    from fleet_alerting.flows.watches import alertmanager_escalation

    down = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state": {"path": "state.sqlite"},
                "notify": {"dry_run": True, "outbox_file": "outbox.jsonl"},
                "policies": {"warning": {"open_after": 1}},
                "alertmanager": {"url": down},
            }
        )
    )
    summary = run(alertmanager_escalation(str(config)))
    assert summary["rule_problems"] == 1  # both default rules failed alike: one problem
    (incident,) = Store(tmp_path / "state.sqlite").incidents()
    assert incident.signal.summary.startswith(
        "Alertmanager rules critical, fleet-api-blackbox: Alertmanager"
    )
    assert "unreachable" in incident.signal.summary
    lines = (tmp_path / "outbox.jsonl").read_text().splitlines()
    assert [json.loads(line)["channel"] for line in lines] == ["slack"]
