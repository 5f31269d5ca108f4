"""One message, from lease to outcome: decode, run, then ack, retry or dead-letter.

Every path ends in exactly one of the broker's lease-ending calls, each of which writes the
task's state atomically with it. Nothing a task does (raise ``SystemExit``, return an
unserializable value, never return) and nothing a producer sends (garbage bytes, an unknown
task, a refused serializer, wrong arguments) escapes this module.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import time
import traceback
import typing
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fluxqueue.context import Context, CurrentTask, _current
from fluxqueue.errors import (
    ContentTypeRefused,
    MessageError,
    Retry,
    SerializationError,
    TaskTimeout,
    UnknownTaskError,
)
from fluxqueue.message import Message, frame
from fluxqueue.security import MAX_HEADER_SIZE, check_body_size
from fluxqueue.state import State, encode_state, initial_state
from fluxqueue.task import UNSET_HEADER
from fluxqueue.worker.dead_letters import bounded_dead_letter
from fluxqueue.worker.job import Job
from fluxqueue.worker.outbox import call_broker
from fluxqueue.worker.threads import Interrupt, ThreadSlot

if TYPE_CHECKING:
    from fluxqueue.task import Task
    from fluxqueue.worker.host import Host

log = logging.getLogger("fluxqueue.worker")


class _Reject(Exception):
    """A message that must not run: goes straight to the dead letters."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def task_fields(message: Message, status: str, started: float, now: float) -> dict[str, Any]:
    """The keys every task log line carries (``--log-format json`` prints them as fields)."""
    return {
        "task_id": message.id,
        "task": message.task,
        "queue": message.queue,
        "attempt": message.attempt + 1,
        "duration_ms": round((now - started) * 1000, 3),
        "status": status,
    }


