"""Fleet-level signals computed from the per-device signals of one run.

When the VPS loses its network or the venue's uplink drops, every device fails at once. Each device
is still its own incident, but the run also yields one aggregate per rule (and per label group,
e.g. `site`): "Fleet offline: 38/40 devices unreachable (…)", critical, firing while at least
`threshold` of the devices fail. It goes through the engine like any signal (open_after,
page_after from its onset, resolve_after), and the shipped inhibition rules silence the
per-device incidents while it is open.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import cache
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from fleet_alerting.core.incidents import Incident, State, glances
from fleet_alerting.core.keys import incident_key
from fleet_alerting.core.matchers import check_matcher, parse_matcher
from fleet_alerting.core.model import Model
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.core.urls import HttpUrl

SOURCE = "fleet"

MatcherText = Annotated[str, AfterValidator(check_matcher)]


def signal_labels(source: str, severity: str, labels: Mapping[str, str]) -> dict[str, str]:
    """The label set matchers see for a signal or incident: its labels, plus `source` and
    `severity` (ours win: they are what the rules are written against)."""
    return {**labels, "source": source, "severity": severity}


class Selector:
    """A list of matchers (validated at config load) as one test, memoized on the values of the
    labels it names: a storm is thousands of incidents with a handful of distinct values."""

    def __init__(self, matchers: tuple[str, ...]):
        self.matchers = tuple(parse_matcher(m) for m in matchers)
        self.names = tuple(m.name for m in self.matchers)
        self._seen: dict[tuple[str, ...], bool] = {}
        self._sources: dict[str, bool] = {}

    def admits(self, source: str) -> bool:
        """Whether anything of `source` may match: the `source` matchers alone (a storm is mostly
        one source, so most rules are ruled out once instead of per incident)."""
        hit = self._sources.get(source)
        if hit is None:
            label = {"source": source}
            hit = all(m.matches(label) for m in self.matchers if m.name == "source")
            self._sources[source] = hit
        return hit

    def __call__(self, labels: Mapping[str, str]) -> bool:
        values = tuple(labels.get(name, "") for name in self.names)
        hit = self._seen.get(values)
        if hit is None:
            if len(self._seen) >= 65536:
                self._seen.clear()
            hit = all(m.matches({m.name: v}) for m, v in zip(self.matchers, values, strict=True))
            self._seen[values] = hit
        return hit


@cache
def selector(matchers: tuple[str, ...]) -> Selector:
    return Selector(matchers)


def matches_all(matchers: Sequence[str], labels: Mapping[str, str]) -> bool:
    return selector(tuple(matchers))(labels)


class FleetOfflineRule(Model):
    """One aggregate: the signals matching `devices` are the fleet (one per `device_label`
    value); when at least `threshold` of them fail in one run — a count such as 10, or a share
    such as "50%" — and there are at least `min_devices`, the aggregate fires."""

    name: str = Field("fleet", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    devices: list[MatcherText] = Field(min_length=1)
    device_label: str = "instance"  # what names a device; the signal's target if absent
    threshold: int | str = "50%"
    min_devices: int = Field(4, ge=1)
    group_by: list[str] = []  # one aggregate per value combination, e.g. [site] or [role]
    severity: Severity = Severity.critical
    what: str = "devices unreachable"  # words of the summary
    max_listed: int = Field(10, ge=0)
    runbook_url: HttpUrl | None = None
    remediation: list[str] = []

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 1:
                raise ValueError("a count threshold must be at least 1")
            return value
        text = value.strip()
        try:
            share = float(text.removesuffix("%"))
        except ValueError:
            share = -1.0
        if not text.endswith("%") or not 0 < share <= 100:
            raise ValueError('expected a count (e.g. 10) or a share such as "50%"')
        return text

    def needed(self, total: int) -> int:
        """How many failing devices of `total` fire the aggregate."""
        if isinstance(self.threshold, int):
            return self.threshold
        return max(1, math.ceil(total * float(self.threshold.removesuffix("%")) / 100 - 1e-9))


def default_offline_rules() -> list[FleetOfflineRule]:
    """Device `/healthz` probes (the blackbox warnings from file_sd) make the shipped fleet."""
    return [
        FleetOfflineRule(
            name="fleet",
            devices=['source="blackbox"', 'severity!="critical"'],
            remediation=[
                "Many devices failed at once: suspect the shared path, not the devices — the "
                "VPS's network, the venue's uplink, the VPN, the PoE switch",
                "From the VPS: ping a device and the venue's router; check the VPN tunnel",
                "When the path is back the per-device incidents resolve by themselves",
            ],
        )
    ]


class FleetConfig(Model):
    """Fleet-level aggregates over the per-device signals of one run."""

    offline: list[FleetOfflineRule] = Field(default_factory=default_offline_rules)

    @field_validator("offline")
    @classmethod
    def _unique(cls, rules: list[FleetOfflineRule]) -> list[FleetOfflineRule]:
        names = [r.name for r in rules]
        if len(names) != len(set(names)):
            raise ValueError("fleet.offline rule names must be unique (they key the incidents)")
        return rules


def aggregate(
    signals: Iterable[Signal],
    rules: Sequence[FleetOfflineRule],
    muted: Callable[[Signal], bool] | None = None,
) -> list[Signal]:
    """One aggregate signal per rule and label group that has devices in this run: firing when
    enough of them fail, ok otherwise (so an open aggregate resolves when the fleet is back).

    A device whose every check is `muted` (a silence, a maintenance window, an operator's silence
    of its incident: planned work) counts neither as failing nor in the whole: the share is of
    the devices meant to be up, so planned work neither pages the fleet nor dilutes a real
    outage of the rest; the summary says how many were left out."""
    signals = list(signals)
    out: list[Signal] = []
    for rule in rules:
        devices_of = selector(tuple(rule.devices))
        groups: dict[tuple[str, ...], tuple[dict[str, bool], set[str]]] = {}
        for s in signals:
            if s.source == SOURCE or not devices_of.admits(s.source):
                continue
            labels = signal_labels(s.source, s.severity, s.labels)
            if not devices_of(labels):
                continue
            group = tuple(labels.get(name, "") for name in rule.group_by)
            device = labels.get(rule.device_label) or s.target or s.key
            devices, in_maintenance = groups.setdefault(group, ({}, set()))
            if muted is not None and muted(s):
                in_maintenance.add(device)
                continue
            devices[device] = devices.get(device, False) or s.firing  # any failing check
        for group, (devices, in_maintenance) in sorted(groups.items()):
            labels = dict(zip(rule.group_by, group, strict=True))
            out.append(
                _aggregate_signal(rule, labels, devices, len(in_maintenance - devices.keys()))
            )
    return out


def _title(group: Mapping[str, str]) -> str:
    scope = " ".join(f"{k}={v}" for k, v in group.items())
    return f"Fleet offline{' (' + scope + ')' if scope else ''}"


def as_configured(
    aggregates: Sequence[Signal],
    incidents: Mapping[str, Incident],
    rules: Sequence[FleetOfflineRule],
) -> list[Signal]:
    """The aggregates, and ok-signals for open fleet incidents whose rule is no longer
    configured, worded as other config changes are: an open incident that the config ended —
    its rule removed, or its threshold (or min_devices) raised past the devices that fail now
    — says so, not that the fleet is back."""
    by_name = {rule.name: rule for rule in rules}
    out = [
        s if s.firing or s.key not in incidents else _reworded(s, incidents[s.key], by_name)
        for s in aggregates
    ]
    for key, seen in glances(incidents):
        if seen.source != SOURCE or seen.state == State.resolved:
            continue
        signal = incidents[key].signal
        name = signal.labels.get("rule", "")
        if name not in by_name:
            gone = f"the fleet rule {name} is no longer configured"
            out.append(replace(signal, firing=False, summary=gone, remediation=()))
    return out


def _reworded(s: Signal, was: Incident, rules: Mapping[str, FleetOfflineRule]) -> Signal:
    """An ok aggregate of an open incident, worded as a config change when as many devices fail
    as when the incident last fired (the rule changed, not the fleet)."""
    fired_at, failing, total = (
        was.signal.evidence.get("needed"),
        s.evidence["failing"],
        s.evidence["devices"],
    )
    rule = rules[s.labels["rule"]]
    if not isinstance(fired_at, int) or failing < fired_at:
        return s
    needs = (
        f"at least {rule.min_devices} devices"
        if total < rule.min_devices
        else f"{rule.needed(total)} of {total} failing (it needed {fired_at})"
    )
    group = {k: v for k, v in s.labels.items() if k != "rule"}
    summary = (
        f"{_title(group)}: {failing}/{total} {rule.what}, resolved by a config change: the rule "
        f"{rule.name} now needs {needs}"
    )
    return replace(s, summary=summary)


def _aggregate_signal(
    rule: FleetOfflineRule, group: dict[str, str], devices: dict[str, bool], muted: int
) -> Signal:
    failing = sorted(d for d, fails in devices.items() if fails)
    total = len(devices)
    firing = total >= rule.min_devices and len(failing) >= rule.needed(total)
    scope = " ".join(f"{k}={v}" for k, v in group.items())
    title = _title(group)
    listed = ", ".join(failing[: rule.max_listed])
    more = len(failing) - rule.max_listed
    listed += f" and {more} more" if more > 0 else ""
    if firing:
        summary = f"{title}: {len(failing)}/{total} {rule.what} ({listed})"
    else:
        summary = f"{title.replace('offline', 'back')}: {len(failing)}/{total} {rule.what}"
    if muted:
        summary += f"; {muted} muted {'device' if muted == 1 else 'devices'} not counted"
    return Signal(
        key=incident_key(SOURCE, {"rule": rule.name, **group}),
        source=SOURCE,
        firing=firing,
        severity=rule.severity,
        summary=summary,
        target=f"{rule.name}{' ' + scope if scope else ''}: {total} devices",
        runbook_url=rule.runbook_url,
        remediation=tuple(rule.remediation) if firing else (),
        labels={"rule": rule.name, **group},
        evidence={
            "failing": len(failing),
            "devices": total,
            "needed": rule.needed(total),
            "muted": muted,
        },
    )
