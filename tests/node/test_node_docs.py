"""The script example of docs/node.md runs as written, against a node on the default place."""

from __future__ import annotations

import re
import shutil
from pathlib import Path as FsPath
from typing import Any

import pytest
import trio
from node_support import running_node

from moat_log.node import ListenAddress, NodeConfig, load_config

DOC = FsPath(__file__).resolve().parents[2] / "docs" / "node.md"


def script_example() -> str:
    found = re.search(r"## The script API\n\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert found, "docs/node.md lost its script example"
    code = found.group(1)
    assert code.rstrip().endswith("trio.run(main)")
    return code.rstrip().removesuffix("trio.run(main)")


async def test_the_script_example_runs(tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch) -> None:
    base = FsPath("/tmp") / f"ml-doc-{tmp_path.name[-20:]}"
    monkeypatch.setenv("XDG_DATA_HOME", str(base))  # the default data directory
    printed: list[str] = []
    scope = trio.CancelScope()

    def fake_print(*args: Any) -> None:
        printed.append(" ".join(map(str, args)))
        if "changes follow" in printed[-1]:
            scope.cancel()  # the watch would run forever

    namespace: dict[str, Any] = {"print": fake_print, "__name__": "example"}
    exec(compile(script_example(), str(DOC), "exec"), namespace)
    config = NodeConfig(data_dir=load_config(None).data_dir, listen=(ListenAddress("unix"),))
    try:
        async with running_node(config):
            with scope:
                await namespace["main"]()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert printed[1] == "21.5"
    assert printed[3] == "['kitchen']"
    assert printed[-1] == "-- the current state is complete; changes follow"
