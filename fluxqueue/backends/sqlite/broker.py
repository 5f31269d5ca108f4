"""SQLiteBroker: the broker contract on one SQLite file shared by processes.

Every operation is one short transaction; read-modify-write ones (fetch, abort, requeue)
start with ``BEGIN IMMEDIATE`` so two consumers can never lease the same row. Nothing runs
in the background: due delayed messages and expired leases become ready inside the fetch
that finds them, so a message that came due while no worker ran is still delivered.
"""

from __future__ import annotations

import heapq
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Sequence

from fluxqueue.backends.base import (
    AbortOutcome,
    Broker,
    BrokerStats,
    DeadLetter,
    QueueStats,
    WorkerInfo,
)
from fluxqueue.backends.coordination import check_claim, check_release, check_tally
from fluxqueue.backends.sqlite._db import LEASED, READY, SCHEDULED, Database, parse_url
from fluxqueue.backends.sqlite._wait import Waiter
from fluxqueue.message import Delivery, Message
from fluxqueue.state import State, initial_state

__all__ = ["SQLiteBroker"]

log = logging.getLogger("fluxqueue.sqlite")

#: Expired states, outputs and worker records are deleted at most this often per broker.
SWEEP_INTERVAL = 60.0
#: SQLite's limit on bound parameters is 32766 in current versions; stay far below.
_CHUNK = 500

# A lease held by *another* consumer that has not expired: ending a lease never touches it.
_NOT_LIVE_ELSEWHERE = (
    f"NOT (state = {LEASED} AND due > :now AND :receipt != '' AND receipt != :receipt)"
)


def _expiry(ttl: float | None, now: float) -> float | None:
    return now + ttl if ttl else None


