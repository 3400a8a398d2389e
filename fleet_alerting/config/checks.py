"""What `check-config` looks at beyond the schema: whatever would break a run of a valid config.

Secret references that will not resolve (never their values), file_sd patterns that match no file,
pagers a policy names but nobody configured; and the plain-words summary of who hears of what.
Pure over a loaded `Config` plus the file system and environment; a Prefect block lookup is handed
in by the caller (it needs a reachable API).
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from fleet_alerting.config.loader import locate
from fleet_alerting.config.notifiers.slack import SLACK_CHANNEL_ID
from fleet_alerting.config.schema import Config
from fleet_alerting.config.secrets import SecretRef
from fleet_alerting.core.channels import Channel, pager_key, pager_of
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.policy import PolicyConfig
from fleet_alerting.core.signals import Severity

Loc = tuple[str | int, ...]
# A Prefect Secret block name → None when it loads, else why not. None instead of a function:
# no Prefect API to ask, the blocks are noted as unchecked.
BlockCheck = Callable[[str], str | None]


@dataclass(frozen=True)
class Finding:
    loc: Loc
    message: str
    level: Literal["error", "warning", "note"] = "error"

    def at(self, config_file: Path) -> str:
        """`file:line: key.path: message`."""
        return f"{locate(config_file, self.loc)}: {self.message}"


def secret_refs(model: object, loc: Loc = ()) -> Iterator[tuple[Loc, SecretRef]]:
    """Every secret reference in the config, with its key path."""
    if isinstance(model, SecretRef):
        yield loc, model
    elif isinstance(model, BaseModel):
        for name in type(model).model_fields:
            yield from secret_refs(getattr(model, name), (*loc, name))
    elif isinstance(model, list | tuple):
        for i, item in enumerate(model):
            yield from secret_refs(item, (*loc, i))
    elif isinstance(model, dict):
        for key, item in model.items():
            yield from secret_refs(item, (*loc, str(key)))


def check(config: Config, blocks: BlockCheck | None) -> list[Finding]:
    findings = list(_secrets(config, blocks))
    findings += _file_sd(config)
    findings += _pagers(config)
    findings += _channel_names(config)
    return findings


# Secrets only a command other than the watches uses: a missing one breaks that command, not a run.
_COMMAND_SECRETS = {
    ("operators", "mcp", "token"): "`fleet-alerting mcp --http`",
    ("operators", "slack_app", "signing_secret"): "`fleet-alerting slack-app`",
}


def _secrets(config: Config, blocks: BlockCheck | None) -> Iterator[Finding]:
    for loc, ref in secret_refs(config):
        if ref.prefect_secret is None:
            problem = ref.problem()
            command = _COMMAND_SECRETS.get(loc)
            if problem and command:
                yield Finding(loc, f"{problem} (needed by {command} only)", "note")
            elif problem:
                yield Finding(loc, problem)
            if ref.file and (exposed := _readable_by_others(ref.file)):
                yield Finding(loc, exposed, "warning")
        elif blocks is None:
            yield Finding(
                loc,
                f"{ref.describe()} not checked: no Prefect API reachable "
                "(PREFECT_API_URL unset or not answering)",
                "note",
            )
        else:
            problem = blocks(ref.prefect_secret)
            if problem:
                yield Finding(loc, problem)


def _readable_by_others(path: Path) -> str | None:
    """A secret file the group or everyone may read (mode 644): said, with the fix."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    who = [name for bit, name in ((0o040, "its group"), (0o004, "every user")) if mode & bit]
    if not who:
        return None
    return (
        f"secret file {path} is readable by {' and '.join(who)} (mode {mode:o}): chmod 600 {path}"
    )


def _file_sd(config: Config) -> Iterator[Finding]:
    base = config.source_file.parent if config.source_file else Path.cwd()
    for i, group in enumerate(config.blackbox.file_sd):
        for j, pattern in enumerate(group.files):
            matches = glob.glob(str(base / pattern))
            if not matches:
                yield Finding(
                    ("blackbox", "file_sd", i, "files", j),
                    f"no file matches {base / pattern}: these devices would not be probed",
                )
            for match in sorted(matches):
                if not Path(match).is_file():  # a FIFO would hang the run, /dev/zero fill it
                    yield Finding(
                        ("blackbox", "file_sd", i, "files", j),
                        f"{match} is not a regular file (a device, a FIFO or a folder?)",
                    )


_PAGER_CONFIG = {Channel.pagerduty: "notify.pagerduty", Channel.oncall: "notify.oncall"}


def _pagers(config: Config) -> Iterator[Finding]:
    configured = config.notify.configured_channels()
    for severity in config.policies:
        policy = config.policy(severity)
        key = "page" if policy.steps is None else "steps"
        for pager in policy.pagers():
            if pager not in configured:
                yield Finding(
                    ("policies", severity, key),
                    f"pages {pager} but {_pager_config(pager)} is not configured: pages are only "
                    f"written to the local outbox {config.notify.outbox_file}",
                    "note",
                )


