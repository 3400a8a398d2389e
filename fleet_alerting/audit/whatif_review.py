"""The quarterly review's what-if section: per alert the quarter's MTTA and MTTR (from the
incident store), interruptions by hour of week, and the five noisiest alerts of the replayed
quarter, each with a suggested policy change and what the replay says it would change."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd

from fleet_alerting.audit.report import Block
from fleet_alerting.audit.whatif import SLACK, Replay, Sent, alert_of, replay
from fleet_alerting.audit.whatif_report import (
    acted_by_hand,
    charts_of_interruptions,
    figures,
    kept_less_said,
)
from fleet_alerting.config import Config
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.history import History
from fleet_alerting.core.incidents import Incident
from fleet_alerting.core.muting import Silence
from fleet_alerting.core.signals import Severity
from fleet_alerting.core.windows import Window

NOISIEST = 5


def _median(values: Iterable[timedelta]) -> str:
    found = sorted(values)
    return format_duration(statistics.median(found)) if found else ""


def response_table(incidents: Iterable[Incident]) -> pd.DataFrame:
    """MTTA (paged or opened → acknowledged) and MTTR (onset → the failure ended) per alert."""
    acks: dict[str, list[timedelta]] = {}
    repairs: dict[str, list[timedelta]] = {}
    for incident in incidents:
        alert = alert_of(incident)
        acks.setdefault(alert, [])
        repairs.setdefault(alert, [])
        told = incident.paged_at or incident.opened_at
        if incident.acts.acked_at is not None and told is not None:
            acks[alert].append(incident.acts.acked_at - told)
        if incident.recovered_at is not None and incident.resolved_at is not None:
            repairs[alert].append(incident.recovered_at - incident.onset)
    return pd.DataFrame(
        [
            {
                "alert": alert,
                "acknowledged": len(acks[alert]),
                "MTTA": _median(acks[alert]),
                "resolved": len(repairs[alert]),
                "MTTR": _median(repairs[alert]),
            }
            for alert in sorted(acks)
        ]
    )


@dataclass(frozen=True)
class Suggestion:
    alert: str
    severity: Severity
    change: str  # "policies.warning.open_after: 2 → 4"
    why: str
    config: Config


def suggest(alert: str, sent: Sequence[Sent], config: Config) -> Suggestion | None:
    """One policy change for a noisy alert: fewer messages for short failures (open later),
    pages held back for failures that end by themselves (page later), fewer reminders."""
    if not sent:
        return None
    severity = Severity(sent[0].severity)
    policy = config.policy(severity)
    kinds = [s.kind for s in sent if s.channel in SLACK]
    reminders = kinds.count("reminder")
    pages = [s for s in sent if s.kind == "paged" and s.channel not in SLACK]
    if reminders > len(kinds) / 2 and policy.repeat is not None:
        longer = policy.repeat * 2
        change = {"repeat": longer}
        text = f"repeat: {format_duration(policy.repeat)} → {format_duration(longer)}"
        why = f"{reminders} of its {len(kinds)} Slack messages are reminders"
    elif pages:
        later = max(policy.page_after * 3, timedelta(minutes=15))
        change = {"page_after": later}
        text = f"page_after: {format_duration(policy.page_after)} → {format_duration(later)}"
        why = f"{len(pages)} page(s); a later page lets failures that end by themselves go"
    else:
        more = policy.open_after + 2
        change = {"open_after": more}
        text = f"open_after: {policy.open_after} → {more}"
        why = "told of failures that may end within a few runs"
    changed = config.policy(severity).model_copy(update=change)
    proposed = config.model_copy(update={"policies": {**config.policies, severity: changed}})
    return Suggestion(alert, severity, f"policies.{severity.value}.{text}", why, proposed)


def noisiest(result: Replay, top: int = NOISIEST) -> list[tuple[str, list[Sent]]]:
    """The alerts with the most messages (Slack and pages), most first."""
    by_alert: dict[str, list[Sent]] = {}
    for sent in result.sent:
        by_alert.setdefault(sent.alert, []).append(sent)
    return sorted(by_alert.items(), key=lambda item: (-len(item[1]), item[0]))[:top]


def review(
    history: History,
    config: Config,
    incidents: Iterable[Incident],
    hours: Sequence[Window],
    silences: Sequence[Silence],
    by_hand: Mapping[str, int],
    with_charts: bool = True,
    kept_less: Mapping[str, timedelta] | None = None,
) -> list[Block]:
    """The section's blocks; replays the quarter once, then once per suggestion (operators'
    `silences` muting what they selected in both; `by_hand`: what they did to incidents in the
    quarter, action → times, which no replay has). `kept_less`: what the store keeps less long
    than the period (`state.retention` key → how long), said beside the figures."""
    live = replay(history, config, "live", silences=silences)
    rows: list[dict[str, Any]] = []
    for alert, sent in noisiest(live):
        suggestion = suggest(alert, sent, config)
        if suggestion is None:
            continue
        proposed = replay(history, suggestion.config, suggestion.change, silences=silences)
        before = figures(Replay("", sent, 0, 0), hours)
        mine = [s for s in proposed.sent if s.alert == alert]
        after = figures(Replay("", mine, 0, 0), hours)
        rows.append(
            {
                "alert": alert,
                "messages": len(sent),
                "suggested change": f"`{suggestion.change}`",
                "why": suggestion.why,
                "pages": f"{before['pages']} → {after['pages']}",
                "Slack messages": f"{before['slack_messages']} → {after['slack_messages']}",
                "pages off hours": f"{before['pages_off_hours']} → {after['pages_off_hours']}",
                "others' messages": _others(live, proposed, alert),
            }
        )
    blocks: list[Block] = [
        (
            "p",
            "**A replay, not history.** The quarter's recorded observations replayed through "
            f"the live configuration as it is today ({live.evaluations:,} evaluations for "
            f"{live.runs:,} recorded runs; edits made to it during the quarter are not "
            "replayed), without what operators did by hand: acknowledgements, snoozes and "
            "silences of one incident (silences by matchers are replayed)."
            + acted_by_hand(by_hand, "the quarter", (kept_less or {}).get("actions"))
            + " Response times are from the incident store: what happened."
            + kept_less_said({k: v for k, v in (kept_less or {}).items() if k != "actions"}),
        ),
        ("h3", ("Response per alert", "response-per-alert")),
        ("table", response_table(incidents)),
        ("h3", ("Five noisiest alerts", "five-noisiest-alerts")),
        (
            "p",
            "Each with one policy change and its what-if figures (the policy is per severity: "
            "the last column is what the change does to the other alerts of that severity).",
        ),
        ("table", pd.DataFrame(rows)),
    ]
    if with_charts:
        blocks += [("img", chart) for chart in charts_of_interruptions([live])]
    return blocks


def _others(live: Replay, proposed: Replay, alert: str) -> str:
    before = sum(s.alert != alert for s in live.sent)
    after = sum(s.alert != alert for s in proposed.sent)
    return f"{before} → {after}"
