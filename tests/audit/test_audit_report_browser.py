"""The review document as people see it: rendered by headless Chromium, text and layout checked.

The screenshot stays in the test's output directory (pytest's tmp_path) for a look."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from audit_helpers import CHECK_CASES, build_input

from fleet_alerting.audit.report import write_report
from fleet_alerting.audit.run import run_audit

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make servers)"),
]


class _Text(HTMLParser):
    """Visible text per element, and every id and in-page link of the rendered DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.images: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag in ("style", "script", "title"):
            self._skip += 1
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and (a.get("href") or "").startswith("#"):
            self.links.append(a["href"][1:])
        if tag == "img":
            self.images.append(a.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(data.strip())

    @property
    def text(self) -> str:
        return " ".join(self.parts)


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )


def _quarters(out: Path) -> Path:
    """Q1: an unused receiver; Q2: it is gone. Both: 12 rules without runbook_url and a paging
    receiver that does not exist (the root cause of every critical that never pages)."""
    rules = [
        {
            "alert": f"Device{i:02d}Down",
            "expr": f'up{{job="d{i}"}} == 0',
            "labels": {"severity": "critical" if i < 3 else "warning"},
            "annotations": {"summary": "s"},
        }
        for i in range(12)
    ]
    am = CHECK_CASES["base"]["am"]
    exp = {
        "paging_receivers": ["pagerduty-fleet"],
        "severities": {"critical": {"pages": True}, "warning": {"pages": False}},
    }
    old = {**am, "receivers": [*am["receivers"], {"name": "old-email"}]}
    for now, config in (
        (datetime(2026, 1, 2, tzinfo=UTC), old),
        (datetime(2026, 4, 2, tzinfo=UTC), am),
    ):
        inp = build_input({"am": config, "rules": rules, "expectations": exp})
        inp.now = now
        written = write_report(run_audit(inp), out)
    return written.directory / "report.html"


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    page = _quarters(tmp_path / "reports")
    dom = _chromium("--dump-dom", page.as_uri()).stdout
    seen = _Text()
    seen.feed(dom)
    text = seen.text
    assert text.startswith("Alerting audit 2026-Q2")
    # executive summary: counts, the root cause first, what changed (fixed before new)
    assert "Root causes" in text
    assert (
        "declared paging receiver pagerduty-fleet does not exist in alertmanager.yml — "
        "the root cause of 3 critical-never-pages findings" in text
    )
    body = text[text.index("Summary", text.index("Routing matrix")) :]  # past the contents
    assert body.index("Root causes") < body.index("By check") < body.index("Changes since")
    changes = body[body.index("Changes since 2026-Q1") :]
    assert "1 fixed" in changes and "old-email" in changes
    # the 12 near-identical rows are one: "12 alert rules — missing annotation runbook_url: …"
    assert "12 alert rules — missing annotation runbook_url: Device00Down" in text
    assert text.count("missing annotation runbook_url") == 2  # the overview and the section
    # per check: why and how to fix; headings are titles, not check ids
    assert text.count("Why it matters:") == text.count("How to fix:") >= 4
    assert "Paging receivers that cannot page" in text and "Check: " not in text
    # a table of contents whose every link lands on a section
    assert len(seen.links) >= 8 and set(seen.links) <= seen.ids
    # self-contained: nothing to fetch
    assert all(src.startswith("data:image/png;base64,") for src in seen.images)

    shot = tmp_path / "report.png"
    _chromium("--window-size=1280,1400", f"--screenshot={shot}", page.as_uri())
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1280, 1400)
        colours = {c for _, c in img.convert("RGB").getcolors(1 << 20) or []}
    # the stylesheet was applied: the error count card and badges have their colours
    assert (0xFB, 0xE3, 0xE0) in colours  # .count.errors background
    assert (0xF0, 0xF2, 0xF7) in colours  # contents box
