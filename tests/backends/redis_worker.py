"""A real worker process for the Redis tests: ``python redis_worker.py URL [concurrency]``.

Defines the task ``nap`` (sleep, then return its index) and serves until SIGTERM. Tests
enqueue ``nap`` by name, so they do not import this module.
"""

from __future__ import annotations

import logging
import sys
import time

from fluxqueue import FluxQueue

fq = FluxQueue(sys.argv[1])


@fq.task(name="nap", max_retries=0)
def nap(seconds: float, index: int) -> int:
    time.sleep(seconds)
    return index


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    fq.run_worker(concurrency=int(sys.argv[2]) if len(sys.argv) > 2 else 8)
