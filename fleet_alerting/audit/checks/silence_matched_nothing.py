"""A silence that ended having muted nothing: written for something that did not happen, or with
matchers that select nothing (a typo in a label name mutes nobody and says nothing)."""

from __future__ import annotations

from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "silence-matched-nothing"
TITLE = "Silences that matched nothing"
WHY = (
    "A silence that muted no incident either was not needed or has matchers that select "
    "nothing: the next one written the same way will not mute what it is meant to."
)
FIX = (
    "Compare the matchers with the labels `fleet-alerting incidents -o json` shows (source, "
    "severity, target and the source's own labels); `silence query` shows what a silence mutes."
)


def check(inp: AuditInput) -> list[Finding]:
    return [
        Finding(
            CHECK_ID,
            "warning",
            message=f"silence {s.id[:8]} by {s.author} ({' '.join(s.matchers)}) muted nothing",
            subject=s.id,
        )
        for s in inp.silences or ()
        if s.ends_at <= inp.now and s.muted == 0
    ]
