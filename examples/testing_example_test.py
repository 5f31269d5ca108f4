"""Testing code that uses fluxqueue: the memory broker, a worker in the test, no sleeping.

Run it: python -m pytest examples/testing_example_test.py
"""

import pytest

from fluxqueue import FluxQueue, Retry, Status, TaskFailed, current_task
from fluxqueue.testing import dead_letters, run_all

# In a real project this is your app module; tests point it at memory:// (for instance
# with FLUXQUEUE_BROKER_URL=memory:// when the app calls FluxQueue() without a URL).
fq = FluxQueue("memory://")
sent: list[str] = []


@fq.task(name="send-welcome-email", max_retries=3)
def send_welcome_email(user_id: int, email: str) -> str:
    if current_task().attempt == 0:
        raise ConnectionError("SMTP server busy")  # fails once, then succeeds
    sent.append(email)
    return f"sent to {email}"


@fq.task(max_retries=2)
def wait_for_export(export_id: int) -> str:
    raise Retry(delay=600, reason=f"export {export_id} not ready")


@fq.task(max_retries=0)
def charge(amount: int) -> int:
    if amount <= 0:
        raise ValueError("amount must be positive")
    return amount


@pytest.fixture(autouse=True)
def clean_queues() -> None:
    """The app is module-level; start each test with empty queues."""
    for queue in ("default",):
        fq.run(fq.admin.purge(queue))
        fq.run(fq.admin.purge_dead(queue))
    sent.clear()


def test_the_plain_function_needs_no_worker() -> None:
    # .fn is the undecorated function: a unit test of the logic, no queue involved.
    assert charge.fn(5) == 5
    with pytest.raises(ValueError):
        charge.fn(0)


def test_burst_worker_runs_what_is_ready() -> None:
    handle = charge(10)
    assert handle.status() is Status.PENDING
    fq.run_worker(burst=True)  # runs every ready task, returns when the queues are empty
    assert handle.result(timeout=5) == 10


def test_retries_run_without_waiting_for_backoff() -> None:
    handle = send_welcome_email(1, "ada@example.com")
    run_all(fq)  # ready tasks, retries and delayed tasks, all made due at once
    assert handle.result() == "sent to ada@example.com"
    assert handle.info().attempts == 2
    assert sent == ["ada@example.com"]


def test_retries_that_run_out_end_in_the_dead_letters() -> None:
    handle = wait_for_export(7)
    run_all(fq)  # three attempts, each asking for 600 s: no sleeping here
    with pytest.raises(TaskFailed) as failed:
        handle.result()
    assert failed.value.error_type == "fluxqueue.errors.Retry"
    [letter] = dead_letters(fq)
    assert (letter.task, letter.attempts) == ("wait_for_export", 3)


def test_a_failure_carries_the_remote_error() -> None:
    handle = charge(-1)
    fq.run_worker(burst=True)
    with pytest.raises(TaskFailed, match="amount must be positive") as failed:
        handle.result()
    assert failed.value.error_type == "ValueError"
    assert "raise ValueError" in (failed.value.traceback or "")
    assert [d.reason for d in dead_letters(fq)] == ["ValueError: amount must be positive"]


def test_delayed_tasks_run_when_made_due() -> None:
    handle = charge.options(delay=3600).enqueue(3)
    fq.run_worker(burst=True)
    assert handle.status() is Status.SCHEDULED  # a burst worker does not wait for it
    run_all(fq)
    assert handle.result() == 3
