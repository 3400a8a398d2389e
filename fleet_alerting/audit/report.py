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

from fleet_alerting.audit.checks import CHECKS, ROOT_CAUSES, doc
from fleet_alerting.audit.model import LEVELS, Finding
from fleet_alerting.audit.noise import NoiseStats
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
    rows = [
        {"status": "fixed", **{k: v.get(k, "") for k in FINDING_COLUMNS}}
        for key, v in prev.items()
        if key not in cur
    ]
    rows += [{"status": "new", **v} for k, v in cur.items() if k not in prev]
    rows += [{"status": "open", **v} for k, v in cur.items() if k in prev]
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
        "offline": offline_reason(result),
        "alerts": len(result.input.alert_rules),
        "routes": sum(1 for _ in result.input.am.route.walk()),
    }


# --- the review document ---------------------------------------------------------------------
#
# One document model (headings, paragraphs, lists, tables, images), rendered twice: Markdown (the
# file and the Prefect artifact) and a self-contained HTML page. Inline markup is **bold** and
# `code`, nothing else.

Block = tuple[str, Any]  # ("h2", (title, anchor)), ("p", text), ("ul", [text]), ("table", df)...

LEVEL_ORDER = {lvl: i for i, lvl in enumerate(LEVELS)}
LEVEL_WORDS = {
    "error": ("error", "errors"),
    "warning": ("warning", "warnings"),
    "info": ("note", "notes"),
}
STATUS_ORDER = {"fixed": 0, "new": 1, "open": 2}
_WHERE_RE = re.compile(r"\s\([^()]*:\d+\)$")  # a trailing "(file:line)"


def slug(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).strip().replace(" ", "-")


@dataclass
class Row:
    """One line of a check's section: a finding, or findings that differ only in their alert."""

    level: str
    what: str  # the message (without a file:line when grouped)
    alerts: list[str]
    route_path: str
    receiver: str
    subject: str
    where: list[str]  # file:line of each alert, when known

    @property
    def count(self) -> int:
        return max(1, len(self.alerts))


def group_rows(findings: list[Finding]) -> list[Row]:
    """Findings of one check that differ only in the alert become one row: "12 alert rules:
    missing annotation runbook_url — A, B, C"."""
    groups: dict[tuple[str, ...], list[Finding]] = {}
    for f in findings:
        key = (f.level, f.route_path, f.receiver, f.subject, _WHERE_RE.sub("", f.message))
        key = key if f.alert else (*key, f.message, str(id(f)))
        groups.setdefault(key, []).append(f)
    rows = []
    for fs in groups.values():
        first = fs[0]
        grouped = len(fs) > 1
        where = [m.group(0)[2:-1] for f in fs if (m := _WHERE_RE.search(f.message))]
        rows.append(
            Row(
                first.level,
                _WHERE_RE.sub("", first.message) if grouped else first.message,
                [f.alert for f in fs if f.alert],
                first.route_path,
                first.receiver,
                first.subject,
                where if grouped else [],
            )
        )
    rows.sort(key=lambda r: (LEVEL_ORDER.get(r.level, 9), -r.count))
    return rows


