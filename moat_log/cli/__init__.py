"""The ``moat-log`` command line: the node's commands and the tools on its journal.

`cli` is the asyncclick group (use it with ``asyncclick.testing.CliRunner``),
`main` the console-script entry point that runs it under trio.
Importing it is cheap: each command's module is imported when the command
runs (`moat_log.cli._main.COMMAND_MODULES`).
"""

from __future__ import annotations

from ._main import cli, main

__all__ = ["cli", "main"]
