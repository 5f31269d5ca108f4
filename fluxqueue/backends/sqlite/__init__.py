"""The SQLite broker: the embedded default. One file, no server, shared by processes.

``FluxQueue("sqlite:///fluxqueue.db")`` keeps messages, leases, task states, outputs and
dead letters in one SQLite database in WAL mode, so any number of producer and worker
processes on one machine can share it and everything survives a restart. See
``docs/backends/sqlite.md`` for URLs, options, guarantees and measured figures.
"""

from fluxqueue.backends.sqlite.broker import SQLiteBroker

__all__ = ["SQLiteBroker"]
