"""The floor: no task queue at all, only the least any Python client of this Redis can do.

A bare socket and the standard library, nothing else. A "task" is its argument pushed
onto one list (``RPUSH``); the worker pops them (``LPOP`` up to 100 at a time, ``BLPOP``
when the list is empty) and runs the no-op body. No message envelope, no ids, no leases,
no acknowledgement: nothing that makes a queue reliable. So no library can beat this row
on this machine, and the distance to it is what a library's own work costs. The rows it
has: enqueue one at a time (one round trip per task), bulk enqueue (5,000 values per
``RPUSH``), no-op drain, enqueue-to-start latency (a single-threaded worker blocked in
``BLPOP``) and the idle RSS of a bare Python process. It has one kind of body (the
``def`` row) and no worker pool, so no async or sleep rows. As fluxqueue's own protocol
client did in round 7 (``busy_poll``, retired in round 8 with that client), it polls for
each reply for up to 50 µs before it sleeps when the call is part of a burst (the last
reply came less than 1 ms ago), so that it stays the floor.

Run by run.py like the peers' adapters (``floor`` in its ``--libs``); the worker is
``python -m floor_lib``.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any
from urllib.parse import urlsplit

from _recorder import begin, end

KEY = b"floor:q"
CHUNK = 5000
#: Seconds to poll for a reply before sleeping, and since the last reply within which a
#: call is part of a burst: what fluxqueue's own client did in round 7.
POLL, BURST = 50e-6, 0.001


class Bare:
    """One connection; one command at a time, replies parsed by hand (RESP2)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.used = 0.0  # when the last reply came (time.perf_counter)
        db = parts.path.strip("/")
        if db and db != "0":
            self.call(b"SELECT", db.encode())

    def call(self, *args: bytes) -> Any:
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            out.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
        self.sock.sendall(b"".join(out))
        self.poll()
        reply = self.read()
        self.used = time.perf_counter()
        return reply

    def send(self, data: bytes, replies: int) -> list[Any]:
        """Commands packed already, in one write; their replies."""
        self.sock.sendall(data)
        self.poll()
        found = [self.read() for _ in range(replies)]
        self.used = time.perf_counter()
        return found

    def poll(self) -> None:
        """In a burst, until a reply is there or ``POLL`` is up, ask without blocking."""
        now = time.perf_counter()
        if now - self.used > BURST:
            return
        deadline = now + POLL
        while True:
            try:
                self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                return
            except BlockingIOError:
                if time.perf_counter() > deadline:
                    return

    def read(self) -> Any:
        line = self.file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.file.read(size + 2)[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self.read() for _ in range(size)]
        raise RuntimeError(f"redis: {line!r}")


_client: Bare | None = None


def client() -> Bare:
    global _client
    if _client is None:
        _client = Bare(os.environ["BENCH_URL"])
    return _client


def enqueue_one(n: int) -> None:
    call = client().call
    for _ in range(n):
        call(b"RPUSH", KEY, b"0.0")


def enqueue_bulk(n: int) -> None:
    call = client().call
    for start in range(0, n, CHUNK):
        call(b"RPUSH", KEY, *([b"0.0"] * min(CHUNK, n - start)))


def fill(kind: str, n: int) -> None:
    if kind == "anoop":
        raise NotImplementedError("one kind of body: see the def row")
    if kind != "noop":
        raise NotImplementedError("no worker pool: no sleeping bodies")
    enqueue_bulk(n)


def ping() -> None:
    client().call(b"RPUSH", KEY, b"-1")


def send_latency(n: int, spacing: float) -> None:
    call = client().call
    for _ in range(n):
        call(b"RPUSH", KEY, repr(time.time()).encode())
        time.sleep(spacing)


def worker_argv(python: str, url: str, concurrency: int) -> list[str]:
    return [python, "-m", "floor_lib"]


def work() -> None:
    """Pop and run no-op bodies until killed."""
    call = client().call
    while True:
        values = call(b"LPOP", KEY, b"100")
        if values is None:
            popped = call(b"BLPOP", KEY, b"1")
            if popped is None:
                continue
            values = popped[1:]
        for value in values:
            ts = float(value)
            begin(ts)
            end(ts)


if __name__ == "__main__":
    work()
