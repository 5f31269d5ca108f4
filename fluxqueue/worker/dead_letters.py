"""What a dead letter keeps: the header, the reason and a bounded prefix of the body.

A message refused for its size (or any large message that fails for good) would otherwise
sit whole in the dead letters until removed by hand: a 50 MB body left 61 MB in Redis.
The worker builds the :class:`~fluxqueue.message.Delivery` it hands to
``Broker.dead_letter`` with bounded data, so every backend, built-in or plugin, stores at
most :data:`DEAD_LETTER_BODY_LIMIT` bytes of body, and the reason says what was cut.
"""

from __future__ import annotations

from dataclasses import replace

from fluxqueue.message import Delivery
from fluxqueue.security import MAX_HEADER_SIZE

__all__ = ["DEAD_LETTER_BODY_LIMIT", "bounded_dead_letter"]

#: Bytes of a message body a dead letter keeps (the header is kept whole, up to the
#: header size limit of 64 KiB).
DEAD_LETTER_BODY_LIMIT = 64 * 1024


def bounded_dead_letter(delivery: Delivery, reason: str) -> tuple[Delivery, str]:
    """``delivery`` with its body cut to :data:`DEAD_LETTER_BODY_LIMIT` bytes, and the
    reason saying so; both unchanged when the message is small enough."""
    data = delivery.data
    if len(data) <= MAX_HEADER_SIZE + DEAD_LETTER_BODY_LIMIT:
        return delivery, reason
    head, newline, body = data.partition(b"\n")
    if newline and len(head) <= MAX_HEADER_SIZE:
        kept = head + newline + body[:DEAD_LETTER_BODY_LIMIT]
        what = f"its body was cut to the first {DEAD_LETTER_BODY_LIMIT:,} of {len(body):,} bytes"
    else:  # no readable header: keep a prefix of the whole thing
        kept = data[:DEAD_LETTER_BODY_LIMIT]
        what = f"it was cut to the first {DEAD_LETTER_BODY_LIMIT:,} of {len(data):,} bytes"
    return replace(delivery, data=kept), f"{reason} (dead letter: {what})"
