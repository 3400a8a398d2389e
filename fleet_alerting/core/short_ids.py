"""Short incident ids and finding an incident from what an operator typed.

An incident's short id is derived from its key (base32 of its SHA-256, lower case), so it is the
same in every process and every run and needs no storage. It is shown with 6 characters,
lengthened while two shown keys would share one. An operator may type a key, a short id of any
length from 4 characters, a unique prefix of either, or the name of a device with one open
incident (`device_names`); a miss suggests close keys, a device with several lists them.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from fleet_alerting.core.wording import no_such

SHORT = 6  # characters shown: 30 bits, lengthened on a collision among the keys shown
MIN_TYPED = 4  # an id prefix shorter than this matches too much to be meant
MAX_SUGGESTIONS = 5
MAX_AMBIGUOUS = 10
LISTED_BY = "`fleet-alerting incidents --all` lists them."


def full_id(key: str) -> str:
    """52 base32 characters (a-z, 2-7): every short id of `key` is a prefix of this."""
    digest = hashlib.sha256(key.encode()).digest()
    return base64.b32encode(digest).decode().rstrip("=").lower()


def short_ids(keys: Iterable[str]) -> dict[str, str]:
    """key → its shortest id from SHORT characters that no other of `keys` shares."""
    full = {key: full_id(key) for key in keys}
    length = SHORT
    while len({f[:length] for f in full.values()}) < len(full) and length < 52:
        length += 1
    return {key: f[:length] for key, f in full.items()}


@dataclass(frozen=True)
class Lookup:
    key: str | None  # the one incident meant
    ambiguous: tuple[str, ...] = ()  # several matched the prefix or the device name
    suggestions: tuple[str, ...] = ()  # nothing matched: keys that look like it
    named: int = 0  # how many open incidents the device name names (0: not a device's)

    def problem(self, typed: str, ids: Mapping[str, str]) -> str:
        """What to tell the operator when `key` is None."""
        if self.ambiguous:
            listed = ", ".join(f"{ids.get(k, full_id(k)[:SHORT])} {k}" for k in self.ambiguous)
            if self.named:
                return f'"{typed}" names {self.named} open incidents: {listed}. Give its id.'
            return f'"{typed}" matches several incidents: {listed}. Type more of it.'
        meant = [f"{ids.get(k, full_id(k)[:SHORT])} {k}" for k in self.suggestions]
        return no_such("incident", typed, meant=meant, hint=LISTED_BY)


def find(
    typed: str,
    keys: Collection[str],
    open_keys: Collection[str] = (),
    devices: Mapping[str, Collection[str]] | None = None,
) -> Lookup:
    """The incident `typed` names: its key, a unique prefix of a key or of a short id (case
    does not matter for ids), or a device name (any case) of `devices` (open key → its
    `device_names`) that names one open incident. Open incidents are preferred: a prefix that
    names one open incident and some resolved ones means the open one."""
    if typed in keys:
        return Lookup(typed)
    name = typed.casefold()
    named = [key for key, names in (devices or {}).items() if name in names]
    matches = list(dict.fromkeys([*_matching(typed, keys), *named]))
    if len(matches) > 1:
        still_open = [k for k in matches if k in open_keys]
        matches = still_open if still_open else matches
    if len(matches) == 1:
        return Lookup(matches[0])
    if matches:
        return Lookup(None, ambiguous=tuple(sorted(matches)[:MAX_AMBIGUOUS]), named=len(named))
    return Lookup(None, suggestions=suggest(typed, keys))


DEVICE_LABELS = ("instance", "device", "host", "deviceId", "target")


def device_names(labels: Mapping[str, str], *also: str) -> frozenset[str]:
    """The names an incident's device goes by, lower case: its `instance`, `device`, `host`,
    `deviceId` and `target` labels (`labels_of` gives the signal's target as `target`) and
    `also` (a blackbox target's configured name), each also as its host alone — without a
    URL's scheme and path or a `:port`."""
    names = set()
    for value in [*(labels.get(label, "") for label in DEVICE_LABELS), *also]:
        value = value.strip().casefold()
        if not value:
            continue
        names.add(value)
        host = _host(value)
        if host:
            names.add(host)
    return frozenset(names)


def _host(value: str) -> str | None:
    """`pi-east-04` of `http://pi-east-04:8081/healthz` or of `pi-east-04:9100`."""
    if "://" in value:
        try:
            return urlsplit(value).hostname
        except ValueError:  # a malformed URL is a name like any other
            return None
    host, colon, port = value.rpartition(":")
    return host if colon and port.isdigit() and ":" not in host else None


def _matching(typed: str, keys: Collection[str]) -> list[str]:
    lowered = typed.lower()
    by_id = len(typed) >= MIN_TYPED
    return [k for k in keys if k.startswith(typed) or (by_id and full_id(k).startswith(lowered))]


def suggest(typed: str, keys: Collection[str]) -> tuple[str, ...]:
    """Keys containing what was typed (`pi-video-01` in `zigbee:coordinator=pi-video-01,…`),
    then keys spelled like it."""
    containing = sorted(k for k in keys if typed and typed in k)
    close = difflib.get_close_matches(typed, list(keys), n=MAX_SUGGESTIONS, cutoff=0.6)
    return tuple(dict.fromkeys([*containing, *close]))[:MAX_SUGGESTIONS]
