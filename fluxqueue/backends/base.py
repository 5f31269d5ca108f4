"""The broker contract: six groups of documented methods, combined into :class:`Broker`.

A backend subclasses ``Broker`` and writes the primitives of each group; everything else
(retries, timeouts, aborts of running tasks, results, streams, and the features built on
coordination) is policy decided once in the core. A backend may still override any default
natively, for speed or atomicity.

=========================  ==========================================  ==================
group (module)             methods                                     a backend writes
=========================  ==========================================  ==================
transport (transport.py)   enqueue, fetch, extend, ack, requeue,       6
                           dead_letter; ack_many, enqueue_sync default
state store                set_state, get_state, add_output,           4
(state_store.py)           get_outputs; wait_state default
coordination               claim, release, tally                       3
(coordination.py)
aborts (aborts.py)         abort, abort_requested                      2
queue admin                stats; dead_letters, remove_dead, purge,    1
(queue_admin.py)           promote_scheduled raise UnsupportedOperation
worker registry            heartbeat, remove_worker,                   0
(registry.py)              registered_workers: defaults
lifecycle (here)           close: default does nothing                 0
=========================  ==========================================  ==================

That is 16 methods for a complete backend; :mod:`fluxqueue.testing.contract` proves each
group with its own test class.

Concurrency model: methods are coroutines and may be called from several event loops in one
process (the app's loop, the thread that serves synchronous callers, a worker's loop). A
backend that holds connections keeps them per event loop. Instances must be safe to share
between threads.

Errors: a backend raises :class:`~fluxqueue.errors.BrokerConnectionError` when it cannot
reach its server (saying which host it tried, password masked) and
:class:`~fluxqueue.errors.BrokerError` for other failures.
"""

from __future__ import annotations

from typing import ClassVar

from fluxqueue._url import float_option, mask_url, query_options
from fluxqueue.backends.aborts import Aborts
from fluxqueue.backends.coordination import Coordination
from fluxqueue.backends.queue_admin import QueueAdmin
from fluxqueue.backends.records import (
    DEFAULT_VISIBILITY_TIMEOUT,
    FINAL_STATUSES,
    AbortOutcome,
    BrokerStats,
    DeadLetter,
    QueueStats,
    WorkerInfo,
)
from fluxqueue.backends.registry import WorkerRegistry
from fluxqueue.backends.state_store import StateStore
from fluxqueue.backends.transport import Transport

__all__ = [
    "DEFAULT_VISIBILITY_TIMEOUT",
    "FINAL_STATUSES",
    "AbortOutcome",
    "Aborts",
    "Broker",
    "BrokerStats",
    "Coordination",
    "DeadLetter",
    "QueueAdmin",
    "QueueStats",
    "StateStore",
    "Transport",
    "WorkerInfo",
    "WorkerRegistry",
]


class Broker(Transport, StateStore, Coordination, Aborts, QueueAdmin, WorkerRegistry):
    """Base class of every backend. Subclasses are registered under a URL scheme.

    The constructor takes the broker URL; query-string options are in ``self.options``
    (``visibility_timeout`` is already taken out and applied). A subclass pops the options
    it understands and should reject the rest with a
    :class:`~fluxqueue.errors.ConfigurationError` naming them.
    """

    #: True when messages survive the process and are shared between processes.
    persistent: ClassVar[bool] = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.options = query_options(url)
        self.visibility_timeout = float_option(
            self.options, "visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT, url
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {mask_url(self.url)}>"

    async def close(self) -> None:
        """Release connections and files. The broker may be used again afterwards."""
