"""Defining tasks and enqueueing them (no worker involved)."""

import asyncio
import inspect
import time
from datetime import datetime, timedelta, timezone

import pytest

from fluxqueue import (
    AsyncTask,
    ConfigurationError,
    DuplicateTaskError,
    FluxQueue,
    InvalidTaskError,
    Priority,
    SerializationError,
    Status,
    SyncTask,
    TaskHandle,
)
from fluxqueue.message import Message


@pytest.fixture
def fq() -> FluxQueue:
    return FluxQueue("memory://")


def test_bare_decorator_and_fluxqueue_attributes(fq: FluxQueue) -> None:
    @fq.task
    def send_email(to: str, subject: str) -> None:
        """Send it."""

    assert isinstance(send_email, SyncTask)
    assert send_email.task_name == "send_email"
    assert send_email.queue == "default"
    assert send_email.max_retries == 3
    assert send_email.__name__ == "send_email"
    assert send_email.__doc__ == "Send it."
    assert list(inspect.signature(send_email).parameters) == ["to", "subject"]
    assert fq.tasks["send_email"] is send_email


def test_decorator_options(fq: FluxQueue) -> None:
    @fq.task(
        name="send-welcome-email",
        queue="high-priority",
        max_retries=5,
        priority="high",
        timeout=10,
        retry_on=ConnectionError,
        backoff=0.5,
        backoff_max=4,
        jitter=False,
    )
    def send_welcome_email(user_id: int) -> int:
        return user_id

    assert send_welcome_email.task_name == "send-welcome-email"
    assert send_welcome_email.queue == "high-priority"
    options = send_welcome_email.task_options
    assert options.priority is Priority.HIGH
    assert options.retry_on == (ConnectionError,)
    assert [options.retry_delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 4, 4]
    assert send_welcome_email.fn(7) == 7
    assert send_welcome_email.__wrapped__(8) == 8


def test_jittered_backoff_stays_within_half_and_full_delay() -> None:
    fq = FluxQueue("memory://")

    @fq.task(backoff=2)
    def t() -> None: ...

    delays = [t.task_options.retry_delay(3) for _ in range(200)]
    assert all(4 <= d <= 8 for d in delays)
    assert len(set(delays)) > 1


def test_calling_a_sync_task_enqueues_it(fq: FluxQueue) -> None:
    @fq.task
    def add(x: int, y: int) -> int:
        return x + y

    handle = add(1, 2)
    assert isinstance(handle, TaskHandle)
    assert handle.status() is Status.PENDING
    info = handle.info()
    assert (info.name, info.queue, info.attempts) == ("add", "default", 0)
    assert info.enqueued_at is not None and info.enqueued_at.tzinfo is not None
    assert add.enqueue(3, 4).id != handle.id


def test_awaiting_an_async_task_enqueues_it(fq: FluxQueue) -> None:
    @fq.task()
    async def notify(user_id: int, message: str) -> None: ...

    assert isinstance(notify, AsyncTask)

    async def main() -> TaskHandle[None]:
        first = await notify(1, "hi")
        second = await notify.aenqueue(2, "there")
        assert first.id != second.id
        assert await first.astatus() is Status.PENDING
        return first

    handle = asyncio.run(main())
    assert notify.enqueue(3, "sync too").status() is Status.PENDING
    assert handle.status() is Status.PENDING


def test_options_per_call(fq: FluxQueue) -> None:
    @fq.task
    def work(n: int) -> int:
        return n

    message = work.options(
        priority=Priority.CRITICAL, queue="urgent", task_id="abc", max_retries=0, timeout=5
    ).message(1)
    assert (message.priority, message.queue, message.id) == (0, "urgent", "abc")
    assert (message.max_retries, message.timeout, message.eta) == (0, 5, None)
    before = time.time()
    delayed = work.options(delay=30).message(1)
    assert delayed.eta is not None and before + 29 < delayed.eta < time.time() + 31
    assert work.options(delay=timedelta(minutes=1)).message(1).eta is not None
    when = datetime.now(timezone.utc) + timedelta(hours=1)
    assert work.options(eta=when).message(1).eta == when.timestamp()
    handle = work.options(delay=60).enqueue(1)
    assert handle.status() is Status.SCHEDULED
    with pytest.raises(ConfigurationError, match="either delay= or eta="):
        work.options(delay=1, eta=when)
    with pytest.raises(ConfigurationError, match="unknown priority 'urgent'"):
        work.options(priority="urgent")
    with pytest.raises(ConfigurationError, match="delay must be >= 0"):
        work.options(delay=-1)


