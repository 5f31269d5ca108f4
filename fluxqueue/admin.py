"""Looking into and repairing queues: statistics, dead letters, purge.

``fq.admin`` exposes these as coroutines; the CLI's admin commands and
:mod:`fluxqueue.testing` are built on them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from fluxqueue.backends.base import BrokerStats
from fluxqueue.errors import MessageError
from fluxqueue.message import Message

if TYPE_CHECKING:
    from fluxqueue.core import AppCore

log = logging.getLogger("fluxqueue.admin")

__all__ = ["Admin", "DeadLetterInfo"]


@dataclass(frozen=True, slots=True)
class DeadLetterInfo:
    """A dead letter with what its header tells (``task`` is None if it is undecodable)."""

    task_id: str
    queue: str
    task: str | None
    attempts: int | None
    reason: str
    failed_at: datetime


class Admin:
    def __init__(self, app: AppCore) -> None:
        self.app = app

    async def stats(self, queues: Sequence[str] | None = None) -> BrokerStats:
        return await self.app.broker.stats(queues)

    async def dead_letters(self, queue: str = "default", limit: int = 100) -> list[DeadLetterInfo]:
        found = []
        for letter in await self.app.broker.dead_letters(queue, limit):
            try:
                message: Message | None = Message.decode(letter.data)
            except MessageError:
                message = None
            found.append(
                DeadLetterInfo(
                    letter.task_id,
                    letter.queue,
                    message.task if message else None,
                    message.attempt + 1 if message else None,
                    letter.reason,
                    datetime.fromtimestamp(letter.failed_at, tz=timezone.utc),
                )
            )
        return found

    async def retry_dead(
        self, queue: str = "default", task_ids: Sequence[str] | None = None
    ) -> tuple[int, int]:
        """Enqueue dead letters again with their attempts reset; (retried, skipped).

        Undecodable letters are skipped and stay. Each retried letter is enqueued before it
        is removed, so a crash in between can duplicate it but never lose it. With a signing
        key, a letter is signed again (its attempts changed) only if its own signature
        verifies: an unsigned or forged letter is skipped, never laundered into a valid one.
        """
        signer = self.app.signer
        broker = self.app.broker
        wanted = None if task_ids is None else set(task_ids)
        retried: list[str] = []
        skipped = 0
        for letter in await broker.dead_letters(queue, limit=1_000_000):
            if wanted is not None and letter.task_id not in wanted:
                continue
            try:
                original = Message.decode(letter.data)
                if signer is not None:
                    signer.verify(original)
            except MessageError as exc:
                log.warning("dead letter %s not retried: %s", letter.task_id, exc)
                skipped += 1
                continue
            message = replace(original, attempt=0, eta=None)
            if signer is not None:
                signer.sign(message)
            await broker.enqueue([message], self.app.result_ttl)
            retried.append(letter.task_id)
        if retried:
            await broker.remove_dead(queue, retried)
        return len(retried), skipped

    async def purge_dead(self, queue: str = "default") -> int:
        return await self.app.broker.remove_dead(queue)

    async def purge(self, queue: str) -> int:
        return await self.app.broker.purge(queue)

    async def promote_scheduled(self, queue: str | None = None) -> int:
        return await self.app.broker.promote_scheduled(queue)
