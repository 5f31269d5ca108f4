"""One line per error: log records that only repeat a command's error are dropped.

A broker that cannot be reached is logged by its backend (``WARNING fluxqueue.redis: Redis
at ... is unreachable: ...``) and then reported by the command (``Error: ... cannot reach
Redis at ...``): the same fact twice. While a command (or a worker's start-up checks) runs,
:func:`one_line_errors` holds the log records back; if the command fails, the records
whose text repeats its error are dropped, and the others are written as usual. Without
click, so the worker process can use it too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["SHOW_NOW", "one_line_errors", "repeats"]

#: A tail shorter than this ("timeout", "refused") is too common to count as a repeat.
MIN_REPEAT = 20


#: ``extra={SHOW_NOW: True}`` writes a record at once, even while others are held back
#: (a start-up retry must be seen while it waits); held records that it repeats are
#: dropped. The leading underscore keeps it out of JSON log lines.
SHOW_NOW = "_show_now"


class _HeldBack(logging.Handler):
    def __init__(self, handlers: list[logging.Handler]) -> None:
        super().__init__(logging.NOTSET)
        self.handlers = handlers
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not getattr(record, SHOW_NOW, False):
            self.records.append(record)
            return
        text = record.getMessage()
        self.records = [r for r in self.records if not repeats(r.getMessage(), text)]
        write(record, self.handlers)


def write(record: logging.LogRecord, handlers: list[logging.Handler]) -> None:
    for handler in handlers:
        if record.levelno >= handler.level:
            handler.handle(record)


def repeats(message: str, error: str) -> bool:
    """Whether ``message`` (a log line) says nothing that ``error`` does not: it is
    contained in the error, or one of its ``": "``-separated tails is."""
    if message in error:
        return True
    start = message.find(": ")
    while start >= 0:
        tail = message[start + 2 :]
        if len(tail) >= MIN_REPEAT and tail in error:
            return True
        start = message.find(": ", start + 1)
    return False


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Hold log records back while the block runs; drop those that repeat its error."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    held = _HeldBack(handlers)
    root.handlers = [held]
    try:
        yield
    except BaseException as exc:
        error = str(getattr(exc, "message", None) or exc)
        held.records = [r for r in held.records if not repeats(r.getMessage(), error)]
        raise
    finally:
        root.handlers = handlers
        for record in held.records:
            write(record, handlers)
