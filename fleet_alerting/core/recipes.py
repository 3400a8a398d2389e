"""Texts rendered from what a store keeps. A deferred signal whose texts follow from a few
JSON-able values — its recipe: a renderer's name and its arguments — is stored as those values,
not as its texts, and rendered when read. A storm of 10,000 Alertmanager alerts opens without
rendering 10,000 alerts' texts (summary, links, evidence) or writing them (~1.3 KB each): its
store keeps ~0.9 KB of recipe each (bench/README.md).

The renderers live here, pure, so every reader of a store renders with the code the source
itself uses: `sources/alertmanager/judge.py` builds its alerts' texts with `alertmanager_texts`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache, partial
from typing import Any

from pydantic import ValidationError

from fleet_alerting.core.links import LinksConfig, logql_selector, logs_link, percent_encoded
from fleet_alerting.core.signals import Link, Severity, Signal

Args = dict[str, Any]  # a recipe's arguments: JSON-able
Renderer = Callable[[Mapping[str, str], Args, LinksConfig | None], dict[str, Any]]

ALERTMANAGER = "alertmanager"


# Alertmanager alerts (sources/alertmanager/judge.py) ----------------------------------------------
def alertmanager_args(
    rule: str,
    alertmanager_url: str,
    settings: Mapping[str, Any],
    name: str,
    annotations: Mapping[str, str],
    firing: bool,
    silenced_by: tuple[str, ...],
    inhibited_by: tuple[str, ...],
    receivers: tuple[str, ...],
    generator_url: str | None,
) -> Args:
    """All an alert's texts are rendered from besides its labels (the signal's own): of its
    annotations, what the texts show of them (`shown_annotations`)."""
    return {
        "rule": rule,
        "url": alertmanager_url,
        "links": settings,
        "name": name,
        "annotations": shown_annotations(annotations),
        "firing": firing,
        "silenced_by": silenced_by,
        "inhibited_by": inhibited_by,
        "receivers": receivers,
        "generator_url": generator_url,
    }


# the annotations an alert's texts read; of its description, the first DESCRIBED characters
SHOWN_ANNOTATIONS = ("summary", "runbook_url", "runbook", "remediation")
DESCRIBED = 500


def shown_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    """What `alertmanager_texts` reads of an alert's annotations, capped as the texts cap it: a
    recipe keeps no more (an annotation of 1 MB would otherwise cost 1 MB a row)."""
    shown = {name: annotations[name] for name in SHOWN_ANNOTATIONS if annotations.get(name)}
    if description := annotations.get("description"):
        shown["description"] = description[:DESCRIBED]
    return shown


def alertmanager_summary(labels: Mapping[str, str], args: Args) -> str:
    """What names the alert, known without rendering the rest of its texts."""
    name = args["name"]
    if args["firing"]:
        return args["annotations"].get("summary") or f"{name} on {alert_target(labels, name)}"
    if args["silenced_by"]:
        return f"{name} silenced in Alertmanager ({', '.join(args['silenced_by'])})"
    if args["inhibited_by"]:
        return f"{name} inhibited in Alertmanager"
    return f"{name} suppressed in Alertmanager"


def alertmanager_texts(
    labels: Mapping[str, str], args: Args, links: LinksConfig | None = None
) -> dict[str, Any]:
    """What operators read of an alert's signal (its TEXTS); `links` from the recipe's
    settings when not given."""
    notes = args["annotations"]
    evidence: dict[str, object] = {"alertname": args["name"], "rule": args["rule"]}
    if args["receivers"]:
        evidence["receivers"] = ", ".join(args["receivers"])
    if notes.get("description"):
        evidence["description"] = notes["description"][:DESCRIBED]
    alert_links = [Link("Alertmanager", alertmanager_link(args["url"], labels))]
    if args["generator_url"]:
        alert_links.append(Link("Source", args["generator_url"]))
    host = labels.get("host") or labels.get("instance", "").split(":")[0]
    if host:
        settings = links if links is not None else known_links(args["links"])
        if settings is not None:
            logs = logs_link(settings, logql_selector(host=host), f"Logs of {host}")
            if logs:
                alert_links.append(logs)
    return {
        "summary": alertmanager_summary(labels, args),
        "runbook_url": alert_runbook(notes),
        "remediation": alert_remediation(notes),
        "links": tuple(alert_links),
        "evidence": evidence,
    }


def alert_target(labels: Mapping[str, str], name: str) -> str:
    return labels.get("instance") or labels.get("job") or name


def alert_runbook(annotations: Mapping[str, str]) -> str | None:
    return annotations.get("runbook_url") or annotations.get("runbook") or None


def alert_remediation(annotations: Mapping[str, str]) -> tuple[str, ...]:
    steps = annotations.get("remediation")  # most alerts have none: every run reads this
    if not steps:
        return ()
    return tuple(line.strip() for line in steps.splitlines() if line.strip())


def alertmanager_link(url: str, labels: Mapping[str, str]) -> str:
    """The alert in Alertmanager's UI: `filter=` the quoted `{k="v",…}` of its labels, quoted
    label by label (quoting is per character; a storm's alerts share most of their labels)."""
    matchers = "%2C".join([_quoted_matcher(k, v) for k, v in sorted(labels.items())])
    return f"{url.rstrip('/')}/#/alerts?silenced=true&inhibited=true&filter=%7B{matchers}%7D"


@lru_cache(maxsize=4096)
def _quoted_matcher(name: str, value: str) -> str:
    return percent_encoded(f'{name}="{value}"')


def known_links(settings: Mapping[str, Any]) -> LinksConfig | None:
    """A recipe's links settings, of the options this code knows (a later version may add
    one: a config change, no new schema); None if those do not validate (no links need them)."""
    try:
        return _links(tuple(sorted(settings.items())))
    except (ValidationError, TypeError):  # TypeError: a value not hashable, not a setting
        return None


@lru_cache(maxsize=64)
def _links(settings: tuple[tuple[str, Any], ...]) -> LinksConfig:
    known = LinksConfig.model_fields
    return LinksConfig.model_validate({k: v for k, v in settings if k in known})


RENDERERS: dict[str, Renderer] = {ALERTMANAGER: alertmanager_texts}
SUMMARIES: dict[str, Callable[[Mapping[str, str], Args], str]] = {
    ALERTMANAGER: alertmanager_summary
}


# a signal ↔ what a store keeps of it -------------------------------------------------------------
# a source's render function → what makes its recipe from the same arguments (registered by the
# source: a deferred signal's `_render` is `partial(render, *arguments)`, nothing more per signal)
MAKERS: dict[Callable[..., Any], Callable[..., tuple[str, Args] | None]] = {}


def stored_form(signal: Signal) -> dict[str, Any] | None:
    """What a store keeps of a signal whose texts are rendered from a recipe (the key is the
    row's), or None. The recipe first, so a reader tells it from a rendered signal by its first
    field. Its summary is kept with it, and left on the signal if not rendered yet: what names it
    (the run's history record) is read without rendering the rest."""
    render = signal.__dict__.get("_render") or signal.__dict__.get("_rendered_by")
    make = MAKERS.get(getattr(render, "func", None))  # type: ignore[arg-type]
    made = None if make is None else make(*render.args)  # type: ignore[union-attr]
    if made is None:
        return None
    name, args = made
    summary = signal.__dict__.get("summary")
    if summary is None:
        summary = signal.__dict__["summary"] = SUMMARIES[name](signal.labels, args)
    # what the texts show of the annotations but the description is the row's own summary,
    # runbook and remediation (kept beside the recipe: `_rendered` reads them from there)
    described = args["annotations"].get("description")
    args = {**args, "annotations": {"description": described} if described else {}}
    return {
        "recipe": name,
        "args": args,
        "source": signal.source,
        "firing": signal.firing,
        "severity": signal.severity.value,
        "summary": summary,
        "target": signal.target,
        "since": signal.since,
        "runbook_url": signal.runbook_url,
        "remediation": signal.remediation,
        "labels": signal.labels,
        "fingerprint": signal.fingerprint,
    }


def from_stored(key: str, stored: Mapping[str, Any]) -> Signal:
    """The signal a store kept by `stored_form`, its texts rendered when read: by a renderer
    this code has, else — or if rendering raises — plain (`plain_texts`). KeyError, TypeError or
    ValueError for a row without what a signal needs (its source, severity, labels...)."""
    _check_types(stored)
    name, args = stored["recipe"], stored["args"]
    labels = stored["labels"]
    since = stored["since"]
    kept = {
        "summary": stored["summary"],
        "runbook_url": stored["runbook_url"],
        "remediation": tuple(stored["remediation"]),
    }
    signal = Signal.deferred(
        key=key,
        source=stored["source"],
        firing=stored["firing"],
        severity=Severity(stored["severity"]),
        target=stored["target"],
        labels=labels,
        fingerprint=stored["fingerprint"],
        render=partial(_rendered, name, labels, args, kept),
        runbook_url=kept["runbook_url"],
        since=datetime.fromisoformat(since) if since else None,
        remediation=kept["remediation"],
    )
    signal.__dict__["summary"] = kept["summary"]
    return signal


# a stored recipe's fields a signal reads, and what each must be (a damaged row reads plain)
_STORED_TYPES: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("source", str),
    ("firing", bool),
    ("summary", str),
    ("target", str),
    ("fingerprint", str),
    ("runbook_url", (str, type(None))),
    ("since", (str, type(None))),
    ("remediation", list),
    ("labels", dict),
    ("args", dict),
)


