"""The what-if report: the figures of two replays side by side, in the audit's document blocks
(audit/report.py renders them as Markdown and as a self-contained HTML page with charts)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from fleet_alerting.audit.report import Block, to_html, to_markdown
from fleet_alerting.audit.whatif import SLACK, Comparison, Episode, Replay, Shift, episodes
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.windows import Window

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


FIGURES = {
    "pages": "pages",
    "slack_messages": "Slack messages",
    "pages_off_hours": "pages outside business hours",
    "median_onset_to_page_min": "median onset → page (min)",
}


def _shown(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def off_hours(moment: datetime, hours: Sequence[Window]) -> bool:
    return not any(window.occurrence(moment) is not None for window in hours)


def _median_minutes(eps: Iterable[Episode]) -> float | None:
    waits = [e.to_page.total_seconds() / 60 for e in eps if e.to_page is not None]
    return round(statistics.median(waits), 1) if waits else None


def figures(result: Replay, hours: Sequence[Window]) -> dict[str, Any]:
    """Pages (episodes paged), Slack messages, pages outside business hours, median onset→page."""
    eps = list(episodes(result).values())
    paged = [e for e in eps if e.paged_at is not None]
    return {
        "pages": len(paged),
        "slack_messages": sum(s.channel in SLACK for s in result.sent),
        "pages_off_hours": sum(off_hours(e.paged_at, hours) for e in paged if e.paged_at),
        "median_onset_to_page_min": _median_minutes(paged),
    }


def per_alert(comparison: Comparison, hours: Sequence[Window]) -> pd.DataFrame:
    rows: dict[str, dict[str, Any]] = {}
    for label, result in (("current", comparison.current), ("proposed", comparison.proposed)):
        by_alert: dict[str, list[Any]] = {}
        for s in result.sent:
            by_alert.setdefault(s.alert, []).append(s)
        for alert, sent in by_alert.items():
            part = Replay(result.name, sent, 0, 0)
            row = rows.setdefault(alert, {"alert": alert})
            for name, value in figures(part, hours).items():
                row[f"{name} ({label})"] = value
    frame = pd.DataFrame(sorted(rows.values(), key=lambda r: r["alert"]))
    return frame.fillna(0) if not frame.empty else frame


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def shift_table(shifts: list[Shift]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "incident": f"`{s.episode.key}`",
                "severity": s.episode.severity,
                "onset": _when(s.episode.onset),
                "paged (current)": _when(s.before),
                "paged (proposed)": _when(s.after),
                "delay": format_duration(s.delay, exact=True) if s.delay is not None else "",
                "summary": s.episode.summary,
            }
            for s in shifts
        ]
    )


def build(
    comparison: Comparison,
    hours: Sequence[Window],
    start: datetime,
    end: datetime,
    accepted: Iterable[str] = (),
    with_charts: bool = True,
) -> list[Block]:
    before = figures(comparison.current, hours)
    after = figures(comparison.proposed, hours)
    totals = pd.DataFrame(
        [
            {"figure": label, "current": _shown(before[name]), "proposed": _shown(after[name])}
            for name, label in FIGURES.items()
        ]
    )
    blocking = comparison.blocking(accepted)
    hours_text = "; ".join(str(w) for w in hours)
    blocks: list[Block] = [
        ("h1", f"What-if: {comparison.current.name} → {comparison.proposed.name}"),
        (
            "p",
            f"The recorded observations of {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC "
            f"replayed through both configurations ({comparison.proposed.evaluations:,} "
            f"evaluations for {comparison.proposed.runs:,} recorded runs). Business hours: "
            f"{hours_text}.",
        ),
        (
            "p",
            f"**Gate: {len(blocking)} critical incident(s) paged under the current "
            "configuration and would not page under the proposed one"
            + (" (not accepted).**" if blocking else ".**"),
        ),
        ("h2", ("Totals", "totals")),
        ("table", totals),
    ]
    if with_charts:
        blocks += [("img", chart) for chart in charts(comparison)]
    blocks += [
        ("h2", ("Per alert", "per-alert")),
        ("table", per_alert(comparison, hours)),
        ("h2", ("Would no longer page", "would-no-longer-page")),
        ("table", shift_table(comparison.lost())),
        ("h2", ("Would page later", "would-page-later")),
        ("table", shift_table(comparison.delayed())),
        ("h2", ("Would page now", "would-page-now")),
        ("table", shift_table(comparison.gained())),
    ]
    if comparison.routed:
        blocks += routes_section(comparison, hours)
    return blocks


def routes_section(comparison: Comparison, hours: Sequence[Window]) -> list[Block]:
    """Alertmanager's own notifications: each alert episode of the period (from Prometheus'
    `ALERTS`) routed through the current and the proposed alertmanager.yml at its start."""
    counts: dict[str, dict[str, Any]] = {}
    for routed in comparison.routed:
        late = off_hours(routed.episode.start, hours)
        for label, receivers in (("current", routed.before), ("proposed", routed.after)):
            for receiver in receivers:
                row = counts.setdefault(
                    receiver,
                    {"receiver": receiver, "current": 0, "proposed": 0}
                    | {"off hours (current)": 0, "off hours (proposed)": 0},
                )
                row[label] += 1
                row[f"off hours ({label})"] += late
    lost = pd.DataFrame(
        [
            {
                "alert": r.episode.labels.get("alertname", ""),
                "severity": r.episode.labels.get("severity", ""),
                "started": _when(r.episode.start),
                "receivers (current)": ", ".join(r.before),
                "receivers (proposed)": ", ".join(r.after),
                "labels": ", ".join(f"{k}={v}" for k, v in sorted(r.episode.labels.items())),
            }
            for r in comparison.unrouted_pages()
        ]
    )
    return [
        ("h2", ("Alertmanager routes", "alertmanager-routes")),
        (
            "p",
            f"{len(comparison.routed)} alert episodes from Prometheus' `ALERTS`, each routed at "
            "its start; notifications per receiver (a paging receiver has PagerDuty, Opsgenie "
            "or VictorOps configs).",
        ),
        ("table", pd.DataFrame(sorted(counts.values(), key=lambda r: r["receiver"]))),
        ("h3", ("Alertmanager would no longer page", "alertmanager-no-longer-pages")),
        ("table", lost),
    ]


def render(blocks: list[Block], title: str, images: bool = True) -> tuple[str, str]:
    """(Markdown, HTML); `images`: the Markdown embeds the charts (else it names them)."""
    return to_markdown(blocks, images), to_html(blocks, title)


# --- charts -----------------------------------------------------------------------------------


def _weeks(result: Replay) -> pd.Series:
    paged = [e.paged_at for e in episodes(result).values() if e.paged_at is not None]
    if not paged:
        return pd.Series(dtype=int)
    stamps = pd.Series(1, index=pd.DatetimeIndex(paged).tz_convert("UTC"))
    return stamps.resample("W-MON", label="left", closed="left").sum()


def _hour_of_week(result: Replay) -> list[list[int]]:
    """Interruptions (pages and Slack messages) per weekday × hour (UTC)."""
    grid = [[0] * 24 for _ in DAYS]
    for s in result.sent:
        grid[s.at.weekday()][s.at.hour] += 1
    return grid


def charts(comparison: Comparison) -> list[tuple[str, str]]:
    """(caption, base64 PNG): pages per week before/after; interruptions by hour of week."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fleet_alerting.audit.noise import _png

    out = []
    weekly = pd.DataFrame(
        {"current": _weeks(comparison.current), "proposed": _weeks(comparison.proposed)}
    ).fillna(0)
    if not weekly.empty:
        fig, ax = plt.subplots(figsize=(9, 3.2))
        labels = [d.strftime("%d %b") for d in weekly.index]
        width = 0.4
        xs = range(len(labels))
        ax.bar([x - width / 2 for x in xs], weekly["current"], width, label="current")
        ax.bar([x + width / 2 for x in xs], weekly["proposed"], width, label="proposed")
        ax.set_xticks(list(xs), labels, rotation=45, fontsize=8)
        ax.set_ylabel("pages")
        ax.set_title("Pages per week")
        ax.legend(frameon=False)
        out.append(("Pages per week, current and proposed", _png(fig)))
        plt.close(fig)
    out += charts_of_interruptions([comparison.current, comparison.proposed])
    return out


def charts_of_interruptions(results: Sequence[Replay]) -> list[tuple[str, str]]:
    """(caption, base64 PNG): interruptions by hour of week, one panel per replay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fleet_alerting.audit.noise import _png

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 3.2), squeeze=False)
    grids = [_hour_of_week(result) for result in results]
    top = max(1, *(max(row) for grid in grids for row in grid))
    for ax, grid, result in zip(axes[0], grids, results, strict=True):
        ax.imshow(grid, aspect="auto", cmap="Reds", vmin=0, vmax=top)
        ax.set_yticks(range(7), DAYS)
        ax.set_xticks(range(0, 24, 3))
        ax.set_xlabel("hour (UTC)")
        ax.set_title(f"Interruptions by hour of week ({result.name})", fontsize=9)
    caption = "Interruptions (pages and Slack messages) by hour of week"
    chart = (caption, _png(fig))
    plt.close(fig)
    return [chart]
