"""Group 3 of the broker contract: coordination. Three small atomic primitives.

The features planned next need the broker to decide races between processes, and each of
them is policy written once in the core on top of these three methods, instead of a new
broker method per feature that every backend would have to write:

``claim(key, token, ttl)``
    A lease on a name: set ``key`` to ``token`` if it is free or expired, or renew it if
    it already holds ``token``; return the holder. One winner among any number of
    concurrent callers. Used by **unique tasks** (one run per key while it is claimed),
    **schedule ticks** (one process enqueues each cron tick), and as a short lock where a
    default needs read-modify-write (the default worker registry, :mod:`.registry`).
``release(key, token)``
    Give a claim back early, only if ``token`` still holds it (a holder whose claim
    expired and was taken by another must not delete the other's). Used when a unique
    task ends and when a scheduler stops.
``tally(key, member, ttl)``
    Add ``member`` to a set and return how many distinct members it has. Idempotent, so a
    redelivered message counts once. Used by **workflow completion** (a chord's callback
    runs when the tally of finished members reaches the group's size) and **rate limits**
    (distinct task ids per time window, the window being the key and the ttl).

Keys are the caller's strings; the three kinds of key (claims, tallies, task states) never
collide, even under the same name. Times are float seconds, measured by the backend's clock
(the server's, for a server backend) so that processes with skewed clocks agree.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from fluxqueue.errors import ConfigurationError

__all__ = ["Coordination", "check_claim", "check_release", "check_tally"]


class Coordination(ABC):
    """Atomic claims and tallies: claim, release, tally."""

    @abstractmethod
    async def claim(self, key: str, token: str, ttl: float) -> str:
        """Hold ``key`` for ``token`` for ``ttl`` seconds if it is free, expired, or already
        held by ``token`` (then the ttl starts over). Return the holder after the call:
        ``token`` when the caller holds it, otherwise the other holder's token.

        Atomic: of any number of concurrent claims on a free key, exactly one wins.
        Implementations call :func:`check_claim` first.
        """

    @abstractmethod
    async def release(self, key: str, token: str) -> bool:
        """Free ``key`` if ``token`` holds it (and the claim has not expired); return
        whether it did. A release by anyone else changes nothing and returns False.
        Implementations call :func:`check_release` first."""

    @abstractmethod
    async def tally(self, key: str, member: str, ttl: float) -> int:
        """Add ``member`` to the set at ``key`` (once, however often it is added), keep the
        set ``ttl`` seconds from now, and return its number of distinct members.

        When the ttl runs out the whole set is gone; the next tally starts from one.
        Implementations call :func:`check_tally` first.
        """


def _check_key(key: object, what: str) -> None:
    if not isinstance(key, str) or not key:
        raise ConfigurationError(f"a {what} key must be a non-empty string, got {key!r}")


def _check_ttl(ttl: object, what: str) -> None:
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, (int, float))
        or not math.isfinite(ttl)
        or ttl <= 0
    ):
        raise ConfigurationError(f"a {what} ttl must be a positive number of seconds, got {ttl!r}")


def check_claim(key: object, token: object, ttl: object) -> None:
    """Refuse a claim that cannot mean anything: empty key or token, ttl not > 0."""
    check_release(key, token)
    _check_ttl(ttl, "claim")


def check_release(key: object, token: object) -> None:
    """Refuse a release that cannot mean anything: empty key or token."""
    _check_key(key, "claim")
    if not isinstance(token, str) or not token:
        raise ConfigurationError(f"a claim token must be a non-empty string, got {token!r}")


def check_tally(key: object, member: object, ttl: object) -> None:
    """Refuse a tally that cannot mean anything: empty key or member, ttl not > 0."""
    _check_key(key, "tally")
    if not isinstance(member, str) or not member:
        raise ConfigurationError(f"a tally member must be a non-empty string, got {member!r}")
    _check_ttl(ttl, "tally")
