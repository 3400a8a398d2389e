"""The incident board: the open incidents as one markdown table for the Prefect UI — severity,
since when, who is paged, who acknowledged, what silences or mutes them. Pure: rows in, markdown
out, `now` a parameter.

Everything in a cell comes from outside (labels, summaries, operator names) and is escaped, so a
`|`, a backtick, a newline or `<script>` in a label stays text in its own cell.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.escalation import current_pages
from fleet_alerting.core.incidents import Incident, State
from fleet_alerting.core.signals import Severity

KEY = "incident-board"
MAX_ROWS = 200  # the artifact stays readable (and small) in a storm of thousands
MAX_CELL = 200  # characters of outside text per cell
SEVERITY_ORDER = (Severity.critical, Severity.warning, Severity.info)
COLUMNS = ("severity", "since", "id", "incident", "source", "paged", "acknowledged", "muted")
NOTHING = "—"
# a pager that has not accepted the page: the board does not say it was paged
UNSENT = {
    "queued": " (page not delivered yet)",
    "dead": " (page failed: a dead letter)",
    "dropped": " (page dropped by an operator)",
}
# an unchanged board is published again after this long: its ages and "as of" stay that fresh
REFRESH = timedelta(minutes=5)


@dataclass(frozen=True)
class BoardRow:
    """What the board shows of one open incident."""

    key: str
    short_id: str
    severity: Severity
    state: State
    source: str
    since: datetime  # the failure's onset
    summary: str = ""
    paged: tuple[str, ...] = ()  # the pagers of the escalation step it is on
    unsent: tuple[tuple[str, str], ...] = ()  # (pager, queued | dead): its page not accepted
    step: int = 0
    steps: int = 0
    acked_by: str | None = None
    acked_at: datetime | None = None
    silenced_by: str | None = None
    silenced_until: datetime | None = None
    snoozed_until: datetime | None = None
    muted_by: str | None = None  # a matcher silence or maintenance window, as it tells itself
    muted_until: datetime | None = None
    inhibited_by: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class Board:
    """The rows to show (at most MAX_ROWS of them) and how many open incidents there are in all,
    per severity."""

    rows: Sequence[BoardRow]
    open_per_severity: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.open_per_severity.values())


@dataclass(frozen=True)
class Published:
    """The board as last published, and when."""

    board: Board
    at: datetime


def worth_publishing(
    board: Board, now: datetime, last: Published | None, refresh: timedelta = REFRESH
) -> bool:
    """A new version when what the board shows changed — its rows, its counts, a silence, snooze
    or mute that ran out since — or the last one is `refresh` old; an unchanged board each run
    would cost the Prefect server a write and a version nobody needs."""
    if last is None or board != last.board or now - last.at >= refresh:
        return True
    ends = (end for r in board.rows for end in (r.silenced_until, r.snoozed_until, r.muted_until))
    return any(end is not None and last.at < end <= now for end in ends)


# the operators' acts a row shows, under the same names as in `Acts`
ACTS_SHOWN = (
    "acked_by",
    "acked_at",
    "silenced_by",
    "silenced_until",
    "snoozed_until",
    "muted_by",
    "muted_until",
)


def row_of(incident: Incident, short_id: str, unsent: Mapping[str, str]) -> BoardRow:
    """The board's row of an open incident: who is paged is the pagers of the step it is on
    (those it paged last time that step ran); `unsent`: pager → `queued` or `dead`, the pagers
    that have not accepted its episode's page (a group's member: its group's page)."""
    esc = incident.escalation
    paged = current_pages(incident) or (incident.paged_via if incident.state == State.paged else ())
    return BoardRow(
        incident.key,
        short_id,
        incident.severity,
        incident.state,
        incident.source,
        since=incident.onset,
        summary=incident.signal.summary,
        paged=paged,
        unsent=tuple(sorted((p, unsent[p]) for p in paged if p in unsent)),
        step=esc.step,
        steps=esc.steps,
        inhibited_by=incident.inhibited_by,
        group=incident.group,
        **{name: getattr(incident.acts, name) for name in ACTS_SHOWN},
    )


def severity_rank(severity: str) -> int:
    """Critical first; a severity this code does not know after the known ones."""
    known = [s.value for s in SEVERITY_ORDER]
    return known.index(severity) if severity in known else len(known)


def ordered(rows: Iterable[BoardRow]) -> list[BoardRow]:
    """Critical first, then the oldest failure first (the key breaks ties, so the order is
    stable from run to run)."""
    return sorted(rows, key=lambda r: (severity_rank(r.severity), r.since, r.key))


