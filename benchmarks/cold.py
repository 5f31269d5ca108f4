"""What an enqueue costs Redis itself, warm (back to back) and cold (after 10 ms idle).

    python benchmarks/cold.py redis://127.0.0.1:PORT/0 [rounds]

On an idle worker's latency path every Redis call runs cold: the server has slept since
the last task, and its caches hold other work. This measures, with ``SLOWLOG`` at 0 µs
(the server must be private to the run; the setting is put back at the end), the time
Redis spends in one enqueue of fluxqueue's script (what every enqueue sends since round
8), in the same work as one ``MULTI`` of plain commands (what ``task.enqueue()`` sent in
rounds 5 to 7; the sum of its commands, as Redis logs each of them but not ``EXEC``), and
in the single ``RPUSH`` that Huey and RQ send. Prints one JSON line per round and kind:
median and p90 in µs, 200 calls 10 ms apart ("cold") and 200 back to back ("warm").
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable

import redis

from fluxqueue.backends.redis.scripts import script


def _measure(
    client: redis.Redis, call: Callable[[int], object], first: bytes, gap: float
) -> list[int]:
    """Server time of each call: the sum of its logged commands, ``first`` opening each."""
    client.slowlog_reset()
    for i in range(200):
        call(i)
        if gap:
            time.sleep(gap)
    totals: list[int] = []
    # oldest first; EXEC is never logged, but each command a MULTI queued is, on its own
    for entry in reversed(client.slowlog_get(100_000)):
        name = entry["command"].split(b" ")[0]
        if name == first:
            totals.append(entry["duration"])
        elif totals and name != b"SLOWLOG":
            totals[-1] += entry["duration"]
    return sorted(totals)


def main() -> None:
    url = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    client = redis.Redis.from_url(url.split("?")[0])
    client.flushdb()
    before = str(client.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"])
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("slowlog-max-len", 100_000)
    sha = client.script_load(script("enqueue").source)

    def scripted(i: int) -> None:
        args = ("{fq}:", 0, 1, "default", 2, "", 1, f"s{i}", b"x" * 120)
        client.evalsha(sha, 1, "{fq}:seq", *args)

    def multi(i: int) -> None:
        pipe = client.pipeline(transaction=True)
        pipe.hset(f"{{fq}}:m:p{i}", mapping={"d": b"x" * 120, "q": "default", "p": 2, "t": 0})
        pipe.sadd("{fq}:queues", "default")
        pipe.rpush("{fq}:q:default:incoming", f"2 p{i}")
        pipe.lpush("{fq}:q:default:wake", "1")
        pipe.ltrim("{fq}:q:default:wake", 0, 63)
        pipe.execute()

    def rpush(i: int) -> None:
        client.rpush("peer-like", b"x" * 200)

    try:
        for r in range(rounds):
            kinds = (
                ("script", scripted, b"EVALSHA"),
                ("multi", multi, b"MULTI"),
                ("rpush", rpush, b"RPUSH"),
            )
            for kind, call, outer in kinds:
                row: dict[str, object] = {"round": r + 1, "kind": kind}
                for label, gap in (("cold", 0.01), ("warm", 0.0)):
                    us = _measure(client, call, outer, gap)
                    row[label] = {"p50": statistics.median(us), "p90": us[int(len(us) * 0.9)]}
                print(json.dumps(row))
    finally:
        client.config_set("slowlog-log-slower-than", before)
        client.flushdb()


if __name__ == "__main__":
    main()
