"""Prefect task around the quarterly audit: gather inputs (files, live Alertmanager,
Prometheus), run the checks, write the report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from fleet_alerting.audit.live import gather_inputs
from fleet_alerting.audit.model import DeliveryRecord, SilenceRecord
from fleet_alerting.audit.noise import IncidentRecord
from fleet_alerting.audit.report import write_report
from fleet_alerting.audit.run import run_audit
from fleet_alerting.config.secrets import redact


def incident_records(state_path: str) -> list[IncidentRecord]:
    """Every incident of the store, as the noise statistics read them."""
    from fleet_alerting.store.database import Store

    with Store(state_path) as store:
        return [
            IncidentRecord(
                watch=i.source,
                severity=str(i.severity),
                onset=i.onset,
                resolved_at=i.resolved_at,
                paged=i.paged_at is not None,
                # operators' acknowledgement (Slack, PagerDuty), where the store records it
                acknowledged_at=getattr(getattr(i, "acts", None), "acked_at", None),
            )
            for i in store.incidents(include_resolved=True)
        ]


def whatif_review(config_path: str, start: datetime, end: datetime) -> list[tuple[str, list]]:
    """The review section: the quarter replayed (audit/whatif_review.py)."""
    from fleet_alerting.audit.whatif_report import kept_less
    from fleet_alerting.audit.whatif_review import review
    from fleet_alerting.config import load_config
    from fleet_alerting.store import actions, history, silences
    from fleet_alerting.store.database import Store

    config = load_config(config_path)
    with Store(config.state, create=False) as store:
        recorded = history.read(store, start, end)
        silenced = silences.listing(store, end, include_expired=True)
        incidents = [i for i in store.incidents(include_resolved=True) if i.onset >= start]
        by_hand = actions.by_hand(store, start, end)
    # what the review reads: the runs' history, resolved incidents, silences that ended, the trail
    read = ("history", "resolved_incidents", "expired_silences", "actions")
    shorter = kept_less(config.state.retention, read, start, end)
    hours = config.review.business_hours
    blocks = review(recorded, config, incidents, hours, silenced, by_hand, kept_less=shorter)
    return [("What-if review", blocks)]


def silence_records(state_path: str) -> list[SilenceRecord]:
    """Every silence of the store, expired ones too, with how many incidents each muted."""
    from fleet_alerting.store import silences
    from fleet_alerting.store.database import Store

    with Store(state_path) as store:
        counts = silences.muted_counts(store)
        return [
            SilenceRecord(
                s.id, s.matchers, s.starts_at, s.ends_at, s.author, s.comment, counts.get(s.id, 0)
            )
            for s in silences.listing(store, datetime.now(UTC), include_expired=True)
        ]


def delivery_records(state_path: str) -> list[DeliveryRecord]:
    """Per incident episode and destination, the kinds of message delivered (the outbox keeps
    sent notifications for its retention), and whether that episode has ended since."""
    from fleet_alerting.store.database import Store

    with Store(state_path) as store:
        sent: dict[tuple[str, str, str], list[str]] = {}
        for item in store.outbox(("sent",)):
            n = item.notification
            sent.setdefault((n.incident.key, n.incident.episode, n.channel), []).append(n.kind)
        stored = {key: store.incident(key) for key in {key for key, _e, _c in sent}}
    return [
        DeliveryRecord(key, episode, channel, tuple(kinds), _ended(stored[key], episode))
        for (key, episode, channel), kinds in sent.items()
    ]


def _ended(incident: Any, episode: str) -> bool:
    """An episode has ended when its record resolved, was pruned (only resolved ones are), or
    was followed by another episode of the same key."""
    return incident is None or incident.episode != episode or incident.state == "resolved"


@task(name="run-quarterly-audit", retries=1, retry_delay_seconds=30)
def run_quarterly_audit(
    alertmanager_file: str | None,
    rules_glob: str,
    expectations_file: str,
    out_dir: str,
    alertmanager_url: str | None = None,
    prometheus_url: str | None = None,
    dashboards_glob: str | None = None,
    now: datetime | None = None,
    state_path: str | None = None,
    noise_days: float = 90,
    config_path: str | None = None,
) -> dict[str, Any]:
    """Returns the report summary plus its Markdown (for the artifact). With a Prometheus URL
    the report has the quarter's noise statistics; with `state_path` (the incident store) they
    include the watches' incidents; with `config_path` (the live config) a what-if review of
    the quarter its store recorded."""
    now = now or datetime.now(UTC)
    extra = _whatif_review(config_path, now - timedelta(days=noise_days), now)
    inp = gather_inputs(
        incidents=incident_records(state_path) if state_path else (),
        silences=silence_records(state_path) if state_path else None,
        deliveries=delivery_records(state_path) if state_path else None,
        noise_days=noise_days,
        alertmanager_file=alertmanager_file,
        rules_glob=rules_glob,
        expectations_file=expectations_file,
        now=now,
        alertmanager_url=alertmanager_url,
        prometheus_url=prometheus_url,
        dashboards_glob=dashboards_glob,
    )
    written = write_report(run_audit(inp), out_dir, extra)
    get_run_logger().info(
        "audit %s: %s errors, %s warnings -> %s",
        written.summary["quarter"],
        written.summary["errors"],
        written.summary["warnings"],
        written.directory,
    )
    return {"summary": written.summary, "markdown": written.markdown}


def _whatif_review(
    config_path: str | None, start: datetime, end: datetime
) -> list[tuple[str, list]] | None:
    """The review's what-if section; a config or store it cannot read is one line in the report,
    never a quarter without one."""
    if not config_path:
        return None
    try:
        return whatif_review(config_path, start, end)
    except Exception as exc:  # the rest of the report does not depend on it
        why = f"skipped: {type(exc).__name__}: {redact(str(exc))}"
        return [("What-if review", [("p", why)])]