def render(board: Board, now: datetime, max_rows: int = MAX_ROWS) -> str:
    """The board as markdown: a headline, and a table of the first `max_rows` rows in board
    order with a last row saying how many more there are."""
    headline = f"**{_open_count(board)}** · as of {_at(now)}"
    if not board.rows:
        return f"{headline}\n\nNo open incidents."
    shown = ordered(board.rows)[:max_rows]
    lines = [
        headline,
        "",
        _table_line(COLUMNS),
        "|" + "---|" * len(COLUMNS),
        *(_line(row, now) for row in shown),
    ]
    hidden = board.total - len(shown)
    if hidden > 0:
        more = ["…", "", "", f"and {hidden} more"]
        lines.append(_table_line([*more, *[""] * (len(COLUMNS) - len(more))]))
    return "\n".join(lines)


def _open_count(board: Board) -> str:
    total = board.total
    noun = "open incident" if total == 1 else "open incidents"
    counts = sorted(board.open_per_severity.items(), key=lambda item: severity_rank(item[0]))
    parts = [f"{n} {cell(severity)}" for severity, n in counts if n]
    return f"{total} {noun}" + (f": {', '.join(parts)}" if parts else "")


def _line(row: BoardRow, now: datetime) -> str:
    severity = cell(row.severity)
    cells = (
        f"**{severity}**" if row.severity == Severity.critical else severity,
        f"{_at(row.since)} ({format_duration(now - row.since)})",
        f"`{row.short_id}`" if _SAFE_ID.fullmatch(row.short_id) else cell(row.short_id),
        cell(row.key) + (f" — {cell(row.summary)}" if row.summary else ""),
        cell(row.source),
        _paged(row),
        _acknowledged(row, now),
        _muted(row, now),
    )
    return _table_line(cells)


def _table_line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _paged(row: BoardRow) -> str:
    """The pagers of the step it is on, and the step (a step that only tells Slack: the step)."""
    step = f"step {row.step} of {row.steps}" if row.steps else ""
    if not row.paged:
        return step or NOTHING
    unsent = dict(row.unsent)
    pagers = ", ".join(cell(p) + UNSENT.get(unsent.get(p, ""), "") for p in row.paged)
    return f"{pagers} ({step})" if step else pagers


def _acknowledged(row: BoardRow, now: datetime) -> str:
    if row.acked_by is None:
        return NOTHING
    if row.acked_at is None:
        return cell(row.acked_by)
    return f"{cell(row.acked_by)}, {_at(row.acked_at)} ({format_duration(now - row.acked_at)} ago)"


def _muted(row: BoardRow, now: datetime) -> str:
    """What holds its notifications back: an operator's silence or snooze, a silence by
    matchers or a maintenance window, a cause that inhibits it, the group that tells for it."""
    snoozed = row.snoozed_until if row.snoozed_until and row.snoozed_until > now else None
    said = [
        row.silenced_by and f"silenced by {cell(row.silenced_by)} {_until(row.silenced_until)}",
        snoozed and f"snoozed until {_at(snoozed)}",
        row.muted_by and " ".join(filter(None, [cell(row.muted_by), _until(row.muted_until, "")])),
        row.inhibited_by and f"inhibited by {cell(row.inhibited_by)}",
        row.group and f"told in group {cell(row.group)}",
    ]
    return "; ".join(filter(None, said)) or NOTHING


def _until(moment: datetime | None, otherwise: str = "until resolved") -> str:
    return f"until {_at(moment)}" if moment else otherwise


def _at(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else NOTHING


_SAFE_ID = re.compile(r"[a-z2-7]{1,52}")
# Every ASCII punctuation character that markdown may read as markup: escaped with a backslash
# (CommonMark lets any of them be), except &, < and > which become entities — text in any
# renderer, raw HTML allowed or not.
_MARKUP = re.compile(
    "[" + re.escape(string.punctuation.replace("&", "").replace("<", "").replace(">", "")) + "]"
)
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# bidirectional overrides and isolates: they would reorder the text around them
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def cell(text: str, limit: int = MAX_CELL) -> str:
    """Outside text as the content of one table cell: one line (any line break or control
    character a space), at most `limit` characters, and no character read as markup."""
    flat = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)
    flat = " ".join(_BIDI.sub("", flat).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    escaped = _MARKUP.sub(lambda m: "\\" + m.group(), flat)
    return re.sub("[&<>]", lambda m: _ENTITIES[m.group()], escaped)
