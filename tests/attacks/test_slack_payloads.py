"""Hostile text in alerts, Fleet API answers and PagerDuty webhooks never becomes a Slack control
sequence: no `<!channel>`/`<!here>` ping, no `<@U…>` mention, no phishing link labelled
"Grafana", no `javascript:` link, and an `&lt;` in an alert shows as written. Every payload we
build — incident opened, paged, paging failed, reminder, resolved, acknowledged (in Slack and in
PagerDuty), silenced, the Fleet API snapshot, `/fleet` replies — is checked sequence by
sequence, and its blocks validate with slack_sdk's models. The PagerDuty event's summary keeps
the alert's text as written (PagerDuty shows text, not mrkdwn)."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from slack_sdk.models.blocks import Block

from fleet_alerting.config import load_config
from fleet_alerting.core import actions
from fleet_alerting.core.incidents import Incident, Kind, Notification
from fleet_alerting.core.mrkdwn import link, safe_url
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Link, Signal
from fleet_alerting.delivery.channels import build_notifiers
from fleet_alerting.delivery.notifiers import oncall, pagerduty
from fleet_alerting.delivery.notifiers.slack_api import snapshot_message
from fleet_alerting.delivery.notifiers.slack_webhook import render
from fleet_alerting.sources.fleet_events.client import FleetEvent
from fleet_alerting.surfaces.slack_commands import (
    health_lines,
    incident_lines,
    log_lines,
    reply,
    state_lines,
)
from tests.test_slack_limits import instance_signal

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
HOSTILE = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U123>",
    "<#C0OPS>",
    "<!subteam^S0ONCALL>",
    "<https://phish.example|Grafana>",
    "<javascript:alert(1)|Runbook>",
    "&lt;!channel&gt;",
    "&amp;",
]
EVIL = " ".join(HOSTILE)
# What Slack reads in a mrkdwn text: `<…>` sequences and `&…;` entities
SEQUENCE = re.compile(r"<([^<>]*)>")
ENTITY = re.compile(r"&(?!(?:amp|lt|gt);)")


def hostile_signal(firing: bool = True) -> Signal:
    return instance_signal(
        EVIL,
        firing,
        target=f"pi-{EVIL}",
        runbook_url="javascript:alert(document.cookie)",
        remediation=(f"restart {EVIL}",),
        correlation_ids=(f"c-1 {EVIL}",),
        links=(
            Link(f"Grafana {EVIL}", "https://grafana.example/d?a=1&b=<x>|y>"),
            Link("Phish", "https://phish.example|Grafana>"),
            Link("data", "data:text/html,<script>"),
        ),
        evidence={"status": f"{503 if firing else 200} {EVIL}", EVIL: "x"},
    )


def notifications() -> dict[str, Notification]:
    policy = PolicyConfig(
        open_after=1, resolve_after=1, page=["pagerduty"], page_after=timedelta(0), mirror=True
    )
    opened = evaluate([hostile_signal()], {}, lambda _s: policy, T0)
    found = {f"{n.channel}:{n.kind}": n for n in opened.notifications}
    incident: Incident = found["slack:paged"].incident
    later = T0 + timedelta(hours=1)
    found["slack:paging failed"] = replace(found["slack:paged"], paging_failed=f"pagerduty: {EVIL}")
    found["slack:reminder"] = actions.notification(incident, "slack", Kind.reminder, later)
    for name, act in (
        ("acknowledged", actions.acknowledge),
        ("pager_acknowledged", actions.pager_acknowledged),
        ("pager_resolved", actions.pager_resolved),
    ):
        change = act(incident, f"Mallory {EVIL}", later, ["slack"])
        found[f"slack:{name}"] = next(n for n in change.notifications if n.channel == "slack")
    silenced = actions.silence(incident, f"Eve {EVIL}", later, None, ["slack"], f"s-{EVIL}")
    found["slack:silenced"] = silenced.notifications[0]
    recovered = hostile_signal(firing=False)
    resolved = evaluate([recovered], {incident.key: incident}, lambda _s: policy, later)
    found["slack:resolved"] = next(n for n in resolved.notifications if n.channel == "slack")
    return found


def mrkdwn_texts(payload: Any) -> list[str]:
    """Every text Slack reads as mrkdwn: the top-level `text` and the blocks' mrkdwn objects."""
    found = []
    if isinstance(payload, dict):
        if isinstance(payload.get("text"), str) and payload.get("type", "mrkdwn") == "mrkdwn":
            found.append(payload["text"])
        for key, value in payload.items():
            if key != "text" or not isinstance(value, str):
                found += mrkdwn_texts(value)
    elif isinstance(payload, list):
        for item in payload:
            found += mrkdwn_texts(item)
    return found


def assert_no_control_sequence(payload: dict[str, Any]) -> None:
    texts = mrkdwn_texts(payload)
    assert texts
    for text in texts:
        for sequence in SEQUENCE.findall(text):
            if sequence.startswith("!date^"):  # ours: the incident's onset in the reader's zone
                continue
            url, _bar, label = sequence.partition("|")
            assert url.startswith(("https://", "http://")), f"{sequence!r} in {text!r}"
            if label.startswith("Grafana"):  # a label never points elsewhere than it says
                assert url.startswith("https://grafana.example/"), sequence
        assert "<!" not in text.replace("<!date^", "") and "<@" not in text and "<#" not in text
        assert not ENTITY.search(text), f"a bare & in {text!r}"
    for block in payload.get("blocks", []):
        Block.parse(block).validate_json()


