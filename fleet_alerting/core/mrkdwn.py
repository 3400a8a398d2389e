"""Text for Slack's mrkdwn: the one escaping rule and Slack's length limits.

Slack reads `<…>` as a control sequence (a link, `<!channel>`, `<@U123>`, `<!date…>`) and `&` as
the start of an entity, so every piece of text that did not come from this project's own templates
goes through `escape` before it joins a Slack payload: alert labels and annotations, Fleet API
texts, PagerDuty user names, operator names. Links are built by `link` only from http(s) URLs.
Mentions are never built from such text: an escaped `<!channel>` shows as text and pings nobody.
Cuts (`fit`) happen after escaping and never split an entity or a `<…>` sequence.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

ELLIPSIS = "…"
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELD = 2000
MAX_SECTION_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
MAX_CONTEXT_TEXT = 2000
MAX_BUTTON_TEXT = 75
MAX_PLACEHOLDER_TEXT = 150  # a select's placeholder
MAX_OPTION_TEXT = 75
MAX_MESSAGE_TEXT = 3000  # the top-level `text`: Slack's notification line, kept to a section's
MAX_URL = 3000
# who a configured mention may name: a user group (S…), a user (U…, W…), or @here / @channel
MENTIONABLE = re.compile(r"(?:S|U|W)[A-Z0-9]{2,}|here|channel")
_URL_UNSAFE = {"|": "%7C", "<": "%3C", ">": "%3E", " ": "%20", '"': "%22"}


def escape(text: str) -> str:
    """`&`, `<`, `>` as Slack documents (`&amp;`, `&lt;`, `&gt;`): the text shows as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(who: str) -> str:
    """The mention sequence for a configured `who` (see MENTIONABLE); ValueError otherwise."""
    if not MENTIONABLE.fullmatch(who):
        raise ValueError(f"not a Slack user group, user, here or channel: {who!r}")
    if who in ("here", "channel"):
        return f"<!{who}>"
    return f"<!subteam^{who}>" if who.startswith("S") else f"<@{who}>"


def is_web_url(url: str) -> bool:
    """An absolute http(s) URL with a host, no control characters, at most MAX_URL long."""
    if not url or len(url) > MAX_URL or any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(host)


def safe_url(url: str) -> str | None:
    """`url` fit to stand inside `<…|…>` (an http(s) URL, see `is_web_url`): its `|`, `<`, `>`,
    spaces and quotes percent-encoded and `&` escaped; None for anything else."""
    url = url.strip()
    if not is_web_url(url):
        return None
    encoded = "".join(_URL_UNSAFE.get(c, c) for c in url)
    return encoded.replace("&", "&amp;")


def link(url: str | None, label: str) -> str:
    """`<url|label>` for an http(s) URL; the label alone (escaped) for anything else."""
    target = safe_url(url or "")
    shown = escape(label)
    return f"<{target}|{shown}>" if target else shown


def clip(text: str, limit: int) -> str:
    """Plain text (shown as written, not mrkdwn) in at most `limit` characters, cut with an
    ellipsis."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ELLIPSIS), 0)] + ELLIPSIS


def fit(text: str, limit: int) -> str:
    """`text` (already mrkdwn) in at most `limit` characters: cut with an ellipsis before an
    entity (`&amp;`) or a `<…>` sequence that would otherwise be split."""
    if len(text) <= limit:
        return text
    head = text[: max(limit - len(ELLIPSIS), 0)]
    opened = head.rfind("<")
    if opened > head.rfind(">"):
        head = head[:opened]
    amp = head.rfind("&")
    if amp > head.rfind(";"):
        head = head[:amp]
    return head + ELLIPSIS
