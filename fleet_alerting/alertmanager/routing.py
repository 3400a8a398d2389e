"""Alertmanager (0.25) routing semantics: matchers, the routing tree, time intervals, inhibition.

Modelled on prometheus/alertmanager `pkg/labels/parse.go`, `dispatch/route.go`,
`timeinterval/timeinterval.go` and `inhibit/inhibit.go`. Pure: no I/O, no clock reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fleet_alerting.core.durations import parse_duration
from fleet_alerting.core.matchers import (
    LABEL_NAME,
    Labels,
    Matcher,
    MatcherError,
    matchers_str,
    parse_matcher,
    parse_matchers,
    sort_key,
)
from fleet_alerting.core.time_intervals import TimeInterval, TimeIntervalError
from fleet_alerting.core.time_intervals import parse_time_interval as _parse_time_interval

Path = tuple[str | int, ...]


class RoutingConfigError(ValueError):
    """An invalid Alertmanager configuration; `path` locates the offending key."""

    def __init__(self, message: str, path: Path = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        if not self.path:
            return self.message
        return f"{format_path(self.path)}: {self.message}"


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --- the routing tree -------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteOpts:
    receiver: str = ""
    group_by: frozenset[str] = frozenset()
    group_by_all: bool = False
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()


@dataclass
class Route:
    matchers: tuple[Matcher, ...]
    opts: RouteOpts
    continue_: bool = False
    routes: list[Route] = field(default_factory=list)
    path: Path = ()  # config path, e.g. ("route", "routes", 0)
    id: str = "root"  # position in the tree, e.g. "root/0/2"

    def match(self, labels: Labels) -> list[Route]:
        """Depth-first, left to right; first matching child wins unless it has `continue`."""
        if not all(m.matches(labels) for m in self.matchers):
            return []
        found: list[Route] = []
        for child in self.routes:
            matches = child.match(labels)
            found.extend(matches)
            if matches and not child.continue_:
                break
        return found or [self]

    def walk(self) -> Iterable[Route]:
        yield self
        for child in self.routes:
            yield from child.walk()

    def slug(self, show_continue: bool = False, show_receiver: bool = False) -> str:
        out = matchers_str(self.matchers) if self.matchers else "default-route"
        if self.continue_ and show_continue:
            out += "  continue: true"
        if show_receiver:
            out += f"  receiver: {self.opts.receiver}"
        return out


def _str_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


def _route_matchers(cr: Mapping[str, Any], path: Path) -> tuple[Matcher, ...]:
    ms: list[Matcher] = []
    for key, op in (("match", "="), ("match_re", "=~")):
        section = cr.get(key) or {}
        if not isinstance(section, Mapping):
            raise RoutingConfigError(f"{key} must be a mapping", (*path, key))
        for name, value in section.items():
            if not LABEL_NAME.match(str(name)):
                raise RoutingConfigError(f"invalid label name {name!r}", (*path, key, name))
            value = _str_value(value)
            if op == "=~":
                # config.Regexp keeps the anchored form; amtool prints it that way.
                value = f"^(?:{value})$"
            try:
                ms.append(Matcher.new(str(name), op, value))
            except MatcherError as exc:
                raise RoutingConfigError(str(exc), (*path, key, name)) from exc
    lines = cr.get("matchers") or []
    if not isinstance(lines, list):
        raise RoutingConfigError("matchers must be a list of strings", (*path, "matchers"))
    for i, line in enumerate(lines):
        try:
            ms.extend(parse_matchers(str(line)))
        except MatcherError as exc:
            raise RoutingConfigError(str(exc), (*path, "matchers", i)) from exc
    return tuple(sorted(ms, key=sort_key))


def build_route(
    cr: Mapping[str, Any],
    parent: RouteOpts | None = None,
    path: Path = ("route",),
    rid: str = "root",
) -> Route:
    """NewRoute: children inherit receiver, group_by and timers; time intervals are per route."""
    if not isinstance(cr, Mapping):
        raise RoutingConfigError("route must be a mapping", path)
    opts = parent or RouteOpts()
    changes: dict[str, Any] = {}
    if cr.get("receiver"):
        changes["receiver"] = str(cr["receiver"])
    group_by = cr.get("group_by")
    if group_by is not None:
        names = [str(n) for n in group_by]
        if "..." in names:
            if len(names) > 1:
                raise RoutingConfigError(
                    "cannot have wildcard group_by (`...`) and other other labels at the same time",
                    (*path, "group_by"),
                )
            changes["group_by_all"] = True
            changes["group_by"] = frozenset()
        else:
            if len(set(names)) != len(names):
                raise RoutingConfigError("duplicated label in group_by", (*path, "group_by"))
            changes["group_by"] = frozenset(names)
            changes["group_by_all"] = False
    for key in ("group_wait", "group_interval", "repeat_interval"):
        if cr.get(key) is not None:
            try:
                changes[key] = parse_duration(cr[key], prometheus=True).total_seconds()
            except ValueError as exc:
                raise RoutingConfigError(str(exc), (*path, key)) from exc
            if key != "group_wait" and changes[key] == 0:
                raise RoutingConfigError(f"{key} cannot be zero", (*path, key))
    changes["mute_time_intervals"] = tuple(str(n) for n in cr.get("mute_time_intervals") or ())
    changes["active_time_intervals"] = tuple(str(n) for n in cr.get("active_time_intervals") or ())
    opts = RouteOpts(**{**opts.__dict__, **changes})
    route = Route(
        matchers=_route_matchers(cr, path),
        opts=opts,
        continue_=bool(cr.get("continue", False)),
        path=path,
        id=rid,
    )
    children = cr.get("routes") or []
    if not isinstance(children, list):
        raise RoutingConfigError("routes must be a list", (*path, "routes"))
    route.routes = [
        build_route(child, opts, (*path, "routes", i), f"{rid}/{i}")
        for i, child in enumerate(children)
    ]
    return route


# --- time intervals (core.time_intervals) ----------------------------------------------------


def parse_time_interval(d: Mapping[str, Any], path: Path = ()) -> TimeInterval:
    try:
        return _parse_time_interval(d)
    except TimeIntervalError as exc:
        raise RoutingConfigError(str(exc), path) from exc


# --- inhibition -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertmanagerInhibitRule:
    """One of alertmanager.yml's `inhibit_rules`, over alert labels (the engine's own rules over
    incidents are core.inhibition.InhibitRule)."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()

    def inhibits(self, target: Labels, firing: Iterable[Labels]) -> bool:
        """inhibit.go Mutes: a firing source with equal `equal` labels mutes the target; an
        alert matching both sides cannot be inhibited by another that also matches both."""
        if not all(m.matches(target) for m in self.target):
            return False
        two_sided = all(m.matches(target) for m in self.source)
        for src in firing:
            if not all(m.matches(src) for m in self.source):
                continue
            if any(src.get(n, "") != target.get(n, "") for n in self.equal):
                continue
            if two_sided and all(m.matches(src) for m in self.target):
                continue
            return True
        return False


