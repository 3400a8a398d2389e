"""The what-if report: the figures of two replays side by side, in the audit's document blocks
(audit/report.py renders them as Markdown and as a self-contained HTML page with charts)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from fleet_alerting.audit.report import Block, to_html, to_markdown
from fleet_alerting.audit.whatif import (
    SLACK,
    Comparison,
    Episode,
    Replay,
    Shift,
    episodes,
    first_pages,
)
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.windows import Window

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
NONE = "—"  # a median of nothing, a time that did not happen


FIGURES = {
    "pages": "pages",
    "slack_messages": "Slack messages",
    "pages_off_hours": "pages outside business hours",
    "median_onset_to_page_min": "median onset → page, min",
}


def _shown(value: float | None) -> str:
    return NONE if value is None else f"{value:g}"


def off_hours(moment: datetime, hours: Sequence[Window]) -> bool:
    return not any(window.occurrence(moment) is not None for window in hours)


def _median_minutes(eps: Iterable[Episode]) -> float | None:
    return _median_of([e.to_page for e in eps if e.to_page is not None])


def _median_of(waits: Sequence[timedelta]) -> float | None:
    minutes = [w.total_seconds() / 60 for w in waits]
    return round(statistics.median(minutes), 1) if minutes else None


def columns(comparison: Comparison) -> list[tuple[str, Replay]]:
    """What the outbox sent (when the store still holds the whole period), then both replays."""
    found = [("sent", comparison.sent)] if comparison.sent is not None else []
    return [*found, ("current", comparison.current), ("proposed", comparison.proposed)]


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
    """An alert's figures in each column; an alert one of them never told of has 0 messages
    there, and a median of no pages is `—` (not 0)."""
    labels = columns(comparison)
    rows: dict[str, dict[str, Any]] = {}
    for _label, result in labels:
        for s in result.sent:
            rows.setdefault(s.alert, {"alert": s.alert})
    for label, result in labels:
        by_alert: dict[str, list[Any]] = {alert: [] for alert in rows}
        for s in result.sent:
            by_alert[s.alert].append(s)
        for alert, sent in by_alert.items():
            told = figures(Replay(result.name, sent, 0, 0), hours)
            for name, value in told.items():
                shown = _shown(value) if name == "median_onset_to_page_min" else value
                rows[alert][f"{FIGURES[name]} ({label})"] = shown
    return pd.DataFrame(sorted(rows.values(), key=lambda r: r["alert"]))


def per_pager(comparison: Comparison) -> pd.DataFrame:
    """Per pager channel (each escalation step's own): episodes it paged and the median onset →
    its first page, so a change to a later step (the secondary's delay) shows."""
    labels = columns(comparison)
    waits = {label: first_pages(result) for label, result in labels}
    pagers = sorted({channel for found in waits.values() for channel in found})
    rows = []
    for pager in pagers:
        row: dict[str, Any] = {"pager": pager}
        for label, _result in labels:
            row[f"pages ({label})"] = len(waits[label].get(pager, []))
        for label, _result in labels:
            median = _median_of(waits[label].get(pager, []))
            row[f"median onset → page, min ({label})"] = _shown(median)
        rows.append(row)
    return pd.DataFrame(rows)


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def shift_table(shifts: list[Shift], comparison: Comparison) -> pd.DataFrame:
    """The episodes whose paging changes; with what was sent, when each really paged (`—`: it
    did not) beside the replay's time."""
    rows = []
    for s in shifts:
        row = {"incident": f"`{s.episode.key}`", "severity": s.episode.severity}
        row["onset"] = _when(s.episode.onset)
        if comparison.sent is not None:
            row["paged (sent)"] = _when(comparison.paged_as_sent(s.episode)) or NONE
        row["paged (current)"] = _when(s.before)
        row["paged (proposed)"] = _when(s.after)
        row["delay"] = format_duration(s.delay, exact=True) if s.delay is not None else ""
        row["summary"] = s.episode.summary
        rows.append(row)
    return pd.DataFrame(rows)


def acted_by_hand(
    by_hand: Mapping[str, int], period: str, trail_kept: timedelta | None = None
) -> str:
    """The sentence counting what operators did by hand in `period` (none: nothing said), of its
    last `trail_kept` when the store keeps its audit trail less long than the period."""
    if trail_kept is not None:
        trail = format_duration(trail_kept, exact=True)  # as the config spells it
        period = f"its last {trail} (the store keeps its audit trail {trail}: "
        period += "`state.retention.actions`)"
    if not by_hand:
        return f" Operators did not act on incidents by hand in {period}." if trail_kept else ""
    done = ", ".join(f"{action} {times}" for action, times in sorted(by_hand.items()))
    return f" Operators acted on incidents by hand in {period}: {done}."


def kept_less(
    retention: object, names: Sequence[str], start: datetime, end: datetime
) -> dict[str, timedelta]:
    """Of `state.retention`'s fields `names`, those shorter than `start`–`end`: what a report
    reads of the period is then only the part the store still holds."""
    kept = {name: getattr(retention, name) for name in names}
    return {name: d for name, d in kept.items() if start < end - d}


def kept_less_said(kept: Mapping[str, timedelta]) -> str:
    """The sentence naming the retentions (`state.retention.NAME` → how long) shorter than the
    period: what the replay reads of it is only the part the store still holds."""
    if not kept:
        return ""
    said = ", ".join(
        f"`state.retention.{name}` {format_duration(d, exact=True)}" for name, d in kept.items()
    )
    return f" The store keeps less than this period ({said}): the figures are of the part it holds."


def caveat(
    comparison: Comparison,
    sent_kept: timedelta | None,
    by_hand: Mapping[str, int],
    trail_kept: timedelta | None = None,
    kept_less: Mapping[str, timedelta] | None = None,
) -> str:
    """What the replay leaves out (with how often operators acted in the period, `by_hand`:
    action → times done, of the last `trail_kept` when the store keeps its audit trail less
    long than the period; `kept_less`: the other retentions shorter than the period, by name),
    and where what was sent is (or why it is not) beside it."""
    current = comparison.current.name
    said = (
        f"**A replay, not history.** `current` replays {current} as it is today (edits made to "
        "it during the period are not replayed), and neither replay has what operators did by "
        "hand: acknowledgements, snoozes and silences of one incident (silences by matchers are "
        "replayed) — an incident acknowledged before it paged pages in the replay on schedule."
    )
    said += acted_by_hand(by_hand, "this period", trail_kept) + kept_less_said(kept_less or {})
    if comparison.sent is not None:
        return said + (
            " `sent` is what the store's outbox delivered in the period (pages and Slack "
            "messages the destinations accepted)."
        )
    kept = format_duration(sent_kept) if sent_kept else "a shorter time"
    return said + (
        f" What was sent is not shown: the store keeps sent messages {kept} "
        "(`state.retention.sent_notifications`), less than this period."
    )


def build(
    comparison: Comparison,
    hours: Sequence[Window],
    start: datetime,
    end: datetime,
    accepted: Iterable[str] = (),
    with_charts: bool = True,
    sent_kept: timedelta | None = None,
    by_hand: Mapping[str, int] | None = None,
    trail_kept: timedelta | None = None,
    kept_less: Mapping[str, timedelta] | None = None,
) -> list[Block]:
    """`sent_kept`: how long the store keeps sent messages (named when the period is longer);
    `by_hand`: what operators did to incidents in the period (action → times), not replayed;
    `trail_kept`: how long the store keeps that audit trail, when less than the period;
    `kept_less`: the retentions of what the replay reads (history, silences) shorter than it."""
    told = {label: figures(result, hours) for label, result in columns(comparison)}
    totals = pd.DataFrame(
        [
            {"figure": text} | {label: _shown(found[name]) for label, found in told.items()}
            for name, text in FIGURES.items()
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
        ("p", caveat(comparison, sent_kept, by_hand or {}, trail_kept, kept_less)),
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
        ("h2", ("Per pager", "per-pager")),
        ("table", per_pager(comparison)),
        ("h2", ("Per alert", "per-alert")),
        ("table", per_alert(comparison, hours)),
        ("h2", ("Would no longer page", "would-no-longer-page")),
        ("table", shift_table(comparison.lost(), comparison)),
        ("h2", ("Would page later", "would-page-later")),
        ("table", shift_table(comparison.delayed(), comparison)),
        ("h2", ("Would page now", "would-page-now")),
        ("table", shift_table(comparison.gained(), comparison)),
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
