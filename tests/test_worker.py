"""Worker semantics, proven against the memory broker (the same runtime serves every backend)."""

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from fluxqueue import (
    Context,
    FluxQueue,
    Priority,
    Retry,
    Status,
    TaskAborted,
    TaskFailed,
    current_task,
)
from fluxqueue.message import Message
from fluxqueue.testing import dead_letters, run_all


@pytest.fixture
def fq() -> FluxQueue:
    return FluxQueue("memory://")


def test_sync_and_async_tasks_return_results(fq: FluxQueue) -> None:
    @fq.task
    def add(x: int, y: int) -> int:
        return x + y

    @fq.task
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    a, b = add(1, 2), double.enqueue(21)
    fq.run_worker(burst=True)
    assert (a.result(), b.result()) == (3, 42)
    info = a.info()
    assert info.status is Status.SUCCESS and info.attempts == 1
    assert info.started_at is not None and info.completed_at is not None
    assert info.completed_at >= info.started_at
    assert info.worker is not None and ":" in info.worker


def test_sync_tasks_run_in_threads_and_async_on_the_loop(fq: FluxQueue) -> None:
    seen: dict[str, str] = {}

    @fq.task
    def sync_task() -> None:
        seen["sync"] = threading.current_thread().name

    @fq.task
    async def async_task() -> None:
        seen["async"] = threading.current_thread().name

    sync_task()
    async_task.enqueue()
    fq.run_worker(burst=True)
    assert seen["sync"].startswith("fluxqueue-task")
    assert seen["async"] == threading.main_thread().name


def test_concurrency_bounds_tasks_in_flight(fq: FluxQueue) -> None:
    lock = threading.Lock()
    running = peak = 0

    @fq.task
    def slow() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    fq.enqueue_many([slow.message() for _ in range(12)])
    fq.run_worker(burst=True, concurrency=3)
    assert peak == 3


def test_async_tasks_overlap_up_to_concurrency(fq: FluxQueue) -> None:
    @fq.task
    async def nap() -> None:
        await asyncio.sleep(0.2)

    handles = fq.enqueue_many([nap.message() for _ in range(20)])
    start = time.monotonic()
    fq.run_worker(burst=True, concurrency=20)
    assert time.monotonic() - start < 2.0  # 20 x 0.2 s sequentially would be 4 s
    assert all(h.status() is Status.SUCCESS for h in handles)


def test_strict_priority_order(fq: FluxQueue) -> None:
    order: list[str] = []

    @fq.task
    def record(label: str) -> None:
        order.append(label)

    for label, priority in [
        ("low", "low"),
        ("normal", Priority.NORMAL),
        ("critical", 0),
        ("high", Priority.HIGH),
        ("normal2", 2),
    ]:
        record.options(priority=priority).enqueue(label)
    fq.run_worker(burst=True, concurrency=1)
    assert order == ["critical", "high", "normal", "normal2", "low"]


def test_delays_are_honoured(fq: FluxQueue) -> None:
    @fq.task
    def stamp() -> float:
        return time.time()

    enqueued = time.time()
    handle = stamp.options(delay=0.4).enqueue()
    fq.run_worker(burst=True)
    assert handle.status() is Status.SCHEDULED  # burst does not wait for the future
    worker = threading.Thread(
        target=fq.run_worker, kwargs={"burst": False, "handle_signals": False}
    )
    worker.daemon = True
    worker.start()
    assert handle.result(timeout=5) >= enqueued + 0.4


def test_run_all_runs_delayed_tasks_without_sleeping(fq: FluxQueue) -> None:
    @fq.task
    def later() -> str:
        return "done"

    handle = later.options(delay=3600).enqueue()
    start = time.monotonic()
    run_all(fq)
    assert handle.result() == "done"
    assert time.monotonic() - start < 5


def test_tasks_enqueued_by_tasks_run_in_the_same_burst(fq: FluxQueue) -> None:
    @fq.task
    def leaf(n: int) -> int:
        return n * 10

    @fq.task
    def parent(n: int) -> str:
        return leaf(n).id

    handle = parent(4)
    fq.run_worker(burst=True)
    assert fq.get_task(handle.result()).result() == 40