def _pager_config(channel: str) -> str:
    pager, name = pager_of(channel) or channel, pager_key(channel)
    named = {Channel.pagerduty: "routing_keys", Channel.oncall: "webhooks"}
    return _PAGER_CONFIG[pager] + (f".{named[pager]}.{name}" if name else "")


def _channel_names(config: Config) -> Iterator[Finding]:
    """With a bot token, a message whose delivery is in doubt (a killed drainer, a timed-out
    post) is looked for in the channel before it is posted again; Slack's history methods take
    channel ids only, so a name means that look is skipped (posted again, with a warning)."""
    slack = config.notify.slack
    if slack is None or slack.bot_token is None:
        return
    keys = ["channel"] if slack.mirror_webhook else ["channel", "mirror_channel"]
    for key in keys:  # a mirror webhook posts without looking: its channel is only a label
        name = getattr(slack, key)
        if not SLACK_CHANNEL_ID.fullmatch(name):
            yield Finding(
                ("notify", "slack", key),
                f"{name!r} is a channel name: with a bot token give the channel id (C0…), or a "
                "message whose delivery is in doubt after a crash may be posted twice",
                "note",
            )


def destination(config: Config, channel: str) -> str:
    """Where messages of one channel go, in an operator's words."""
    slack, notify = config.notify.slack, config.notify
    if notify.dry_run:
        return f"{channel} (dry run: the local outbox)"
    if channel == Channel.slack:
        if slack and slack.bot_token:
            return f"Slack {slack.channel} (bot, threads)"
        if slack and slack.webhook:
            return f"Slack {slack.channel} (webhook)"
        return "the local outbox (no Slack configured)"
    if channel == Channel.slack_mirror:
        if slack and (slack.mirror_webhook or slack.bot_token):
            return f"Slack mirror {slack.mirror_channel}"
        return "the local outbox (no Slack mirror configured)"
    pager, name = pager_of(channel), pager_key(channel)
    if pager is not None:
        label = _PAGER_NAME[pager] + (f" ({name})" if name else "")
        if channel in notify.configured_channels():
            return label
        return f"the local outbox ({label} not configured)"
    return channel


def policy_summary(config: Config, severity: Severity) -> str:
    """One line: who hears of an incident of this severity at once, and who gets paged when."""
    policy = config.policy(severity)
    told = [destination(config, c) for c in policy.channels()]
    parts = [("tells " + " + ".join(told) + " at once") if told else "tells nobody"]
    if policy.steps is not None:
        parts += _steps_summary(config, policy)
    elif policy.page:
        real = [_PAGER_NAME[p] for p in policy.page if getattr(config.notify, p) is not None]
        missing = [p for p in policy.page if getattr(config.notify, p) is None]
        after = format_duration(policy.page_after, exact=True)
        if config.notify.dry_run:
            real, missing = [" + ".join(policy.page) + " (dry run: the local outbox)"], []
        if real:
            parts.append(f"pages {' + '.join(real)} after {after} of failure")
        if missing:
            who = "also" if real else "NOBODY:"
            names = ", ".join(_PAGER_CONFIG[p] for p in missing)
            parts.append(f"pages {who} {names} not configured, written to the local outbox only")
    else:
        parts.append("never pages")
    if policy.repeat and told:
        parts.append(f"reminds {_schedule(policy.repeat)}")
    parts.append(
        f"opens after {policy.open_after} failing check(s), resolves after "
        f"{policy.resolve_after} passing"
    )
    if policy.mute_time_intervals:
        parts.append("muted in window(s) " + ", ".join(policy.mute_time_intervals))
    if policy.active_time_intervals:
        parts.append("muted outside window(s) " + ", ".join(policy.active_time_intervals))
    return f"{severity}: " + "; ".join(parts)


_PAGER_NAME = {Channel.pagerduty: "PagerDuty", Channel.oncall: "Grafana OnCall"}


def _steps_summary(config: Config, policy: PolicyConfig) -> list[str]:
    """The escalation timeline, each step's delay from the onset and who it reaches."""
    dry = config.notify.dry_run
    steps = []
    for stage in policy.stages():
        who = " + ".join(c if dry else destination(config, c) for c in stage.destinations)
        mention = f" mentioning @{stage.mention}" if stage.mention else ""
        steps.append(f"{format_duration(stage.offset, exact=True)}: {who}{mention}")
    parts = ["escalates " + " → ".join(steps) + (" (dry run: the local outbox)" if dry else "")]
    if policy.ack_timeout is not None:
        timeout = format_duration(policy.ack_timeout, exact=True)
        parts.append(f"an acknowledgement holds it {timeout}, then the step it was on again")
    return parts


def _schedule(repeat: timedelta | list[timedelta]) -> str:
    if isinstance(repeat, timedelta):
        return f"every {format_duration(repeat, exact=True)}"
    intervals = [format_duration(r, exact=True) for r in repeat]
    if len(intervals) == 1:
        return f"every {intervals[0]}"
    return f"after {', '.join(intervals[:-1])}, then every {intervals[-1]}"
