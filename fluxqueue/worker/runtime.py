"""The worker loop: fetch under leases, run within a concurrency bound, keep leases alive,
honour aborts, stop gracefully.

One asyncio event loop per process. Async tasks run on it; sync tasks run in a thread pool
of ``concurrency`` threads. At most ``concurrency`` task bodies run at once; besides them
the worker holds up to ``prefetch`` leased messages, decoded and ready, so a finished body
is followed by the next one without waiting for a round trip to the broker. A body frees
its slot when it returns; its ack goes out in the background (see ``outbox.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fluxqueue.backends.base import WorkerInfo
from fluxqueue.errors import BrokerConnectionError, ConfigurationError
from fluxqueue.task import check_queue
from fluxqueue.worker.executor import Executor
from fluxqueue.worker.job import Job
from fluxqueue.worker.outbox import Outbox
from fluxqueue.worker.threads import DaemonPool

if TYPE_CHECKING:
    from fluxqueue.worker.host import WorkerApp

log = logging.getLogger("fluxqueue.worker")

DEFAULT_CONCURRENCY = 16
#: While a stop waits for running tasks, it logs which ones every this many seconds.
DRAIN_REPORT_EVERY = 5.0
#: How long the fetch loop idles after handing a body to a sleeping thread (see there).
HANDOFF_PAUSE = 0.0002


class Worker:
    """Consumes ``queues`` of ``app`` until stopped (or, with ``burst``, until they are empty).

    ``prefetch`` is how many leased messages may wait for a free slot, on top of the
    ``concurrency`` running ones (default: ``concurrency``; ``0`` leases only for free
    slots, which suits long tasks shared by several workers). Their leases are renewed
    like those of running tasks, and a stop hands them back at once.
    ``shutdown_timeout`` is how long running tasks may finish after a stop request before
    they are interrupted and handed back to their queue.
    """

    def __init__(
        self,
        app: WorkerApp,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        burst: bool = False,
        prefetch: int | None = None,
        shutdown_timeout: float = 30.0,
        poll_timeout: float = 1.0,
        handle_signals: bool | None = None,
        abort_check_interval: float = 0.5,
    ) -> None:
        self.app = app
        if queues is None:
            names = {"default", *(t.queue for t in app.tasks.values())}
            queues = sorted(names, key=lambda q: (q != "default", q))
        elif isinstance(queues, str):
            queues = [queues]
        self.queues = [check_queue(q) for q in queues]
        if not self.queues:
            raise ConfigurationError("a worker needs at least one queue")
        self.concurrency = DEFAULT_CONCURRENCY if concurrency is None else concurrency
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be an integer >= 1, got {concurrency!r}")
        self.prefetch = self.concurrency if prefetch is None else prefetch
        if not isinstance(self.prefetch, int) or self.prefetch < 0:
            raise ConfigurationError(f"prefetch must be an integer >= 0, got {prefetch!r}")
        self.capacity = self.concurrency + self.prefetch
        # Fetch in batches of at least this many while other messages are held.
        self._batch = max(1, self.prefetch // 2)
        self.burst = burst
        self.shutdown_timeout = shutdown_timeout
        self.poll_timeout = poll_timeout
        self.handle_signals = (not burst) if handle_signals is None else handle_signals
        self.abort_check_interval = abort_check_interval
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.pool = DaemonPool(self.concurrency)
        self.jobs: dict[asyncio.Task[None], Job] = {}
        self._held = 0  # leased jobs whose body has not finished
        self._free_slots = self.concurrency
        self._slot_waiters: deque[asyncio.Future[bool]] = deque()
        self._executor = Executor(self)
        self.outbox = Outbox(app.broker)
        self._stopping: asyncio.Event | None = None
        self._room: asyncio.Future[None] | None = None
        self._force = False
        self._interrupts = 0
        self._ticking = False

    # -- control ---------------------------------------------------------------------

    def stop(self) -> None:
        """Stop fetching; running tasks get ``shutdown_timeout`` to finish."""
        if self._stopping is not None and not self._stopping.is_set():
            log.info("worker %s stopping: finishing %d running task(s)", self.id, len(self.jobs))
            self._stopping.set()
            self._wake_fetcher()
            for job in self.jobs.values():
                if job.waiting():  # prefetched, not started: back to the queue now
                    job.cancel("shutdown")

    def stop_now(self) -> None:
        """Stop at once: running tasks are interrupted and handed back to their queue."""
        self._force = True
        self.stop()
        for job in self.jobs.values():
            job.cancel("shutdown")

    def _on_sigint(self) -> None:
        self._interrupts += 1
        if self._interrupts > 1:
            log.warning("second interrupt: stopping now")
            self.stop_now()
        else:
            if self.jobs:
                log.warning(
                    "interrupt: letting running tasks finish (up to %gs); "
                    "press Ctrl-C again to stop at once",
                    self.shutdown_timeout,
                )
            self.stop()

    # -- the loop --------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        signals = self._install_signals(loop)
        app = self.app
        resources = app.worker_resources
        try:
            await resources.open()
            app.plugins.notify(
                "fluxqueue_worker_started", app=app, worker_id=self.id, queues=self.queues
            )
            log.info(
                "worker %s serving %s (concurrency %d, broker %r)",
                self.id, ", ".join(self.queues), self.concurrency, app.broker,
            )  # fmt: skip
            self._ticking = True
            ticker = asyncio.ensure_future(self._tick())
            fetching = asyncio.ensure_future(self._fetch_loop())
            try:
                await self._until_stopped(fetching)
            finally:
                app.plugins.notify("fluxqueue_worker_stopping", app=app, worker_id=self.id)
                # The last fetch may still be waiting on the broker (it hands back what it
                # gets): drain meanwhile, so the shutdown timeout counts from the request.
                drained, _ = await asyncio.gather(self._drain(), fetching, return_exceptions=True)
                if isinstance(drained, BaseException):
                    log.error("worker %s: shutdown failed: %r", self.id, drained)
                # A client library may swallow the cancellation (seen with redis-py while it
                # connects), so the loop also ends on this flag.
                self._ticking = False
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
                try:
                    await self.app.broker.remove_worker(self.id)
                except Exception as exc:
                    log.warning("could not unregister worker %s: %s", self.id, exc)
        finally:
            await resources.close()
            for sig in signals:
                loop.remove_signal_handler(sig)
            self.pool.shutdown(wait=False, cancel_futures=True)
            log.info("worker %s stopped", self.id)

    async def _until_stopped(self, fetching: asyncio.Future[None]) -> None:
        """Return when a stop is requested or the fetch loop ends (burst); raise its error."""
        assert self._stopping is not None
        stop: asyncio.Future[Any] = asyncio.ensure_future(self._stopping.wait())
        waiting: set[asyncio.Future[Any]] = {fetching, stop}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if fetching.done():
            fetching.result()

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return []
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self._on_sigint)
        return [signal.SIGTERM, signal.SIGINT]

    async def _fetch_loop(self) -> None:
        assert self._stopping is not None
        broker = self.app.broker
        failures = 0
        while not self._stopping.is_set():
            room = self.capacity - self._held
            if room < self._batch:
                await self._wait_room()
                continue
            try:
                deliveries = await broker.fetch(
                    self.queues, room, 0 if self.burst else self.poll_timeout
                )
                failures = 0
            except BrokerConnectionError as exc:
                failures += 1
                delay = min(0.1 * 2**failures, 5.0)
                log.warning("broker unreachable (%s); retrying in %.1fs", exc, delay)
                await self._sleep_unless_stopping(delay)
                continue
            if self._stopping.is_set():
                for delivery in deliveries:  # stopped while fetching: give them back
                    await self._executor.handback(Job(delivery))
                return
            if not deliveries:
                if self.burst:
                    if not self.jobs:
                        return
                    await self._wait_room()
                continue
            idle = not self.jobs
            self._held += len(deliveries)
            for delivery in deliveries:
                job = Job(delivery)
                job.runner = runner = asyncio.ensure_future(self._run_job(job))
                self.jobs[runner] = job
            # Let the new jobs start their bodies before the next fetch goes out.
            await asyncio.sleep(0)
            if self.pool.woke_sleeper() and idle:
                # An idle worker handed a sync body to a sleeping thread, which needs the
                # GIL to start it; this thread would hold it while it sends the next fetch.
                # Going idle for a moment lets the body start first (about 0.1 ms sooner).
                await asyncio.sleep(HANDOFF_PAUSE)

    async def _run_job(self, job: Job) -> None:
        try:
            await self._executor.process(job)
        except Exception:
            # Only the broker can fail here; the lease expires and the message comes back.
            log.exception("could not record the outcome of task %s", job.delivery.task_id)
        finally:
            if not job.released:
                self.release(job)
            if job.runner is not None:
                self.jobs.pop(job.runner, None)
            if self.burst:  # it may be waiting for the last job before it stops
                self._wake_fetcher()

    # -- slots -----------------------------------------------------------------------

    async def acquire_slot(self, job: Job) -> bool:
        """Wait for a free slot; False when the job was cancelled before it got one."""
        if job.cancel_reason is not None:  # e.g. stopped before this job even started
            return False
        if self._free_slots > 0 and not self._slot_waiters:
            self._free_slots -= 1
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        job.waiter = waiter
        self._slot_waiters.append(waiter)
        try:
            return await waiter
        finally:
            job.waiter = None

    def release_slot(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)  # the slot passes straight to the next job
                return
        self._free_slots += 1

    def release(self, job: Job) -> None:
        """``job`` no longer counts against the worker's capacity (its body is over)."""
        job.released = True
        self._held -= 1
        if self.capacity - self._held >= self._batch:
            self._wake_fetcher()

    def _wake_fetcher(self) -> None:
        if self._room is not None and not self._room.done():
            self._room.set_result(None)

    async def _wait_room(self) -> None:
        self._room = asyncio.get_running_loop().create_future()
        try:
            await self._room
        finally:
            self._room = None

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _drain(self) -> None:
        """Let running jobs finish within the shutdown timeout, then hand them back."""
        if not self.jobs:
            return
        pending = set(self.jobs)
        if not self._force:
            deadline = time.monotonic() + self.shutdown_timeout
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                _, pending = await asyncio.wait(pending, timeout=min(left, DRAIN_REPORT_EVERY))
                if pending and deadline - time.monotonic() > 0:
                    self._report_running(pending, deadline - time.monotonic())
        if pending:
            log.warning("interrupting %d task(s) still running at shutdown", len(pending))
            for runner in pending:
                job = self.jobs.get(runner)
                if job is not None:
                    job.cancel("shutdown")
            await asyncio.wait(pending, timeout=10)

    def _report_running(self, runners: set[asyncio.Task[None]], left: float) -> None:
        """While a stop waits for running tasks: which ones, so a slow stop is explained."""
        names = [
            f"{job.message.task if job.message else '?'}[{job.delivery.task_id}]"
            for runner in runners
            if (job := self.jobs.get(runner)) is not None
        ]
        log.info(
            "still waiting for %d running task(s), %.0fs left: %s",
            len(names), left, ", ".join(sorted(names)),
        )  # fmt: skip

    # -- housekeeping ----------------------------------------------------------------

    async def _tick(self) -> None:
        """Abort checks, lease renewal and the worker's own heartbeat, on one timer."""
        broker = self.app.broker
        extend_every = broker.visibility_timeout / 3
        beat_every = 5.0
        last_extend = last_beat = 0.0
        info = WorkerInfo(
            self.id, socket.gethostname(), os.getpid(), self.queues, self.concurrency, time.time()
        )
        while self._ticking:
            now = time.monotonic()
            try:
                if now - last_beat >= beat_every:
                    await broker.heartbeat(info, ttl=beat_every * 3)
                    last_beat = now
                running = {job.delivery.task_id: job for job in self.jobs.values()}
                if running:
                    for task_id in await broker.abort_requested(list(running)):
                        running[task_id].cancel("abort")
                    if now - last_extend >= extend_every:
                        await broker.extend([job.delivery for job in running.values()])
                        last_extend = now
                else:
                    last_extend = now
            except Exception as exc:
                log.warning("worker housekeeping failed (%s); will try again", exc)
            await asyncio.sleep(min(self.abort_check_interval, extend_every))
