"""The Python calls an idle worker makes from a fetch reply to a sync body's thread.

    python benchmarks/hotpath.py redis://127.0.0.1:PORT/0

On an idle worker every call on that path runs cold (after 10 ms idle, about 1 µs each on
the benchmark machine against tens of nanoseconds warm), so their number is what the
worker adds to the enqueue-to-start latency. This runs a worker in this process, enqueues
five tasks 0.2 s apart, and counts with ``sys.setprofile`` the calls on the event loop's
thread from the moment the fetch connection receives the reply (``data_received``) to the
hand-over of the body to a pool thread (``DaemonPool._push``). Prints one JSON line: the
Python and C calls of one such stretch, and the functions called most often.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import threading
import time
from types import FrameType
from typing import Any

import redis

from fluxqueue import FluxQueue
from fluxqueue.worker import Worker


def main() -> None:
    url = sys.argv[1]
    redis.Redis.from_url(url.split("?")[0]).flushdb()
    fq = FluxQueue(url)

    @fq.task(name="noop")
    def noop() -> None:
        pass

    armed = threading.Event()
    counting: list[str] | None = None
    stretches: list[list[str]] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal counting
        code = frame.f_code
        if event == "call":
            if code.co_name == "data_received" and armed.is_set():
                armed.clear()
                counting = []
            if counting is not None:
                counting.append(f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_name}")
                if code.co_name == "_push":
                    stretches.append(counting)
                    counting = None
        elif event == "c_call" and counting is not None:
            counting.append(f"C:{getattr(arg, '__qualname__', arg)}")

    def produce() -> None:
        time.sleep(1.0)
        for _ in range(5):
            armed.set()
            noop.enqueue()
            time.sleep(0.2)

    async def work() -> None:
        sys.setprofile(profile)
        worker = Worker(fq, concurrency=16)
        asyncio.get_running_loop().call_later(2.5, worker.stop)
        await worker.run()
        sys.setprofile(None)

    threading.Thread(target=produce, daemon=True).start()
    asyncio.run(work())
    last = stretches[-1]
    python = [c for c in last if not c.startswith("C:")]
    print(
        json.dumps(
            {
                "stretches": len(stretches),
                "python_calls": len(python),
                "c_calls": len(last) - len(python),
                "most_called": collections.Counter(last).most_common(12),
            }
        )
    )


if __name__ == "__main__":
    main()