def _side(rule: Mapping[str, Any], side: str, path: Path) -> tuple[Matcher, ...]:
    cr = {
        "match": rule.get(f"{side}_match"),
        "match_re": rule.get(f"{side}_match_re"),
        "matchers": rule.get(f"{side}_matchers"),
    }
    return _route_matchers(cr, path)


# --- the whole configuration ------------------------------------------------------------------


@dataclass
class AlertmanagerYml:
    """An alertmanager.yml as Alertmanager reads it (our config's `alertmanager:` section, where
    to reach one, is config.schema.AlertmanagerConfig)."""

    route: Route
    receivers: dict[str, dict[str, Any]]
    time_intervals: dict[str, tuple[TimeInterval, ...]]
    inhibit_rules: list[AlertmanagerInhibitRule]
    raw: dict[str, Any]

    def routes_for(self, labels: Labels) -> list[Route]:
        return self.route.match(labels)

    def receivers_for(self, labels: Labels, at: datetime | None = None) -> list[str]:
        """amtool's answer; with `at`, routes muted (or not active) at that instant are dropped."""
        routes = self.routes_for(labels)
        if at is not None:
            routes = [r for r in routes if self.notifies_at(r, at)]
        return [r.opts.receiver for r in routes]

    def in_intervals(self, names: Iterable[str], at: datetime) -> bool:
        return any(ti.contains(at) for n in names for ti in self.time_intervals[n])

    def notifies_at(self, route: Route, at: datetime) -> bool:
        if self.in_intervals(route.opts.mute_time_intervals, at):
            return False
        active = route.opts.active_time_intervals
        return not active or self.in_intervals(active, at)

    def inhibited(self, labels: Labels, firing: Iterable[Labels]) -> bool:
        firing = list(firing)
        return any(rule.inhibits(labels, firing) for rule in self.inhibit_rules)