def _names(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(f"`{a}`" for a in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def row_text(row: Row) -> str:
    if len(row.alerts) > 1:
        return f"**{len(row.alerts)} alert rules** — {row.what}: {_names(row.alerts)}"
    if row.alerts:
        return f"`{row.alerts[0]}` — {row.what}"
    return row.what


def _checks_in_order(findings: list[Finding]) -> list[str]:
    """Root causes first, then by worst level, then in the order the checks run."""
    order = [c.id for c in CHECKS]
    worst: dict[str, int] = {}
    for f in findings:
        worst[f.check_id] = min(worst.get(f.check_id, 9), LEVEL_ORDER.get(f.level, 9))
    return sorted(
        worst,
        key=lambda c: (
            c not in ROOT_CAUSES,
            worst[c],
            order.index(c) if c in order else len(order),
        ),
    )


def _root_causes(findings: list[Finding]) -> list[str]:
    """The findings that explain others, and the findings that need no analysis to act on."""
    by_check: dict[str, list[Finding]] = {}
    for f in findings:
        by_check.setdefault(f.check_id, []).append(f)
    out = []
    for cause, effect in ROOT_CAUSES.items():
        explained = len(by_check.get(effect, []))
        for f in by_check.get(cause, []):
            tail = f" — the root cause of {explained} `{effect}` findings" if explained else ""
            out.append(f"**{f.message}**{tail}")
    for f in by_check.get("online-skipped", []):
        out.append(f"Not checked: {f.message}")
    return out


def _since(comparison: pd.DataFrame, prev_label: str | None) -> list[Block]:
    if comparison.empty:
        return [("p", "No earlier quarter's report was found: every finding is new.")]
    counts = comparison["status"].value_counts().to_dict()
    blocks: list[Block] = [
        (
            "p",
            f"Since {prev_label}: **{counts.get('fixed', 0)} fixed**, "
            f"{counts.get('new', 0)} new, {counts.get('open', 0)} still open.",
        )
    ]
    for status, title in (("fixed", "Fixed"), ("new", "New")):
        part = comparison[comparison["status"] == status]
        if part.empty:
            continue
        items = []
        for check_id, g in part.groupby("check_id", sort=False):
            things = [
                str(r.alert or r.subject or r.route_path or r.receiver or r.message)
                for r in g.itertuples()
            ]
            items.append(f"{doc(str(check_id)).title} (`{check_id}`): {_names(things, 8)}")
        blocks += [("h3", (title, slug(f"{title} since"))), ("ul", items)]
    return blocks


def _fmt(df: pd.DataFrame) -> pd.DataFrame:
    """Numbers for people: shares as %, hours and minutes with one decimal, NaN as blank."""
    out = df.copy()
    for col in out.columns:
        if col.endswith("_share"):
            out[col] = out[col].map(lambda v: f"{v:.1%}")
        elif col.endswith(("_min", "_hours")):
            out[col] = out[col].map(lambda v: "" if pd.isna(v) else f"{v:.1f}")
    return out.fillna("")


def noise_section(noise: NoiseStats, with_charts: bool = True) -> list[Block]:
    """Are the severity levels right? The quarter's firing history, answered with numbers."""
    th = noise.thresholds
    days = noise.seconds / 86400
    fired = noise.alerts[noise.alerts["fires"] > 0]
    blocks: list[Block] = [
        (
            "p",
            f"From Prometheus' `ALERTS` and `ALERTS_FOR_STATE` over the {days:.0f} days "
            f"{noise.start:%Y-%m-%d} – {noise.end:%Y-%m-%d} ({noise.series_count} alert series, "
            f"{noise.sample_count:,} samples) and the incident store. A **flap** fired and "
            f"resolved within {th.flap_minutes:g} min; **pages** are fires of alerts whose route "
            "reaches a paging receiver; time to resolve runs from the alert's onset (pending "
            "included) to its last firing evaluation; time to acknowledge is blank where no "
            "pager reported it.",
        ),
        ("h3", ("Per severity", "noise-per-severity")),
        ("table", _fmt(noise.severities)),
    ]
    if with_charts:
        from fleet_alerting.audit.noise import charts

        blocks += [("img", chart) for chart in charts(noise)]
    blocks += [
        ("h3", ("Per alert", "noise-per-alert")),
        (
            "p",
            f"{len(fired)} of {len(noise.alerts)} alert rules fired; the busiest first "
            "(rules that never fired are counted in the per-severity table).",
        ),
        ("table", _fmt(fired.head(50))),
        ("h3", ("Per watch", "noise-per-watch")),
        (
            "table" if not noise.watches.empty else "p",
            _fmt(noise.watches)
            if not noise.watches.empty
            else "No incidents of the watches in this period (or no incident store given).",
        ),
    ]
    return blocks


def offline_reason(result: AuditResult) -> str | None:
    """Why checks against the Prometheus the audit was given did not run: it did not answer at
    the start, or stopped answering during the checks. None when it served them all, or when no
    Prometheus was given (then skipping them is the request, said in the findings)."""
    if result.input.offline:
        return result.input.offline
    if result.input.series is None:
        return None
    skipped = [f.message for f in result.findings if f.check_id == "online-skipped"]
    return skipped[0] if skipped else None


def offline_note(result: AuditResult) -> list[Block]:
    """At the top of a report made without the Prometheus it was given: what was not checked and
    why, so that a quiet report is not read as a clean one."""
    why = offline_reason(result)
    if why is None:
        return []
    skipped = [f.subject for f in result.findings if f.check_id == "online-skipped"]
    names = ", ".join(f"`{s}`" for s in skipped) or "none"
    return [
        (
            "p",
            f"**Offline report: the online checks were skipped** ({names}) — {why}. "
            "The offline checks below ran in full; run the audit again once Prometheus answers.",
        )
    ]


def build_document(
    result: AuditResult,
    comparison: pd.DataFrame,
    summary: dict[str, Any],
    extra: list[tuple[str, list[Block]]] | None = None,
) -> list[Block]:
    """The review document: summary (counts, root causes, changes: fixed first), a table of
    contents, per check why/how-to-fix and grouped findings, then the matrices (and `extra`
    sections such as the noise statistics)."""
    findings = result.findings
    order = _checks_in_order(findings)
    if result.input.noise is not None:
        extra = [("Noise and response", noise_section(result.input.noise)), *(extra or [])]
    prev = summary.get("previous_quarter")
    sections: list[tuple[str, str]] = [("Summary", "summary")]
    if prev or not comparison.empty:
        sections.append((f"Changes since {prev}", slug(f"Changes since {prev}")))
    for check_id in order:
        sections.append((doc(check_id).title, slug(doc(check_id).title)))
    for title, _ in extra or []:
        sections.append((title, slug(title)))
    sections += [
        ("Escalation matrix", "escalation-matrix"),
        ("Routing matrix", "routing-matrix"),
    ]
    doc_blocks: list[Block] = [
        ("h1", f"Alerting audit {summary['quarter']}"),
        *offline_note(result),
        (
            "p",
            f"For {result.input.now.isoformat()} from `{result.input.am_source}`: "
            f"{summary['alerts']} alert rules, {summary['routes']} routes.",
        ),
        ("toc", [(title, anchor) for title, anchor in sections]),
        ("h2", ("Summary", "summary")),
        (
            "counts",
            {
                "errors": summary["errors"],
                "warnings": summary["warnings"],
                "notes": summary["infos"],
                "fixed": summary["fixed"],
                "new": summary["new"],
            },
        ),
    ]
    causes = _root_causes(findings)
    if causes:
        doc_blocks += [("h3", ("Root causes", "root-causes")), ("ul", causes)]
    overview = []
    for check_id in order:
        fs = [f for f in findings if f.check_id == check_id]
        levels = ", ".join(
            f"{n} {LEVEL_WORDS[lvl][n > 1]}"
            for lvl in LEVELS
            if (n := sum(f.level == lvl for f in fs))
        )
        title = doc(check_id).title
        top = row_text(group_rows(fs)[0])
        overview.append(f"[{title}](#{slug(title)}) — {levels}. {top}")
    doc_blocks += [("h3", ("By check", "by-check")), ("ul", overview or ["No findings."])]
    if prev or not comparison.empty:
        title = f"Changes since {prev}"
        doc_blocks += [("h2", (title, slug(title))), *_since(comparison, prev)]
    for check_id in order:
        d = doc(check_id)
        rows = group_rows([f for f in findings if f.check_id == check_id])
        table = pd.DataFrame(
            [
                {
                    "level": r.level,
                    "finding": row_text(r),
                    "route": r.route_path,
                    "receiver": r.receiver,
                }
                for r in rows
            ]
        )
        table = table.loc[:, [c for c in table.columns if c == "finding" or table[c].any()]]
        doc_blocks += [
            ("h2", (d.title, slug(d.title))),
            ("p", f"Check `{check_id}`. **Why it matters:** {d.why}" if d.why else f"`{check_id}`"),
            ("p", f"**How to fix:** {d.fix}" if d.fix else ""),
            ("table", table),
        ]
    for title, blocks in extra or []:
        doc_blocks += [("h2", (title, slug(title))), *blocks]
    doc_blocks += [
        ("h2", ("Escalation matrix", "escalation-matrix")),
        ("table", result.escalation),
        ("h2", ("Routing matrix", "routing-matrix")),
        ("p", "Alert × receiver; 2 means notified twice."),
        ("table", result.routing.replace(0, "").reset_index()),
    ]
    return doc_blocks


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


def to_markdown(blocks: list[Block], images: bool = True) -> str:
    """`images`: charts embedded as data URIs (a file); else named only (a terminal)."""
    out: list[str] = []
    for kind, value in blocks:
        if kind == "h1":
            out += [f"# {value}", ""]
        elif kind in ("h2", "h3"):
            out += [f"{'#' * int(kind[1])} {value[0]}", ""]
        elif kind == "p" and value:
            out += [value, ""]
        elif kind == "ul":
            out += [f"- {item}" for item in value] + [""]
        elif kind == "toc":
            out += ["**Contents:** " + " · ".join(f"[{t}](#{a})" for t, a in value), ""]
        elif kind == "counts":
            out += [" · ".join(f"**{v} {k}**" for k, v in value.items()), ""]
        elif kind == "table":
            out += [markdown_table(value)]
        elif kind == "img" and images:
            out += [f"![{value[0]}](data:image/png;base64,{value[1]})", ""]
        elif kind == "img":
            out += [f"*Chart: {value[0]} (in the HTML report: --html FILE)*", ""]
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;
 background:#f6f7fb;line-height:1.45}
main{max-width:1200px;margin:0 auto;padding:1.5rem 2rem 4rem;background:#fff;min-height:100vh}
h1{font-size:1.7rem;margin:.2rem 0 .3rem}h2{font-size:1.25rem;margin-top:2.2rem;
 border-bottom:2px solid #e3e6ef;padding-bottom:.2rem}h3{font-size:1.05rem;margin-top:1.4rem}
nav.toc{background:#f0f2f7;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
nav.toc ol{margin:.2rem 0;padding-left:1.4rem;columns:2}nav.toc a{color:#1f4e9a}
.counts{display:flex;gap:.8rem;flex-wrap:wrap;margin:.6rem 0}
.count{border-radius:8px;padding:.5rem 1rem;min-width:6rem;background:#f0f2f7}
.count b{display:block;font-size:1.6rem}.count.errors{background:#fbe3e0}
.count.warnings{background:#fdf1cf}.count.fixed{background:#dff3e6}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0;width:100%}
th,td{border:1px solid #d0d4de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f2f7}tr:nth-child(even) td{background:#fafbfd}
code{background:#eef0f5;padding:0 .2rem;border-radius:3px;font-size:.9em}
.error{color:#fff;background:#c0392b;padding:0 .4rem;border-radius:3px}
.warning{background:#f5c542;padding:0 .4rem;border-radius:3px}
.info{background:#d6e4f5;padding:0 .4rem;border-radius:3px}
img{max-width:100%;border:1px solid #e3e6ef;border-radius:4px}
"""


def _inline(text: str) -> str:
    out = html.escape(str(text), quote=False)
    out = re.sub(r"\[([^\]]+)\]\(#([\w-]+)\)", r'<a href="#\2">\1</a>', out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def _html_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for col, v in zip(df.columns, row, strict=True):
            v = "" if v is None or (isinstance(v, float) and pd.isna(v)) else v
            if col in ("level", "status") and v in (*LEVELS, "new", "open", "fixed"):
                cells.append(f'<td><span class="{v}">{v}</span></td>')
            else:
                cells.append(f"<td>{_inline(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def to_html(blocks: list[Block], title: str) -> str:
    body: list[str] = []
    for kind, value in blocks:
        if kind == "h1":
            body.append(f"<h1>{_inline(value)}</h1>")
        elif kind in ("h2", "h3"):
            body.append(f'<{kind} id="{value[1]}">{_inline(value[0])}</{kind}>')
        elif kind == "p" and value:
            body.append(f"<p>{_inline(value)}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in value) + "</ul>")
        elif kind == "toc":
            items = "".join(f'<li><a href="#{a}">{_inline(t)}</a></li>' for t, a in value)
            body.append(f'<nav class="toc"><strong>Contents</strong><ol>{items}</ol></nav>')
        elif kind == "counts":
            cards = "".join(
                f'<div class="count {k}"><b>{v}</b>{html.escape(k)}</div>' for k, v in value.items()
            )
            body.append(f'<div class="counts">{cards}</div>')
        elif kind == "table":
            body.append(_html_table(value))
        elif kind == "img":
            body.append(
                f'<figure><img alt="{html.escape(value[0])}" '
                f'src="data:image/png;base64,{value[1]}"><figcaption>'
                f"{html.escape(value[0])}</figcaption></figure>"
            )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


@dataclass
class WrittenReport:
    directory: Path
    summary: dict[str, Any]
    markdown: str


def write_report(
    result: AuditResult,
    out_dir: str | Path,
    extra: list[tuple[str, list[Block]]] | None = None,
) -> WrittenReport:
    """Every file of the quarter; `extra` sections (e.g. noise statistics) go into the
    document before the matrices."""
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
    noise = result.input.noise
    if noise is not None:
        noise.alerts.to_csv(target / "noise_alerts.csv", index=False)
        noise.watches.to_csv(target / "noise_watches.csv", index=False)
        noise.severities.to_csv(target / "noise_severities.csv", index=False)
    blocks = build_document(result, comparison, summary, extra)
    md = to_markdown(blocks)
    (target / "report.md").write_text(md)
    (target / "report.html").write_text(to_html(blocks, f"Alerting audit {label}"))
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
