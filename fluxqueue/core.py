"""What the parts of fluxqueue read from their app: the protocol that ``FluxQueue`` meets.

Tasks, handles, the admin and the worker are handed an app and read a few of its fields;
typing them with this protocol instead of ``FluxQueue`` keeps every import pointing down:
``app.py`` builds and imports them, none of them imports ``app.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from fluxqueue.backends.base import Broker
    from fluxqueue.codec import Codec
    from fluxqueue.context import WorkerResources
    from fluxqueue.plugins.manager import PluginManager
    from fluxqueue.security import Signer

__all__ = ["AppCore"]


class AppCore(Protocol):
    """An app as its tasks, handles, admin and worker see it."""

    @property
    def broker(self) -> Broker:
        """Where messages, states and results go."""

    @property
    def codec(self) -> Codec:
        """How arguments, results and streamed items are encoded and decoded."""

    @property
    def signer(self) -> Signer | None:
        """Signs what is sent, verifies what is run (None: messages are not signed)."""

    @property
    def plugins(self) -> PluginManager:
        """Whose observer hooks hear of every task enqueued, run, retried or failed."""

    @property
    def result_ttl(self) -> float | None:
        """Seconds a task's state and result are kept (None: for ever)."""

    @property
    def worker_resources(self) -> WorkerResources:
        """The ``@fq.lifespan`` resources a worker opens and closes."""
