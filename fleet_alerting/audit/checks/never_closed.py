"""Firing messages and pages never closed where they were sent: a destination that heard an
incident fire and never heard it resolved, acknowledged, silenced or muted (expected: none)."""

from __future__ import annotations

from fleet_alerting.audit.model import CLOSING_KINDS, FIRING_KINDS, AuditInput, Finding

CHECK_ID = "never-closed"
TITLE = "Firing messages or pages never closed"
WHY = (
    "A channel or pager that was told an incident fired and never told it ended leaves "
    "operators to guess: the red message stays red, the page stays open."
)
FIX = (
    "Look at the incident's outbox (`fleet-alerting outbox --all`): a dead letter to that "
    "destination, or a closing word that was never queued, is a bug to report."
)


def check(inp: AuditInput) -> list[Finding]:
    return [
        Finding(
            CHECK_ID,
            "error",
            message=(
                f"{d.channel} was sent {', '.join(k for k in d.kinds if k in FIRING_KINDS)} "
                f"for {d.incident_key} (opened {d.episode}) and nothing that closes it"
            ),
            receiver=d.channel,
            subject=f"{d.incident_key}|{d.episode}",
        )
        for d in inp.deliveries or ()
        if d.resolved
        and any(k in FIRING_KINDS for k in d.kinds)
        and not any(k in CLOSING_KINDS for k in d.kinds)
    ]
