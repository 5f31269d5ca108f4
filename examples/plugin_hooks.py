"""A plugin in one file: an observer that counts outcomes, and a serializer registered
under a new name. Installed plugins are found through entry points; here the plugin is
registered at run time with `fq.plugins.register`, which takes the same object.

Run it: python examples/plugin_hooks.py
"""

import json
from collections import Counter
from typing import Any

from fluxqueue import FluxQueue, Message, MessageError, Serializer, hookimpl


class SortedJSONSerializer(Serializer):
    """JSON with sorted keys: the four members are the whole serializer contract."""

    name = "sorted-json"
    content_type = "application/x-sorted-json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, sort_keys=True).encode()

    def loads(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except ValueError as exc:
            raise MessageError(f"not JSON: {exc}") from None


class MetricsPlugin:
    """Observer hooks must be quick and must not raise (an exception is logged, ignored)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    @hookimpl
    def fluxqueue_register_serializers(self, register: Any) -> None:
        register("sorted-json", SortedJSONSerializer)  # or a lazy "module:attr" string

    @hookimpl
    def fluxqueue_task_enqueued(self, message: Message) -> None:
        self.counts["enqueued"] += 1

    @hookimpl
    def fluxqueue_task_succeeded(self, message: Message, duration: float) -> None:
        self.counts[f"succeeded:{message.task}"] += 1

    @hookimpl
    def fluxqueue_task_retried(self, message: Message, error: BaseException) -> None:
        self.counts[f"retried:{type(error).__name__}"] += 1

    @hookimpl
    def fluxqueue_task_failed(self, message: Message, error: BaseException) -> None:
        self.counts[f"failed:{message.task}"] += 1


metrics = MetricsPlugin()
FluxQueue("memory://").plugins.register(metrics, name="metrics")  # process-wide

fq = FluxQueue("memory://", serializer="sorted-json")


@fq.task(max_retries=1, backoff=0)
def divide(a: float, b: float) -> float:
    return a / b


def main() -> None:
    ok, bad = divide(1, 4), divide(1, 0)
    fq.run_worker(burst=True)
    print("result:", ok.result(), "| serializer:", fq.serializer)
    print("failed with:", bad.info().error_type)
    print("metrics:", dict(sorted(metrics.counts.items())))


if __name__ == "__main__":
    main()
