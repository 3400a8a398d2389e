"""A store that cannot be used, said in one line: which file, what is wrong, what to do."""

from __future__ import annotations

from pathlib import Path


class StoreError(Exception):
    """The state store cannot be opened or written. The message names the path and the remedy;
    it is meant to be printed as is, without a traceback."""


def explain(path: Path, error: BaseException, busy_timeout: float) -> StoreError | None:
    """The operator's version of a SQLite error, or None for errors that are bugs, not state."""
    text = str(error)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return StoreError(
            f"{path}: locked by another process for more than {busy_timeout:g} s ({text}); "
            "wait for it to finish, or find it with `fuser` and stop it"
        )
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        return StoreError(
            f"{path}: cannot be opened for writing ({text}); give this user write access to the "
            "file and its directory (SQLite also writes -wal and -shm files next to it)"
        )
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return StoreError(
            f"{path}: is not a SQLite database or is damaged ({text}); restore it from a backup, "
            "or move it away to start with an empty store"
        )
    if "disk i/o" in lowered or "disk is full" in lowered or "database or disk is full" in lowered:
        return StoreError(f"{path}: cannot be written ({text}); check the disk and its free space")
    return None
