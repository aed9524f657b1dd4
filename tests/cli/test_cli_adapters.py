"""`moat-log adapters` and the adapters in `status`: what each maps, how it is doing."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Iterator
from pathlib import Path as FsPath

import pytest
from cli_support import Invoker

from moat_log.node import open_node
from moat_log.node.config import load_config
from moat_log.testing import short_temp_dir

CONFIG = """
node = "pi1"
[adapters.house]
type = "mqtt"
broker = "127.0.0.1:{port}"
reconnect_first = 0.01
reconnect_max = 0.02

[[adapters.house.map]]
path = "home.+room.light"
topic = "home/{{room}}/light/state"
command_topic = "home/{{room}}/light/set"
codec = "bool"
entity = {{ component = "light" }}

[[adapters.house.map]]
path = "home.+room.temperature"
topic = "home/{{room}}/temperature"
direction = "in"
codec = {{ type = "number", unit = "°C" }}
"""


@pytest.fixture
def short_data_dir() -> Iterator[FsPath]:
    with short_temp_dir() as path:
        yield path / "data"


def closed_port() -> int:
    """A port nothing listens on (bound and closed again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(directory: FsPath, port: int) -> FsPath:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "node.toml"
    path.write_text(CONFIG.format(port=port))
    return path


async def test_a_config_lists_every_mapping_without_a_node(tmp_path: FsPath) -> None:
    invoke = Invoker(tmp_path / "data")
    config = write_config(tmp_path, 1883)
    table = (await invoke("adapters", "--config", str(config))).stdout
    lines = table.splitlines()
    assert lines[0].split() == ["ADAPTER", "PATH", "BUS", "ADDRESS", "DIRECTION", "TYPE"]
    assert lines[1].split() == [
        "house",
        "home.+room.light",
        "home/{room}/light/state",
        "both",
        "bool",
    ]
    assert lines[2].split()[-2:] == ["in", "number"]
    listed = json.loads((await invoke("--json", "adapters", "--config", str(config))).stdout)
    assert listed["house"]["type"] == "mqtt"
    assert listed["house"]["mappings"][0]["command"] == "home/{room}/light/set"
    assert listed["house"]["mappings"][0]["entity"] == "light"


async def test_a_running_node_shows_its_adapter_and_why_its_bus_is_down(
    short_data_dir: FsPath,
) -> None:
    invoke = Invoker(short_data_dir)
    config = load_config(write_config(short_data_dir.parent, closed_port()))
    config = dataclasses.replace(config, data_dir=short_data_dir)
    async with open_node(config=config):
        listed = json.loads((await invoke("--json", "adapters")).stdout)
        house = listed["house"]
        assert house["state"] in ("starting", "connecting", "backing-off")
        assert house["broker"].startswith("127.0.0.1:")
        assert house["mappings"][1]["path"] == "home.+room.temperature"
        text = (await invoke("status")).stdout
        assert "ADAPTER" in text and "house" in text
        table = (await invoke("adapters")).stdout
        assert "home.+room.light" in table and "LAST ERROR" in table


def test_the_adapter_table_says_why_a_bus_is_down_and_who_publishes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from moat_log.cli._projections import print_adapters

    entry = {
        "type": "mqtt",
        "written": 3,
        "sent": 5,
        "bad": 1,
        "lag": 2,
        "last_bad": "home/x/set: 'maybe' is not ON or OFF",
    }
    print_adapters(
        {
            "down": entry | {"state": "backing-off", "last_error": "connection refused"},
            "spare": entry
            | {"state": "connected", "last_error": None, "role": "standby", "active": "pi1"},
        }
    )
    out = capsys.readouterr().out
    down, spare = out.splitlines()[2:4]
    assert down.split()[:7] == ["down", "mqtt", "backing-off", "3", "5", "1", "2"]
    assert down.endswith("connection refused")
    assert "connected (standby; pi1 publishes)" in spare
    assert "adapter down: last bad data: home/x/set: 'maybe' is not ON or OFF" in out


async def test_without_a_node_or_a_config_it_says_what_to_do(tmp_path: FsPath) -> None:
    invoke = Invoker(tmp_path / "data")
    await invoke("init", "--node", "pi1")
    result = await invoke("adapters", status=1)
    assert "no node is running" in result.stderr and "--config" in result.stderr


async def test_a_bad_adapter_table_is_refused_with_its_key(tmp_path: FsPath) -> None:
    invoke = Invoker(tmp_path / "data")
    config = tmp_path / "node.toml"
    config.write_text('[adapters.house]\ntype = "mqtt"\nbroker = "localhost:99999"\n')
    line = await invoke.error("adapters", "--config", str(config))
    assert "adapters.house.broker" in line and "99999" in line
