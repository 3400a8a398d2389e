"""A silence longer than a week: a failure muted for that long is a failure nobody watches."""

from __future__ import annotations

from datetime import timedelta

from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "silence-longer-than-a-week"
TITLE = "Silences longer than a week"
WHY = (
    "A silence of more than a week outlives the reason it was written for: what it mutes goes "
    "unseen, and a new failure with the same labels is muted too."
)
FIX = (
    "Fix or remove the check that needed it, or use a maintenance window for a recurring "
    "quiet time; keep silences to the work they cover."
)
LIMIT = timedelta(days=7)


def check(inp: AuditInput) -> list[Finding]:
    return [
        Finding(
            CHECK_ID,
            "warning",
            message=(
                f"silence {s.id[:8]} by {s.author} ({' '.join(s.matchers)}) lasts "
                f"{(s.ends_at - s.starts_at).days} days"
            ),
            subject=s.id,
        )
        for s in inp.silences or ()
        if s.ends_at - s.starts_at > LIMIT
    ]