def parse_config(data: Mapping[str, Any]) -> AlertmanagerYml:
    """Validate and build an alertmanager.yml already loaded as a dict (config.Load checks)."""
    if not isinstance(data, Mapping):
        raise RoutingConfigError("configuration must be a mapping")
    receivers: dict[str, dict[str, Any]] = {}
    for i, rc in enumerate(data.get("receivers") or []):
        name = (rc or {}).get("name")
        if not name:
            raise RoutingConfigError("missing name in receiver", ("receivers", i))
        if name in receivers:
            raise RoutingConfigError(
                f"notification config name {name!r} is not unique", ("receivers", i, "name")
            )
        receivers[str(name)] = dict(rc)
    intervals: dict[str, tuple[TimeInterval, ...]] = {}
    for section in ("mute_time_intervals", "time_intervals"):
        for i, ti in enumerate(data.get(section) or []):
            name = (ti or {}).get("name")
            if not name:
                raise RoutingConfigError("missing name in time interval", (section, i))
            if name in intervals:
                raise RoutingConfigError(f"time interval {name!r} is not unique", (section, i))
            intervals[str(name)] = tuple(
                parse_time_interval(x or {}, (section, i, "time_intervals", j))
                for j, x in enumerate(ti.get("time_intervals") or [])
            )
    root = data.get("route")
    if not root:
        raise RoutingConfigError("no routes provided", ("route",))
    if not root.get("receiver"):
        raise RoutingConfigError("root route must specify a default receiver", ("route",))
    if root.get("match") or root.get("match_re") or root.get("matchers"):
        raise RoutingConfigError("root route must not have any matchers", ("route",))
    if root.get("mute_time_intervals") or root.get("active_time_intervals"):
        raise RoutingConfigError("root route must not have any time intervals", ("route",))
    route = build_route(root)
    for r in route.walk():
        if r.opts.receiver not in receivers:
            raise RoutingConfigError(
                f"undefined receiver {r.opts.receiver!r} used in route", (*r.path, "receiver")
            )
        for n in (*r.opts.mute_time_intervals, *r.opts.active_time_intervals):
            if n not in intervals:
                raise RoutingConfigError(f"undefined time interval {n!r} used in route", r.path)
    inhibit = [
        AlertmanagerInhibitRule(
            source=_side(rule, "source", ("inhibit_rules", i)),
            target=_side(rule, "target", ("inhibit_rules", i)),
            equal=tuple(str(n) for n in rule.get("equal") or ()),
        )
        for i, rule in enumerate(data.get("inhibit_rules") or [])
    ]
    return AlertmanagerYml(route, receivers, intervals, inhibit, dict(data))


# --- amtool-compatible helpers ----------------------------------------------------------------


def parse_label_args(args: Sequence[str]) -> dict[str, str]:
    """`label=value` arguments as amtool reads them (ParseMatcher, `=` only, last one wins)."""
    labels: dict[str, str] = {}
    for a in args:
        try:
            m = parse_matcher(a)
        except MatcherError as exc:
            raise RoutingConfigError(str(exc)) from exc
        if m.op != "=":
            raise RoutingConfigError('Labels must be specified as key="value" pairs')
        labels[m.name] = m.value
    return labels


def matching_tree(route: Route, labels: Labels) -> str:
    """The `--tree` drawing of `amtool config routes test`, byte for byte (treeprint layout)."""
    lines = ["."]

    def visit(r: Route, prefix: str, last: bool) -> None:
        children = []
        for child in r.routes:
            if all(m.matches(labels) for m in child.matchers):
                children.append(child)
                if not child.continue_:
                    break
        label = r.slug(show_receiver=not children)
        lines.append(prefix + ("└── " if last else "├── ") + label)
        # treeprint: an open level is "│" + two no-break spaces + a space, a closed one 4 spaces
        inner = prefix + ("    " if last else "│\u00a0\u00a0 ")
        for i, child in enumerate(children):
            visit(child, inner, i == len(children) - 1)

    visit(route, "", True)
    return "\n".join(lines)
