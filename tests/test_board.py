"""The incident board's rendering (core/board.py), table-driven: tests/cases/board.yaml gives
rows and what a markdown renderer shows of them — rendered with markdown-it (CommonMark with GFM
tables, raw HTML allowed: the most a renderer could read as markup), then read back as HTML.
tests/cases/board_publishing.yaml: when a run publishes a new version."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from markdown_it import MarkdownIt

from fleet_alerting.core.board import (
    COLUMNS,
    Board,
    BoardRow,
    Published,
    render,
    worth_publishing,
)
from fleet_alerting.core.incidents import State
from fleet_alerting.core.short_ids import SHORT, full_id
from fleet_alerting.core.signals import Severity

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "board.yaml").read_text())
PLACEHOLDERS = {"{{LONG}}": "x" * 500, "{{CUT}}": "x" * 199 + "…"}
# what the board itself writes as markup: the table, the headline's and critical's bold, the id
ALLOWED_TAGS = {"p", "strong", "table", "thead", "tbody", "tr", "th", "td", "code"}
TIMES = ("since", "acked_at", "silenced_until", "snoozed_until", "muted_until")


class Shown(HTMLParser):
    """The paragraphs' text, the table's cells per row, and every tag, of rendered HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self.rows: list[list[str]] = []
        self.tags: set[str] = set()
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "tr":
            self.rows.append([])
        if tag in ("p", "td", "th"):
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if self._text is None:
            return
        if tag == "p":
            self.paragraphs.append("".join(self._text))
            self._text = None
        elif tag in ("td", "th"):
            self.rows[-1].append("".join(self._text))
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def shown(markdown: str) -> Shown:
    parser = Shown()
    parser.feed(MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown))
    return parser


def filled(value: Any) -> Any:
    if isinstance(value, str):
        for placeholder, text in PLACEHOLDERS.items():
            value = value.replace(placeholder, text)
    return value


def board_row(spec: dict[str, Any]) -> BoardRow:
    fields = {name: filled(value) for name, value in spec.items()}
    for name in TIMES:
        if fields.get(name):
            fields[name] = datetime.fromisoformat(fields[name])
    fields["severity"] = Severity(fields["severity"])
    fields["state"] = State(fields["state"])
    fields["paged"] = tuple(fields.get("paged", ()))
    fields["unsent"] = tuple(sorted(fields.get("unsent", {}).items()))
    fields.setdefault("short_id", full_id(fields["key"])[:SHORT])
    return BoardRow(**fields)


def counts_of(case: dict[str, Any], rows: list[BoardRow]) -> dict[str, int]:
    if "counts" in case:
        return case["counts"]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.severity.value] = counts.get(row.severity.value, 0) + 1
    return counts


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_board_table(case: dict[str, Any]) -> None:
    rows = [board_row(spec) for spec in case["rows"]]
    now = datetime.fromisoformat(case["now"])
    markdown = render(Board(rows, counts_of(case, rows)), now, case.get("max_rows", 200))
    page = shown(markdown)
    expect = case["expect"]
    if "headline" in expect:
        assert page.paragraphs[0] == expect["headline"]
    if "text" in expect:
        assert expect["text"] in page.paragraphs
    assert page.tags <= ALLOWED_TAGS, markdown  # no markup of the labels' own became a tag
    if not expect["rows"]:
        assert page.rows == []
        return
    header, *body = page.rows
    assert header == list(COLUMNS)
    assert all(len(cells) == len(COLUMNS) for cells in body), markdown
    assert len(body) == len(expect["rows"]), markdown
    for cells, wanted in zip(body, expect["rows"], strict=True):
        got = dict(zip(COLUMNS, cells, strict=True))
        incident = got["incident"]
        if "—" not in filled(wanted.get("incident", "")):
            got["incident"] = incident.split(" — ")[0]  # the key (the summary is not compared)
        assert {column: got[column] for column in wanted} == {
            column: filled(text) for column, text in wanted.items()
        }


