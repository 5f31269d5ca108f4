"""Broker URL helpers shared by every backend: parse, read options, mask passwords."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from fluxqueue.errors import ConfigurationError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

EXAMPLES = "redis://127.0.0.1:6379/0, sqlite:///fluxqueue.db or memory://"

MASK = "***"

#: Query options whose value is a secret, compared lower-cased after percent-decoding.
SECRET_OPTIONS = frozenset({"pass", "passwd", "pwd", "secret", "token", "auth"})

# The start of one query option: separator, name, "=". A secret value runs to the start of
# the next option that is not secret, so a raw "&" inside a password stays hidden unless
# what follows it reads as another option ("&db=").
_OPTION = re.compile(r"([?&])([A-Za-z0-9_.%+-]+)=")


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
    """The URL with every secret in it replaced by ``***``, for logs, reprs and errors.

    The one place where fluxqueue hides passwords, so that a banner, a ``repr`` and an error
    message can never disagree about what is secret. See :func:`secret_spans` for what is
    hidden; overlapping or adjacent secrets become one ``***``.
    """
    pieces: list[str] = []
    position = 0
    for start, end in secret_spans(url):
        pieces += [url[position:start], MASK]
        position = end
    pieces.append(url[position:])
    return "".join(pieces)


def secret_spans(url: str) -> list[tuple[int, int]]:
    """Where the secrets are in ``url``: sorted, merged ``(start, end)`` index pairs.

    Hidden, because a backend may read each of them as a password:

    - the password of the userinfo, ``scheme://user:PASSWORD@host``, up to the *last* ``@``
      (a password may contain a raw ``@``, ``:``, ``/``, ``?`` or ``%``); a lone
      ``scheme://SECRET@host`` is a password to redis-py, so all of it is hidden;
    - the same part as :func:`urllib.parse.urlsplit` reads it, which differs from the
      above when a password holds a raw ``/``, ``?`` or ``#``;
    - the value of a query option named like a password (``?password=``, ``&password=``,
      ``sentinel_password=``, ``token=`` ...), up to the next ``&name=`` (a raw ``&name=``
      inside such a value is read as the next option, as every URL parser reads it);
    - in a URL without ``scheme://``, everything before its last ``@``.

    When these readings disagree, all of them are hidden: a host may be masked with a
    password, but no byte of a password is ever shown. Comma-separated host lists
    (``redis://:a@h1,:b@h2/0``) and several URLs joined by ``;`` are covered by the same
    rules, since everything up to the last ``@`` is hidden. One form cannot be told apart
    from a path: a bare secret that starts with a raw ``/`` (``redis:///x@h``, read like
    ``sqlite:///data@2/q.db``); percent-encoded, as any secret in a URL should be, it is
    hidden like the others.
    """
    spans = _query_spans(url)
    match = _SCHEME.match(url)
    if match is None:
        at = url.rfind("@")
        if at > 0:
            spans.append((0, at))
        return _merge(spans)
    authority = match.end()
    if url.startswith("/", authority):  # sqlite:///path, unix:///path: no userinfo
        return _merge(spans)
    at = url.rfind("@", authority)
    if at >= 0:
        spans.append(_password_of(url, authority, at))
    netloc_end = min(
        (i for i in (url.find(c, authority) for c in "/?#") if i >= 0), default=len(url)
    )
    at = url.rfind("@", authority, netloc_end)
    if at >= 0:
        spans.append(_password_of(url, authority, at))
    return _merge(spans)


def _password_of(url: str, start: int, at: int) -> tuple[int, int]:
    """The password part of the userinfo ``url[start:at]``: after the first ``:``, or all
    of it when there is none (a bare secret)."""
    colon = url.find(":", start, at)
    return (colon + 1, at) if colon >= 0 else (start, at)


def _query_spans(url: str) -> list[tuple[int, int]]:
    """The values of password-like options, wherever a ``?`` or ``&`` starts one."""
    options = list(_OPTION.finditer(url))
    spans = []
    for index, option in enumerate(options):
        if not _is_secret_option(option.group(2)):
            continue
        end = len(url)
        for later in options[index + 1 :]:
            if later.group(1) != "?" and not _is_secret_option(later.group(2)):
                end = later.start()
                break
        spans.append((option.end(), end))
    return spans


def _is_secret_option(name: str) -> bool:
    name = unquote_plus(name).strip().lower()
    return "password" in name or name in SECRET_OPTIONS


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


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
