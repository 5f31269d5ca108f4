"""Retries: automatic retries with backoff, `retry_on`, and `raise Retry(delay=...)`.

`run_all` runs retries and delayed tasks without waiting for their backoff, so this script
finishes at once although the tasks ask for delays of several seconds.

Run it: python examples/retries.py
"""

from fluxqueue import FluxQueue, Retry, TaskFailed, current_task
from fluxqueue.testing import dead_letters, run_all

fq = FluxQueue("memory://")


class RateLimited(Exception):
    pass


@fq.task(max_retries=3, backoff=2.0, backoff_factor=2.0, backoff_max=60.0)
def flaky() -> str:
    """Fails on its first two attempts. max_retries=3 allows up to 4 attempts."""
    task = current_task()
    if task.attempt < 2:
        raise ConnectionError(f"attempt {task.attempt + 1}: connection reset")
    return f"succeeded on attempt {task.attempt + 1}"


@fq.task(max_retries=5, retry_on=RateLimited)
def strict(value: int) -> int:
    """Only RateLimited is retried; anything else fails at once."""
    if value < 0:
        raise ValueError("value must be >= 0")
    return value


@fq.task(max_retries=2)
def polls_until_ready(job: str) -> str:
    """Ask for another attempt explicitly, after a delay of your choosing."""
    if current_task().attempt == 0:
        raise Retry(delay=30, reason=f"{job} not ready yet")
    return f"{job} ready"


def main() -> None:
    h1 = flaky()
    h2 = strict(-1)
    h3 = polls_until_ready("report-7")
    run_all(fq)  # runs the tasks, their retries and their delays, without sleeping

    print("flaky:", h1.result(), "| attempts:", h1.info().attempts)
    print("polls_until_ready:", h3.result())
    try:
        h2.result()
    except TaskFailed as exc:
        print("strict failed:", exc.error_type, "-", exc.error_message)
        print("strict attempts:", h2.info().attempts)
    print("dead letters:", [(d.task, d.reason) for d in dead_letters(fq)])


if __name__ == "__main__":
    main()