def test_every_line_of_the_board_is_one_line_of_markdown() -> None:
    """A label's line break cannot end a table row early: the table is the headline, a blank
    line, the header, the rule and one line per row."""
    attack = next(c for c in CASES if c["name"].startswith("markup in labels"))
    rows = [board_row(spec) for spec in attack["rows"]]
    markdown = render(Board(rows, counts_of(attack, rows)), datetime.fromisoformat(attack["now"]))
    assert len(markdown.split("\n")) == 2 + 2 + len(rows)
    assert "<" not in markdown and ">" not in markdown.split("\n", 1)[1]


def test_a_row_names_the_pagers_of_the_step_the_incident_is_on() -> None:
    """Paged on step 1 (pagerduty) and again on step 2 (oncall_secondary): step 2's pager is the
    one paged now; the operators' acts are carried as they are."""
    from dataclasses import replace

    from fleet_alerting.core.board import row_of
    from fleet_alerting.core.incidents import Acts, Escalation, Page
    from tests.test_board_store import incident as stored

    t0 = datetime.fromisoformat("2026-12-06T14:00:00+00:00")
    t1 = datetime.fromisoformat("2026-12-06T14:30:00+00:00")
    pages = (Page("pagerduty", t0, 1), Page("oncall_secondary", t1, 2))
    acts = Acts(acked_by="ana", acked_at=t1, muted_by="muted by window nightly", muted_until=t1)
    incident = replace(
        stored("k", "critical", State.paged, minutes_ago=60),  # since 14:00
        paged_via=("pagerduty", "oncall_secondary"),
        acts=acts,
        escalation=Escalation(step=2, steps=3, pages=pages),
    )
    row = row_of(incident, "abcdef", {"pagerduty": "queued", "oncall_secondary": "dead"})
    assert (row.paged, row.step, row.steps) == (("oncall_secondary",), 2, 3)
    assert row.unsent == (("oncall_secondary", "dead"),)  # step 1's pager is not shown
    assert (row.acked_by, row.acked_at, row.muted_by, row.muted_until) == (
        "ana",
        t1,
        acts.muted_by,
        t1,
    )
    assert (row.since, row.summary, row.short_id) == (t0, "k down", "abcdef")


PUBLISHING = yaml.safe_load((Path(__file__).parent / "cases" / "board_publishing.yaml").read_text())
SINCE = datetime.fromisoformat("2026-12-06T14:00:00+00:00")
ENDS = datetime.fromisoformat("2026-12-06T15:01:00+00:00")  # of a snooze, silence, mute
ROWS = {
    "a": BoardRow("a", "aaaaaa", Severity.critical, State.firing, "blackbox", SINCE),
    "b": BoardRow("b", "bbbbbb", Severity.critical, State.firing, "blackbox", SINCE),
}
ROWS["a acked"] = replace(ROWS["a"], acked_by="ana", acked_at=ENDS)
ROWS["a snoozed"] = replace(ROWS["a"], snoozed_until=ENDS)
ROWS["a silenced"] = replace(ROWS["a"], silenced_by="ana", silenced_until=ENDS)
ROWS["a muted"] = replace(ROWS["a"], muted_by="window nightly", muted_until=ENDS)


def board_of(names: list[str], counts: dict[str, int] | None) -> Board:
    return Board([ROWS[n] for n in names], counts or {"critical": len(names)})


@pytest.mark.parametrize("case", PUBLISHING, ids=[c["name"] for c in PUBLISHING])
def test_when_a_run_publishes_the_board(case: dict[str, Any]) -> None:
    last = case.get("last")
    published = last and Published(
        board_of(last["rows"], last.get("counts")), datetime.fromisoformat(last["at"])
    )
    board = board_of(case["board"], case.get("counts"))
    now = datetime.fromisoformat(case["now"])
    assert worth_publishing(board, now, published or None) is case["publish"]