def _check_types(stored: Mapping[str, Any]) -> None:
    """TypeError for a row whose fields are not what a signal holds (`"labels": null`)."""
    for field, kind in _STORED_TYPES:
        if not isinstance(stored[field], kind):
            raise TypeError(f"a stored recipe's {field} is {type(stored[field]).__name__}")
    texts = [*stored["labels"], *stored["labels"].values(), *stored["remediation"]]
    if not all(isinstance(text, str) for text in texts):
        raise TypeError("a stored recipe's labels or remediation hold more than strings")


def _rendered(
    name: str, labels: Mapping[str, str], args: Args, kept: Mapping[str, Any]
) -> dict[str, Any]:
    """A stored recipe's texts; plain if this code cannot render them (a renderer of a newer
    version, a damaged row): a reader shows what the row vouches for, the watch goes on. Its
    summary, runbook and remediation are the row's (`stored_form` keeps them there alone)."""
    try:
        renderer = RENDERERS.get(name)
        if renderer is not None:
            return {**renderer(labels, args, None), **kept}
        why = "unknown to this version"
    except Exception as error:  # any row this code cannot render reads plain
        why = f"not renderable here ({type(error).__name__})"
    return plain_texts(kept, f"recipe {str(name)[:40]!r} {why}")


def plain_texts(kept: Mapping[str, Any], why: str) -> dict[str, Any]:
    """Texts of a recipe not rendered: what its row keeps beside it (summary, runbook,
    remediation), no links, and why in the evidence."""
    return {**kept, "links": (), "evidence": {"texts": f"not rendered: {why}"}}


def _as_stored(
    name: str, _labels: Mapping[str, str], args: Args, _kept: Mapping[str, Any]
) -> tuple[str, Args]:
    return name, args


MAKERS[_rendered] = _as_stored  # a signal read from its recipe is written back as one
