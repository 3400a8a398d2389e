"""What `incidents` says about a page no pager took: while PagerDuty fails (the page queued,
retrying) and once it is a dead letter, the list, `--show` and `-o json` say the page was not
delivered, with its outbox id; once a requeued page is taken, they say paged again."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from fleet_alerting.store.database import Store
from tests.fakes.http import Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.test_operator_cli import cli
from tests.test_run_outcome import DOWN, run_plainly, write_config
from tests.test_slack_limits import validate

KEY = f"blackbox:url={DOWN}"


def listed(config: Path) -> tuple[dict, str, str]:
    """The incident as JSON, its line in the list, and `--show`."""
    (incident,) = json.loads(cli("incidents", "-o", "json", "--config", str(config)).stdout)
    table = cli("incidents", "--config", str(config)).stdout
    (line,) = [line for line in table.splitlines() if KEY in line]
    shown = cli("incidents", "--show", incident["id"], "--config", str(config)).stdout
    return incident, line, shown


def test_incidents_say_a_page_was_not_delivered_until_a_pager_takes_it(tmp_path: Path) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        pd.fail_next = [Response(500, {"status": "error", "message": "internal"})]
        config = write_config(tmp_path, slack.url, pd.url, {"path": "state.sqlite"})
        assert run_plainly(config, tmp_path / "home").returncode == 1

        incident, line, shown = listed(config)
        assert incident["state"] == "paged" and incident["paged_via"] == ["pagerduty"]
        (owed,) = incident["undelivered"]
        number = owed["outbox_id"]
        assert (owed["channel"], owed["status"], owed["attempts"]) == ("pagerduty", "queued", 1)
        assert "500" in owed["error"] and owed["next_attempt_at"].endswith("Z")
        assert "(page to pagerduty not delivered: 1 attempt(s), next " in line
        assert line.endswith(f"; outbox #{number})")
        assert "paged pagerduty at" not in shown
        assert "page to pagerduty not delivered: 1 attempt(s)" in shown and "500" in shown

        dropped = cli("outbox", "drop", str(number), "--reason", "test", "--config", str(config))
        assert dropped.returncode == 0, dropped.stderr
        incident, line, shown = listed(config)
        assert [(o["status"], o["outbox_id"]) for o in incident["undelivered"]] == [
            ("dead", number)
        ]
        assert line.endswith(f"(page to pagerduty not delivered: dead letter #{number})")
        assert (
            "page the on-call by hand; once the cause is fixed, "
            f"`fleet-alerting outbox requeue {number}` sends the page again" in shown
        )

        assert cli("outbox", "requeue", str(number), "--config", str(config)).returncode == 0
        with Store(tmp_path / "state.sqlite") as store:  # its back-off is over
            store.queue.destination_ok("pagerduty", datetime.now(UTC))
        assert run_plainly(config, tmp_path / "home").returncode == 0
        assert [e["event_action"] for e in pd.events] == ["trigger"]
        incident, line, shown = listed(config)
    assert incident["undelivered"] == [] and "not delivered" not in line
    assert "paged pagerduty at" in shown and "not delivered" not in shown


def test_paging_failed_names_the_next_step_and_a_requeued_page_is_told_in_slack(
    tmp_path: Path,
) -> None:
    """PagerDuty refuses the page (400): Slack's "paged" message says PAGING FAILED with the
    dead letter's number and what to do; once requeued and taken, Slack hears "Paged after all"
    once."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        pd.fail_next = [Response(400, {"status": "invalid event", "message": "routing_key"})]
        config = write_config(tmp_path, slack.url, pd.url, {"path": "state.sqlite"})
        assert run_plainly(config, tmp_path / "home").returncode == 1
        (incident,) = json.loads(cli("incidents", "-o", "json", "--config", str(config)).stdout)
        (owed,) = incident["undelivered"]
        number = owed["outbox_id"]
        assert owed["status"] == "dead"
        failed = [m for m in slack.messages if "PAGING FAILED" in m["text"]]
        assert len(failed) == 1
        validate(failed[0])
        assert f"dead letter #{number}: page the on-call by hand" in failed[0]["text"]
        assert f"`fleet-alerting outbox requeue {number}`" in failed[0]["text"]

        requeued = cli("outbox", "requeue", str(number), "--config", str(config))
        assert requeued.returncode == 0, requeued.stderr
        assert "Paged after all" in requeued.stdout
        with Store(tmp_path / "state.sqlite") as store:
            store.queue.destination_ok("pagerduty", datetime.now(UTC))
        told_before = len(slack.messages)
        assert run_plainly(config, tmp_path / "home").returncode == 0
        assert run_plainly(config, tmp_path / "home").returncode == 0  # told once, not again
    assert [e["event_action"] for e in pd.events] == ["trigger"]
    after = [m for m in slack.messages[told_before:] if "after all" in m["text"]]
    assert len(after) == 1 and after[0]["text"].startswith(
        "[CRITICAL] Paged after all: pagerduty took the page, failing for "
    )
    validate(after[0])


def test_the_undelivered_pages_of_the_store_on_each_backend(state_db: str) -> None:
    """Queued, then dead, then superseded by a later page of the incident that was taken."""
    from dataclasses import replace

    from fleet_alerting.core.incidents import Kind
    from fleet_alerting.core.policy import PolicyConfig, evaluate
    from fleet_alerting.core.signals import Severity, Signal
    from fleet_alerting.store import outbox as box

    at = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    policy = PolicyConfig(open_after=1, page=["pagerduty"], page_after="0s")
    signal = Signal(KEY, "blackbox", True, Severity.critical, "API down")
    with Store(state_db) as store:
        evaluation = evaluate([signal], {}, lambda _s: policy, at)
        store.record(evaluation, at)
        (page,) = [i for i in store.outbox(("queued",)) if i.notification.channel == "pagerduty"]
        (owed,) = box.undelivered_pages(store.queue)
        assert (owed.outbox_id, owed.status, owed.onset) == (page.id, "queued", at)
        store.queue.mark_dead(page.id, None, 3, "HTTP 400")
        assert [(p.status, p.error) for p in box.undelivered_pages(store.queue)] == [
            ("dead", "HTTP 400")
        ]
        again = replace(page.notification, id="re-page", kind=Kind.paged)
        with store.transaction() as transaction:
            transaction.queue([again], at)
        (latest,) = [i for i in store.outbox(("queued",)) if i.notification.id == "re-page"]
        store.queue.mark_sent(latest.id, None, 1, "ok")
        assert box.undelivered_pages(store.queue) == []
