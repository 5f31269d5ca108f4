"""Serializers: JSON refuses what it cannot encode and names the argument; pickle encodes
anything, and workers decode it only when told to accept it.

Run it: python examples/serializers.py
"""

from dataclasses import dataclass
from datetime import datetime, timezone

from fluxqueue import FluxQueue, SerializationError
from fluxqueue.testing import dead_letters

# JSON (the default): plain types only, refused at enqueue time, in the caller.
fq = FluxQueue("memory://")


@fq.task()
def schedule_report(user_id: int, when: datetime) -> None: ...


try:
    schedule_report(1, datetime(2025, 1, 31, tzinfo=timezone.utc))
except SerializationError as exc:
    print("SerializationError:", exc)

# Pass something JSON can carry instead, and parse it in the task.
schedule_report(1, datetime(2025, 1, 31, tzinfo=timezone.utc).isoformat())


# Pickle: any picklable value (cloudpickle, so lambdas and local classes too).
@dataclass
class Point:
    x: float
    y: float


trusted = FluxQueue("memory://", serializer="pickle")  # accepts its own serializer
print("trusted.accept:", trusted.accept)


@trusted.task()
def norm(p: Point) -> float:
    return (p.x**2 + p.y**2) ** 0.5


handle = norm(Point(3, 4))
trusted.run_worker(burst=True)
print("norm ->", handle.result())

# A worker of a JSON app, sharing a broker with a pickle producer, refuses the message
# instead of unpickling it: it goes to the dead letters with the reason.
producer = FluxQueue("memory://", serializer="pickle")
consumer = FluxQueue(producer.broker)  # same broker object, default JSON serializer


@consumer.task()
def echo(value: object) -> object:
    return value


producer.enqueue("echo", Point(1, 2))
consumer.run_worker(burst=True)
print("consumer.accept:", consumer.accept)
print("dead letter:", dead_letters(consumer)[0].reason)
