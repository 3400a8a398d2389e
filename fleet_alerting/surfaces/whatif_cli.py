"""`fleet-alerting what-if --proposed NEW.yaml [--current CUR.yaml] --since 90d`: replay what the
current configuration's store recorded through both configurations; Markdown on stdout (or
--markdown FILE), an HTML page with charts with --html FILE.

As a CI gate it exits 1 when a critical incident that paged under the current configuration would
not page under the proposed one, unless its key is listed with --accept (intended)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any


def what_if(args: argparse.Namespace) -> int:
    from fleet_alerting.audit.loader import load_alertmanager
    from fleet_alerting.audit.whatif import (
        Comparison,
        Replay,
        replay,
        route,
        sent_of,
        with_alerts,
    )
    from fleet_alerting.audit.whatif_report import build, kept_less, render
    from fleet_alerting.config import Config, ConfigError, load_config
    from fleet_alerting.core.clock import utcnow
    from fleet_alerting.store import actions, history, silences
    from fleet_alerting.surfaces.listings import open_store

    current_path = args.current or args.config
    try:
        current = load_config(current_path)
        proposed = load_config(args.proposed)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    end = utcnow()
    start: datetime = args.since
    # sent messages are kept less long than observations: beside the replay only when the
    # store still holds every one of the period's
    sent_kept = current.state.retention.sent_notifications
    # what the replays read (observations, silences by matchers) and the hand count (the trail)
    shorter = kept_less(
        current.state.retention, ("history", "expired_silences", "actions"), start, end
    )
    trail_kept = shorter.pop("actions", None)  # the counts of what operators did: its last part
    with open_store(current) as store:
        recorded = history.read(store, start, end)
        silenced = silences.listing(store, end, include_expired=True)
        sent_in_period = start >= end - sent_kept
        delivered = [sent_of(n) for n in store.queue.sent(start, end)] if sent_in_period else None
        by_hand = actions.by_hand(store, start, end)
    alerts = alert_episodes_of(current, start, end)
    routed = None
    if args.alertmanager:
        if alerts is None:
            print(
                "--alertmanager: the alerts to route are read from Prometheus' ALERTS: "
                "the current config needs prometheus.url and an alertmanager section",
                file=sys.stderr,
            )
            return 2
        routed = route(
            alerts,
            current_routes(current, args.current_alertmanager),
            load_alertmanager(args.alertmanager),
        )

    def replayed(config: Config, path: str) -> Replay:
        observed = with_alerts(recorded, alerts or [], config)
        return replay(observed, config, Path(path).name, silences=silenced)

    sent = None if delivered is None else Replay("sent", delivered, 0, 0)
    comparison = Comparison.of(
        replayed(current, current_path), replayed(proposed, args.proposed), routed, sent
    )
    hours = current.review.business_hours
    blocks = build(
        comparison,
        hours,
        start,
        end,
        args.accept,
        sent_kept=sent_kept,
        by_hand=by_hand,
        trail_kept=trail_kept,
        kept_less=shorter,
    )
    markdown, page = render(blocks, "What-if", images=bool(args.markdown))
    if args.markdown:
        Path(args.markdown).write_text(markdown)
    else:
        print(markdown)
    if args.html:
        Path(args.html).write_text(page)
    blocking = comparison.blocking(args.accept)
    for shift in blocking:
        episode = shift.episode
        print(
            f"would no longer page: {episode.key} (critical, onset {episode.onset:%Y-%m-%d %H:%M},"
            f" paged {shift.before:%Y-%m-%d %H:%M}); --accept {episode.key} if intended",
            file=sys.stderr,
        )
    return 1 if blocking else 0


def alert_episodes_of(config: Any, start: datetime, end: datetime) -> Any:
    """Alertmanager's alerts of the period from Prometheus' `ALERTS` (None: no Prometheus or no
    Alertmanager configured, the recorded history alone is replayed)."""
    if not config.prometheus.url or config.alertmanager is None:
        return None
    from fleet_alerting.audit.live import PrometheusSeries, alert_history
    from fleet_alerting.audit.whatif import alert_episodes

    series = PrometheusSeries(config.prometheus.url, config.prometheus.timeout.total_seconds())
    return alert_episodes(*alert_history(series, start, end))


def current_routes(config: Any, path: str | None) -> Any:
    """The current alertmanager.yml: the file given, else the running one."""
    from fleet_alerting.audit.live import fetch_running_config
    from fleet_alerting.audit.loader import load_alertmanager, load_alertmanager_text

    if path:
        return load_alertmanager(path)
    url = config.alertmanager.url
    return load_alertmanager_text(fetch_running_config(url), f"{url}/api/v2/status")


def add_commands(
    commands: Any,
    with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
    since: Callable[[str], datetime],
) -> None:
    text = "replay recorded history through a proposed config: pages, messages, what changes"
    sub = with_config(commands.add_parser("what-if", help=text, description=__doc__))
    sub.set_defaults(func=what_if)
    sub.add_argument("--proposed", required=True, metavar="NEW.yaml", help="the proposed config")
    sub.add_argument(
        "--current",
        metavar="CUR.yaml",
        help="the live config, whose store holds the history (default: --config)",
    )
    sub.add_argument(
        "--since",
        type=since,
        required=True,
        metavar="WHEN",
        help="replay from WHEN: a duration back (90d) or an ISO 8601 time",
    )
    sub.add_argument(
        "--accept",
        nargs="*",
        default=[],
        metavar="KEY",
        help="incident keys that may stop paging (intended); others fail the gate",
    )
    sub.add_argument(
        "--alertmanager",
        metavar="NEW-AM.yml",
        help="a proposed alertmanager.yml: route the period's alerts (ALERTS) through both",
    )
    sub.add_argument(
        "--current-alertmanager",
        metavar="CUR-AM.yml",
        help="the current alertmanager.yml (default: the running one, from alertmanager.url)",
    )
    sub.add_argument(
        "--markdown", type=report_file, metavar="FILE", help="write the Markdown report here"
    )
    sub.add_argument(
        "--html", type=report_file, metavar="FILE", help="write the HTML report with charts here"
    )


def report_file(text: str) -> Path:
    """A report's file, refused before the replay when it could not be written."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: a folder (name a file in it)")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: no such folder {path.parent}")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"cannot write {text}: permission denied")
    return path
