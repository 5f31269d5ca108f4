"""Quickstart: define two tasks, enqueue them, run a worker in this process, read results.

Run it: python examples/quickstart_memory.py
"""

from fluxqueue import FluxQueue, Status

# "memory://" keeps everything in this process: no server, nothing to clean up.
fq = FluxQueue("memory://")


@fq.task(name="add")
def add(x: int, y: int) -> int:
    return x + y


@fq.task(queue="emails", max_retries=5)
async def send_welcome_email(user_id: int, email: str) -> str:
    return f"welcome mail for user {user_id} sent to {email}"


def main() -> None:
    handle = add(2, 3)  # calling a task enqueues it and returns a TaskHandle at once
    print("enqueued", handle.id, handle.status())

    # An async task is enqueued the same way from sync code with .enqueue(...);
    # from async code, `await send_welcome_email(1, "ada@example.com")` does it.
    mail = send_welcome_email.enqueue(1, "ada@example.com")

    # Run every ready task in this process, then return (a real deployment runs
    # `fluxqueue start` instead).
    fq.run_worker(burst=True)

    assert handle.status() is Status.SUCCESS
    print("add ->", handle.result(timeout=5))
    print("mail ->", mail.result(timeout=5))


if __name__ == "__main__":
    main()
