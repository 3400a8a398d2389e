"""A window's end that pages PagerDuty again in the run a step comes due says so, in one
message. The tester's config (steps 0s slack -> 2m pagerduty -> 4m [pagerduty_secondary, slack]
@here; window east-maint 14:33-14:45), but the device fails from 14:29:05: pagerduty paged
14:31:05, the window mutes it at 14:33:05 as step 3 comes due. At 14:45:05 PagerDuty gets a
resolve + trigger on the primary key (a new PagerDuty incident: someone woken) and a trigger on
the secondary. Slack said only "Paged pagerduty_secondary" and "Silence ended" (both `Paged:`
lines reading "pagerduty 14:31:05 UTC"), and a refused re-trigger was told nowhere."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from fleet_alerting.store.database import Store
from tests import test_window_end_flow as w
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.test_escalation_flow import PRIMARY


def test_a_window_end_beside_a_due_step_says_the_primary_was_paged_again(tmp_path: Path) -> None:
    onset = w.ONSET + timedelta(minutes=6)  # 14:29:05
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        config = w.write_config(tmp_path, slack.url, pd.url)
        with Store(config.parent / "state.sqlite") as store:
            for minute in range(18):  # to 14:46:05
                w.run(config, store, onset + timedelta(minutes=minute))
    primary = [e["event_action"] for e in pd.events if e["routing_key"] == PRIMARY]
    assert primary[-2:] == ["resolve", "trigger"], primary  # paged again at the window's end
    at_end = [w.texts(m) for m in slack.messages if "Muted by" not in m["text"]][2:]
    heads = [re.sub(r"<[^>]*>", "", head).split(": pi-east-04")[0] for head, _ in at_end]
    # some message of the window's end names the primary pager as paged (again)
    assert any(re.search(r"\bpagerduty\b(?!_)", h) for h in heads), heads
    # and the `Paged:` line lists that page's time
    assert any("pagerduty 14:45:05 UTC" in " ".join(ctx) for _, ctx in at_end), at_end


class PrimaryRefusesTriggers(PagerDutyServer):
    """From `refusing` on, a trigger on the primary routing key is refused (400: a dead letter)."""

    refusing = False

    def handle(self, request):  # type: ignore[no-untyped-def]
        event = request.json() if request.path == "/v2/enqueue" else {}
        if (
            self.refusing
            and event.get("routing_key") == PRIMARY
            and event.get("event_action") == "trigger"
        ):
            from tests.fakes.http import Response

            return Response(400, {"status": "invalid event", "message": "Event object is invalid"})
        return super().handle(request)


def test_a_window_end_beside_a_due_step_tells_a_failed_re_page(tmp_path: Path) -> None:
    """Same night; the primary's re-trigger at the window's end is refused (a dead letter): the
    primary's PagerDuty alert was resolved and nobody holds it — Slack must say PAGING FAILED
    for it. The step's "paged" message waits only for pagerduty_secondary, the "Silence ended"
    message for nothing: the failed page is told nowhere."""
    onset = w.ONSET + timedelta(minutes=6)  # 14:29:05
    with SlackWebhookServer() as slack, PrimaryRefusesTriggers() as pd:
        config = w.write_config(tmp_path, slack.url, pd.url)
        with Store(config.parent / "state.sqlite") as store:
            for minute in range(25):  # to 14:53:05
                pd.refusing = minute >= 16  # from the window's end, 14:45:05
                w.run(config, store, onset + timedelta(minutes=minute))
    texts = [m["text"] for m in slack.messages]
    assert any(re.search(r"PAGING FAILED via[^:]*\bpagerduty\b(?!_)", t) for t in texts), texts
