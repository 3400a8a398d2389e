"""Slack answers 429 with a Retry-After of a day, then recovers (a tester's walkthrough through
the CLI, the Slack fake and a real store): the outbox says when its messages will really be
tried and the rest asked for, and `outbox retry ID` — the operator saying "it is back" — lifts
the rest of the message's destination, so the next send goes at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleet_alerting.store.actions import history
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.cli import main, when
from tests.fakes.http import Response
from tests.fakes.saas import SlackWebhookServer
from tests.test_notify_test import secret, write_config


def test_a_destination_resting_for_an_hour_is_said_and_lifted_by_outbox_retry(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with SlackWebhookServer() as slack:
        webhook = secret(tmp_path, "s.url", f"{slack.url}/services/CANARY1x")
        off = {"mirror": False, "page": []}
        policies = {"critical": off, "warning": {"mirror": False}}
        config = str(write_config(tmp_path, {"slack": {"webhook": webhook}}, policies))
        slack.fail_next = [Response(429, "rate_limited", {"Retry-After": "86400"})]
        assert main(["notify-test", "--to", "slack", "--config", config]) == 1
        with Store(tmp_path / "state.sqlite") as store:
            (queued,) = store.outbox(("queued",))
            rest = store.queue.destination("slack").blocked_until
        assert rest is not None
        until = when(rest)
        capsys.readouterr()

        assert main(["outbox", "--config", config]) == 0
        (line, *_) = capsys.readouterr().out.splitlines()
        # not `next: now`: the destination rests past the message's own next attempt
        assert re.search(rf"next: {until} \(in [0-9hms]+, slack rests until then\)", line), line
        assert "HTTP 429: rate_limited (Retry-After: 1h00m, the longest we rest)" in line, line

        assert main(["outbox", "retry", str(queued.id), "--as", "ana", "--config", config]) == 0
        said = capsys.readouterr().out.splitlines()
        assert said[1] == f"  slack rested until {until}: no more (it is tried again at once)"
        with Store(tmp_path / "state.sqlite") as store:
            lifted = store.queue.destination("slack")
        assert lifted.blocked_until is None and lifted.failures == 1  # failing until one goes

        assert main(["notify-test", "--to", "slack", "--config", config]) == 0
        assert "delivered" in capsys.readouterr().out
        assert len(slack.messages) == 1

    with Store(tmp_path / "state.sqlite") as store:
        (retried,) = history(store, queued.notification.incident.key)
    assert "outbox-retry by ana via cli: done" in retried.line(), retried.line()
    assert f"rest_lifted={rest:%Y-%m-%dT%H:%M:%S}" in retried.line(), retried.line()
