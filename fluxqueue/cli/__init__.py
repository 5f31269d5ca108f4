"""The ``fluxqueue`` command line. Each command group lives in its own module.

This package imports nothing heavy: ``fluxqueue start`` hands over to a worker process
(:mod:`fluxqueue.cli.serve`) that must not load click, so the click group is in
:mod:`fluxqueue.cli.commands` and imported only when the command line is parsed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fluxqueue.cli.commands import cli

__all__ = ["cli", "main"]


def main() -> None:
    """The ``fluxqueue`` console script and ``python -m fluxqueue.cli``."""
    from fluxqueue.cli import commands

    commands.main()


def __getattr__(name: str) -> Any:
    if name == "cli":
        from fluxqueue.cli.commands import cli

        return cli
    raise AttributeError(f"module 'fluxqueue.cli' has no attribute {name!r}")