def test_max_retries_means_n_plus_one_attempts(fq: FluxQueue) -> None:
    attempts: list[int] = []

    @fq.task(max_retries=2, backoff=0.01)
    def always_fails() -> None:
        attempts.append(current_task().attempt)
        raise ValueError("nope")

    handle = always_fails()
    run_all(fq)
    assert attempts == [0, 1, 2]
    with pytest.raises(TaskFailed) as caught:
        handle.result()
    error = caught.value
    assert error.error_type == "ValueError" and error.error_message == "nope"
    assert error.traceback is not None and "always_fails" in error.traceback
    assert handle.info().attempts == 3
    (letter,) = dead_letters(fq)
    assert (letter.task_id, letter.task, letter.reason) == (
        handle.id,
        "always_fails",
        "ValueError: nope",
    )


def test_zero_retries_fails_at_once(fq: FluxQueue) -> None:
    calls = 0

    @fq.task(max_retries=0)
    def once() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("x")

    once()
    run_all(fq)
    assert calls == 1


def test_retry_exception_and_its_delay(fq: FluxQueue) -> None:
    @fq.task(max_retries=5)
    def eventually() -> int:
        task = current_task()
        if task.attempt < 2:
            raise Retry(delay=3600)
        return task.attempt

    handle = eventually()
    fq.run_worker(burst=True)
    info = handle.info()
    assert info.status is Status.RETRYING and info.eta is not None
    assert info.eta.timestamp() > time.time() + 3000
    run_all(fq)
    assert handle.result() == 2


def test_retry_on_limits_which_errors_retry(fq: FluxQueue) -> None:
    calls: list[str] = []

    @fq.task(max_retries=3, retry_on=(ConnectionError,), backoff=0)
    def picky(kind: str) -> None:
        calls.append(kind)
        raise ConnectionError() if kind == "net" else KeyError(kind)

    picky("net")
    picky("key")
    run_all(fq)
    assert calls.count("net") == 4 and calls.count("key") == 1


def test_timeout_of_an_async_task(fq: FluxQueue) -> None:
    @fq.task(timeout=0.2, max_retries=0)
    async def hangs() -> None:
        await asyncio.sleep(30)

    handle = hangs.enqueue()
    start = time.monotonic()
    fq.run_worker(burst=True)
    assert time.monotonic() - start < 5
    with pytest.raises(TaskFailed, match=r"TaskTimeout: task 'hangs' ran longer than its timeout"):
        handle.result()


def test_timeout_interrupts_a_sync_task(fq: FluxQueue) -> None:
    progressed = []

    @fq.task(timeout=0.3, max_retries=0)
    def spins() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.01)
        progressed.append("finished")

    handle = spins()
    start = time.monotonic()
    fq.run_worker(burst=True)
    assert time.monotonic() - start < 5
    with pytest.raises(TaskFailed, match="TaskTimeout"):
        handle.result()
    time.sleep(0.2)
    assert progressed == []  # the thread really stopped


