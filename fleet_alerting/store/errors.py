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


def explain_postgres(where: str, error: BaseException, lock_timeout: float) -> StoreError | None:
    """The operator's version of a PostgreSQL error (`where` is `state.url URL` without a
    password), or None for errors that are bugs, not state."""
    text = " ".join(str(error).split())  # psycopg's messages span lines
    lowered = text.lower()
    state = getattr(error, "sqlstate", None) or ""
    if "connection refused" in lowered:
        return StoreError(
            f"{where}: cannot connect (connection refused); start PostgreSQL there, or correct "
            "state.url"
        )
    if "could not translate host name" in lowered or "name or service not known" in lowered:
        return StoreError(f"{where}: cannot connect (unknown host); correct state.url")
    if "timeout expired" in lowered:
        return StoreError(
            f"{where}: cannot connect (no answer within state.connect_timeout); check the host, "
            "its port and the firewall"
        )
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return StoreError(
            f"{where}: the server refused the login (password authentication failed); check "
            "the user in state.url and the secret in state.password"
        )
    if state == "3D000" or ("database" in lowered and "does not exist" in lowered):
        return StoreError(
            f"{where}: the database does not exist; create it (createdb -O USER NAME), or "
            "correct state.url"
        )
    if state in ("28000", "28P01") or "no pg_hba.conf entry" in lowered:
        return StoreError(
            f"{where}: the server refused the login ({_short(text)}); check pg_hba.conf and "
            "the user in state.url"
        )
    if state == "55P03" or "lock timeout" in lowered:
        return StoreError(
            f"{where}: locked by another process for more than {lock_timeout:g} s; wait for "
            "it to finish, or find it in pg_stat_activity"
        )
    if state == "42501" or "permission denied" in lowered:
        return StoreError(
            f"{where}: permission denied ({_short(text)}); let the user in state.url own the "
            "database, or grant it CREATE, SELECT, INSERT, UPDATE and DELETE"
        )
    if state == "25006" or "read-only transaction" in lowered:
        return StoreError(f"{where}: cannot be written (the server is read-only: a standby?)")
    if state.startswith("53") or "disk full" in lowered:
        return StoreError(f"{where}: cannot be written ({_short(text)}); check the server")
    if "server closed the connection" in lowered or "terminating connection" in lowered:
        return StoreError(f"{where}: the connection was lost ({_short(text)}); is the server up?")
    if "connection failed" in lowered or "connection to server" in lowered:
        return StoreError(f"{where}: cannot connect ({_short(text)}); check state.url")
    return None


def _short(text: str, limit: int = 160) -> str:
    text = text.removeprefix("connection failed: ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
