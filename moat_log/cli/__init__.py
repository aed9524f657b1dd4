"""The ``moat-log`` command line: the node's commands and the tools on its journal.

`cli` is the asyncclick group (use it with ``asyncclick.testing.CliRunner``),
`main` the console-script entry point that runs it under trio.
"""

from __future__ import annotations

from . import (  # noqa: F401  (they register commands)
    _demo_cmd,
    _file_cmds,
    _journal_cmds,
    _node_cmds,
    _query_cmds,
    _replay_cmds,
    _ship_cmds,
    _view_cmds,
    _watch_cmd,
)
from ._main import cli, main

__all__ = ["cli", "main"]
