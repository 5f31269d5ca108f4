"""The values brokers hand back: dead letters, queue counts, live workers, abort outcomes.

They live apart from the broker groups so that a backend, the admin API and the CLI can
share them without importing one another.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "DEFAULT_VISIBILITY_TIMEOUT",
    "FINAL_STATUSES",
    "AbortOutcome",
    "BrokerStats",
    "DeadLetter",
    "QueueStats",
    "WorkerInfo",
]

#: How long a fetched message stays leased without ``extend``, unless the URL says otherwise.
DEFAULT_VISIBILITY_TIMEOUT = 30.0

#: What ``Broker.abort`` did: removed a waiting message ("aborted"), flagged a leased one
#: for its worker to cancel ("requested"), or found nothing to abort ("missing").
AbortOutcome = Literal["aborted", "requested", "missing"]

#: Statuses after which a task never changes again (until its id is enqueued again).
FINAL_STATUSES = frozenset({"SUCCESS", "FAILURE", "ABORTED"})


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that will not be retried, with why."""

    task_id: str
    queue: str
    data: bytes
    reason: str
    failed_at: float


@dataclass(slots=True)
class QueueStats:
    """Counts for one queue. ``ready`` maps priority to the number of ready messages."""

    name: str
    ready: dict[int, int] = field(default_factory=dict)
    scheduled: int = 0
    running: int = 0
    dead: int = 0

    @property
    def total_ready(self) -> int:
        return sum(self.ready.values())


@dataclass(slots=True)
class WorkerInfo:
    """A live worker process, as it announces itself with ``Broker.heartbeat``."""

    id: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: float
    last_seen: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerInfo:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(slots=True)
class BrokerStats:
    """What ``Broker.stats`` returns: per-queue counts and the live workers."""

    queues: list[QueueStats]
    workers: list[WorkerInfo]