@pytest.mark.parametrize("name", list(notifications()))
def test_no_incident_message_carries_a_control_sequence(name: str) -> None:
    n = notifications()[name]
    if n.channel == "pagerduty":
        event = pagerduty.event(n, "R" * 32)
        summary = event["payload"]["summary"]
        # PagerDuty shows text as written (its own Slack app escapes what it posts): the alert's
        # words go unescaped, so an `&lt;` it wrote stays `&lt;` and `<!channel>` is mere text
        assert EVIL in summary and "&amp;" not in summary.replace(EVIL, "")
        hrefs = [lnk["href"] for lnk in event["links"]]  # no javascript:, no data:
        assert hrefs == ["https://grafana.example/d?a=1&b=<x>|y>", "https://phish.example|Grafana>"]
        upstream = oncall.payload(n)["link_to_upstream_details"]  # not the javascript: runbook
        assert upstream == "https://grafana.example/d?a=1&b=<x>|y>"
        return
    payload = render(n, note=f"mirror {EVIL}")
    assert_no_control_sequence(payload)
    assert "&amp;lt;!channel&amp;gt;" in payload["text"]  # the alert's `&lt;` shows as written
    assert " | runbook " not in payload["text"]  # a javascript: runbook is no link


def test_the_pagerduty_users_name_is_shown_not_obeyed() -> None:
    payload = render(notifications()["slack:pager_acknowledged"])
    assert "Acknowledged in PagerDuty by Mallory &lt;!channel&gt; &lt;!here&gt;" in payload["text"]
    assert_no_control_sequence(payload)


def test_the_runbook_link_is_only_an_http_link_and_cannot_break_out() -> None:
    payload = render(notifications()["slack:opened"])
    links = next(b for b in payload["blocks"] if "Grafana" in str(b) and "<https" in str(b))
    text = links["text"]["text"]
    assert text.startswith("Runbook · <https://grafana.example/d?a=1&amp;b=%3Cx%3E%7Cy%3E|Grafana ")
    assert "· <https://phish.example%7CGrafana%3E|Phish> ·" in text  # its `|` and `>` encoded
    assert safe_url("javascript:alert(1)") is None and link("ftp://x", "x") == "x"


def test_the_fleet_api_snapshot_carries_no_control_sequence() -> None:
    n = notifications()["slack:opened"]
    events = [
        FleetEvent(
            f"e{i}", T0, f"type {EVIL}", "error", f"failed {EVIL}", f"pi {EVIL}", f"c {EVIL}"
        )
        for i in range(3)
    ]
    phish = Link(f"Logs {EVIL}", "https://phish.example|Grafana>")
    ours = Link(f"Logs {EVIL}", "https://grafana.example/explore?x=<1>")
    for logs in (phish, ours):
        message = snapshot_message(
            n.incident, events, f"scope {EVIL}", lambda _e, lk=logs: lk, EVIL
        )
        assert_no_control_sequence(message)


def test_fleet_replies_carry_no_control_sequence() -> None:
    incidents = [
        {"key": EVIL, "state": EVIL, "severity": EVIL, "summary": EVIL, "failing_for": "5m"},
        {
            "id": EVIL, "key": EVIL, "state": EVIL, "severity": EVIL, "summary": EVIL,
            "failing_for": "5m", "acked_by": EVIL, "silenced_by": EVIL, "muted_by": EVIL,
            "muted_until": "2026-12-08T02:00:00+00:00",
        },
    ]  # fmt: skip
    health = {"modules": [{"id": EVIL, "status": EVIL, "message": EVIL}]}
    state = {
        EVIL: {"devices": [{"id": EVIL, "displayName": EVIL, "state": EVIL, "lastSeen": EVIL}]}
    }
    logs = {"entries": [{"timestamp": EVIL, "level": EVIL, "message": EVIL, "correlationId": EVIL}]}
    for title, lines in (
        (f"Open incidents {EVIL}", incident_lines(incidents)),
        ("Fleet health", health_lines(health)),
        (f"Fleet state of {EVIL}", state_lines(state)),
        ("Fleet logs", log_lines(logs)),
    ):
        assert_no_control_sequence(reply(title, lines * 30, "https://grafana.example/all"))
        assert_no_control_sequence(reply(title, lines * 30, "javascript:alert(1)"))


@pytest.mark.parametrize("bot", [False, True], ids=["webhooks", "bot token"])
def test_the_only_mention_is_the_configured_one_on_a_page(tmp_path: Path, bot: bool) -> None:
    (tmp_path / "secret").write_text("https://hooks.slack.example/services/T/B/x")
    slack = {"bot_token": {"file": "secret"}} if bot else {"webhook": {"file": "secret"}}
    slack |= {"mirror_webhook": {"file": "secret"}} if not bot else {}
    key = {"file": "secret"}
    notify = {"slack": slack | {"page_mention": "S0ONCALL"}, "pagerduty": {"routing_key": key}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"notify": notify}))
    config = load_config(tmp_path / "config.yaml")
    found = notifications()

    async def bodies() -> dict[str, dict[str, Any]]:
        async with httpx.AsyncClient() as client:
            notifiers: Any = build_notifiers(config, client)
            return {
                name: await notifiers[n.channel].body(n)
                if hasattr(notifiers[n.channel], "body")
                else notifiers[n.channel]._render(n)
                for name, n in found.items()
                if n.channel in ("slack", "slack_mirror")
            }

    for name, body in asyncio.run(bodies()).items():
        texts = mrkdwn_texts(body)
        mentions = [t for t in texts if "<!subteam^S0ONCALL>" in t]
        if name in ("slack:paged", "slack:paging failed"):  # primary channel: title and text
            assert body["text"].startswith("<!subteam^S0ONCALL> [CRITICAL] Paged pagerduty")
            assert len(mentions) == 2
        else:
            assert mentions == [], name
        without = json.loads(json.dumps(body).replace("<!subteam^S0ONCALL> ", ""))
        assert_no_control_sequence(without)
