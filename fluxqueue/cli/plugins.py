"""``fluxqueue plugins``: what is installed, and whether it loaded."""

from __future__ import annotations

import json

import click

from fluxqueue.cli.about import DISTRIBUTION, installation
from fluxqueue.plugins.manager import get_plugin_manager


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def plugins_command(as_json: bool) -> None:
    """List plugins, their versions, status and what each provides."""
    infos = get_plugin_manager().infos()
    here = installation()
    if as_json:
        found = [info.to_dict() for info in infos]
        for entry in found:  # which fluxqueue: the public index has an unrelated namesake
            if entry.get("distribution") == DISTRIBUTION:
                entry["location"] = here.package_dir
                entry["installed_from"] = here.installed_from
        click.echo(json.dumps(found, indent=2))
        return
    rows = [("PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "PROVIDES")]
    for info in infos:
        provides = [f"broker:{b}" for b in info.brokers] + [
            f"serializer:{s}" for s in info.serializers
        ]
        rows.append(
            (
                info.name,
                info.distribution or "-",
                info.version or "-",
                info.status if info.error is None else f"{info.status}: {info.error}",
                ", ".join(provides) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
        )
    click.echo()
    click.echo(here.describe())
