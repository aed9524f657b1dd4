"""A node with a 1-Wire adapter in the test's trio run, and ways to wait for it."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Any

from moat_log.testing import in_process_config


def node_config(data_dir: FsPath, port: int, body: str) -> Any:
    text = f"""
node = "n1"
[adapters.ow]
type = "onewire"
server = "127.0.0.1:{port}"
reconnect_first = 0.01
reconnect_max = 0.05
{body}
"""
    return in_process_config(text, data_dir)
