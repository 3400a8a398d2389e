"""Quarterly noise and response statistics: are the severity levels right?

Pure: raw samples of `ALERTS{alertstate="firing"}` and `ALERTS_FOR_STATE` (as the Prometheus HTTP
API returns them for a range selector) and incident records in; pandas tables out. A firing
*episode* is a run of samples with no gap longer than twice the rule's evaluation interval; it
starts at the first firing sample, ends one interval after the last, and its problem began at
`ALERTS_FOR_STATE` (the alert's activeAt, including the pending `for:` time) when known.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_INTERVAL = 60.0  # seconds: the longest evaluation interval assumed
SEVERITIES = ("critical", "warning", "info", "")


@dataclass(frozen=True)
class NoiseThresholds:
    flap_minutes: float = 5.0  # fired and resolved within this long: a flap
    flapping_fires: int = 100  # "fired hundreds of times"...
    flapping_median_minutes: float = 5.0  # ...with a median this short: raise `for:`
    autoresolve_minutes: float = 5.0  # a page that resolved by itself this fast...
    autoresolve_share: float = 0.5  # ...in more than this share of its fires: not page-worthy
    autoresolve_min_fires: int = 3
    always_firing_share: float = 0.2  # firing this share of the quarter: broken or ignored


@dataclass(frozen=True)
class IncidentRecord:
    """One incident of a watch, from the incident store (the audit never reads the store)."""

    watch: str
    severity: str
    onset: datetime
    resolved_at: datetime | None = None
    paged: bool = False
    acknowledged_at: datetime | None = None  # when a pager reports it; None when not known


@dataclass
class NoiseStats:
    start: datetime
    end: datetime
    alerts: pd.DataFrame  # one row per alert rule (also those that never fired)
    watches: pd.DataFrame  # one row per watch of the incident store
    severities: pd.DataFrame  # totals per severity
    weekly: pd.DataFrame  # fires per week (index) × severity (columns)
    resolve_minutes: pd.Series  # time to resolve of every episode (minutes), for the chart
    thresholds: NoiseThresholds = field(default_factory=NoiseThresholds)
    # per (alert, severity): fires that resolved within `autoresolve_minutes` of their onset
    quick_resolves: dict[tuple[str, str], int] = field(default_factory=dict)
    series_count: int = 0
    sample_count: int = 0

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


# --- samples → episodes -----------------------------------------------------------------------

_EPISODE_COLUMNS = ["alertname", "severity", "series", "start", "end", "onset"]


def _series_key(metric: Mapping[str, str]) -> str:
    return ",".join(
        f"{k}={v}" for k, v in sorted(metric.items()) if k not in ("__name__", "alertstate")
    )


def _times(values: Sequence[Sequence[Any]]) -> np.ndarray:
    return np.fromiter((v[0] for v in values), dtype=np.float64, count=len(values))


def compact(item: Mapping[str, Any]) -> dict[str, Any]:
    """A series as the API returns it (`values: [[t, "v"], ...]`) → numpy arrays `ts` and `v`
    (16 bytes a sample instead of ~150 as Python lists): done per query window."""
    vals = item["values"]
    return {
        "metric": item["metric"],
        "ts": _times(vals),
        "v": np.fromiter((float(v[1]) for v in vals), dtype=np.float64, count=len(vals)),
    }


def _arrays(item: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    c = item if "ts" in item else compact(item)
    return c["ts"], c["v"]


def _count(item: Mapping[str, Any]) -> int:
    return len(item["ts"]) if "ts" in item else len(item["values"])


def episodes(
    firing: Iterable[Mapping[str, Any]], for_state: Iterable[Mapping[str, Any]] = ()
) -> pd.DataFrame:
    """Firing episodes from raw `ALERTS{alertstate="firing"}` samples (several query windows of
    one series may come as separate items: they are joined) and `ALERTS_FOR_STATE` samples;
    items as the API returns them or `compact`ed."""
    times: dict[str, list[np.ndarray]] = {}
    labels: dict[str, Mapping[str, str]] = {}
    for item in firing:
        key = _series_key(item["metric"])
        labels.setdefault(key, item["metric"])
        times.setdefault(key, []).append(item["ts"] if "ts" in item else _times(item["values"]))
    active: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for item in for_state:
        ts, active_at = _arrays(item)
        active.setdefault(_series_key(item["metric"]), []).append((ts, active_at))
    cols: dict[str, list[Any]] = {c: [] for c in _EPISODE_COLUMNS}
    for key, parts in times.items():
        ts = np.unique(np.concatenate(parts))
        if ts.size == 0:
            continue
        gaps = np.diff(ts)
        # the evaluation interval: the shortest step between samples (rules are evaluated at
        # least once a minute; a series whose episodes are all single samples has no step)
        pos = gaps[gaps > 0]
        interval = min(float(pos.min()), DEFAULT_INTERVAL) if pos.size else DEFAULT_INTERVAL
        breaks = np.flatnonzero(gaps > 2 * interval)
        starts = ts[np.concatenate(([0], breaks + 1))]
        ends = ts[np.concatenate((breaks, [ts.size - 1]))] + interval
        onsets = starts.copy()
        if key in active:
            fts = np.concatenate([p[0] for p in active[key]])
            fval = np.concatenate([p[1] for p in active[key]])
            order = np.argsort(fts)
            fts, fval = fts[order], fval[order]
            idx = np.searchsorted(fts, starts)  # first activeAt sample at or after the start
            ok = idx < fts.size
            ok[ok] &= fts[idx[ok]] < ends[ok]
            onsets[ok] = np.minimum(fval[idx[ok]], starts[ok])
        metric = labels[key]
        n = starts.size
        cols["alertname"] += [metric.get("alertname", "")] * n
        cols["severity"] += [metric.get("severity", "")] * n
        cols["series"] += [key] * n
        cols["start"] += starts.tolist()
        cols["end"] += ends.tolist()
        cols["onset"] += onsets.tolist()
    return pd.DataFrame(cols, columns=_EPISODE_COLUMNS)


def _union_seconds(starts: np.ndarray, ends: np.ndarray, lo: float, hi: float) -> float:
    """Length of the union of [start, end) intervals clipped to [lo, hi)."""
    if starts.size == 0:
        return 0.0
    order = np.argsort(starts)
    s, e = np.clip(starts[order], lo, hi), np.clip(ends[order], lo, hi)
    reach = np.maximum.accumulate(e)
    prev = np.concatenate(([lo], reach[:-1]))
    return float(np.sum(np.maximum(0.0, e - np.maximum(s, prev)).clip(min=0)))


# --- tables -----------------------------------------------------------------------------------

ALERT_COLUMNS = [
    "alert",
    "severity",
    "fires",
    "firing_hours",
    "firing_share",
    "flaps",
    "pages",
    "median_resolve_min",
    "p90_resolve_min",
    "median_ack_min",
]


def _quantile(x: pd.Series, q: float) -> float:
    return float(x.quantile(q)) if len(x) else float("nan")


def alert_table(
    eps: pd.DataFrame,
    start: float,
    end: float,
    rules: Iterable[tuple[str, str]],
    pages: Callable[[str, str], bool],
    flap_seconds: float,
) -> pd.DataFrame:
    """Per alert rule (name, severity): fires, time firing, flaps, pages, time to resolve."""
    rows = []
    period = max(end - start, 1.0)
    known = dict.fromkeys(rules)
    groups = (
        {k: g for k, g in eps.groupby(["alertname", "severity"], sort=False)} if len(eps) else {}
    )
    for name, sev in list(known) + [k for k in groups if k not in known]:
        g = groups.get((name, sev))
        if g is None or g.empty:
            rows.append(
                {
                    "alert": name,
                    "severity": sev,
                    "fires": 0,
                    "firing_hours": 0.0,
                    "firing_share": 0.0,
                    "flaps": 0,
                    "pages": 0,
                }
            )
            continue
        s, e = g["start"].to_numpy(), g["end"].to_numpy()
        resolve = (g["end"] - g["onset"]) / 60
        fires = len(g)
        rows.append(
            {
                "alert": name,
                "severity": sev,
                "fires": fires,
                "firing_hours": float(np.sum(np.clip(e, start, end) - np.clip(s, start, end)))
                / 3600,
                "firing_share": _union_seconds(s, e, start, end) / period,
                "flaps": int(np.sum(e - s <= flap_seconds)),
                "pages": fires if pages(name, sev) else 0,
                "median_resolve_min": _quantile(resolve, 0.5),
                "p90_resolve_min": _quantile(resolve, 0.9),
            }
        )
    df = pd.DataFrame(rows, columns=ALERT_COLUMNS)
    return df.sort_values(["fires", "alert"], ascending=[False, True], ignore_index=True)


WATCH_COLUMNS = [
    "watch",
    "severity",
    "incidents",
    "open_hours",
    "flaps",
    "pages",
    "median_resolve_min",
    "p90_resolve_min",
    "median_ack_min",
]


def watch_table(
    incidents: Iterable[IncidentRecord], start: datetime, end: datetime, flap_seconds: float
) -> pd.DataFrame:
    """Per watch and severity, from the incident store: incidents opened in the period, time
    open, flaps (resolved within N minutes), pages, time to resolve and to acknowledge."""
    recs = [i for i in incidents if start <= i.onset < end]
    if not recs:
        return pd.DataFrame(columns=WATCH_COLUMNS)
    df = pd.DataFrame(
        {
            "watch": [i.watch for i in recs],
            "severity": [i.severity for i in recs],
            "open_s": [
                ((min(i.resolved_at, end) if i.resolved_at else end) - i.onset).total_seconds()
                for i in recs
            ],
            "resolve_min": [
                (i.resolved_at - i.onset).total_seconds() / 60 if i.resolved_at else np.nan
                for i in recs
            ],
            "ack_min": [
                (i.acknowledged_at - i.onset).total_seconds() / 60 if i.acknowledged_at else np.nan
                for i in recs
            ],
            "paged": [i.paged for i in recs],
        }
    )
    out = df.groupby(["watch", "severity"], sort=True).agg(
        incidents=("open_s", "size"),
        open_hours=("open_s", lambda x: float(x.sum()) / 3600),
        flaps=("resolve_min", lambda x: int((x <= flap_seconds / 60).sum())),
        pages=("paged", "sum"),
        median_resolve_min=("resolve_min", "median"),
        p90_resolve_min=("resolve_min", lambda x: _quantile(x.dropna(), 0.9)),
        median_ack_min=("ack_min", "median"),
    )
    return out.reset_index()[WATCH_COLUMNS]


def severity_table(alerts: pd.DataFrame, watches: pd.DataFrame) -> pd.DataFrame:
    """Totals per severity over alert rules and watches."""
    a = alerts.groupby("severity").agg(
        alert_rules=("alert", "size"),
        fired=("fires", lambda x: int((x > 0).sum())),
        fires=("fires", "sum"),
        firing_hours=("firing_hours", "sum"),
        flaps=("flaps", "sum"),
        pages=("pages", "sum"),
    )
    if not watches.empty:
        w = watches.groupby("severity").agg(
            watch_incidents=("incidents", "sum"), watch_pages=("pages", "sum")
        )
        a = a.join(w, how="outer")
    order = {s: i for i, s in enumerate(SEVERITIES)}
    a = a.fillna(0).reset_index()
    return a.sort_values(
        "severity", key=lambda s: s.map(lambda v: order.get(v, 9)), ignore_index=True
    )


def weekly_fires(eps: pd.DataFrame, watch_incidents: Iterable[IncidentRecord] = ()) -> pd.DataFrame:
    """Fires per week (Monday) × severity, alert episodes and watch incidents together."""
    starts = (
        pd.to_datetime(eps["start"], unit="s", utc=True)
        if len(eps)
        else pd.Series([], dtype="datetime64[ns, UTC]")
    )
    frame = pd.DataFrame({"at": starts, "severity": eps["severity"].to_numpy() if len(eps) else []})
    extra = [(i.onset, i.severity) for i in watch_incidents]
    if extra:
        more = pd.DataFrame(
            {
                "at": pd.to_datetime([e[0] for e in extra], utc=True),
                "severity": [e[1] for e in extra],
            }
        )
        frame = pd.concat([frame, more], ignore_index=True)
    if frame.empty:
        return pd.DataFrame()
    frame["week"] = frame["at"].dt.tz_convert(None).dt.to_period("W-SUN").dt.start_time
    return frame.pivot_table(
        index="week", columns="severity", values="at", aggfunc="count", fill_value=0
    )


def compute(
    firing: Iterable[Mapping[str, Any]],
    for_state: Iterable[Mapping[str, Any]],
    start: datetime,
    end: datetime,
    rules: Iterable[tuple[str, str]],
    pages: Callable[[str, str], bool],
    incidents: Iterable[IncidentRecord] = (),
    thresholds: NoiseThresholds | None = None,
) -> NoiseStats:
    th = thresholds or NoiseThresholds()
    firing, for_state, incidents = list(firing), list(for_state), list(incidents)
    eps = episodes(firing, for_state)
    lo, hi = start.timestamp(), end.timestamp()
    if len(eps):
        eps = eps[(eps["end"] > lo) & (eps["start"] < hi)]
    flap = th.flap_minutes * 60
    alerts = alert_table(eps, lo, hi, rules, pages, flap)
    watches = watch_table(incidents, start, end, flap)
    quick: dict[tuple[str, str], int] = {}
    if len(eps):
        fast = eps[(eps["end"] - eps["onset"]) <= th.autoresolve_minutes * 60]
        quick = {k: int(v) for k, v in fast.groupby(["alertname", "severity"]).size().items()}
    return NoiseStats(
        quick_resolves=quick,
        start=start,
        end=end,
        alerts=alerts,
        watches=watches,
        severities=severity_table(alerts, watches),
        weekly=weekly_fires(eps, [i for i in incidents if start <= i.onset < end]),
        resolve_minutes=((eps["end"] - eps["onset"]) / 60).reset_index(drop=True)
        if len(eps)
        else pd.Series([], dtype=float),
        thresholds=th,
        series_count=len({_series_key(i["metric"]) for i in firing}),
        sample_count=sum(_count(i) for i in firing),
    )


# --- charts -----------------------------------------------------------------------------------

_COLOURS = {"critical": "#c0392b", "warning": "#e0a800", "info": "#5b8fd6", "": "#999999"}


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def charts(stats: NoiseStats) -> list[tuple[str, str]]:
    """(caption, base64 PNG): fires per week by severity; distribution of time to resolve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    if not stats.weekly.empty:
        fig, ax = plt.subplots(figsize=(9, 3.2))
        bottom = np.zeros(len(stats.weekly))
        labels = [d.strftime("%d %b") for d in stats.weekly.index]
        for sev in stats.weekly.columns:
            vals = stats.weekly[sev].to_numpy()
            ax.bar(
                labels, vals, bottom=bottom, label=sev or "(none)", color=_COLOURS.get(sev, "#777")
            )
            bottom += vals
        ax.set_ylabel("fires")
        ax.set_title("Fires per week")
        ax.legend(frameon=False)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        out.append(("Fires per week, by severity", _png(fig)))
        plt.close(fig)
    if len(stats.resolve_minutes):
        fig, ax = plt.subplots(figsize=(9, 3.2))
        mins = stats.resolve_minutes.clip(lower=0.5)
        bins = np.logspace(np.log10(0.5), np.log10(max(float(mins.max()), 1.0) * 1.1), 30)
        ax.hist(mins, bins=bins, color="#5b8fd6")
        ax.set_xscale("log")
        ax.set_xlabel("minutes from onset to resolved (log scale)")
        ax.set_ylabel("episodes")
        ax.set_title("Time to resolve")
        out.append(("Distribution of time to resolve", _png(fig)))
        plt.close(fig)
    return out
