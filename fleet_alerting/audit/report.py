"""Render an audit: Markdown, CSV, a self-contained HTML page and findings.json under
`<out>/<year>-Q<n>/`, compared with the previous quarter's findings.json."""

from __future__ import annotations

import html
import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from fleet_alerting.audit.model import LEVELS, Finding
from fleet_alerting.audit.run import AuditResult

FINDING_COLUMNS = ["check_id", "level", "alert", "route_path", "receiver", "subject", "message"]
_QUARTER_RE = re.compile(r"\d{4}-Q[1-4]\Z")


def quarter_label(now: datetime) -> str:
    return f"{now.year}-Q{(now.month - 1) // 3 + 1}"


def findings_frame(findings: list[Finding]) -> pd.DataFrame:
    return pd.DataFrame([asdict(f) for f in findings], columns=FINDING_COLUMNS)


def previous_findings(out_dir: Path, label: str) -> tuple[str, list[dict[str, Any]]] | None:
    """The latest earlier quarter's findings under `out_dir`, if any."""
    earlier = sorted(
        p.name
        for p in out_dir.glob("*-Q*")
        if _QUARTER_RE.match(p.name) and p.name < label and (p / "findings.json").is_file()
    )
    if not earlier:
        return None
    data = json.loads((out_dir / earlier[-1] / "findings.json").read_text())
    return earlier[-1], list(data.get("findings", []))


def compare(current: list[Finding], previous: list[dict[str, Any]] | None) -> pd.DataFrame:
    """new / open / fixed per finding key; empty when there is no previous quarter."""
    cols = ["status", *FINDING_COLUMNS]
    if previous is None:
        return pd.DataFrame(columns=cols)
    prev = {Finding(**{k: p.get(k, "") for k in FINDING_COLUMNS}).key: p for p in previous}
    cur = {f.key: asdict(f) for f in current}
    rows = [{"status": "open" if k in prev else "new", **v} for k, v in cur.items()]
    rows += [{"status": "fixed", **v} for k, v in prev.items() if k not in cur]
    return pd.DataFrame(rows, columns=cols)


def summarize(result: AuditResult, comparison: pd.DataFrame, label: str) -> dict[str, Any]:
    levels = {lvl: sum(f.level == lvl for f in result.findings) for lvl in LEVELS}
    by_check: dict[str, int] = {}
    for f in result.findings:
        by_check[f.check_id] = by_check.get(f.check_id, 0) + 1
    status = comparison["status"].value_counts().to_dict() if not comparison.empty else {}
    return {
        "quarter": label,
        "findings": len(result.findings),
        **{f"{k}s": v for k, v in levels.items()},
        "by_check": by_check,
        "new": int(status.get("new", 0)),
        "open": int(status.get("open", 0)),
        "fixed": int(status.get("fixed", 0)),
        "alerts": len(result.input.alert_rules),
        "routes": sum(1 for _ in result.input.am.route.walk()),
    }


# --- rendering ------------------------------------------------------------------------------


def markdown_table(df: pd.DataFrame, index: bool = False) -> str:
    if index:
        df = df.reset_index()
    if df.empty:
        return "_none_\n"

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


def _sections(result: AuditResult, comparison: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    df = findings_frame(result.findings)
    sections: list[tuple[str, pd.DataFrame]] = []
    if not comparison.empty:
        sections.append(("Changes since the previous quarter", comparison))
    for check_id, group in df.groupby("check_id", sort=False):
        sections.append((f"Check: {check_id}", group.drop(columns=["check_id"])))
    sections.append(("Escalation matrix", result.escalation))
    routing = result.routing.replace(0, "").reset_index()
    sections.append(("Routing matrix (alert × receiver; 2 = notified twice)", routing))
    return sections


def render_markdown(result: AuditResult, comparison: pd.DataFrame, summary: dict) -> str:
    now = result.input.now.isoformat()
    lines = [
        f"# Alerting audit {summary['quarter']}",
        "",
        f"Generated for {now} from `{result.input.am_source}`: {summary['alerts']} alert rules, "
        f"{summary['routes']} routes.",
        "",
        f"**{summary['errors']} errors, {summary['warnings']} warnings, {summary['infos']} notes**"
        + (
            f" — {summary['new']} new, {summary['open']} still open, {summary['fixed']} fixed "
            "since the previous quarter"
            if not comparison.empty
            else ""
        ),
        "",
    ]
    for title, df in _sections(result, comparison):
        lines += [f"## {title}", "", markdown_table(df)]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2330;max-width:1400px}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #d0d4de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f2f7}tr:nth-child(even) td{background:#fafbfd}
.error{color:#fff;background:#c0392b;padding:0 .4rem;border-radius:3px}
.warning{background:#f5c542;padding:0 .4rem;border-radius:3px}
.info{background:#d6e4f5;padding:0 .4rem;border-radius:3px}
.new{font-weight:bold;color:#c0392b}.fixed{color:#1e8449}
.summary{font-size:1.05rem}
"""


def _html_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p><em>none</em></p>"
    esc = df.astype(str).map(html.escape)
    for col, classes in (("level", set(LEVELS)), ("status", {"new", "fixed", "open"})):
        if col in esc.columns:
            esc[col] = esc[col].map(
                lambda v, c=classes: f'<span class="{v}">{v}</span>' if v in c else v
            )
    return esc.to_html(index=False, escape=False, border=0)


def render_html(result: AuditResult, comparison: pd.DataFrame, summary: dict) -> str:
    body = [
        f"<h1>Alerting audit {html.escape(summary['quarter'])}</h1>",
        f"<p class='summary'>{summary['errors']} errors, {summary['warnings']} warnings, "
        f"{summary['infos']} notes; {summary['alerts']} alert rules, {summary['routes']} routes. "
        f"Source: <code>{html.escape(result.input.am_source)}</code>, "
        f"instant {html.escape(result.input.now.isoformat())}.</p>",
    ]
    for title, df in _sections(result, comparison):
        body += [f"<h2>{html.escape(title)}</h2>", _html_table(df)]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Alerting audit {html.escape(summary['quarter'])}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


@dataclass
class WrittenReport:
    directory: Path
    summary: dict[str, Any]
    markdown: str


def write_report(result: AuditResult, out_dir: str | Path) -> WrittenReport:
    out = Path(out_dir)
    label = quarter_label(result.input.now)
    target = out / label
    prev = previous_findings(out, label)
    comparison = compare(result.findings, prev[1] if prev else None)
    summary = summarize(result, comparison, label)
    summary["previous_quarter"] = prev[0] if prev else None
    target.mkdir(parents=True, exist_ok=True)
    (target / "checks").mkdir(exist_ok=True)
    df = findings_frame(result.findings)
    df.to_csv(target / "findings.csv", index=False)
    for check_id, group in df.groupby("check_id", sort=False):
        group.to_csv(target / "checks" / f"{check_id}.csv", index=False)
    result.routing.to_csv(target / "routing_matrix.csv")
    result.escalation.to_csv(target / "escalation_matrix.csv", index=False)
    comparison.to_csv(target / "comparison.csv", index=False)
    md = render_markdown(result, comparison, summary)
    (target / "report.md").write_text(md)
    (target / "report.html").write_text(render_html(result, comparison, summary))
    (target / "findings.json").write_text(
        json.dumps(
            {
                "quarter": label,
                "generated_for": result.input.now.isoformat(),
                "summary": summary,
                "findings": [asdict(f) for f in result.findings],
            },
            indent=2,
        )
        + "\n"
    )
    summary["directory"] = str(target)
    return WrittenReport(target, summary, md)
