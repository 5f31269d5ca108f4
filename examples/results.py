"""Following tasks: statuses, results, errors, timeouts, aborts, delays, priorities,
enqueueing by name and in bulk.

Run it: python examples/results.py
"""

import time
from datetime import datetime, timedelta, timezone

from fluxqueue import FluxQueue, Priority, Status, TaskAborted, TaskFailed
from fluxqueue.testing import run_all

fq = FluxQueue("memory://")


@fq.task(name="send-welcome-email", max_retries=0)
def send_welcome_email(user_id: int, email: str) -> str:
    if "@" not in email:
        raise ValueError(f"not an email address: {email!r}")
    return f"sent to {email}"


@fq.task(timeout=0.2, max_retries=0)
def slow() -> None:
    for _ in range(50):  # a sync task is interrupted between bytecodes, not inside a C call
        time.sleep(0.1)


@fq.task()
def noop(i: int) -> int:
    return i


def main() -> None:
    # Statuses and results.
    ok = send_welcome_email(1, "ada@example.com")
    bad = send_welcome_email(2, "not-an-address")
    print("before the worker:", ok.status())
    fq.run_worker(burst=True)
    print("after the worker:", ok.status(), "->", ok.result(timeout=5))
    try:
        bad.result(timeout=5)
    except TaskFailed as exc:
        print("TaskFailed:", exc)
        print("  remote type:", exc.error_type, "| last line:", exc.traceback.splitlines()[-1])

    # A result that does not come in time raises the builtin TimeoutError.
    waiting = send_welcome_email(3, "grace@example.com")
    try:
        waiting.result(timeout=0.1)  # no worker is running
    except TimeoutError as exc:
        print("TimeoutError:", exc)

    # A handle for an id, as another process (a web request) would rebuild it.
    again = fq.get_task(waiting.id)
    print("aborted:", again.abort(), "| status:", again.status())
    try:
        again.result(timeout=5)
    except TaskAborted as exc:
        print("TaskAborted:", exc)

    # A task that runs longer than its timeout ends in FAILURE with TaskTimeout.
    too_slow = slow()
    fq.run_worker(burst=True)
    info = too_slow.info()
    print("timeout:", info.status, info.error_type, "-", info.error)

    # By name (no import of the function needed), with per-call options.
    by_name = fq.enqueue("send-welcome-email", user_id=4, email="linus@example.com")
    later = send_welcome_email.options(delay=timedelta(minutes=10)).enqueue(5, "ken@example.com")
    at = datetime.now(timezone.utc) + timedelta(hours=1)
    urgent = (
        fq.named("send-welcome-email")
        .options(eta=at, priority=Priority.HIGH, task_id="welcome-6")
        .enqueue(6, "barbara@example.com")
    )
    print("delayed:", later.status(), "| by id:", urgent.id, urgent.status())

    # In bulk: build messages, send them in one round trip.
    handles = fq.enqueue_many([noop.message(i) for i in range(1000)])
    run_all(fq)  # runs everything, making delayed tasks due at once
    print("by name:", by_name.result())
    print("bulk:", len(handles), "tasks, sum =", sum(h.result() for h in handles))
    assert all(h.status() is Status.SUCCESS for h in (later, urgent))


if __name__ == "__main__":
    main()
