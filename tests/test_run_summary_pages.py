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
    """The run that paged `incident` (queued its page), delivered as `report` says."""
    evaluation = Evaluation([incident], [note(incident, "pagerduty", Kind.paged)])
    return what_changed(summarize(evaluation, report), report)


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
    """A group pages for its members: the run counts the group's page, once, as not delivered
    while it was left queued by the drain or failed in an earlier run and waits for its retry;
    the artifact says so of the member too."""
    from fleet_alerting.flows.common import storm_markdown, undelivered_page_keys

    member, group = grouped(real_incident(), "prometheus:host=pi-7")
    paging = note(group, "pagerduty", Kind.paged)
    page = item(paging, 1, "HTTP 503")
    left_queued = DrainReport(retrying=[(page, "HTTP 503")])
    waits_for_its_retry = DrainReport(owed_pages=[page])
    for report in (left_queued, waits_for_its_retry):
        evaluation = Evaluation([member, group], [paging])
        said = what_changed(summarize(evaluation, report), report)
        assert said.startswith("page queued for 1 incident (not delivered)"), said
        table = storm_markdown(evaluation, undelivered_page_keys(report))
        assert (
            f"| `prometheus:host=pi-7` | page queued (not delivered), told in group {group.key} |"
            in table
        ), table

    dead = DrainReport(dead=[(page, "HTTP 400")])
    said = what_changed(summarize(Evaluation([member, group], [paging]), dead), dead)
    assert said.startswith("page undelivered for 1 incident (dead letter)"), said


def test_a_record_whose_step_came_due_while_its_page_is_held_is_not_said_paged() -> None:
    """A member of an acknowledged group whose own step came due in this run (its record
    stamped `paged_at` now), the group's page held: no page went anywhere, none is said
    (a tester's maintenance night: `paged 1 incident` with nothing sent)."""
    member, group = grouped(real_incident(), "prometheus:host=pi-7")
    said = what_changed(summarize(Evaluation([member, group], []), DrainReport()), DrainReport())
    assert "paged" not in said, said


def test_pages_again_count_once_per_incident_paged() -> None:
    """A mute's end pages two incidents again (resolve + trigger each): paged 2, not the
    records the run rewrote (a tester's maintenance night: `paged 4` when 2 were paged)."""
    first, second = real_incident(), replace(real_incident(), key="prom|temp")
    bystanders = [replace(real_incident(), key=f"prom|other{i}") for i in range(2)]
    pages = [note(i, "pagerduty", Kind.paged) for i in (first, second)]
    resolves = [note(i, "pagerduty", Kind.resolved) for i in (first, second)]
    told = [note(i, "slack", Kind.paged) for i in (first, second)]
    report = DrainReport(sent=[(item(n, k), "202") for k, n in enumerate(pages + resolves)])
    evaluation = Evaluation([first, second, *bystanders], resolves + pages + told)
    said = what_changed(summarize(evaluation, report), report)
    assert said.startswith("paged 2 incidents"), said
