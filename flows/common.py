"""What every flow does around its source: load the config, report the run in the Prefect UI."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from fleet_alerting.config import Config, ConfigError, load_config
from fleet_alerting.config.secrets import install_log_redaction
from fleet_alerting.core.channels import Channel, pager_of
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.fleet import SOURCE as FLEET
from fleet_alerting.core.grouping import PREFIX as GROUP
from fleet_alerting.core.incidents import NOTIFY_TEST_SOURCE, Incident, Kind, State
from fleet_alerting.core.policy import Evaluation
from fleet_alerting.core.wording import count
from fleet_alerting.delivery.drain import DrainReport
from fleet_alerting.store.database import Store
from fleet_alerting.store.errors import StoreError
from fleet_alerting.store.outbox import OutboxItem
from fleet_alerting.tasks.board import publish_board
from fleet_alerting.tasks.runtime import run_logger, tracked

DEFAULT_CONFIG = "config/example.yaml"


class RunFailed(Exception):
    """The run itself could not do its job (as opposed to finding failures, which is its job)."""


class RunIncomplete(RunFailed):
    """The run observed and recorded, but did not finish what it owed: a page is undelivered,
    or the store failed while delivering. What is queued stays queued for the next run."""

    def __init__(self, reason: str, result: Summary):
        super().__init__(reason)
        self.result = result  # what the run did (its counters and sentence)


@dataclass(frozen=True)
class Loaded:
    config: Config
    stale: str | None = None  # why the config read last is used: the file is invalid now


_last_good: dict[str, tuple[Config, datetime]] = {}  # serve's process: per config path


def load(config_path: str) -> Loaded:
    """The config, and a check that its store can be written before anything is observed. In a
    long-lived process (`serve`), a config file made invalid by an edit does not stop the watches:
    the config read last is used and the run fails at its end saying why — the alerter never goes
    silent for a typo (a plain run, a new process, has none to fall back on)."""
    install_log_redaction()
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        if config_path not in _last_good:
            raise RunFailed(f"invalid configuration:\n{exc}") from None
        config, read_at = _last_good[config_path]
        read = f"{read_at:%Y-%m-%d %H:%M:%S}Z"
        stale = f"invalid configuration (ran with the one read {read}):\n{exc}"
        run_logger().error("%s", stale)
    else:
        stale = None
        _last_good[config_path] = (config, utcnow())
    with Store(config.state) as store:
        store.check_writable()
    return Loaded(config, stale)


P = ParamSpec("P")
R = TypeVar("R")


def store_errors_fail_the_run(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """A store that cannot be used, or a run that could not do its job (`RunFailed`: an invalid
    config, an undelivered page), fails the run with its one-line message (which file, what to
    do) as the run's state, without a traceback: there is no bug to debug."""

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except (StoreError, RunFailed) as exc:
            if not tracked():
                raise  # a plain run: the CLI prints it in one line
            from prefect.states import Failed

            return Failed(message=str(exc))  # type: ignore[return-value]

    return run


def summarize(evaluation: Evaluation, report: DrainReport) -> dict[str, int]:
    """Counters of what this run changed. A record rewritten only because its observation reads
    differently (a permit-join "open for 3m" that is "open for 4m" the next run) is not a change:
    `opened_or_changed` counts incidents that opened or paged in this run. Of those paged in this
    run (`_moved`), `paged` counts the ones whose page a pager took; `page_queued` and `page_dead`
    those whose page still waits or was given up."""
    opened, paged = _moved(evaluation)
    undelivered = undelivered_page_keys(report)
    outcomes = [page_outcome(i, undelivered) for i in paged]
    return {
        "opened_or_changed": len({i.key for i in opened + paged}),
        "opened": len(opened),
        "paged": outcomes.count("paged"),
        "page_queued": outcomes.count("page_queued"),
        "page_dead": outcomes.count("page_dead"),
        "resolved": sum(i.state == State.resolved for i in evaluation.incidents),
        "notifications_sent": len(report.sent),
        "notifications_queued": len(report.retrying) + len(report.held),
        "dead_letters": len(report.dead),
    }


def page_outcome(incident: Incident, undelivered: tuple[set[str], set[str]]) -> str:
    """`paged`, or `page_queued` / `page_dead` when its page (a member's: its group's, which
    pages for it) is among the (queued, dead) incident keys of `undelivered_page_keys`."""
    queued, dead = undelivered
    whose = incident.group or incident.key
    return "page_dead" if whose in dead else "page_queued" if whose in queued else "paged"


