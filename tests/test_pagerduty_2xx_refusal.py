"""PagerDuty's Events API (or whatever answers at its URL: a gateway, a mock left configured)
answers a trigger with a 2xx whose JSON body says it was NOT taken: `{"status": "invalid event"}`
(the body PagerDuty gives a refused event). The page is not delivered: a refusal, a dead letter
named in the run's outcome (exit 1), never a page marked sent that nobody received. PagerDuty
says `{"status": "success", …}` for an event it took.

Plain `fleet-alerting run blackbox-probe` against the PagerDuty/Slack fakes, as
tests/test_run_outcome.py does."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_alerting.store.database import Store
from tests.fakes.http import Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.test_run_outcome import queued_pages, run_plainly, write_config

REFUSED = {"status": "invalid event", "message": "Event object is invalid", "errors": ["x"]}


def sent_pages(where: Path) -> list[str]:
    with Store(where) as store:
        rows = store.outbox(("sent",))
    return [r.receipt or "" for r in rows if r.notification.channel == "pagerduty"]


@pytest.mark.parametrize("status", [200, 202])
def test_a_2xx_that_says_invalid_event_is_not_a_delivered_page(tmp_path: Path, status: int) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        pd.fail_next = [Response(status, REFUSED)]
        config = write_config(tmp_path, slack.url, pd.url, {"path": "state.sqlite"})
        ran = run_plainly(config, tmp_path / "home")
    assert sent_pages(tmp_path / "state.sqlite") == [], sent_pages(tmp_path / "state.sqlite")
    assert ran.returncode == 1, ran.stdout + ran.stderr


def test_control_a_202_success_is_a_delivered_page(tmp_path: Path) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        config = write_config(tmp_path, slack.url, pd.url, {"path": "state.sqlite"})
        ran = run_plainly(config, tmp_path / "home")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert queued_pages(tmp_path / "state.sqlite") == []
    assert len(sent_pages(tmp_path / "state.sqlite")) == 1
