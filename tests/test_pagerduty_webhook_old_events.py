"""An old signed PagerDuty webhook event must not act on today's episode. The signature covers
only the body (PagerDuty signs no timestamp) and event ids are remembered for 24 hours; PagerDuty's
`incident_key` is our dedup key, the same for every episode of one failure. So an event that
occurred more than 24 hours ago (a copy from a proxy log, replayed) or before the current episode
began (a late delivery of yesterday's ack) is ignored — an ack applied to today's episode would
hold its page (`ack_holds_page`) and nobody would be paged.

In process: the routes with their injectable clock (Starlette TestClient runs the background
task before answering), a real SQLite store, the engine as the runs call it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from starlette.applications import Starlette
from starlette.testclient import TestClient

from fleet_alerting.config import load_config
from fleet_alerting.core.incidents import Kind
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.pagerduty_webhook import pagerduty_routes
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.attacks.app import PD_SECRET, PD_USER, pd_signature
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer

KEY = "blackbox:url=https://fleet.example/api/healthz"
NOW = datetime.now(UTC).replace(microsecond=0)
YESTERDAY = NOW - timedelta(hours=26)


def config_file(tmp: Path, slack: str, pd: str) -> Path:
    (tmp / "pd-webhook.secret").write_text(PD_SECRET)
    (tmp / "pd.key").write_text("R" * 32)
    (tmp / "slack.url").write_text(f"{slack}/services/T/B/X")
    config = {
        "state": {"path": str(tmp / "state.sqlite")},
        "notify": {
            "slack": {"webhook": {"file": "slack.url"}, "min_interval": "0s"},
            "pagerduty": {"routing_key": {"file": "pd.key"}, "url": f"{pd}/v2/enqueue"},
        },
        "policies": {"critical": {"page": ["pagerduty"], "page_after": "5m", "mirror": False}},
        "operators": {"pagerduty_webhook": {"secret": {"file": "pd-webhook.secret"}}},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def signal(firing: bool) -> Signal:
    return Signal(KEY, "blackbox", firing, Severity.critical, "Fleet API down" if firing else "ok")


def delivery(at: datetime, event_id: str = "01ABCDEFACKEVENT") -> bytes:
    event = {
        "id": event_id,
        "event_type": "incident.acknowledged",
        "resource_type": "incident",
        "occurred_at": at.isoformat(),
        "agent": PD_USER,
        "data": {"id": "PGR0VU2", "type": "incident", "incident_key": KEY, "title": "down"},
    }
    return json.dumps({"event": event}).encode()


def scenario(tmp: Path, late: tuple[datetime, bytes] | None) -> list[str]:
    """Yesterday's episode paged and was acked in PagerDuty, then resolved; today's episode of
    the same key opens 2 minutes before NOW. `late`: a delivery arriving at that time, after
    today's episode opened. What the run 5 minutes later (page due at onset + 5 min) sends."""
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        config = load_config(config_file(tmp, slack.url, pd.url))
        clock = [YESTERDAY.timestamp()]
        client = TestClient(Starlette(routes=pagerduty_routes(config, lambda: clock[0])))

        def post(body: bytes) -> int:
            headers = {
                "content-type": "application/json",
                "x-pagerduty-signature": pd_signature(body),
            }
            return client.post("/pagerduty/webhook", content=body, headers=headers).status_code

        with Store(config.state) as store:

            def run(at: datetime, firing: bool) -> list[str]:
                found, _ = evaluate_and_record(store, [signal(firing)], config.policy, at)
                return [f"{n.kind.value}:{n.channel}" for n in found.notifications]

            for minute in (0, 1, 6):
                run(YESTERDAY + timedelta(minutes=minute), True)
            clock[0] = (YESTERDAY + timedelta(minutes=7)).timestamp()
            assert post(ACKED_YESTERDAY) == 200
            assert store.incident(KEY).acts.acked_by == "Ana Operator"
            for minute in (20, 21):
                run(YESTERDAY + timedelta(minutes=minute), False)
            assert store.incident(KEY).resolved_at is not None
            run(NOW - timedelta(minutes=2), True)
            run(NOW - timedelta(minutes=1), True)  # today's episode: open, not paged yet
            if late is not None:
                clock[0] = late[0].timestamp()
                assert post(late[1]) == 200
            acked = store.incident(KEY).acts.acked_by
            return [*run(NOW + timedelta(minutes=5), True), f"acked_by={acked}"]


ACKED_YESTERDAY = delivery(YESTERDAY + timedelta(minutes=7))
PAGED = f"{Kind.paged.value}:pagerduty"


def test_a_day_old_ack_replayed_does_not_hold_todays_page(tmp_path: Path) -> None:
    sent = scenario(tmp_path, (NOW, ACKED_YESTERDAY))
    assert sent == [PAGED, "paged:slack", "acked_by=None"], sent


def test_a_replay_within_24_hours_is_a_duplicate(tmp_path: Path) -> None:
    sent = scenario(tmp_path, (YESTERDAY + timedelta(hours=23), ACKED_YESTERDAY))
    assert PAGED in sent


def test_an_ack_from_before_this_episode_began_does_not_hold_its_page(tmp_path: Path) -> None:
    """Another delivery (a new event id) of something that happened yesterday, within 24 h."""
    late = delivery(YESTERDAY + timedelta(minutes=8), event_id="01ABCDEFLATEACK")
    sent = scenario(tmp_path, (YESTERDAY + timedelta(hours=23), late))
    assert sent == [PAGED, "paged:slack", "acked_by=None"], sent


def test_an_ack_of_todays_episode_holds_its_page(tmp_path: Path) -> None:
    today = delivery(NOW - timedelta(seconds=30), event_id="01ABCDEFTODAYACK")
    sent = scenario(tmp_path, (NOW, today))
    assert sent == ["acked_by=Ana Operator"], sent


def test_no_late_delivery_pages(tmp_path: Path) -> None:
    assert PAGED in scenario(tmp_path, None)


def test_an_ack_stamped_by_a_clock_minutes_behind_ours_still_holds_the_page(
    tmp_path: Path,
) -> None:
    """Our clock 3 minutes ahead of PagerDuty's: the ack reads as 3 minutes before the onset."""
    onset = NOW - timedelta(minutes=2)
    skewed = delivery(onset - timedelta(minutes=3), event_id="01ABCDEFSKEWEDACK")
    sent = scenario(tmp_path, (NOW, skewed))
    assert sent == ["acked_by=Ana Operator"], sent
