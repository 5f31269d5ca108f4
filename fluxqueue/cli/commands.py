"""The click group of the ``fluxqueue`` command line; each command lives in its own module."""

from __future__ import annotations

import logging
import sys

import click

from fluxqueue import __version__
from fluxqueue.cli import serve
from fluxqueue.cli.plugins import plugins_command
from fluxqueue.cli.queue_commands import dead_group, info_command, purge_command
from fluxqueue.cli.start import start_command
from fluxqueue.cli.task_commands import (
    abort_command,
    enqueue_command,
    result_command,
    status_command,
)


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the version, and which fluxqueue was imported (the name is taken on
    the public package index by an unrelated project, see docs/quickstart.md)."""
    if not value or ctx.resilient_parsing:
        return
    from fluxqueue.cli.about import installation

    click.echo(f"fluxqueue, version {__version__}")
    click.echo(installation().describe())
    ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Show the version and where fluxqueue is installed, then exit.",
)
def cli() -> None:
    """fluxqueue: a Python task queue with pluggable backends."""


cli.add_command(plugins_command)
for _command in (
    start_command,
    enqueue_command,
    status_command,
    result_command,
    abort_command,
    info_command,
    dead_group,
    purge_command,
):
    cli.add_command(_command)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The real command line of a process of its own: `fluxqueue start` may hand this
    # process over to a lean worker (see fluxqueue.cli.serve); in-process callers
    # (click's CliRunner, an application embedding `cli`) never get here.
    serve.STANDALONE = True
    sys.exit(cli.main(standalone_mode=True))