def type_name(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _mismatch(
    task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> TypeError | None:
    """Why ``args`` cannot be passed to the task's function, if they cannot. Checked only
    after the body raised ``TypeError`` (binding a signature costs as much as a small task
    body); a wrong call is then a producer's mistake that no retry would fix."""
    signature = task.spec.signature
    if signature is None:
        return None
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        return TypeError(f"arguments do not match {task.spec.name}{signature}: {exc}")
    return None


def _outcome(fn: Any, *args: Any) -> tuple[bool, Any]:
    """(True, result) or (False, exception): a thread's outcome as a value."""
    try:
        return True, fn(*args)
    except BaseException as exc:
        return False, exc


def _step(gen: typing.Generator[Any, Any, Any]) -> tuple[bool, Any]:
    try:
        return False, next(gen)
    except StopIteration as stop:
        return True, stop.value


class Executor:
    def __init__(self, worker: Host) -> None:
        self.worker = worker
        self.app = worker.app
        self.broker = worker.app.broker
        self._contexts: dict[type[Context], Context] = {}

    # -- the whole life of one message -----------------------------------------------

    async def process(self, job: Job) -> None:
        worker = self.worker
        try:
            message, task, args, kwargs = self._prepare(job)
        except _Reject as reject:
            worker.release(job)
            await self._fail(job, reject.error, time.time())
            return
        except Exception as exc:  # e.g. a plugin serializer raising its own error: without
            # this the message would come back after every lease, forever
            worker.release(job)
            unreadable = MessageError(f"cannot read the message: {type_name(exc)}: {exc}")
            await self._fail(job, unreadable, time.time())
            return
        job.phase = "waiting"
        outcome: tuple[bool, Any] | None = None
        started = time.time()
        if await worker.acquire_slot(job):
            try:
                if job.cancel_reason is None:
                    started = time.time()
                    self._announce(message, started)
                    outcome = await self._run_body(job, task, args, kwargs)
            finally:
                worker.release_slot()
        job.phase = "done"
        worker.release(job)
        if outcome is not None:
            ok, value = outcome
            if ok:
                await self._succeed(job, task, value, started)
            elif isinstance(value, TypeError) and (mismatch := _mismatch(task, args, kwargs)):
                await self._fail(job, mismatch, started)  # without the task: a dead letter
            else:
                await self._fail(job, value, started, task)
        elif job.cancel_reason == "abort":
            await self._abort(job, started)
        elif job.cancel_reason == "timeout":
            error = TaskTimeout(
                f"task {message.task!r} ran longer than its timeout of {message.timeout:g}s"
            )
            await self._fail(job, error, started, task)
        else:
            await self.handback(job)

    def _announce(self, message: Message, started: float) -> None:
        """The STARTED state (sent with the next batch of acks; the body does not wait for
        it, see outbox.py), the plugins' hook and the log line."""
        worker = self.worker
        worker.outbox.started(
            message.id,
            functools.partial(
                encode_state,
                "STARTED",
                message,
                ttl=self.app.result_ttl,
                attempts=message.attempt + 1,
                started_at=started,
                worker=worker.id,
            ),
        )
        self.app.plugins.notify(
            "fluxqueue_task_started", app=self.app, message=message, worker_id=worker.id
        )
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s[%s] started (attempt %d)", message.task, message.id, message.attempt + 1,
                extra=task_fields(message, "STARTED", started, started),
            )  # fmt: skip

    async def _run_body(
        self, job: Job, task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[bool, Any] | None:
        """The body's outcome, or None when the worker cancelled it (``job.cancel_reason``
        says why). It runs in this job's own asyncio task: no second task per job."""
        message = job.message
        assert message is not None
        timer = None
        if message.timeout:
            timer = asyncio.get_running_loop().call_later(message.timeout, job.cancel, "timeout")
        job.phase = "running"
        try:
            return await self._invoke(job, task, args, kwargs)
        except asyncio.CancelledError:
            if job.cancel_reason is None:
                raise  # not ours: the worker itself is being torn down
            current = asyncio.current_task()
            if current is not None and hasattr(current, "uncancel"):  # 3.11+
                current.uncancel()
            return None
        finally:
            job.phase = "done"
            if timer is not None:
                timer.cancel()

    def _prepare(self, job: Job) -> tuple[Message, Task[Any, Any], tuple[Any, ...], dict[str, Any]]:
        """The message, its task and its arguments; :class:`_Reject` if it must not run."""
        message = self._read(job)
        task = self._task_for(message)
        args, kwargs = self._arguments(message)
        return message, task, args, kwargs

    def _read(self, job: Job) -> Message:
        """Decode the envelope (into ``job.message``) within the size limit and check its
        signature, before the body is decoded (pickle runs code)."""
        app = self.app
        data = job.delivery.data
        limit = app.codec.max_message_size
        if limit is not None and len(data) > limit + MAX_HEADER_SIZE:  # before any parsing
            try:
                check_body_size(len(data), limit, "the message", "max_message_size")
            except SerializationError as exc:
                raise _Reject(exc) from None
        try:
            message = Message.decode(data)
        except MessageError as exc:
            raise _Reject(MessageError(f"undecodable message: {exc}")) from None
        job.message = message
        try:
            if limit is not None:
                check_body_size(len(message.body), limit, "the message body", "max_message_size")
            if app.signer is not None:
                app.signer.verify(message)
        except (MessageError, SerializationError) as exc:
            raise _Reject(exc) from None
        return message

    def _task_for(self, message: Message) -> Task[Any, Any]:
        """The registered task ``message`` names, its settings filled in where the producer
        left them to the task's definition."""
        task = self.app.tasks.get(message.task)
        if task is None:
            known = ", ".join(sorted(self.app.tasks)) or "none"
            raise _Reject(
                UnknownTaskError(
                    f"unknown task {message.task!r}: this worker knows {known}. Is the module "
                    "that defines it imported by the worker (--tasks-module-path)?"
                )
            )
        unset = message.headers.get(UNSET_HEADER)
        if unset:  # enqueued by name elsewhere: this task's own settings apply
            opts = task.task_options
            if "max_retries" in unset:
                message.max_retries = opts.max_retries
            if "timeout" in unset:
                message.timeout = opts.timeout
        return task

    def _arguments(self, message: Message) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's positional and keyword arguments, decoded from the body."""
        try:
            payload = self.app.codec.decode(message.content_type, message.body)
        except (ContentTypeRefused, MessageError) as exc:
            raise _Reject(exc) from None
        if (
            not isinstance(payload, (list, tuple))
            or len(payload) != 2
            or not isinstance(payload[0], (list, tuple))
            or not isinstance(payload[1], dict)
        ):
            raise _Reject(MessageError("message body is not [args, kwargs]"))
        return tuple(payload[0]), payload[1]

    # -- running the body ------------------------------------------------------------

    async def _invoke(
        self, job: Job, task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[bool, Any]:
        """Run the task body; (True, value) or (False, exception). Never raises, except
        CancelledError when the worker itself cancelled the job."""
        message = job.message
        assert message is not None
        m = message
        _current.set(CurrentTask(m.id, m.task, m.queue, m.attempt, m.max_retries, m.created_at))
        fn = task.fn
        spec = task.spec
        if spec.with_context:
            args = (self._context_for(fn), *args)
        try:
            if spec.kind == "coroutine":
                return True, await fn(*args, **kwargs)
            if spec.kind == "asyncgen":
                async for item in fn(*args, **kwargs):
                    await self._output(message, item)
                return True, None
            job.slot = ThreadSlot()
            value = await self._in_thread(job, fn, args, kwargs)
            if inspect.isgenerator(value):
                while True:
                    done, item = await self._in_thread(job, _step, (value,), {})
                    if done:
                        return True, item
                    await self._output(message, item)
            return True, value
        except asyncio.CancelledError as exc:
            if job.cancel_reason is not None:
                raise
            return False, exc
        except Interrupt:
            if job.cancel_reason is not None:
                raise asyncio.CancelledError() from None
            return False, TaskTimeout("task interrupted")
        except BaseException as exc:  # SystemExit, KeyboardInterrupt too: the worker lives on
            return False, exc

    async def _in_thread(
        self, job: Job, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        slot = job.slot
        assert slot is not None
        ctx = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        ok, value = await self.worker.pool.run(loop, ctx.run, _outcome, slot.call, fn, args, kwargs)
        if not ok:
            # Raised here, not through the future: asyncio throws a future's exception into
            # the awaiting coroutine, and a thrown GeneratorExit closes the whole chain of
            # awaits instead of reaching _invoke's handler.
            raise value
        return value

    async def _output(self, message: Message, item: Any) -> None:
        data = self.app.codec.encode_output(item, message.attempt)
        what = f"an item streamed by task {message.task!r}"
        check_body_size(len(data), self.app.codec.max_result_size, what, "max_result_size")
        await self.broker.add_output(message.id, data, self.app.result_ttl)

    def _context_for(self, fn: Any) -> Context:
        cls: type[Context] = Context
        try:
            first = next(iter(inspect.signature(fn).parameters))
            hint = typing.get_type_hints(fn).get(first)
            if isinstance(hint, type) and issubclass(hint, Context):
                cls = hint
        except Exception:
            pass
        context = self._contexts.get(cls)
        if context is None:
            context = self._contexts[cls] = cls()
        return context

    # -- outcomes --------------------------------------------------------------------

    async def _succeed(self, job: Job, task: Task[Any, Any], value: Any, started: float) -> None:
        message = job.message
        assert message is not None
        codec = self.app.codec
        serializer = codec.serializer
        try:
            body = serializer.dumps(value)
        except SerializationError as exc:
            error = SerializationError(
                f"the return value of task {message.task!r} cannot be stored: {exc}"
            )
            await self._fail(job, error, started, task)
            return
        if codec.max_result_size is not None and len(body) > codec.max_result_size:
            try:
                check_body_size(
                    len(body), codec.max_result_size,
                    f"the return value of task {message.task!r}", "max_result_size",
                )  # fmt: skip
            except SerializationError as exc:
                await self._fail(job, exc, started, task)
                return
        now = time.time()
        state = encode_state(
            "SUCCESS",
            message,
            ttl=self.app.result_ttl,
            result=body,
            content_type=serializer.content_type,
            attempts=message.attempt + 1,
            started_at=started,
            completed_at=now,
            worker=self.worker.id,
        )
        await self.worker.outbox.ack(job.delivery, state)
        self.app.plugins.notify(
            "fluxqueue_task_succeeded",
            app=self.app,
            message=message,
            result=value,
            duration=now - started,
        )
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s[%s] succeeded in %.3fs", message.task, message.id, now - started,
                extra=task_fields(message, "SUCCESS", started, now),
            )  # fmt: skip

    async def _fail(
        self, job: Job, error: BaseException, started: float, task: Task[Any, Any] | None = None
    ) -> None:
        """Retry when the task allows it, else FAILURE and a dead letter."""
        message = job.message
        await self.worker.outbox.forget(job.delivery.task_id)
        now = time.time()
        if isinstance(error, Retry) and message and message.attempt >= message.max_retries:
            error = Retry(reason=f"gave up after {message.attempt + 1} attempts: {error.reason}")
        details = self._failure_details(error, started, now)
        if (
            message is not None
            and task is not None
            and self._retriable(task, error)
            and message.attempt < message.max_retries
        ):
            await self._retry(job, message, task, error, details)
            return
        await self._give_up(job, error, details)

    def _failure_details(self, error: BaseException, started: float, now: float) -> dict[str, Any]:
        """The fields a RETRYING or FAILURE state records about ``error``."""
        tb = error.__traceback__
        return {
            "error_type": type_name(error),
            "error": str(error) or repr(error),
            "traceback": "".join(traceback.format_exception(type(error), error, tb))
            if tb is not None
            else None,
            "started_at": started,
            "completed_at": now,
            "worker": self.worker.id,
        }

    async def _retry(
        self,
        job: Job,
        message: Message,
        task: Task[Any, Any],
        error: BaseException,
        details: dict[str, Any],
    ) -> None:
        """Requeue the next attempt after its delay; one log line, no traceback."""
        now = details["completed_at"]
        delay = error.delay if isinstance(error, Retry) and error.delay is not None else None
        if delay is None:
            delay = task.task_options.retry_delay(message.attempt + 1)
        eta = now + delay if delay > 0 else None
        retry = replace(message, attempt=message.attempt + 1, eta=eta)
        if self.app.signer is not None:  # attempt and eta changed: sign again
            self.app.signer.sign(retry)
        state = encode_state(
            "RETRYING", retry, ttl=self.app.result_ttl, attempts=message.attempt + 1, **details
        )
        await call_broker(self.broker, self.broker.requeue, job.delivery, retry, state)
        self.app.plugins.notify(
            "fluxqueue_task_retried", app=self.app, message=message, error=error, delay=delay
        )
        log.warning(
            "%s[%s] failed in %.3fs (%s: %s); retry %d/%d in %.2fs",
            message.task, message.id, now - details["started_at"], details["error_type"],
            details["error"], retry.attempt, message.max_retries, delay,
            extra=task_fields(message, "RETRYING", details["started_at"], now),
        )  # fmt: skip

    async def _give_up(self, job: Job, error: BaseException, details: dict[str, Any]) -> None:
        """FAILURE and a dead letter (its body bounded); the traceback is logged once, here."""
        message, delivery = job.message, job.delivery
        started, now = details["started_at"], details["completed_at"]
        if message is None:  # not even a header: record what we can
            state = State(
                "FAILURE",
                frame({"status": "FAILURE", "queue": delivery.queue, **details}, b""),
                self.app.result_ttl,
            )
        else:
            state = encode_state(
                "FAILURE", message, ttl=self.app.result_ttl, attempts=message.attempt + 1, **details
            )
        letter, reason = bounded_dead_letter(
            delivery, f"{details['error_type']}: {details['error']}"
        )
        await call_broker(self.broker, self.broker.dead_letter, letter, reason, state)
        if message is not None:
            self.app.plugins.notify(
                "fluxqueue_task_failed",
                app=self.app,
                message=message,
                error=error,
                duration=now - started,
            )
        self.app.plugins.notify(
            "fluxqueue_task_dead_lettered",
            app=self.app,
            task_id=delivery.task_id,
            queue=delivery.queue,
            reason=reason,
        )
        fields = (
            task_fields(message, "FAILURE", started, now)
            if message is not None
            else {"task_id": delivery.task_id, "task": None, "queue": delivery.queue,
                  "attempt": None, "duration_ms": round((now - started) * 1000, 3),
                  "status": "FAILURE"}
        )  # fmt: skip
        log.error(
            "%s[%s] failed for good in %.3fs: %s",
            message.task if message else "?", delivery.task_id, now - started, reason,
            exc_info=(type(error), error, error.__traceback__)
            if error.__traceback__ is not None
            else None,
            extra=fields,
        )  # fmt: skip

    @staticmethod
    def _retriable(task: Task[Any, Any], error: BaseException) -> bool:
        if isinstance(error, Retry):
            return True
        if isinstance(error, (SerializationError, MessageError)):
            return False
        return isinstance(error, task.task_options.retry_on)

    async def _abort(self, job: Job, started: float) -> None:
        message = job.message
        assert message is not None
        await self.worker.outbox.forget(message.id)
        state = encode_state(
            "ABORTED",
            message,
            ttl=self.app.result_ttl,
            attempts=message.attempt + 1,
            started_at=started,
            completed_at=time.time(),
            worker=self.worker.id,
        )
        await call_broker(self.broker, self.broker.ack, job.delivery, state)
        log.info(
            "%s[%s] aborted", message.task, message.id,
            extra=task_fields(message, "ABORTED", started, time.time()),
        )  # fmt: skip

    async def handback(self, job: Job) -> None:
        """Return an unfinished message to its queue (shutdown), same attempt."""
        await self.worker.outbox.forget(job.delivery.task_id)
        try:
            # As it was delivered: fields this worker filled in (fq-unset) stay unset, and
            # a signature still matches what it signs.
            message = Message.decode(job.delivery.data)
        except MessageError:
            return  # its lease will expire and it will be dead-lettered then
        state = initial_state(message, self.app.result_ttl)
        await call_broker(self.broker, self.broker.requeue, job.delivery, message, state)
        log.info("%s[%s] handed back to queue %r", message.task, message.id, message.queue)
