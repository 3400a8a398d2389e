"""The incident board in the Prefect UI, end to end: a real Prefect server, a blackbox watch
flow against an API that answers 503 (Slack and PagerDuty fakes), the keyed artifact
`incident-board` read back through the API and rendered by headless Chromium; an operator's
acknowledgement and the next run make a new version that the key's page shows."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Collection
from pathlib import Path

import pytest
import yaml

from fleet_alerting.config import load_config
from fleet_alerting.core.board import KEY
from fleet_alerting.core.short_ids import SHORT, full_id
from fleet_alerting.store.database import Store
from tests.fakes.http import FakeServer, Request, Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.servers import require_binary, wait_until
from tests.test_blackbox import write_config
from tests.test_board import shown as rendered

HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=30000"]
HEADLESS += ["--window-size=1600,1200"]


class Api(FakeServer):
    """The Fleet API's health check, down; and a device that answers."""

    def handle(self, request: Request) -> Response:
        if request.path == "/api/healthz":
            return Response(503, {"status": "down"})
        return Response(200, "ok")


def board_versions(but: Collection[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """The versions of the board, newest first (its id and markdown), but those in `but` (other
    tests' runs on the same Prefect server made versions of the same key)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async def read() -> list[tuple[str, str]]:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[KEY])),
                sort=ArtifactSort.CREATED_DESC,
            )
        return [(str(a.id), str(a.data)) for a in found if (str(a.id), str(a.data)) not in but]

    return asyncio.run(read())


def row_of(markdown: str, short_id: str) -> dict[str, str]:
    """The board's row of one incident, as a markdown renderer shows it."""
    header, *rows = rendered(markdown).rows
    (row,) = [dict(zip(header, cells, strict=True)) for cells in rows if short_id in cells]
    return row


def page_text(chromium: str, url: str, wanted: str) -> str:
    """The text headless Chromium shows at `url`, once it shows `wanted` (the UI loads the
    artifact after the page: a busy machine may need a second look)."""
    seen = ""

    def shows() -> bool:
        nonlocal seen
        page = subprocess.run(
            [chromium, *HEADLESS, "--dump-dom", url], capture_output=True, text=True, timeout=180
        )
        seen = " ".join(re.sub(r"<[^>]*>", " ", page.stdout).split())
        return wanted in seen

    try:
        wait_until(shows, 120, f"{wanted!r} on {url}")
    except TimeoutError:
        raise AssertionError(f"{wanted!r} not shown at {url}: {seen[:3000]}") from None
    return seen


@pytest.mark.integration
def test_the_board_shows_open_incidents_in_the_prefect_ui(
    prefect_api: str, config_file: Path
) -> None:
    from fleet_alerting.flows import get_flow
    from fleet_alerting.surfaces.cli import main

    chromium = require_binary("chromium")
    blackbox_probe = get_flow("blackbox-probe")
    ui = prefect_api.removesuffix("/api")
    before = board_versions()
    with Api() as api, SlackWebhookServer() as slack, PagerDutyServer() as pd:
        write_config(config_file, api.url, slack.url, pd.url, open_after=1)
        asyncio.run(blackbox_probe(str(config_file)))  # opens and pages at once
        assert [e["event_action"] for e in pd.events] == ["trigger"]
        with Store(config_file.parent / "state.sqlite") as store:
            (incident,) = [i for i in store.incidents() if i.source == "blackbox"]
        short_id = full_id(incident.key)[:SHORT]

        (first,) = board_versions(but=before)
        cells = row_of(first[1], short_id)
        assert cells["incident"].startswith(f"{incident.key} — Fleet API failed: HTTP 503")
        assert (cells["id"], cells["severity"]) == (short_id, "critical")
        assert (cells["paged"], cells["acknowledged"]) == ("pagerduty (step 2 of 2)", "—")
        shown = page_text(chromium, f"{ui}/artifacts/artifact/{first[0]}", short_id)
        assert "**" not in shown and "| ---" not in shown  # rendered as a table, not as source
        row = shown[shown.index(short_id) - 80 :]
        assert "critical" in row and "pagerduty (step" in row, row[:600]
        assert incident.key in shown

        # an operator acknowledges by the board's id; the next run shows it
        assert main(["ack", short_id, "--config", str(config_file), "--as", "ana"]) == 0
        asyncio.run(blackbox_probe(str(config_file)))

    latest, earlier = board_versions(but=before)
    assert earlier == first  # the first run's version is kept, the key's latest is the new one
    assert row_of(latest[1], short_id)["acknowledged"].startswith("ana, ")
    shown = page_text(chromium, f"{ui}/artifacts/artifact/{latest[0]}", "ana, ")
    assert "critical" in shown and "pagerduty" in shown
    # the key's page lists both versions, newest first
    listed = page_text(chromium, f"{ui}/artifacts/key/{KEY}", earlier[0][:8])
    assert listed.index(latest[0][:8]) < listed.index(earlier[0][:8])


def test_a_board_that_cannot_be_read_is_a_warning(
    config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The run did its job: a store the board cannot read (here: none at the configured path)
    is a line in the run's log, not a failure — and no store is created by reading."""
    from fleet_alerting.tasks.board import publish_incident_board

    config = {"state": {"path": "nowhere.sqlite"}, "notify": {"dry_run": True}}
    config_file.write_text(yaml.safe_dump(config))
    asyncio.run(publish_incident_board(load_config(config_file)))
    assert "incident board not updated: no store at" in caplog.text
    assert not (config_file.parent / "nowhere.sqlite").exists()


class Switchable(FakeServer):
    """The Fleet API's health check, up until `down` is set."""

    down = False

    def handle(self, request: Request) -> Response:
        if request.path == "/api/healthz" and self.down:
            return Response(503, {"status": "down"})
        return Response(200, "ok")


@pytest.mark.integration
def test_runs_add_a_board_version_only_when_the_board_changed(
    prefect_api: str, config_file: Path
) -> None:
    """Runs that find the same open incidents make no new version (each would be a write to the
    Prefect server for nothing); an incident that opens makes one; a run with nothing to tell
    keeps no notifications artifact."""
    from fleet_alerting.flows import get_flow

    blackbox_probe = get_flow("blackbox-probe")
    before = board_versions()
    with Switchable() as api, SlackWebhookServer() as slack, PagerDutyServer() as pd:
        write_config(config_file, api.url, slack.url, pd.url, open_after=1)
        for _ in range(3):  # the config's missing targets file opens a warning in one of them
            asyncio.run(blackbox_probe(str(config_file)))
        settled, told = board_versions(but=before), notifications_artifacts()
        for _ in range(3):
            asyncio.run(blackbox_probe(str(config_file)))
        assert board_versions(but=before) == settled
        assert notifications_artifacts() == told
        # another process (another store on the same server) publishes its board: the next run
        # puts this store's back on top, changed or not
        asyncio.run(publish_as_another_process("**a board of another store**"))
        asyncio.run(blackbox_probe(str(config_file)))
        ours, theirs, *rest = board_versions(but=before)
        assert theirs[1] == "**a board of another store**" and rest == settled
        assert ours[1].split(" · as of")[0] == settled[0][1].split(" · as of")[0]
        settled = [ours, theirs, *rest]
        api.down = True
        asyncio.run(blackbox_probe(str(config_file)))
        assert [e["event_action"] for e in pd.events] == ["trigger"]
    latest, *earlier = board_versions(but=before)
    assert earlier == settled and "1 critical" in latest[1]
    assert len(notifications_artifacts()) == len(told) + 1  # the run that paged


@pytest.mark.integration
def test_a_page_no_pager_accepted_is_not_shown_as_paged(
    prefect_api: str, config_file: Path
) -> None:
    """PagerDuty refuses the page (400: a dead letter): the board does not say it paged."""
    from fleet_alerting.flows import get_flow

    blackbox_probe = get_flow("blackbox-probe")
    before = board_versions()
    with Api() as api, SlackWebhookServer() as slack, PagerDutyServer() as pd:
        write_config(config_file, api.url, slack.url, pd.url, open_after=1)
        pd.fail_next = [Response(400, {"status": "invalid event", "message": "bad routing key"})]
        state = asyncio.run(blackbox_probe(str(config_file), return_state=True))
        assert state.is_failed() and pd.events == []  # the run fails: its page is a dead letter
    with Store(config_file.parent / "state.sqlite") as store:
        (incident,) = [i for i in store.incidents() if i.source == "blackbox"]
    (latest, *_) = board_versions(but=before)
    paged = row_of(latest[1], full_id(incident.key)[:SHORT])["paged"]
    assert paged == "pagerduty (page failed: a dead letter) (step 2 of 2)"


async def publish_as_another_process(markdown: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    async with get_client() as client:
        await client.create_artifact(ArtifactCreate(key=KEY, type="markdown", data=markdown))


def notifications_artifacts() -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read() -> list[str]:
        async with get_client() as client:
            key = ArtifactFilter(key=ArtifactFilterKey(any_=["blackbox-probe-notifications"]))
            return [str(a.data) for a in await client.read_artifacts(artifact_filter=key)]

    return asyncio.run(read())
