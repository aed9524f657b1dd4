"""``moat-log adapters``: what each bus adapter maps, and how it is doing."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Any

import asyncclick as click

from ._main import Settings, cli, config_file_option
from ._node_access import running_node_status
from ._output import print_json, print_table
from ._projections import print_adapters


@cli.command()
@config_file_option("Read the adapters from this node config instead of asking the running node.")
@click.pass_obj
async def adapters(settings: Settings, config_file: FsPath | None) -> None:
    """List the bus adapters: their state and every path each one maps to its bus.

    Asks the node serving the data directory (or --connect); with --config,
    reads the config file instead (no node needed: check a config before
    you serve it).

    \b
    Example:
      moat-log adapters
      moat-log adapters --config /etc/moat-log/node.toml
      moat-log --json adapters
    """
    if config_file is not None:
        result = _from_config(config_file)
    else:
        status = await running_node_status(settings, "--config")
        result = status.get("adapters", {})
    if settings.as_json:
        print_json(result)
        return
    if not result:
        click.echo("no adapters configured")
        return
    if any("state" in entry for entry in result.values()):
        print_adapters(result)
        click.echo()
    rows = [
        (
            name,
            str(row.get("path", "")),
            str(row.get("address", "")),
            str(row.get("direction", "")),
            str(row.get("type", "")),
        )
        for name, entry in result.items()
        for row in entry.get("mappings", [])
    ]
    print_table(("ADAPTER", "PATH", "BUS ADDRESS", "DIRECTION", "TYPE"), rows)


def _from_config(config_file: FsPath) -> dict[str, dict[str, Any]]:
    from moat_log.node.config import load_config

    config = load_config(config_file)
    return {
        adapter.name: {
            "type": adapter.type,
            "enabled": adapter.enabled,
            "mappings": adapter.settings.describe(),
        }
        for adapter in config.adapters
    }