def test_enqueue_by_name_without_importing_the_task(fq: FluxQueue) -> None:
    handle = fq.enqueue("reports.build", 2024, fmt="pdf")
    assert handle.info().name == "reports.build"
    sender = fq.named("reports.build").options(queue="reports", delay=10)
    message = sender.message(2025)
    assert (message.task, message.queue) == ("reports.build", "reports")


def test_enqueue_many_in_one_call(fq: FluxQueue) -> None:
    @fq.task
    def noop(i: int) -> None: ...

    handles = fq.enqueue_many([noop.message(i) for i in range(500)])
    assert len({h.id for h in handles}) == 500
    stats = fq.run(fq.broker.stats(["default"]))
    assert stats.queues[0].ready == {2: 500}


def test_get_task_from_an_id(fq: FluxQueue) -> None:
    @fq.task
    def noop() -> None: ...

    handle = noop()
    assert fq.get_task(handle.id) == handle
    assert fq.get_task("unknown-id").status() is Status.PENDING


def test_unserializable_argument_names_the_argument_and_type(fq: FluxQueue) -> None:
    @fq.task
    def schedule(user_id: int, when: datetime) -> None: ...

    with pytest.raises(SerializationError) as caught:
        schedule(1, datetime.now())
    message = str(caught.value)
    assert "argument 'when' of task 'schedule' is a datetime" in message
    assert "json" in message
    assert isinstance(caught.value, TypeError)
    with pytest.raises(SerializationError, match="argument 'when'"):
        schedule(1, when=datetime.now())
    with pytest.raises(SerializationError, match="argument 'payload'"):
        fq.enqueue("elsewhere", payload={"nested": {1, 2}})


def test_pickle_serializer_takes_any_value() -> None:
    fq = FluxQueue("memory://", serializer="pickle")

    @fq.task
    def schedule(when: datetime) -> datetime:
        return when

    now = datetime.now()
    handle = schedule(now)
    fq.run_worker(burst=True)
    assert handle.result() == now


@pytest.mark.parametrize("thing", [42, "name", object()])
def test_decorating_a_non_callable(fq: FluxQueue, thing: object) -> None:
    with pytest.raises(InvalidTaskError, match="decorates a function"):
        fq.task(thing)  # type: ignore[call-overload]


def test_decorating_a_class_or_a_task_twice(fq: FluxQueue) -> None:
    with pytest.raises(InvalidTaskError):
        fq.task(dict)

    @fq.task
    def once() -> None: ...

    with pytest.raises(InvalidTaskError, match="already a task"):
        fq.task(once)


def test_unknown_or_invalid_options(fq: FluxQueue) -> None:
    with pytest.raises(InvalidTaskError, match="unknown option"):
        fq.task(retries=3)(lambda: None)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="max_retries must be an integer >= 0"):
        fq.task(max_retries=-1)(lambda: None)
    with pytest.raises(ConfigurationError, match="a queue name must be a non-empty string"):
        fq.task(queue="")(lambda: None)
    with pytest.raises(ConfigurationError, match="timeout must be a positive number"):
        fq.task(timeout=0)(lambda: None)
    with pytest.raises(ConfigurationError, match="retry_on must be exception classes"):
        fq.task(retry_on=(int,))(lambda: None)  # type: ignore[arg-type]


def test_duplicate_task_names_name_both_functions(fq: FluxQueue) -> None:
    @fq.task(name="job")
    def first() -> None: ...

    with pytest.raises(DuplicateTaskError) as caught:

        @fq.task(name="job")
        def second() -> None: ...

    assert "first" in str(caught.value) and "second" in str(caught.value)


def test_registering_the_same_function_again_is_allowed(fq: FluxQueue) -> None:
    def job() -> None: ...

    fq.task(job)
    fq.task(job)  # a module imported twice, e.g. as __main__ and by name
    assert list(fq.tasks) == ["job"]


def test_message_body_is_args_and_kwargs(fq: FluxQueue) -> None:
    @fq.task
    def f(a: int, b: str = "x") -> None: ...

    message = f.message(1, b="y")
    assert isinstance(message, Message)
    assert fq.serializer.loads(message.body) == [[1], {"b": "y"}]
    assert message.content_type == "application/json"
