"""A withdrawal (a page whose incident resolved before its pager answered) never leaves a
PagerDuty alert open.

`Outbox.withdraw_resolved_page` withdraws the episode's resolve when the page being withdrawn
(and the queued rows between it and the resolve) cannot have reached PagerDuty. It does not look
at the pages of the SAME episode on the SAME pager that already went (status `sent`): when one
did, PagerDuty has an open alert under the incident's dedup_key and the withdrawn resolve was
the only thing that would have closed it. Two ways to get there (both failed before `_reached`):

1. A policy whose later step pages the same PagerDuty again (step 1 `pagerduty`, step 2
   `pagerduty` + more: a trigger that folds into the open alert). Step 1's page goes; PagerDuty
   throttles (429: not taken, not in doubt); step 2's page is queued; the incident resolves.
   The pager lane withdraws step 2's page AND the resolve: step 1's alert stays open forever.
2. A page refused (400, a dead letter), acknowledged, the acknowledgement times out: the
   re-page (`actions.reopened`: resolve + trigger) goes and opens the alert. The incident
   resolves while PagerDuty throttles; the operator follows the PAGING FAILED advice and
   `outbox requeue`s the old dead page: it now sits before the resolve, is withdrawn, and the
   resolve with it (the requeued page is not in doubt) — the re-page's alert stays open.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fleet_alerting.core.escalation import StepConfig
from fleet_alerting.core.incidents import Kind
from fleet_alerting.core.policy import PolicyConfig
from fleet_alerting.core.signals import Signal
from fleet_alerting.store.outbox import requeue
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.test_paging_delayed import INVALID_EVENT, KEY, T0, sqlite
from tests.test_resolved_first import RATE_LIMITED, Walkthrough, actions_sent


class TwoSteps(Walkthrough):
    """Step 1 pages PagerDuty at once, step 2 (after 5 min) pages it again."""

    def _policy(self, _signal: Signal) -> PolicyConfig:
        steps = [
            StepConfig(after=timedelta(0), to=["slack", "pagerduty"]),
            StepConfig(after=timedelta(minutes=5), to=["slack", "pagerduty"]),
        ]
        return PolicyConfig(open_after=1, resolve_after=1, steps=steps)


def test_a_later_steps_withdrawn_page_does_not_withdraw_the_resolve_of_the_first(
    tmp_path: Path,
) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = TwoSteps(sqlite(tmp_path), slack, pd, "pagerduty")
        fleet.step(True, 0)
        for minute in range(60):
            if minute == 1:
                fleet.fail_with(RATE_LIMITED)  # throttled: nothing taken, nothing in doubt
            if minute == 5:
                fleet.step(True, 5)  # step 2 pages pagerduty again
            if minute == 7:
                fleet.step(False, 7)  # resolved
            if minute == 30:
                fleet.fail_with(None)
            fleet.drain(minute)
        rows = [(i.notification.kind, i.status) for i in fleet.rows("pagerduty")]
        assert actions_sent(pd)[0] == "trigger" and pd.incidents[KEY] == 1, pd.events
        # the on-call was paged at step 1; the incident is over: PagerDuty must hear the resolve
        assert KEY not in pd.open, (actions_sent(pd), rows)


def test_a_requeued_dead_page_does_not_withdraw_the_resolve_of_the_re_page_that_went(
    tmp_path: Path,
) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        fleet = AckTimesOut(sqlite(tmp_path), slack, pd, "pagerduty")
        pd.fail_next = [INVALID_EVENT]  # the first page: refused, a dead letter
        fleet.step(True, 0)
        for minute in range(60):
            if minute == 2:
                fleet.ack(2)
            if minute in (12, 13):
                fleet.step(True, minute)  # the ack timed out: resolve + trigger (re-page)
            if minute == 15:
                fleet.fail_with(RATE_LIMITED)
                fleet.step(False, 15)  # resolved, its resolve throttled
            if minute == 16:  # the operator follows the PAGING FAILED advice
                (dead,) = [i for i in fleet.rows("pagerduty") if i.status == "dead"]
                assert dead.notification.kind == Kind.paged
                assert requeue(fleet.store.queue, dead.id, T0 + timedelta(minutes=16))
            if minute == 30:
                fleet.fail_with(None)
            fleet.drain(minute)
        rows = [(i.notification.kind, i.status) for i in fleet.rows("pagerduty")]
        assert pd.incidents[KEY] == 1, (actions_sent(pd), rows)  # the re-page woke the on-call
        assert KEY not in pd.open, (actions_sent(pd), rows)


class AckTimesOut(Walkthrough):
    def _policy(self, _signal: Signal) -> PolicyConfig:
        return PolicyConfig(
            open_after=1, resolve_after=1, page=["pagerduty"], page_after=timedelta(0),
            ack_timeout=timedelta(minutes=10),
        )  # fmt: skip
