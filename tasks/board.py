"""Publishing the incident board: the keyed markdown artifact `incident-board` (core/board.py),
rewritten by every watch run — each run adds a version, the key shows the latest.

Only inside a Prefect flow run (a plain `run` has no UI to show it in). A board that cannot be
made (the store unreadable) is a warning in the run's log, never a failed run: the run did its
own job.
"""

from __future__ import annotations

from fleet_alerting.config import Config
from fleet_alerting.core.board import KEY, MAX_ROWS, Board, render, row_of
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.short_ids import SHORT, full_id
from fleet_alerting.store.board import open_incidents
from fleet_alerting.store.database import Store
from fleet_alerting.store.errors import StoreError
from fleet_alerting.tasks.runtime import run_logger, step, tracked


def publish_board(config: Config) -> None:
    """The board of the store this flow run used."""
    if tracked():
        publish_incident_board(config)


@step("incident-board")
def publish_incident_board(config: Config) -> None:
    """Read the open incidents (the first MAX_ROWS in board order and the counts: one query)
    and publish the board."""
    try:
        with Store(config.state, create=False) as store:
            incidents, per_severity = open_incidents(store, MAX_ROWS)
    except StoreError as exc:
        run_logger().warning("incident board not updated: %s", exc)
        return
    # the id Slack shows (an operator types it, or more of it, to any command)
    rows = [row_of(i, full_id(i.key)[:SHORT]) for i in incidents]
    markdown = render(Board(rows, per_severity), utcnow())
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(
        markdown,
        key=KEY,
        description="open incidents across every watch: severity, since, paged, acknowledged, "
        "muted (updated by every watch run)",
    )
