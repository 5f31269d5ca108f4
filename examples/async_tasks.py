"""Async callers and async tasks: `await task(...)`, `aresult`, `astream`, `arun_worker`,
and worker resources with `@fq.lifespan` / `fq.context`.

Run it: python examples/async_tasks.py
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fluxqueue import FluxQueue, current_task

fq = FluxQueue("memory://")


@dataclass
class Resources:
    """Stands for a database pool or an HTTP client: created once per worker process."""

    calls: list[str] = field(default_factory=list)


@fq.lifespan  # an async (or sync) generator that yields once, or a context manager
async def resources() -> AsyncIterator[Resources]:
    print("worker starting: opening resources")
    yield Resources()
    print("worker stopping: closing resources")


@fq.task()
async def fetch_profile(user_id: int) -> dict[str, object]:
    res: Resources = fq.context  # what the lifespan yielded
    res.calls.append(current_task().name)
    await asyncio.sleep(0.01)  # stands for an HTTP call
    return {"id": user_id, "name": f"user-{user_id}"}


@fq.task()
async def progress(steps: int) -> AsyncIterator[int]:
    for step in range(1, steps + 1):
        await asyncio.sleep(0.02)
        yield step * 100 // steps


async def main() -> None:
    profile = await fetch_profile(7)  # awaiting the call of an async task enqueues it
    bar = await progress.aenqueue(4)  # the explicit form, same thing

    worker = asyncio.create_task(fq.arun_worker(burst=True))
    async for percent in bar.astream(timeout=10):
        print(f"progress: {percent}%")
    print("profile:", await profile.aresult(timeout=10))
    await worker


if __name__ == "__main__":
    asyncio.run(main())