def undelivered(report: DrainReport) -> list[str]:
    """Why a run that delivered this report must not end green: per pager, the pages still owed
    after the drain (queued after a failure — in this run, or in an earlier one and waiting for
    their retry) and those this run gave up on; and the store failing under the drain. A Slack
    message that waits is the artifact's business."""
    reasons = []
    channels = [i.notification.channel for i in report.owed_pages]
    channels += [i.notification.channel for i, _ in report.dead]
    for pager in (c for c in dict.fromkeys(channels) if pager_of(c)):
        owed = [i for i in report.owed_pages if i.notification.channel == pager]
        dead = [why for i, why in report.dead if i.notification.channel == pager]
        now = [why for i, why in report.retrying if i.notification.channel == pager]
        if not (owed or dead):
            continue
        why = (now + dead + [str(i.last_error) for i in owed])[0]
        left = [f"{len(owed)} queued for the next run"] if owed else []
        left += [f"{len(dead)} dead letter(s)"] if dead else []
        reasons.append(f"page to {pager} undelivered: {why} ({', '.join(left)})")
    for error in dict.fromkeys(report.store_errors):
        reasons.append(f"store failed while delivering: {error}")
    return [" ".join(reason.split()) for reason in reasons]  # one line (psycopg's span several)


def _moved(evaluation: Evaluation) -> tuple[list[Incident], list[Incident]]:
    """The incidents that opened in this run (the engine stamps `opened_at` with the run's time,
    as it does `changed_at`), and those it queued a page for — a page again included (an
    acknowledgement timed out, a mute ended); not a group's member, whose group pages for it,
    nor a record whose step came due while an acknowledgement or silence held its page."""
    opened = [
        i for i in evaluation.incidents if i.is_open and i.opened_at and i.opened_at == i.changed_at
    ]
    paging = {
        n.incident.key
        for n in evaluation.notifications
        if n.kind == Kind.paged and pager_of(n.channel) is not None
    }
    paged = [i for i in evaluation.incidents if i.key in paging]
    return opened, paged


Summary = dict[str, int | str]


def finish(
    observed: str,
    counters: dict[str, int],
    evaluation: Evaluation,
    report: DrainReport,
    stale: str | None = None,
) -> Summary:
    """The run's result: its counters (structured: the flow's return value) and `summary`, one
    sentence for people — logged, and `run`'s last line. RunIncomplete when `undelivered`
    names a reason, or the config file is invalid (`stale`; the result goes with it)."""
    counters = counters | summarize(evaluation, report)
    sentence = f"{observed}; {what_changed(counters, report)}"
    run_logger().info("%s", sentence)
    result: Summary = {**counters, "summary": sentence}
    reasons = [*undelivered(report), *([stale] if stale else [])]  # a page owed first
    if reasons:  # a page owed or the store lost: the run says so (Failed, exit 1)
        raise RunIncomplete("; ".join(reasons), result)
    return result


def what_changed(counters: dict[str, int], report: DrainReport) -> str:
    """`opened 1 incident, paged 1, told slack and mirror`, or `nothing to tell`."""
    moved = [(said, n) for said, n in changes(counters) if n]
    parts = [said.format(n if i else count(n, "incident")) for i, (said, n) in enumerate(moved)]
    sent = [i.notification for i, _ in report.sent]
    if told := channel_words({n.channel for n in sent if n.incident.source != NOTIFY_TEST_SOURCE}):
        parts.append(f"told {told}")
    if tests := channel_words({n.channel for n in sent if n.incident.source == NOTIFY_TEST_SOURCE}):
        parts.append(f"delivered to {tests} what a notify-test left queued")
    if counters["notifications_queued"]:
        parts.append(f"{count(counters['notifications_queued'], 'message')} still queued")
    if counters["dead_letters"]:
        parts.append(count(counters["dead_letters"], "dead letter"))
    return ", ".join(parts) or "nothing to tell"


def channel_words(channels: set[str]) -> str:
    """`slack, mirror and pagerduty` (named pagers by their channel: pagerduty_secondary)."""
    words = [word for channel, word in CHANNEL_WORDS.items() if channel in channels]
    words += sorted(channels - CHANNEL_WORDS.keys())
    return " and ".join(filter(None, [", ".join(words[:-1]), words[-1]])) if words else ""


def changes(counters: dict[str, int]) -> list[tuple[str, int]]:
    """What opened, paged and resolved, as phrases with the count to put in: an incident whose
    page no pager took in this run is not said to be paged."""
    return [
        ("opened {}", counters["opened"]),
        ("paged {}", counters["paged"]),
        ("page queued for {} (not delivered)", counters["page_queued"]),
        ("page undelivered for {} (dead letter)", counters["page_dead"]),
        ("resolved {}", counters["resolved"]),
    ]


