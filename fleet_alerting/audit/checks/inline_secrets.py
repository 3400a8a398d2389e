"""Secrets written inline where Alertmanager accepts a `*_file` alternative.
The finding names the key and the alternative, never the value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "inline-secret"
TITLE = "Secrets written inline in alertmanager.yml"
WHY = (
    "An inline key or webhook URL leaks with every copy of the file (git, backups, support "
    "bundles)."
)
FIX = (
    "Move it to a file readable only by Alertmanager and use the `*_file` key named in the finding."
)

# key -> its file alternative, anywhere in the config (all accepted by Alertmanager 0.25)
ANYWHERE = {
    "slack_api_url": "slack_api_url_file",
    "routing_key": "routing_key_file",
    "service_key": "service_key_file",
    "auth_password": "auth_password_file",
    "smtp_auth_password": "smtp_auth_password_file",
    "password": "password_file",
    "credentials": "credentials_file",
    "bearer_token": "bearer_token_file",
    "opsgenie_api_key": "opsgenie_api_key_file",
    "victorops_api_key": "victorops_api_key_file",
    "client_secret": "client_secret_file",
}
# keys that are secrets only inside one kind of notifier config
IN_CONTEXT = {
    ("slack_configs", "api_url"): "api_url_file",
    ("opsgenie_configs", "api_key"): "api_key_file",
    ("victorops_configs", "api_key"): "api_key_file",
}
# alternatives that Alertmanager 0.25 rejects (`amtool check-config`: unmarshal errors); newer
# releases accept them, so these are warnings that name the upgrade, not a fix to apply today
NEWER = {
    ("webhook_configs", "url"): "url_file",
    ("telegram_configs", "bot_token"): "bot_token_file",
    ("discord_configs", "webhook_url"): "webhook_url_file",
    ("msteams_configs", "webhook_url"): "webhook_url_file",
    ("pushover_configs", "token"): "token_file",
    ("pushover_configs", "user_key"): "user_key_file",
}


def _walk(node: Any, path: str, context: str, receiver: str, out: list[Finding]) -> None:
    if isinstance(node, Mapping):
        for k, v in node.items():
            key, sub = str(k), f"{path}.{k}" if path else str(k)
            alt = ANYWHERE.get(key) or IN_CONTEXT.get((context, key))
            later = NEWER.get((context, key))
            if (alt or later) and isinstance(v, str) and v.strip():
                msg = (
                    f"inline secret at {sub}; use {alt} instead"
                    if alt
                    else f"inline secret at {sub}; {later} needs an Alertmanager newer than 0.25 "
                    f"(upgrade, or keep this file out of git and mode 0600)"
                )
                out.append(
                    Finding(
                        CHECK_ID,
                        "error" if alt else "warning",
                        route_path=sub,
                        receiver=receiver,
                        message=msg,
                    )
                )
            else:
                _walk(v, sub, key if key.endswith("_configs") else context, receiver, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _walk(v, f"{path}[{i}]", context, receiver, out)


def check(inp: AuditInput) -> list[Finding]:
    out: list[Finding] = []
    _walk(inp.am.raw.get("global") or {}, "global", "global", "", out)
    for i, rc in enumerate(inp.am.raw.get("receivers") or []):
        _walk(rc, f"receivers[{i}]", "", str(rc.get("name", "")), out)
    return out
