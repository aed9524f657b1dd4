"""The ``moat-log`` command line: offline tools working directly on a journal.

`cli` is the asyncclick group (use it with ``asyncclick.testing.CliRunner``),
`main` the console-script entry point that runs it under trio.
"""

from __future__ import annotations

from . import _file_cmds, _journal_cmds, _node_cmds, _query_cmds, _replay_cmds, _view_cmds  # noqa: F401  (they register commands)
from ._main import cli, default_data_dir, main

__all__ = ["cli", "default_data_dir", "main"]
