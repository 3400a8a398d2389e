"""The run's summary says "paged" of an incident paged in this run whose page a pager took,
whatever happened to other incidents' pages in the same drain (a page a notify-test left queued,
an older incident's page given up)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from fleet_alerting.core.incidents import Incident, Kind, Notification, State
from fleet_alerting.core.policy import Evaluation
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.stages import DrainReport
from fleet_alerting.flows.common import summarize, what_changed
from fleet_alerting.store.outbox import OutboxItem
from fleet_alerting.surfaces.notify_test import make_test_notifications

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def real_incident() -> Incident:
    signal = Signal(
        key="prom|disk", source="prometheus", firing=True, severity=Severity.critical,
        summary="disk full", target="pi-7",
    )  # fmt: skip
    return Incident(
        key="prom|disk", source="prometheus", severity=Severity.critical, state=State.paged,
        onset=NOW, changed_at=NOW, signal=signal, opened_at=NOW - timedelta(minutes=5),
        paged_at=NOW, paged_via=("pagerduty",),
    )  # fmt: skip


def item(n: Notification, ident: int, error: str | None = None) -> OutboxItem:
    return OutboxItem(ident, n, "queued", 1, NOW, NOW, error, None)


def note(incident: Incident, channel: str, kind: Kind) -> Notification:
    return Notification(f"{incident.key}|{kind}|{channel}", channel, kind, NOW, incident)


def summary(report: DrainReport, incident: Incident) -> str:
    return what_changed(summarize(Evaluation([incident], []), report), report)


def test_a_leftover_test_page_retrying_does_not_unsay_a_real_page() -> None:
    incident = real_incident()
    report = DrainReport()
    report.sent.append((item(note(incident, "pagerduty", Kind.paged), 1), "202"))
    test_page = next(n for n in make_test_notifications(["oncall"], NOW) if n.kind == Kind.paged)
    report.retrying.append((item(test_page, 2, "Grafana OnCall timed out"), "timed out"))
    said = summary(report, incident)
    assert said.startswith("paged 1"), said
    assert "not delivered" not in said


def test_another_incidents_dead_page_does_not_unsay_this_runs_page() -> None:
    incident = real_incident()
    older = replace(incident, key="prom|temp", paged_at=None)
    report = DrainReport()
    report.sent.append((item(note(incident, "pagerduty", Kind.paged), 1), "202"))
    report.dead.append((item(note(older, "pagerduty", Kind.paged), 2, "HTTP 400"), "HTTP 400"))
    said = summary(report, incident)
    assert said.startswith("paged 1"), said


def test_control_this_runs_own_page_left_queued_is_said_not_delivered() -> None:
    incident = real_incident()
    report = DrainReport()
    report.retrying.append((item(note(incident, "pagerduty", Kind.paged), 1, "503"), "503"))
    said = summary(report, incident)
    assert said.startswith("page queued for 1 incident (not delivered)"), said


def grouped(incident: Incident, key: str) -> tuple[Incident, Incident]:
    """`incident` as a member of a group (its key: `key`) that pages for it."""
    group = replace(incident, key="group/prometheus:severity=critical", members=(key,))
    return replace(incident, key=key, group=group.key), group


def test_a_members_page_is_its_groups_in_the_summary_and_the_artifact() -> None:
    """A group pages for its members: a member paged in this run whose group's page was left
    queued by the drain, or failed in an earlier run and waits for its retry, is not paged."""
    from fleet_alerting.flows.common import storm_markdown, undelivered_page_keys

    member, group = grouped(real_incident(), "prometheus:host=pi-7")
    page = item(note(group, "pagerduty", Kind.paged), 1, "HTTP 503")
    left_queued = DrainReport(retrying=[(page, "HTTP 503")])
    waits_for_its_retry = DrainReport(owed_pages=[page])
    for report in (left_queued, waits_for_its_retry):
        evaluation = Evaluation([member, group], [])
        said = what_changed(summarize(evaluation, report), report)
        assert said.startswith("page queued for 2 incidents (not delivered)"), said
        table = storm_markdown(evaluation, undelivered_page_keys(report))
        assert (
            f"| `prometheus:host=pi-7` | page queued (not delivered), told in group {group.key} |"
            in table
        ), table

    only_member = Evaluation([member], [])
    dead = DrainReport(dead=[(page, "HTTP 400")])
    said = what_changed(summarize(only_member, dead), dead)
    assert said.startswith("page undelivered for 1 incident (dead letter)"), said
