"""One step of a benchmark, run inside the library's own interpreter (its virtualenv).

    python bench.py LIB_MODULE OP [ARGS...]

``LIB_MODULE`` is an adapter in ``libs/`` (``fluxqueue_lib``, ``celery_lib``, ...); ``OP``
is one of its functions (``enqueue_one``, ``enqueue_bulk``, ``fill``, ``send_latency``,
``wait_ready``, ...). Prints one JSON line: how long the step took, or why it could not run.
The run.py orchestrator calls this; it is not meant to be run by hand (but can be).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "libs"))


def _convert(value: str) -> object:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


async def _wait_ready(module: object, timeout: float) -> None:
    """Ping until the worker has run one task: it is then up, connected and warm."""
    ready = os.environ["BENCH_OUT"] + ".ready"
    deadline = time.monotonic() + timeout
    while not os.path.exists(ready):
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker not ready after {timeout:g}s")
        result = module.ping()  # type: ignore[attr-defined]
        if inspect.isawaitable(result):
            await result
        for _ in range(50):
            if os.path.exists(ready):
                break
            await asyncio.sleep(0.01)


def main() -> None:
    name, op, *raw = sys.argv[1:]
    args = [_convert(a) for a in raw]
    module = importlib.import_module(name)
    if op == "wait_ready":
        asyncio.run(_wait_ready(module, float(args[0]) if args else 60.0))
        print(json.dumps({"ok": True}))
        return
    fn = getattr(module, op, None)
    if fn is None:
        print(json.dumps({"unsupported": f"{name} has no {op}"}))
        return
    started = time.perf_counter()
    try:
        result = asyncio.run(fn(*args)) if inspect.iscoroutinefunction(fn) else fn(*args)
    except NotImplementedError as exc:
        print(json.dumps({"unsupported": str(exc)}))
        return
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "result": result}))
    sys.stdout.flush()
    os._exit(0)  # some clients hang at interpreter exit; nothing is left to flush


if __name__ == "__main__":
    main()
