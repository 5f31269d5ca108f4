"""Streaming: a generator task's items reach the caller while the task still runs.

The worker runs in a background thread here so that the main thread can read the stream
live; in production the worker is another process (`fluxqueue start`).

Run it: python examples/streaming.py
"""

import threading
import time
from collections.abc import Iterator

from fluxqueue import FluxQueue

fq = FluxQueue("memory://")


@fq.task()
def count_words(lines: list[str]) -> Iterator[dict[str, int]]:
    """Each yielded item is stored as soon as it is produced."""
    for number, line in enumerate(lines, start=1):
        time.sleep(0.05)  # stands for real work
        yield {"line": number, "words": len(line.split())}


def main() -> None:
    handle = count_words(["the quick brown fox", "jumps over", "the lazy dog"])

    worker = threading.Thread(target=fq.run_worker, kwargs={"burst": True})
    worker.start()
    for item in handle.stream(timeout=10):  # ends when the task ends
        print("item:", item)
    worker.join()

    info = handle.info()
    print("status:", info.status, "| outputs kept:", len(info.outputs))


if __name__ == "__main__":
    main()
