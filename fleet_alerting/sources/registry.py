"""Every watch, loaded from the one list of them (core/watches.py): a new watch is one package
under sources/ exporting `WATCH` plus one line there; its flow, entry point, schedule and config
name follow. Loading a package loads only its `WATCH` (a name, a section, a description)."""

from __future__ import annotations

import importlib

from fleet_alerting.core.watches import WATCH_PACKAGES
from fleet_alerting.sources.watch import Watch


def _watch(name: str, package: str) -> Watch:
    watch: Watch = importlib.import_module(f"fleet_alerting.sources.{package}").WATCH
    if watch.name != name:
        raise ImportError(f"sources/{package} exports the watch {watch.name!r}, listed as {name!r}")
    return watch


WATCHES: list[Watch] = [_watch(name, package) for name, package in WATCH_PACKAGES.items()]


def flow_attribute(watch: Watch) -> str:
    """The name of the watch's flow in flows/watches.py (an entry point's function)."""
    return watch.name.replace("-", "_")
