"""Sending a batch of messages: the enqueueing hooks, signing, one broker call, the enqueued
hooks. The same path for one task (``task.enqueue``) and many (``fq.enqueue_many``), sync
and async; the caller makes the handles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fluxqueue.core import AppCore
    from fluxqueue.message import Message

__all__ = ["asend", "send"]


def send(app: AppCore, batch: list[Message]) -> None:
    """Send ``batch`` from sync code in as few round trips as the broker allows."""
    _prepare(app, batch)
    # The broker's blocking path when it has one (Redis), else the bridge thread.
    app.broker.enqueue_sync(batch, app.result_ttl)
    _announce(app, batch)


async def asend(app: AppCore, batch: list[Message]) -> None:
    """Send ``batch`` from async code."""
    _prepare(app, batch)
    await app.broker.enqueue(batch, app.result_ttl)
    _announce(app, batch)


def _prepare(app: AppCore, batch: list[Message]) -> None:
    """Run the enqueueing hooks and sign: the batch as it goes to the broker."""
    plugins = app.plugins
    if plugins.has_observers("fluxqueue_task_enqueueing"):
        for message in batch:
            plugins.notify("fluxqueue_task_enqueueing", app=app, message=message)
    signer = app.signer
    if signer is not None:  # after the hook: headers it adds are signed too
        for message in batch:
            signer.sign(message)


def _announce(app: AppCore, batch: list[Message]) -> None:
    plugins = app.plugins
    if plugins.has_observers("fluxqueue_task_enqueued"):
        for message in batch:
            plugins.notify("fluxqueue_task_enqueued", app=app, message=message)