def undelivered_page_keys(report: DrainReport) -> tuple[set[str], set[str]]:
    """The incidents with a page queued after this drain (left queued by it, or failed before and
    waiting for its retry), and those whose page it gave up on."""

    def pages(items: list[OutboxItem]) -> set[str]:
        return {
            i.notification.incident.key
            for i in items
            if i.notification.kind == Kind.paged and pager_of(i.notification.channel)
        }

    dead = pages([i for i, _ in report.dead])
    queued = pages([i for i, _ in report.retrying] + report.held + report.owed_pages) - dead
    return queued, dead


CHANNEL_WORDS = {
    Channel.slack: "slack",
    Channel.slack_mirror: "mirror",
    Channel.pagerduty: "pagerduty",
    Channel.oncall: "oncall",
}


async def publish(
    config: Config,
    key: str,
    rows: list[dict[str, Any]],
    evaluation: Evaluation,
    report: DrainReport,
) -> None:
    """A table of what this run observed, and what it told whom when it told anyone (in the
    Prefect UI; a plain run has no UI to show it in)."""
    if not tracked():
        return
    from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

    undelivered = undelivered_page_keys(report)
    changes = {i.key: incident_cell(i, undelivered) for i in evaluation.incidents}
    table = [row | {"incident": changes.get(row.get("key", ""), "")} for row in rows]
    for row in table:
        row.pop("key", None)
    await acreate_table_artifact(
        table or [{"result": "nothing observed"}],
        key=key,
        description=f"{key}: observations and incident changes",
    )
    told = notifications_markdown(report) + storm_markdown(evaluation, undelivered)
    if told != NOTHING_DUE:  # a version saying "nothing" every run would cost the server alone
        await acreate_markdown_artifact(
            told,
            key=f"{key}-notifications",
            description=f"{key}: notifications sent, queued and dead",
        )
    await publish_board(config)  # every watch's open incidents in one view (tasks/board.py)


def incident_cell(incident: Incident, undelivered: tuple[set[str], set[str]]) -> str:
    """An incident's state for the run's table — `paged` only once a pager took the page — with
    who silences or tells for it."""
    state = incident.state.value
    if incident.state == State.paged:
        state = PAGE_CELLS[page_outcome(incident, undelivered)]
    if incident.inhibited_by:
        return f"{state}, inhibited by {incident.inhibited_by}"
    if incident.group:
        return f"{state}, told in group {incident.group}"
    return state


PAGE_CELLS = {
    "paged": "paged",
    "page_queued": "page queued (not delivered)",
    "page_dead": "page undelivered (dead letter)",
}


def storm_markdown(evaluation: Evaluation, undelivered: tuple[set[str], set[str]]) -> str:
    """Fleet-level and group incidents that changed, and the incidents silenced by a cause."""
    changed = [
        i
        for i in evaluation.incidents
        if i.source == FLEET or i.source.startswith(GROUP) or i.inhibited_by or i.group
    ]
    if not changed:
        return ""
    lines = ["", "", "| incident | state | summary |", "|---|---|---|"]
    for i in changed[:200]:
        summary = i.signal.summary.replace("|", "\\|")[:300]
        lines.append(f"| `{i.key}` | {incident_cell(i, undelivered)} | {summary} |")
    if len(changed) > 200:
        lines.append(f"| … | | and {len(changed) - 200} more |")
    return "\n".join(lines)


NOTHING_DUE = "No notifications were due in this run."


def notifications_markdown(report: DrainReport) -> str:
    lines = ["| outcome | channel | kind | incident | detail |", "|---|---|---|---|---|"]
    groups: list[tuple[str, list[tuple[Any, str]]]] = [
        ("sent", report.sent),
        ("queued (will retry)", report.retrying),
        ("held behind an earlier message", [(item, "") for item in report.held]),
        ("dead letter", report.dead),
        ("withdrawn (resolved before the pager answered)", report.withdrawn),
    ]
    for outcome, items in groups:
        for item, detail in items:
            n = item.notification
            cell = detail.replace("|", "\\|")
            lines.append(f"| {outcome} | {n.channel} | {n.kind} | `{n.incident.key}` | {cell} |")
    warnings = [f"> **Warning:** {w}" for w in report.warnings]
    if len(lines) == 2:
        return "\n\n".join([*warnings, NOTHING_DUE])
    return "\n\n".join([*warnings, "\n".join(lines)])
