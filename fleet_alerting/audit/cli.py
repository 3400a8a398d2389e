"""`fleet-alerting routes test` (amtool-compatible) and `fleet-alerting audit`.

Wire into the main parser with `add_commands(subparsers)`; each command sets `func(args) -> int`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml

from fleet_alerting.alertmanager.routing import RoutingConfigError, matching_tree, parse_label_args
from fleet_alerting.audit.loader import AuditInputError, load_alertmanager


def _instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def routes_test(args: argparse.Namespace) -> int:
    """Print receivers for one label set exactly as `amtool config routes test` does, or check
    a batch of cases from --file."""
    try:
        am = load_alertmanager(args.config)
        at = _instant(args.time)
        if args.file:
            return _routes_batch(am, Path(args.file), at)
    except (AuditInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        labels = parse_label_args(args.labels)
    except RoutingConfigError as exc:  # amtool exits 1 here too
        print(f"error: Failed to parse labels: {exc}", file=sys.stderr)
        return 1
    if args.tree:
        print("Matching routes:")
        print(matching_tree(am.route, labels))
        print()
        print()
    print(",".join(am.receivers_for(labels, at)))
    if args.verify_receivers is not None and args.verify_receivers != ",".join(
        am.receivers_for(labels, at)
    ):
        print("WARNING: Expected receivers did not match resolved receivers.")
        return 1
    return 0


def _routes_batch(am, path: Path, default_at: datetime | None) -> int:  # type: ignore[no-untyped-def]
    """cases.yaml: a list of {labels: {...}, receivers: [...], at: ISO8601?}."""
    try:
        doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    cases = doc.get("cases", doc) if isinstance(doc, dict) else doc
    failed = 0
    for i, case in enumerate(cases or []):
        labels = {str(k): str(v) for k, v in (case.get("labels") or {}).items()}
        at = _instant(case["at"]) if case.get("at") else default_at
        got = am.receivers_for(labels, at)
        want = list(case.get("receivers") or [])
        ok = got == want
        failed += not ok
        mark = "ok  " if ok else "FAIL"
        shown = ",".join(f"{k}={v}" for k, v in labels.items())
        extra = "" if ok else f" (expected {','.join(want)})"
        print(f"{mark} {i}: {{{shown}}} -> {','.join(got)}{extra}")
    print(f"{len(cases or []) - failed} passed, {failed} failed")
    return 1 if failed else 0


def audit(args: argparse.Namespace) -> int:
    from fleet_alerting.audit.live import gather_inputs
    from fleet_alerting.audit.report import write_report
    from fleet_alerting.audit.run import run_audit

    try:
        now = _instant(args.now) or datetime.now(UTC)
    except ValueError as exc:
        print(f"error: --now: {exc}", file=sys.stderr)
        return 2
    try:
        inp = gather_inputs(
            alertmanager_file=args.alertmanager,
            rules_glob=args.rules,
            expectations_file=args.expectations,
            now=now,
            alertmanager_url=args.alertmanager_url,
            prometheus_url=args.prometheus_url,
            dashboards_glob=args.dashboards,
            noise_days=args.noise_days if args.prometheus_url else None,
        )
    except AuditInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        written = write_report(run_audit(inp), args.out)
    except OSError as exc:
        print(f"error: cannot write the report to {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    s = written.summary
    since = (
        f"since {s['previous_quarter']}: {s['new']} new, {s['open']} open, {s['fixed']} fixed"
        if s["previous_quarter"]
        else "the first report here: nothing to compare with"
    )
    print(
        f"{s['quarter']}: {s['errors']} errors, {s['warnings']} warnings, {s['infos']} notes "
        f"({since}) -> {written.directory}"
    )
    if s["offline"]:
        print(f"error: offline report, online checks skipped: {s['offline']}", file=sys.stderr)
        return 1
    return 1 if s["errors"] and args.fail_on_error else 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    routes = subparsers.add_parser(
        "routes",
        help="Alertmanager routing tree tools",
        description="Alertmanager routing tree tools",
    )
    routes_sub = routes.add_subparsers(dest="routes_command", required=True, metavar="{test}")
    about = "receivers for a label set (same output as `amtool config routes test`)"
    test = routes_sub.add_parser("test", help=about, description=about)
    test.add_argument(
        "--config.file",
        "-c",
        "--config",
        dest="config",
        required=True,
        metavar="FILE",
        help="alertmanager.yml (amtool spells it --config.file; --config works too)",
    )
    test.add_argument(
        "--time", metavar="WHEN", help="ISO 8601 instant: drop routes muted/inactive then"
    )
    test.add_argument("--tree", action="store_true", help="print the matching routing tree")
    test.add_argument(
        "--verify-receivers", metavar="RECEIVERS", help="exit 1 unless the receivers equal this"
    )
    test.add_argument(
        "--file", metavar="FILE", help="cases.yaml: many label sets with expected receivers"
    )
    test.add_argument("labels", nargs="*", metavar="LABEL=VALUE", help="the alert's labels")
    test.set_defaults(func=routes_test)

    about = (
        "quarterly audit: Alertmanager routes against severity expectations, rules against reality"
    )
    p = subparsers.add_parser("audit", help=about, description=about)
    p.add_argument("--alertmanager", metavar="FILE", help="alertmanager.yml")
    p.add_argument(
        "--alertmanager-url", metavar="URL", help="running Alertmanager, for drift (/api/v2/status)"
    )
    p.add_argument("--rules", required=True, metavar="GLOB", help="glob of Prometheus rule files")
    p.add_argument("--expectations", required=True, metavar="FILE", help="expectations YAML")
    p.add_argument(
        "--out", default="reports", metavar="DIR", help="report directory (a <year>-Q<n>/ inside)"
    )
    p.add_argument(
        "--prometheus-url",
        metavar="URL",
        help="enables the online checks (not answering: an offline report and exit 1)",
    )
    p.add_argument("--dashboards", metavar="GLOB", help="glob of Grafana dashboard JSON files")
    p.add_argument(
        "--noise-days",
        type=float,
        default=90,
        metavar="DAYS",
        help="with --prometheus-url: noise statistics over this many days before --now (0: none)",
    )
    p.add_argument(
        "--now", metavar="WHEN", help="ISO 8601 instant of the audit (default: the current time)"
    )
    p.add_argument("--fail-on-error", action="store_true", help="exit 1 on error findings")
    p.set_defaults(func=audit)
