"""What one observation says. Sources produce signals; only the engine turns them into incidents."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    critical = "critical"
    warning = "warning"
    info = "info"


# part of every deferred signal's fingerprint: raised when the code that renders texts changes,
# so the texts stored for open incidents are rendered again once after an upgrade
TEXTS_VERSION = 1


@dataclass(frozen=True)
class Link:
    text: str
    url: str


# What a deferred signal renders on first use: the texts operators read, not what is compared.
TEXTS = ("summary", "runbook_url", "remediation", "links", "evidence")
Render = Callable[[], dict[str, Any]]


@dataclass(frozen=True)
class Signal:
    """One check of one thing. `key` identifies the thing across runs (source + identifying labels).

    `since` is when the failure began if the source knows it (Alertmanager's startsAt); otherwise
    the engine takes the first failing observation as the onset.

    `fingerprint` says what of the observation matters (`fingerprint_of`): two observations with
    the same one are the same failure, so a steady failure is not rewritten. Empty: all of it.
    A source with many series builds them with `Signal.deferred`: the texts (TEXTS) are rendered
    on first access — in steady state, never.
    """

    key: str
    source: str
    firing: bool
    severity: Severity
    summary: str
    target: str = ""
    since: datetime | None = None
    runbook_url: str | None = None
    remediation: tuple[str, ...] = ()
    correlation_ids: tuple[str, ...] = ()
    links: tuple[Link, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = field(default="", compare=False)

    @classmethod
    def deferred(
        cls,
        key: str,
        source: str,
        firing: bool,
        severity: Severity,
        target: str,
        labels: dict[str, str],
        fingerprint: str,
        render: Render,
        runbook_url: str | None,
        since: datetime | None = None,
        remediation: tuple[str, ...] | None = None,
    ) -> Signal:
        """A signal whose TEXTS come from `render()` when first read. Built without __init__
        (a watch builds one per series per run, and this is most of what it builds).

        `fingerprint` must cover everything `render` reads: two deferred signals with the same
        fingerprint have the same texts (`texts_in_fingerprint`), so a store may keep the texts
        it holds for that fingerprint rather than render and write them again. `runbook_url` is
        known without rendering (what `render` returns for it): a group compares its members'.
        So is `remediation` when given (else rendered): a storm's group compares every member's
        when they all have the same, and reading it must not render each member's texts."""
        signal = object.__new__(cls)
        signal.__dict__.update(
            key=key,
            source=source,
            firing=firing,
            severity=severity,
            target=target,
            since=since,
            correlation_ids=(),
            runbook_url=runbook_url,
            labels=labels,
            fingerprint=fingerprint,
            _render=render,
            _deferred=True,
        )
        if remediation is not None:
            signal.__dict__["remediation"] = remediation
        return signal

    @property
    def texts_in_fingerprint(self) -> bool:
        """Built by `deferred` (rendered yet or not): its texts follow from its fingerprint."""
        return "_deferred" in self.__dict__

    def with_texts(self) -> Signal:
        """This signal with its texts in place; a deferred one not yet rendered is rendered into
        a copy, and stays light itself (a store writing tens of thousands of new incidents
        holds the texts of one chunk at a time, not of all of them) but for its summary: what
        names it (the run's history record, a log line) is read without rendering it again."""
        if "_render" not in self.__dict__:
            return self
        copy = object.__new__(Signal)
        copy.__dict__.update(self.__dict__)
        copy.rendered()
        if "summary" in copy.__dict__:
            self.__dict__["summary"] = copy.__dict__["summary"]
        return copy

    def rendered(self) -> Signal:
        """This signal with its texts in place (a no-op unless deferred and not yet rendered)."""
        render = self.__dict__.pop("_render", None)
        if render is not None:
            texts = {"runbook_url": None, "remediation": (), "links": (), "evidence": {}}
            # what rendered it stays known: a store keeps some texts as their recipe
            self.__dict__.update(texts | render(), _rendered_by=render)
        return self


class _Text:
    """A field of TEXTS: the instance's own value (set by __init__, or by `rendered`), else — a
    deferred signal not yet rendered — rendered now. A non-data descriptor, so a value in the
    instance's __dict__ wins; on the class it is the field's default, as dataclass left it."""

    def __init__(self, name: str, default: Any):
        self.name = name
        self.default = default

    def __get__(self, instance: Signal | None, owner: type | None = None) -> Any:
        if instance is None:
            if self.default is MISSING:
                raise AttributeError(self.name)
            return self.default
        instance.rendered()
        try:
            return instance.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None


for _name in TEXTS:
    setattr(Signal, _name, _Text(_name, Signal.__dataclass_fields__[_name].default))


def digest_text(text: str) -> str:
    """A short stable fingerprint of a text (the same in every process, unlike hash())."""
    return digest_bytes(text.encode())


def digest_bytes(data: bytes) -> str:
    """`digest_text` of bytes."""
    return hashlib.blake2b(data, digest_size=10).hexdigest()


def digest(*parts: object) -> str:
    """`digest_text` of JSON-able parts."""
    return digest_text(json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")))


def fingerprint_of(signal: Signal) -> str:
    """What the engine compares between two observations of one key: the source's fingerprint,
    else everything the observation says."""
    return signal.fingerprint or _content(signal, signal.evidence)


def ignoring(signal: Signal, *volatile: str) -> Signal:
    """The signal, fingerprinted without these evidence keys: values that differ on every
    observation (a latency) and do not make it another failure — shown, but not compared."""
    evidence = {k: v for k, v in signal.evidence.items() if k not in volatile}
    return replace(signal, fingerprint=_content(signal, evidence))


def _content(signal: Signal, evidence: dict[str, Any]) -> str:
    return digest(
        signal.firing,
        signal.severity,
        signal.summary,
        signal.target,
        signal.since,
        signal.runbook_url,
        signal.remediation,
        signal.correlation_ids,
        [(link.text, link.url) for link in signal.links],
        signal.labels,
        evidence,
    )