def test_abort_a_queued_task(fq: FluxQueue) -> None:
    ran = []

    @fq.task
    def never() -> None:
        ran.append(1)

    handle = never()
    assert handle.abort() is True
    fq.run_worker(burst=True)
    assert ran == [] and handle.status() is Status.ABORTED
    with pytest.raises(TaskAborted):
        handle.result()
    assert handle.abort() is False  # nothing left to abort


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_abort_a_running_task(fq: FluxQueue, kind: str) -> None:
    started = threading.Event()

    @fq.task
    def sync_loop() -> None:
        started.set()
        while True:
            time.sleep(0.01)

    @fq.task
    async def async_loop() -> None:
        started.set()
        await asyncio.sleep(60)

    handle = sync_loop() if kind == "sync" else async_loop.enqueue()
    worker = threading.Thread(target=fq.run_worker, kwargs={"burst": True})
    worker.start()
    assert started.wait(5)
    # The STARTED write goes out with the next batch of acks, not before the body runs.
    deadline = time.monotonic() + 5
    while handle.status() is not Status.STARTED and time.monotonic() < deadline:
        time.sleep(0.01)
    assert handle.status() is Status.STARTED
    assert handle.abort() is True
    worker.join(10)
    assert not worker.is_alive()
    assert handle.status() is Status.ABORTED
    with pytest.raises(TaskAborted):
        handle.result(timeout=1)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_generator_tasks_stream_their_items(fq: FluxQueue, kind: str) -> None:
    @fq.task
    def count(n: int) -> Iterator[int]:
        for i in range(n):
            yield i
            time.sleep(0.05)

    @fq.task
    async def acount(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i
            await asyncio.sleep(0.05)

    handle = count(5) if kind == "sync" else acount(5)
    worker = threading.Thread(target=fq.run_worker, kwargs={"burst": True})
    worker.start()
    received = []
    first_at = last_at = 0.0
    for item in handle.stream(timeout=10):
        received.append(item)
        if item == 0:
            first_at = time.monotonic()
        last_at = time.monotonic()
    worker.join(10)
    assert received == [0, 1, 2, 3, 4]
    assert last_at - first_at > 0.1  # items arrived while the task ran, not all at the end
    assert handle.info().outputs == [0, 1, 2, 3, 4]
    assert handle.status() is Status.SUCCESS


def test_async_stream_and_result(fq: FluxQueue) -> None:
    @fq.task
    def letters() -> Iterator[str]:
        yield from "abc"

    async def main() -> list[Any]:
        handle = await letters.aenqueue()
        await fq.arun_worker(burst=True)
        assert await handle.aresult() is None
        return [item async for item in handle.astream()]

    assert asyncio.run(main()) == ["a", "b", "c"]


def test_lifespan_resources_and_context(fq: FluxQueue) -> None:
    events = []

    @fq.lifespan
    @asynccontextmanager
    async def resources() -> AsyncIterator[dict[str, str]]:
        events.append("open")
        yield {"client": "http"}
        events.append("close")

    @fq.task
    def uses_context() -> str:
        return str(fq.context["client"])

    @fq.task
    async def also_async() -> str:
        return str(fq.context["client"])

    a, b = uses_context(), also_async.enqueue()
    fq.run_worker(burst=True)
    assert (a.result(), b.result()) == ("http", "http")
    assert events == ["open", "close"]


def test_generator_lifespan(fq: FluxQueue) -> None:
    @fq.lifespan
    def resources() -> Iterator[int]:
        yield 7

    @fq.task
    def read() -> int:
        return int(fq.context)

    handle = read()
    fq.run_worker(burst=True)
    assert handle.result() == 7


def test_current_task_describes_the_running_task(fq: FluxQueue) -> None:
    @fq.task(queue="q1", max_retries=4)
    def who() -> dict[str, Any]:
        task = current_task()
        return {
            "id": task.id,
            "name": task.name,
            "queue": task.queue,
            "attempt": task.attempt,
            "max_retries": task.max_retries,
            "enqueued": task.enqueued_at.isoformat(),
        }

    handle = who()
    fq.run_worker(burst=True, queues=["q1"])
    result = handle.result()
    assert result["id"] == handle.id and result["name"] == "who"
    assert (result["queue"], result["attempt"], result["max_retries"]) == ("q1", 0, 4)


def test_task_with_context_and_a_context_subclass(fq: FluxQueue) -> None:
    class DbContext(Context):
        def session(self) -> str:
            return self.thread_storage.setdefault("session", f"s-{threading.get_ident()}")

    @fq.task_with_context()
    def sync_job(ctx: DbContext, data: str) -> dict[str, Any]:
        meta = ctx.metadata
        return {
            "data": data,
            "id": meta.task_id,
            "retries": meta.retries,
            "max": meta.max_retries,
            "at": meta.enqueued_at,
            "session": ctx.session(),
        }

    @fq.task_with_context
    async def async_job(ctx: Context, n: int) -> str:
        return f"{ctx.metadata.task_id}:{n}"

    handle = sync_job("payload")  # the context is not part of the public signature
    other = async_job.enqueue(3)
    fq.run_worker(burst=True)
    result = handle.result()
    assert result["data"] == "payload" and result["id"] == handle.id
    assert (result["retries"], result["max"]) == (0, 3)
    assert result["session"].startswith("s-") and "T" in result["at"]
    assert other.result() == f"{other.id}:3"


@pytest.mark.parametrize("exc", [SystemExit(2), KeyboardInterrupt(), GeneratorExit()])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_base_exceptions_in_a_task_do_not_kill_the_worker(
    fq: FluxQueue, exc: BaseException, kind: str
) -> None:
    @fq.task(max_retries=0)
    def sync_raiser() -> None:
        raise exc

    @fq.task(max_retries=0)
    async def async_raiser() -> None:
        raise exc

    @fq.task
    def after() -> str:
        return "still serving"

    bad = sync_raiser() if kind == "sync" else async_raiser.enqueue()
    good = after()
    fq.run_worker(burst=True, concurrency=1)
    with pytest.raises(TaskFailed) as caught:
        bad.result()
    assert caught.value.error_type == type(exc).__name__
    assert good.result() == "still serving"


def test_a_task_raising_cancelled_error_is_a_failure_not_a_crash(fq: FluxQueue) -> None:
    @fq.task(max_retries=0)
    async def cancels() -> None:
        raise asyncio.CancelledError()

    handle = cancels.enqueue()
    fq.run_worker(burst=True)
    with pytest.raises(TaskFailed, match="CancelledError"):
        handle.result()


def put_raw(fq: FluxQueue, message: Message) -> None:
    fq.run(fq.broker.enqueue([message]))


def test_unknown_task_name_fails_clearly_and_the_worker_goes_on(fq: FluxQueue) -> None:
    @fq.task
    def known() -> int:
        return 1

    stranger = fq.enqueue("not-registered-here", 1)
    good = known()
    fq.run_worker(burst=True)
    with pytest.raises(TaskFailed) as caught:
        stranger.result()
    assert caught.value.error_type == "fluxqueue.errors.UnknownTaskError"
    assert "unknown task 'not-registered-here'" in str(caught.value)
    assert "known" in str(caught.value)
    assert good.result() == 1
    assert [d.task for d in dead_letters(fq)] == ["not-registered-here"]


def test_undecodable_payload_is_dead_lettered(fq: FluxQueue) -> None:
    @fq.task
    def fine() -> int:
        return 1

    garbage = Message(
        task="fine", queue="default", body=b"{not json", content_type="application/json"
    )
    put_raw(fq, garbage)
    good = fine()
    fq.run_worker(burst=True)
    with pytest.raises(TaskFailed, match="body is not valid JSON"):
        fq.get_task(garbage.id).result()
    assert good.result() == 1
    assert dead_letters(fq)[0].task_id == garbage.id


def test_corrupt_header_is_dead_lettered(fq: FluxQueue) -> None:
    from fluxqueue.message import Delivery
    from fluxqueue.state import State

    class Corrupting(type(fq.broker)):  # type: ignore[misc]
        async def fetch(self, queues: Any, count: int, timeout: float) -> list[Delivery]:
            got = await super().fetch(queues, count, timeout)
            return [Delivery(d.task_id, d.queue, b"\x00garbage", d.receipt) for d in got]

    broken = FluxQueue(Corrupting())
    handle = broken.enqueue("whatever")
    broken.run_worker(burst=True)
    state = broken.run(broken.broker.get_state(handle.id))
    assert isinstance(state, State) and state.status == "FAILURE"
    (letter,) = dead_letters(broken)
    assert letter.task is None and "undecodable message" in letter.reason


def test_pickle_is_refused_unless_accepted() -> None:
    producer = FluxQueue("memory://", serializer="pickle")
    worker_app = FluxQueue(producer.broker)  # json app: accepts json only

    @worker_app.task
    def echo(x: Any) -> Any:
        return x

    @producer.task(name="echo")
    def echo_producer(x: Any) -> Any: ...

    refused = echo_producer({1, 2})
    fine = echo.enqueue([1])
    worker_app.run_worker(burst=True)
    with pytest.raises(TaskFailed) as caught:
        worker_app.get_task(refused.id).result()
    assert "content type 'application/x-python-pickle' is not accepted" in str(caught.value)
    assert fine.result() == [1]

    trusting = FluxQueue(producer.broker, accept=["pickle"])
    trusting.task(name="echo")(sorted)
    again = echo_producer({3})
    trusting.run_worker(burst=True)
    assert producer.get_task(again.id).result() == [3]


def test_arguments_that_do_not_match_the_signature(fq: FluxQueue) -> None:
    @fq.task
    def needs_two(a: int, b: int) -> int:
        return a + b

    handle = fq.enqueue("needs_two", 1)
    fq.run_worker(burst=True)
    with pytest.raises(TaskFailed, match=r"arguments do not match needs_two\(a: int, b: int\)"):
        handle.result()


def test_unserializable_return_value_fails_clearly(fq: FluxQueue) -> None:
    @fq.task(max_retries=3)
    def returns_a_set() -> set[int]:
        return {1}

    handle = returns_a_set()
    run_all(fq)
    with pytest.raises(TaskFailed, match="return value of task 'returns_a_set' cannot be stored"):
        handle.result()
    assert handle.info().attempts == 1  # deterministic: not retried


def test_result_timeout_raises_builtin_timeout_error(fq: FluxQueue) -> None:
    @fq.task
    def never_run() -> None: ...

    handle = never_run()
    with pytest.raises(TimeoutError, match=r"did not finish within 0.2s \(status: PENDING\)"):
        handle.result(timeout=0.2)


def test_serving_worker_stops_on_request_and_finishes_running_tasks(fq: FluxQueue) -> None:
    from fluxqueue.worker import Worker

    @fq.task
    async def slow() -> str:
        await asyncio.sleep(0.3)
        return "finished"

    async def main() -> None:
        worker = Worker(fq, handle_signals=False)
        serving = asyncio.ensure_future(worker.run())
        handle = await slow.aenqueue()
        await asyncio.sleep(0.1)
        worker.stop()
        await asyncio.wait_for(serving, 5)
        assert await handle.aresult(timeout=1) == "finished"

    asyncio.run(main())


def test_tasks_still_running_after_the_shutdown_timeout_go_back_to_the_queue(fq: FluxQueue) -> None:
    from fluxqueue.worker import Worker

    @fq.task
    async def endless() -> None:
        await asyncio.sleep(60)

    async def main() -> None:
        worker = Worker(fq, handle_signals=False, shutdown_timeout=0.2)
        serving = asyncio.ensure_future(worker.run())
        handle = await endless.aenqueue()
        await asyncio.sleep(0.2)
        assert await handle.astatus() is Status.STARTED
        worker.stop()
        await asyncio.wait_for(serving, 5)
        assert await handle.astatus() is Status.PENDING
        stats = await fq.broker.stats(["default"])
        assert stats.queues[0].ready == {2: 1}

    asyncio.run(main())


def test_observer_hooks_see_the_task_lifecycle(fq: FluxQueue) -> None:
    from fluxqueue import hookimpl

    events: list[str] = []

    class Recorder:
        @hookimpl
        def fluxqueue_task_enqueueing(self, message: Message) -> None:
            message.headers["trace"] = "t-1"

        @hookimpl
        def fluxqueue_task_started(self, message: Message) -> None:
            events.append(f"started {message.task} trace={message.headers.get('trace')}")

        @hookimpl
        def fluxqueue_task_enqueued(self, message: Message) -> None:
            events.append(f"enqueued {message.task}")

        @hookimpl
        def fluxqueue_task_succeeded(self, message: Message, result: Any) -> None:
            events.append(f"succeeded {message.task}={result}")

        @hookimpl
        def fluxqueue_task_retried(self, message: Message, delay: float) -> None:
            events.append(f"retried {message.task}")

        @hookimpl
        def fluxqueue_task_failed(self, message: Message, error: BaseException) -> None:
            events.append(f"failed {message.task}: {error}")

        @hookimpl
        def fluxqueue_task_dead_lettered(self, reason: str) -> None:
            events.append(f"dead {reason}")

    @fq.task
    def ok() -> int:
        return 5

    @fq.task(max_retries=1, backoff=0)
    def bad() -> None:
        raise ValueError("v")

    name = fq.plugins.register(Recorder(), name="recorder")
    try:
        ok()
        bad()
        run_all(fq, concurrency=1)
    finally:
        fq.plugins.unregister(name)
    # Each task's events in order; the next task may start before the previous one's
    # outcome is stored and announced (its slot frees when the body returns).
    assert [e for e in events if "ok" in e] == [
        "enqueued ok",
        "started ok trace=t-1",
        "succeeded ok=5",
    ]
    assert [e for e in events if "ok" not in e] == [
        "enqueued bad",
        "started bad trace=t-1",
        "retried bad",
        "started bad trace=t-1",
        "failed bad: v",
        "dead ValueError: v",
    ]


def test_a_retried_generator_keeps_only_the_last_attempts_items(fq: FluxQueue) -> None:
    @fq.task(max_retries=1, backoff=0)
    def flaky_stream() -> Iterator[str]:
        yield f"a{current_task().attempt}"
        if current_task().attempt == 0:
            raise ValueError("first attempt fails after one item")
        yield "b"

    handle = flaky_stream()
    run_all(fq)
    assert handle.info().outputs == ["a1", "b"]
    assert list(handle.stream()) == ["a0", "a1", "b"]  # live readers saw the failed attempt


def test_a_task_enqueued_by_name_elsewhere_gets_its_own_retry_settings(fq: FluxQueue) -> None:
    producer = FluxQueue(fq.broker)  # knows the task only by name
    calls: list[int] = []

    @fq.task(name="picky", max_retries=0, timeout=0.2)
    async def picky() -> None:
        calls.append(current_task().max_retries)
        await asyncio.sleep(5)

    handle = producer.enqueue("picky")
    explicit = producer.named("picky").options(max_retries=1).enqueue()
    run_all(fq)
    with pytest.raises(TaskFailed, match="TaskTimeout"):
        handle.result()
    assert handle.info().attempts == 1  # the worker's max_retries=0, not the default 3
    assert explicit.info().attempts == 2  # what the caller chose explicitly wins
    assert sorted(calls) == [0, 1, 1]


def test_the_shutdown_timeout_counts_from_the_stop_request(fq: FluxQueue) -> None:
    """An idle fetch (up to poll_timeout) must not delay the drain: a task longer than the
    shutdown timeout but shorter than the fetch wait is handed back, not finished."""
    from fluxqueue.worker import Worker

    @fq.task
    async def medium() -> None:
        await asyncio.sleep(0.6)

    async def main() -> None:
        worker = Worker(fq, handle_signals=False, shutdown_timeout=0.1, poll_timeout=1.0)
        serving = asyncio.ensure_future(worker.run())
        handle = await medium.aenqueue()
        while await handle.astatus() is not Status.STARTED:
            await asyncio.sleep(0.01)
        worker.stop()
        await asyncio.wait_for(serving, 5)
        assert await handle.astatus() is Status.PENDING

    asyncio.run(main())


@pytest.mark.parametrize("prefetch", [0, 2])
def test_prefetched_messages_wait_leased_and_go_back_at_once_on_stop(
    fq: FluxQueue, prefetch: int
) -> None:
    """``prefetch`` messages wait leased for a slot beside the running ones; a stop hands
    them back at once, without waiting for the running task."""
    from fluxqueue._bridge import run_sync
    from fluxqueue.worker import Worker

    running, release = threading.Event(), threading.Event()

    @fq.task
    def hold(n: int) -> int:
        running.set()
        release.wait(10)
        return n

    handles = [hold(n) for n in range(5)]
    worker = Worker(fq, concurrency=1, prefetch=prefetch, handle_signals=False)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),))
    thread.start()
    try:
        assert running.wait(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            (queue,) = run_sync(fq.admin.stats(["default"])).queues
            if queue.running == 1 + prefetch:
                break
            time.sleep(0.01)
        assert (queue.running, queue.total_ready) == (1 + prefetch, 4 - prefetch)
        loop.call_soon_threadsafe(worker.stop)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # handed back while the first still runs
            (queue,) = run_sync(fq.admin.stats(["default"])).queues
            if queue.total_ready == 4:
                break
            time.sleep(0.01)
        assert (queue.running, queue.total_ready) == (1, 4)
        assert thread.is_alive()
    finally:
        release.set()
        thread.join(10)
    assert not thread.is_alive()
    assert handles[0].result(timeout=1) == 0
    assert [h.status() for h in handles[1:]] == [Status.PENDING] * 4


def test_prefetch_must_be_a_non_negative_integer(fq: FluxQueue) -> None:
    from fluxqueue.errors import ConfigurationError
    from fluxqueue.worker import Worker

    with pytest.raises(ConfigurationError, match="prefetch must be an integer >= 0"):
        Worker(fq, prefetch=-1)


def test_abort_reaches_a_prefetched_message_before_it_starts(fq: FluxQueue) -> None:
    from fluxqueue.worker import Worker

    running, release = threading.Event(), threading.Event()
    ran: list[int] = []

    @fq.task
    def hold(n: int) -> int:
        ran.append(n)
        running.set()
        release.wait(10)
        return n

    first, second = hold(1), hold(2)
    worker = Worker(fq, concurrency=1, prefetch=1, handle_signals=False, abort_check_interval=0.05)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),))
    thread.start()
    try:
        assert running.wait(5)
        assert second.abort() is True  # leased (held for the next free slot), not started
        deadline = time.monotonic() + 5
        while second.status() is not Status.ABORTED and time.monotonic() < deadline:
            time.sleep(0.01)
        assert second.status() is Status.ABORTED
    finally:
        release.set()
        loop.call_soon_threadsafe(worker.stop)
        thread.join(10)
    assert first.result(timeout=1) == 1
    assert ran == [1]