class SQLiteBroker(Broker):
    """Messages, leases, states and dead letters in one SQLite file (WAL mode).

    The constructor only parses the URL; the file and its schema are created on first use.
    """

    def __init__(self, url: str = "sqlite:///fluxqueue.db") -> None:
        super().__init__(url)
        self.path, lock_timeout = parse_url(url, self.options)
        self.lock_timeout = lock_timeout
        self._db = Database(self.path, lock_timeout)
        self._waiter = Waiter(self.path)
        self._next_sweep = 0.0

    def __repr__(self) -> str:
        return f"<SQLiteBroker {self.path} visibility_timeout={self.visibility_timeout:g}>"

    # -- producing -------------------------------------------------------------------

    async def enqueue(self, messages: Sequence[Message], ttl: float | None = None) -> None:
        if not messages:
            return
        now = time.time()
        rows = []
        states = []
        for message in messages:
            state = initial_state(message, ttl)
            delayed = message.eta is not None and message.eta > now
            due = message.eta if delayed and message.eta is not None else now
            rows.append(
                (message.id, message.queue, message.priority,
                 SCHEDULED if delayed else READY, due, message.encode())
            )  # fmt: skip
            states.append(
                (message.id, state.status, state.data, state.ttl, _expiry(state.ttl, now))
            )

        def tx(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT OR REPLACE INTO messages (id, queue, priority, state, due, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.executemany(
                "INSERT OR REPLACE INTO states (id, status, data, ttl, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                states,
            )
            db.execute("COMMIT")

        await self._db.run(tx)
        self._waiter.notify()

    # -- consuming -------------------------------------------------------------------

    async def fetch(self, queues: Sequence[str], count: int, timeout: float) -> list[Delivery]:
        queues = list(dict.fromkeys(queues))
        if not queues or count <= 0:
            return []
        if time.monotonic() >= self._next_sweep:
            await self._sweep()
        deadline = time.monotonic() + max(timeout, 0.0)
        async with self._waiter.watch(self._db) as watch:
            while True:
                taken, next_due = await self._db.run(lambda db: self._take(db, queues, count))
                if taken:
                    return taken
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                if next_due is not None:
                    left = min(left, max(next_due - time.time(), 0.0) + 0.001)
                await watch.wait(left)

    def _take(
        self, db: sqlite3.Connection, queues: list[str], count: int
    ) -> tuple[list[Delivery], float | None]:
        """Lease up to ``count`` messages; also return when the next delayed one is due.

        A read-only probe comes first, so an idle consumer checking for work never takes
        the write lock that producers need.
        """
        now = time.time()
        next_due = None
        for state in (SCHEDULED, LEASED):
            (due,) = db.execute(
                "SELECT MIN(due) FROM messages WHERE state = ?", (state,)
            ).fetchone()
            if due is not None and (next_due is None or due < next_due):
                next_due = due
        promote = next_due is not None and next_due <= now
        if not promote and not any(
            db.execute(
                "SELECT 1 FROM messages WHERE queue = ? AND state = ? LIMIT 1", (queue, READY)
            ).fetchone()
            for queue in queues
        ):
            return [], next_due
        db.execute("BEGIN IMMEDIATE")
        now = time.time()
        if promote:
            db.execute(
                f"UPDATE messages SET state = {READY} "
                f"WHERE state IN ({SCHEDULED}, {LEASED}) AND due <= ?",
                (now,),
            )
        candidates: list[tuple[int, float, int, str, str, bytes]] = []
        for queue in queues:
            candidates.extend(
                db.execute(
                    "SELECT priority, due, seq, id, queue, data FROM messages "
                    "WHERE queue = ? AND state = ? ORDER BY priority, due, seq LIMIT ?",
                    (queue, READY, count),
                )
            )
        chosen = heapq.nsmallest(count, candidates, key=lambda c: (c[0], c[1], c[2]))
        lease_end = now + self.visibility_timeout
        deliveries = [Delivery(c[3], c[4], c[5], uuid.uuid4().hex) for c in chosen]
        db.executemany(
            f"UPDATE messages SET state = {LEASED}, due = ?, receipt = ? WHERE seq = ?",
            [(lease_end, d.receipt, c[2]) for d, c in zip(deliveries, chosen, strict=True)],
        )
        db.execute("COMMIT")
        if promote:
            next_due = None  # unknown after promotion; the caller simply probes again
        return deliveries, next_due

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        lease_end = time.time() + self.visibility_timeout
        rows = [(lease_end, d.task_id, d.receipt, d.receipt) for d in deliveries]

        def tx(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                f"UPDATE messages SET due = ? WHERE id = ? AND state = {LEASED} "
                "AND (? = '' OR receipt = ?)",
                rows,
            )
            db.execute("COMMIT")

        await self._db.run(tx)

    def _end_lease(self, db: sqlite3.Connection, delivery: Delivery, now: float) -> None:
        db.execute(
            f"DELETE FROM messages WHERE id = :id AND {_NOT_LIVE_ELSEWHERE}",
            {"id": delivery.task_id, "now": now, "receipt": delivery.receipt},
        )

    @staticmethod
    def _write_state(db: sqlite3.Connection, task_id: str, state: State, now: float) -> None:
        db.execute(
            "INSERT OR REPLACE INTO states (id, status, data, ttl, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (task_id, state.status, state.data, state.ttl, _expiry(state.ttl, now)),
        )

    async def ack(self, delivery: Delivery, state: State) -> None:
        def tx(db: sqlite3.Connection) -> None:
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            self._end_lease(db, delivery, now)
            self._write_state(db, delivery.task_id, state, now)
            db.execute("COMMIT")

        await self._db.run(tx)

    async def ack_many(
        self,
        acks: Sequence[tuple[Delivery, State]],
        started: Sequence[tuple[str, State]] = (),
    ) -> None:
        """One transaction (one commit, the cost that matters here) for the whole batch."""
        if not acks and not started:
            return

        def tx(db: sqlite3.Connection) -> None:
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            for task_id, state in started:
                self._write_state(db, task_id, state, now)
            for delivery, state in acks:
                self._end_lease(db, delivery, now)
                self._write_state(db, delivery.task_id, state, now)
            db.execute("COMMIT")

        await self._db.run(tx)

    async def requeue(self, delivery: Delivery, message: Message, state: State) -> None:
        data = message.encode()

        def tx(db: sqlite3.Connection) -> None:
            now = time.time()
            delayed = message.eta is not None and message.eta > now
            due = message.eta if delayed and message.eta is not None else now
            db.execute("BEGIN IMMEDIATE")
            self._end_lease(db, delivery, now)
            # Unless another consumer holds a live lease on it (ours expired and it was
            # delivered again), the message goes back, replacing any leftover row.
            db.execute(
                "INSERT OR REPLACE INTO messages (id, queue, priority, state, due, data) "
                "SELECT :id, :queue, :priority, :state, :due, :data WHERE NOT EXISTS ("
                f"SELECT 1 FROM messages WHERE id = :id AND NOT {_NOT_LIVE_ELSEWHERE})",
                {
                    "id": message.id, "queue": message.queue, "priority": message.priority,
                    "state": SCHEDULED if delayed else READY, "due": due, "data": data,
                    "now": now, "receipt": delivery.receipt,
                },
            )  # fmt: skip
            self._write_state(db, message.id, state, now)
            db.execute("COMMIT")

        await self._db.run(tx)
        self._waiter.notify()

    async def dead_letter(self, delivery: Delivery, reason: str, state: State) -> None:
        def tx(db: sqlite3.Connection) -> None:
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            self._end_lease(db, delivery, now)
            db.execute(
                "INSERT OR REPLACE INTO dead (queue, id, data, reason, failed_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (delivery.queue, delivery.task_id, delivery.data, reason, now),
            )
            self._write_state(db, delivery.task_id, state, now)
            db.execute("COMMIT")

        await self._db.run(tx)

    # -- task state ------------------------------------------------------------------

    async def set_state(self, task_id: str, state: State) -> None:
        # A single statement is its own transaction: no BEGIN needed.
        await self._db.run(lambda db: self._write_state(db, task_id, state, time.time()))

    async def get_state(self, task_id: str) -> State | None:
        row = await self._db.run(
            lambda db: db.execute(
                "SELECT status, data, ttl, expires_at FROM states WHERE id = ?", (task_id,)
            ).fetchone()
        )
        if row is None or (row[3] is not None and row[3] <= time.time()):
            return None  # expired rows are deleted by the periodic sweep
        return State(row[0], bytes(row[1]), row[2])

    async def add_output(self, task_id: str, item: bytes, ttl: float | None) -> None:
        expires = _expiry(ttl, time.time())
        await self._db.run(
            lambda db: db.execute(
                "INSERT INTO outputs (id, data, expires_at) VALUES (?, ?, ?)",
                (task_id, item, expires),
            )
        )

    async def get_outputs(self, task_id: str, start: int = 0) -> list[bytes]:
        now = time.time()
        rows = await self._db.run(
            lambda db: db.execute(
                "SELECT data FROM outputs WHERE id = ? AND (expires_at IS NULL OR expires_at > ?) "
                "ORDER BY seq LIMIT -1 OFFSET ?",
                (task_id, now, max(start, 0)),
            ).fetchall()
        )
        return [bytes(r[0]) for r in rows]

    # -- aborting --------------------------------------------------------------------

    async def abort(self, task_id: str) -> AbortOutcome:
        def tx(db: sqlite3.Connection) -> AbortOutcome:
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT state, due FROM messages WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                db.execute("COMMIT")
                return "missing"
            if row[0] == LEASED and row[1] > now:
                db.execute("UPDATE messages SET abort = 1 WHERE id = ?", (task_id,))
                db.execute("COMMIT")
                return "requested"
            # Waiting, or leased by a worker that died: remove it, keep the state's data.
            db.execute("DELETE FROM messages WHERE id = ?", (task_id,))
            updated = db.execute(
                "UPDATE states SET status = 'ABORTED' WHERE id = ?", (task_id,)
            ).rowcount
            if not updated:
                self._write_state(db, task_id, State("ABORTED", b""), now)
            db.execute("COMMIT")
            return "aborted"

        return await self._db.run(tx)

    async def abort_requested(self, task_ids: Sequence[str]) -> set[str]:
        ids = list(task_ids)

        def read(db: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                found.update(
                    r[0]
                    for r in db.execute(
                        f"SELECT id FROM messages WHERE abort = 1 AND id IN ({marks})", chunk
                    )
                )
            return found

        return await self._db.run(read) if ids else set()

    # -- dead letters ----------------------------------------------------------------

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        rows = await self._db.run(
            lambda db: db.execute(
                "SELECT id, queue, data, reason, failed_at FROM dead WHERE queue = ? "
                "ORDER BY seq LIMIT ?",
                (queue, max(limit, 0)),
            ).fetchall()
        )
        return [DeadLetter(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows]

    async def remove_dead(self, queue: str, task_ids: Sequence[str] | None = None) -> int:
        def tx(db: sqlite3.Connection) -> int:
            if task_ids is None:
                return db.execute("DELETE FROM dead WHERE queue = ?", (queue,)).rowcount
            db.execute("BEGIN IMMEDIATE")
            removed = 0
            for task_id in task_ids:
                removed += db.execute(
                    "DELETE FROM dead WHERE queue = ? AND id = ?", (queue, task_id)
                ).rowcount
            db.execute("COMMIT")
            return removed

        return await self._db.run(tx)

    # -- administration --------------------------------------------------------------

    async def stats(self, queues: Sequence[str] | None = None) -> BrokerStats:
        def read(db: sqlite3.Connection) -> BrokerStats:
            now = time.time()
            # A due delayed message or an expired lease counts as ready: fetch would take it.
            counts = db.execute(
                f"SELECT queue, CASE WHEN state = {READY} OR due <= ? THEN {READY} "
                "ELSE state END AS s, priority, COUNT(*) FROM messages "
                "GROUP BY queue, s, priority",
                (now,),
            ).fetchall()
            dead = dict(db.execute("SELECT queue, COUNT(*) FROM dead GROUP BY queue").fetchall())
            workers = db.execute(
                "SELECT info FROM workers WHERE expires_at > ? ORDER BY id", (now,)
            ).fetchall()
            names = queues or sorted({c[0] for c in counts} | set(dead))
            found = {name: QueueStats(name) for name in names}
            for queue, state, priority, n in counts:
                stats = found.get(queue)
                if stats is None:
                    continue
                if state == READY:
                    stats.ready[priority] = stats.ready.get(priority, 0) + n
                elif state == SCHEDULED:
                    stats.scheduled += n
                else:
                    stats.running += n
            for name, stats in found.items():
                stats.dead = dead.get(name, 0)
            infos = [WorkerInfo.from_dict(json.loads(w[0])) for w in workers]
            return BrokerStats(list(found.values()), infos)

        return await self._db.run(read)

    async def registered_workers(self) -> list[WorkerInfo]:
        rows = await self._db.run(
            lambda db: db.execute(
                "SELECT info FROM workers WHERE expires_at > ? ORDER BY id", (time.time(),)
            ).fetchall()
        )
        return [WorkerInfo.from_dict(json.loads(r[0])) for r in rows]

    async def purge(self, queue: str) -> int:
        return await self._db.run(
            lambda db: (
                db.execute(
                    f"DELETE FROM messages WHERE queue = ? AND state IN ({READY}, {SCHEDULED})",
                    (queue,),
                ).rowcount
            )
        )

    async def promote_scheduled(self, queue: str | None = None) -> int:
        now = time.time()
        # Promoted messages join the back of their priority, as if enqueued now.
        sql = f"UPDATE messages SET state = {READY}, due = ? WHERE state = {SCHEDULED}"
        args: tuple[object, ...] = (now,)
        if queue is not None:
            sql, args = sql + " AND queue = ?", (now, queue)
        count: int = await self._db.run(lambda db: db.execute(sql, args).rowcount)
        if count:
            self._waiter.notify()
        return count

    async def heartbeat(self, worker: WorkerInfo, ttl: float) -> None:
        now = time.time()
        worker.last_seen = now
        info = json.dumps(worker.to_dict())
        await self._db.run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO workers (id, info, expires_at) VALUES (?, ?, ?)",
                (worker.id, info, now + ttl),
            )
        )

    async def remove_worker(self, worker_id: str) -> None:
        await self._db.run(lambda db: db.execute("DELETE FROM workers WHERE id = ?", (worker_id,)))

    # -- coordination ----------------------------------------------------------------

    async def claim(self, key: str, token: str, ttl: float) -> str:
        check_claim(key, token, ttl)

        def tx(db: sqlite3.Connection) -> str:
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT token FROM claims WHERE key = ? AND expires_at > ?", (key, now)
            ).fetchone()
            holder: str = token if row is None else row[0]
            if holder == token:
                db.execute(
                    "INSERT OR REPLACE INTO claims (key, token, expires_at) VALUES (?, ?, ?)",
                    (key, token, now + ttl),
                )
            db.execute("COMMIT")
            return holder

        return await self._db.run(tx)

    async def release(self, key: str, token: str) -> bool:
        check_release(key, token)
        removed: int = await self._db.run(
            lambda db: (
                db.execute(
                    "DELETE FROM claims WHERE key = ? AND token = ? AND expires_at > ?",
                    (key, token, time.time()),
                ).rowcount
            )
        )
        return removed > 0

    async def tally(self, key: str, member: str, ttl: float) -> int:
        check_tally(key, member, ttl)

        def tx(db: sqlite3.Connection) -> int:
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT expires_at FROM tallies WHERE key = ?", (key,)).fetchone()
            if row is not None and row[0] <= now:  # expired: the set starts over
                db.execute("DELETE FROM tally_members WHERE key = ?", (key,))
            db.execute(
                "INSERT OR REPLACE INTO tallies (key, expires_at) VALUES (?, ?)", (key, now + ttl)
            )
            db.execute(
                "INSERT OR IGNORE INTO tally_members (key, member) VALUES (?, ?)", (key, member)
            )
            (count,) = db.execute(
                "SELECT COUNT(*) FROM tally_members WHERE key = ?", (key,)
            ).fetchone()
            db.execute("COMMIT")
            return int(count)

        return await self._db.run(tx)

    async def _sweep(self) -> None:
        """Delete expired states, outputs, worker records, claims and tallies (they are
        invisible already)."""
        self._next_sweep = time.monotonic() + SWEEP_INTERVAL

        def tx(db: sqlite3.Connection) -> int:
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            removed = 0
            for table in ("states", "outputs", "workers", "claims"):
                removed += db.execute(f"DELETE FROM {table} WHERE expires_at <= ?", (now,)).rowcount
            removed += db.execute(
                "DELETE FROM tally_members WHERE key IN "
                "(SELECT key FROM tallies WHERE expires_at <= ?)",
                (now,),
            ).rowcount
            removed += db.execute("DELETE FROM tallies WHERE expires_at <= ?", (now,)).rowcount
            db.execute("COMMIT")
            return removed

        removed = await self._db.run(tx)
        if removed:
            log.debug("%s: deleted %d expired record(s)", self.path, removed)

    async def close(self) -> None:
        """Close this process's connections; the next call opens new ones."""
        self._db.close()

    # Exposed for tests and tools: run one synchronous function in a transaction context.
    async def _execute(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        return await self._db.run(lambda db: db.execute(sql, args).fetchall())
