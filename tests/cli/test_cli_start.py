"""Start-up: command modules load when their command runs, and help still lists them all.

A command pays for what it uses: ``moat-log get`` through a node must not
import the demo, the node, sync or LMDB.  The modules each process imported
are read from ``sys.modules`` in a fresh interpreter (tools/bench/cli_start.py
measures the time).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path as FsPath

import pytest
from cli_support import TIMEOUT, Invoker, script_env
from node_process import serving, write_config

from moat_log.cli import _main, cli

#: Modules ``moat-log get`` through a node has no use for.
HEAVY = (
    "moat_log.cli._demo_cmd",
    "moat_log.cli._ship_cmds",
    "moat_log.cli._replay_cmds",
    "moat_log.cli._query_cmds",
    "moat_log.node",
    "moat_log.sync",
    "moat_log.journal.store",
    "moat_log.projections",
    "lmdb",
    "anyio",
)

_REPORT_MODULES = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))
sys.argv = ["moat-log", *sys.argv[1:]]
from moat_log.cli import main
main()
"""


def modules_imported(*args: str) -> set[str]:
    """The modules a fresh ``moat-log ARGS`` process imported, in the end."""
    done = subprocess.run(
        [sys.executable, "-c", _REPORT_MODULES, *args],
        capture_output=True, text=True, env=script_env(), timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    modules: list[str] = json.loads(done.stderr.splitlines()[-1])
    return set(modules)


def heavy_ones(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_importing_the_cli_imports_no_command_module() -> None:
    code = "import json, sys; import moat_log.cli; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=TIMEOUT
    )
    modules = set(json.loads(done.stdout))
    commands = {f"moat_log.cli.{module}" for module in _main.COMMAND_MODULES.values()}
    assert sorted(modules & commands) == []
    assert heavy_ones(modules) == []
    assert "trio" not in modules


@pytest.mark.slow
def test_get_through_a_node_imports_nothing_heavy(tmp_path: FsPath) -> None:
    config = write_config(tmp_path / "node.toml", tmp_path / "data", listen='["unix"]')
    with serving(config) as node:
        data_dir = ["--data-dir", str(node.data_dir)]
        modules_imported(*data_dir, "set", "a.b", "1")
        modules = modules_imported(*data_dir, "get", "a.b")
    assert "moat_log.client" in modules, "it did ask the node"
    assert heavy_ones(modules) == []


def test_the_command_map_names_every_command_where_it_is_defined() -> None:
    for module in sorted(set(_main.COMMAND_MODULES.values())):
        importlib.import_module(f"moat_log.cli.{module}")
    defined = {name: command.callback.__module__ for name, command in cli.commands.items()}
    mapped = {name: f"moat_log.cli.{module}" for name, module in _main.COMMAND_MODULES.items()}
    assert defined == mapped


async def test_help_lists_every_command(invoke: Invoker) -> None:
    listed = (await invoke("--help")).stdout.split("\nCommands:\n", 1)[1]
    names = [line.split()[0] for line in listed.splitlines() if line.startswith("  ")]
    assert names == sorted(_main.COMMAND_MODULES)
    for name in names:
        assert "Usage: " in (await invoke(name, "--help")).stdout


def test_the_console_script_lists_every_command_in_a_fresh_process() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _REPORT_MODULES, "--help"],
        capture_output=True, text=True, env=script_env(), timeout=TIMEOUT, check=True,
    )  # fmt: skip
    listed = done.stdout.split("\nCommands:\n", 1)[1]
    assert [line.split()[0] for line in listed.splitlines() if line.startswith("  ")] == sorted(
        _main.COMMAND_MODULES
    )


def test_a_chart_imports_matplotlib_only_for_a_png(tmp_path: FsPath) -> None:
    data_dir = ["--data-dir", str(tmp_path / "data")]
    modules_imported(*data_dir, "init", "--node", "pi1")
    modules_imported(*data_dir, "set", "sensor.t", "20.5")
    listed = modules_imported(*data_dir, "history", "sensor.t")
    drawn = modules_imported(*data_dir, "history", "sensor.t", "--plot", str(tmp_path / "t.svg"))
    assert "moat_log.charts" not in listed and "matplotlib" not in listed
    assert "moat_log.charts" in drawn and "matplotlib" not in drawn
    png = modules_imported(*data_dir, "history", "sensor.t", "--plot", str(tmp_path / "t.png"))
    assert "matplotlib" in png
