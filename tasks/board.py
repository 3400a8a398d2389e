"""Publishing the incident board: the keyed markdown artifact `incident-board` (core/board.py),
looked at by every watch run — a run adds a version when the board changed, the latest is
REFRESH old or another process published it, and the key shows the latest. Part of the run,
not a step of its own (a task run per watch run would cost the server more than the board).

Only inside a Prefect flow run (a plain `run` has no UI to show it in). A board that cannot be
made (the store unreadable) is a warning in the run's log, never a failed run: the run did its
own job.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

from sqlalchemy.exc import DBAPIError

from fleet_alerting.config import Config
from fleet_alerting.core.board import (
    KEY,
    MAX_ROWS,
    Board,
    Published,
    render,
    row_of,
    worth_publishing,
)
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.incidents import Incident
from fleet_alerting.core.short_ids import SHORT, full_id
from fleet_alerting.store.board import open_incidents
from fleet_alerting.store.database import Store
from fleet_alerting.store.errors import StoreError
from fleet_alerting.store.health import Undelivered, undelivered_pages, unsent_status
from fleet_alerting.tasks.runtime import run_logger, tracked

# what this process last published, per store (`serve` runs every watch here), and its id
_published: dict[str, tuple[Published, UUID]] = {}


async def publish_board(config: Config) -> None:
    """The board of the store this flow run used."""
    if tracked():
        await publish_incident_board(config)


def _read(config: Config) -> tuple[list[Incident], dict[str, int], Undelivered]:
    """The board's incidents, the counts, and the pages of theirs no pager has accepted."""
    with Store(config.state, create=False) as store:
        incidents, per_severity = open_incidents(store, MAX_ROWS)
        return incidents, per_severity, undelivered_pages(store, incidents)


async def publish_incident_board(config: Config) -> None:
    """Read the open incidents (the first MAX_ROWS in board order and the counts: one query)
    and publish the board."""
    try:
        incidents, per_severity, owed = await asyncio.to_thread(_read, config)
    except (StoreError, DBAPIError) as exc:  # e.g. a record PostgreSQL cannot read as JSON
        run_logger().warning("incident board not updated: %s", str(exc).splitlines()[0])
        return
    # the id Slack shows (an operator types it, or more of it, to any command)
    rows = [row_of(i, full_id(i.key)[:SHORT], _unsent(owed, i.key)) for i in incidents]
    board, now = Board(rows, per_severity), utcnow()
    where = str(config.state.url or config.state.path)
    last = _published.get(where)
    if last and not worth_publishing(board, now, last[0]) and await _still_latest(last[1]):
        return
    from prefect.artifacts import acreate_markdown_artifact

    published = await acreate_markdown_artifact(
        render(board, now),
        key=KEY,
        description="open incidents across every watch: severity, since, paged, acknowledged, "
        "muted (updated by the watch runs)",
    )
    _published[where] = (Published(board, now), published)


def _unsent(owed: Undelivered, key: str) -> dict[str, str]:
    """pager → `queued`, `dead` or `dropped` (by an operator) for an incident's pages not
    accepted (a dead one wins)."""
    unsent: dict[str, str] = {}
    for page in owed.get(key, ()):
        status = unsent_status(page)
        if unsent.get(page.channel) != "dead":
            unsent[page.channel] = status
    return unsent


async def _still_latest(artifact: UUID) -> bool:
    """Is the board's latest version still the one this process published (not another
    process's, of its store or another)?"""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    key = ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[KEY]))
    try:
        async with get_client() as client:
            latest = await client.read_latest_artifacts(artifact_filter=key, limit=1)
    except Exception:  # the server busy: publish, as before this check
        return False
    return bool(latest) and latest[0].latest_id == artifact
