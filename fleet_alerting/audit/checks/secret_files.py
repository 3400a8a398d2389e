"""Operational checklist for files named by `*_file` keys: missing, tracked by git,
readable by others, or older than the rotation period."""

from __future__ import annotations

from datetime import timedelta

from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "secret-file"
TITLE = "Secret files: tracked, readable, stale or missing"
WHY = (
    "A secret file in git or readable by every user is not secret; one never rotated outlives "
    "the people who knew it."
)
FIX = (
    "Remove it from git (and rotate it), `chmod 600`, rotate on schedule; make sure it exists "
    "where Alertmanager runs."
)


def check(inp: AuditInput) -> list[Finding]:
    out = []
    max_age = timedelta(days=inp.expectations.secret_rotation_days)
    for f in inp.secret_files:

        def add(level: str, problem: str, msg: str, f=f) -> None:  # type: ignore[no-untyped-def]
            out.append(
                Finding(
                    CHECK_ID,
                    level,
                    route_path=f.config_path,
                    message=f"{f.path}: {msg}",
                    subject=problem,
                )
            )

        if not f.exists:
            add("warning", "missing", "file does not exist here (checked on the audit machine)")
            continue
        if f.git_tracked:
            add("error", "git-tracked", "secret file is tracked by git")
        if f.mode & 0o004:
            add("error", "world-readable", f"secret file is readable by others (mode {f.mode:o})")
        if f.mtime is not None and inp.now - f.mtime > max_age:
            age = (inp.now - f.mtime).days
            add(
                "warning",
                "not-rotated",
                f"not rotated for {age} days (rotation period "
                f"{inp.expectations.secret_rotation_days} days)",
            )
    return out
