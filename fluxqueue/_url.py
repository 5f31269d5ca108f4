"""Broker URL helpers shared by every backend: parse, read options, mask passwords."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from fluxqueue.errors import ConfigurationError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^@/]*)@")

EXAMPLES = "redis://127.0.0.1:6379/0, sqlite:///fluxqueue.db or memory://"


def scheme_of(url: str) -> str:
    """The URL's scheme, lower-cased; a clear error when the URL has none."""
    if not isinstance(url, str):
        raise ConfigurationError(f"a broker URL must be a string, got {type(url).__name__}")
    match = _SCHEME.match(url.strip())
    if match is None:
        raise ConfigurationError(
            f"malformed broker URL {mask_url(url)!r}: expected scheme://..., e.g. {EXAMPLES}"
        )
    return match.group(1).lower()


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for logs, reprs and errors)."""

    def hide(match: re.Match[str]) -> str:
        # "user:password@" keeps the user; a lone "secret@" is read as a password by redis-py.
        user, sep, _ = match.group(2).partition(":")
        return f"{match.group(1)}{user}:***@" if sep else f"{match.group(1)}***@"

    masked = _CREDENTIALS.sub(hide, url)
    masked = re.sub(r"(?<=:)[^:@/]+(?=@)", "***", masked)  # malformed URLs too: "x:/:pw@h"
    return re.sub(r"([?&]password=)[^&]*", r"\1***", masked)


def query_options(url: str) -> dict[str, str]:
    """The query-string options of a URL as a dict (last value wins)."""
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def float_option(options: dict[str, str], name: str, default: float, url: str) -> float:
    """Pop option ``name`` as a positive float, or explain which value is wrong."""
    raw = options.pop(name, None)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigurationError(
            f"broker URL {mask_url(url)!r}: {name} must be a positive number of seconds, "
            f"got {raw!r}"
        )
    return value
