"""Group 6 of the broker contract: the worker registry. Defaults for all of it.

Workers announce themselves with ``heartbeat`` every few seconds and leave with
``remove_worker``; ``stats`` lists the live ones. The defaults here are built on the state
store and one coordination primitive, so a new backend writes nothing for this group:

* each worker's record is a state under ``fluxqueue:worker:<id>`` with the heartbeat's ttl,
  so a worker that dies silently drops out when its record expires;
* the list of worker ids is one more state, ``fluxqueue:workers``; changing it is a
  read-modify-write, done while holding the claim ``fluxqueue:workers`` (a short lock), and
  only when a worker joins or leaves, not on every heartbeat.

A backend with a native registry (memory, SQLite, Redis keep theirs) overrides
``heartbeat`` and ``remove_worker`` together and lists the workers in its ``stats``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from abc import ABC
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fluxqueue.backends.records import BrokerStats, WorkerInfo
from fluxqueue.state import State

__all__ = ["WORKERS_KEY", "WORKER_KEY_PREFIX", "WorkerRegistry"]

log = logging.getLogger("fluxqueue.broker")

#: State keys of the default registry; task ids starting with "fluxqueue:" are reserved.
WORKER_KEY_PREFIX = "fluxqueue:worker:"
WORKERS_KEY = "fluxqueue:workers"
_ALIVE, _STOPPED, _INDEX = "ALIVE", "STOPPED", "INDEX"
#: How long a stopped worker's record is kept (it reads as not alive meanwhile).
_STOPPED_TTL = 60.0
#: The index lock: held for one read-modify-write, so a few seconds is ample.
_LOCK_TTL = 5.0
_LOCK_ATTEMPTS = 40


def _worker_key(worker_id: str) -> str:
    return WORKER_KEY_PREFIX + worker_id


class WorkerRegistry(ABC):  # noqa: B024 - every method has a default; an ABC like its siblings
    """heartbeat, remove_worker, registered_workers: defaults on state + coordination."""

    if TYPE_CHECKING:
        # The registry always comes with its backend's state store and coordination.
        async def set_state(self, task_id: str, state: State) -> None: ...
        async def get_state(self, task_id: str) -> State | None: ...
        async def claim(self, key: str, token: str, ttl: float) -> str: ...
        async def release(self, key: str, token: str) -> bool: ...
        async def stats(self, queues: Sequence[str] | None = None) -> BrokerStats: ...

    async def heartbeat(self, worker: WorkerInfo, ttl: float) -> None:
        """Record that ``worker`` is alive for the next ``ttl`` seconds."""
        worker.last_seen = time.time()
        record = json.dumps(worker.to_dict()).encode()
        await self.set_state(_worker_key(worker.id), State(_ALIVE, record, ttl))
        if worker.id not in await self._worker_ids():
            await self._change_index(join=worker.id)

    async def remove_worker(self, worker_id: str) -> None:
        """Forget a worker that stopped."""
        await self.set_state(_worker_key(worker_id), State(_STOPPED, b"", _STOPPED_TTL))
        await self._change_index(leave=worker_id)

    async def registered_workers(self) -> list[WorkerInfo]:
        """The live workers, by id: what a ``stats`` built on the default registry lists.

        A backend that keeps its own registry (it overrides ``heartbeat``) already lists
        its workers in ``stats``, so for it the default reads them from there; it may
        override this method to skip counting the queues.
        """
        if type(self).heartbeat is not WorkerRegistry.heartbeat:
            stats = await self.stats()
            return sorted(stats.workers, key=lambda w: w.id)
        found = []
        for worker_id in await self._worker_ids():
            state = await self.get_state(_worker_key(worker_id))
            if state is not None and state.status == _ALIVE:
                found.append(WorkerInfo.from_dict(json.loads(state.data)))
        return sorted(found, key=lambda w: w.id)

    async def _worker_ids(self) -> list[str]:
        index = await self.get_state(WORKERS_KEY)
        ids: list[str] = json.loads(index.data) if index is not None else []
        return ids

    async def _change_index(self, join: str | None = None, leave: str | None = None) -> None:
        """Add or remove one id, and drop ids whose record is gone, under the index lock."""
        token = uuid.uuid4().hex
        for attempt in range(_LOCK_ATTEMPTS):
            if await self.claim(WORKERS_KEY, token, _LOCK_TTL) == token:
                break
            await asyncio.sleep(min(0.005 * (attempt + 1), 0.05))
        else:
            log.warning(
                "could not update the worker list (its lock stayed taken); "
                "the next heartbeat tries again"
            )
            return
        try:
            ids = []
            for worker_id in await self._worker_ids():
                if worker_id in (join, leave):
                    continue
                state = await self.get_state(_worker_key(worker_id))
                if state is not None and state.status == _ALIVE:
                    ids.append(worker_id)
            if join is not None:
                ids.append(join)
            await self.set_state(WORKERS_KEY, State(_INDEX, json.dumps(sorted(ids)).encode()))
        finally:
            await self.release(WORKERS_KEY, token)
