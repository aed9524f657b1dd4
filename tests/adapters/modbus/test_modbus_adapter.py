"""The Modbus adapter in a node, against a real pymodbus server (modbus_server.py).

Each test runs a node in-process with its config read from TOML text, as
``moat-log serve`` reads it, polls fast (50 ms), and changes the device
with the server's own commands or a bare pymodbus client.  Waiting is on
the adapter's status (its change callbacks), never on a clock.
"""

from __future__ import annotations

import tomllib
from pathlib import Path as FsPath
from typing import Any

import pytest
from modbus_process import ModbusServerProcess
from pymodbus.client import ModbusTcpClient

from moat_log.adapters.config import adapters_from_table
from moat_log.adapters.modbus.adapter import ModbusSettings
from moat_log.adapters.status import AdapterStatus
from moat_log.journal.change import Change
from moat_log.path import Path
from moat_log.records import FieldError
from moat_log.testing import in_process_config, running_node
from moat_log.testing import until_adapter_status as until_status

DEVICE = """
[[adapters.dev.map]]
path = "dev.temperature"
function = "input"
address = 0
type = "int16"
scale = 0.1
threshold = 0.5

[[adapters.dev.map]]
path = "dev.power"
function = "input"
address = 1
type = "float32"
word_order = "little"

[[adapters.dev.map]]
path = "dev.energy"
function = "input"
address = 3
type = "uint32"

[[adapters.dev.map]]
path = "dev.setpoint"
function = "holding"
address = 10
type = "int16"
scale = 0.5
direction = "both"

[[adapters.dev.map]]
path = "dev.pump"
function = "coil"
address = 2
direction = "both"
"""


def node_config(data_dir: FsPath, server: ModbusServerProcess, mapping: str = DEVICE) -> Any:
    text = f"""
node = "n1"
[adapters.dev]
type = "modbus"
host = "127.0.0.1:{server.port}"
interval = 0.05
timeout = 0.5
retries = 0
reconnect_first = 0.01
reconnect_max = 0.05
{mapping}
"""
    return in_process_config(text, data_dir)


async def polls(status: AdapterStatus, n: int = 2) -> None:
    """Until *n* more complete poll rounds have run (each shows its request count)."""
    for _ in range(n):
        await _one_poll(status, status.details.get("requests", 0))


async def _one_poll(status: AdapterStatus, seen: int) -> None:
    await until_status(status, lambda s: s.details.get("requests", 0) > seen)


def bare_client(server: ModbusServerProcess) -> ModbusTcpClient:
    client = ModbusTcpClient("127.0.0.1", port=server.port, timeout=2, retries=0)
    assert client.connect()  # type: ignore[no-untyped-call]
    return client


async def test_polled_values_become_events_with_their_source_in_combined_reads(
    tmp_path: FsPath, modbus_server: ModbusServerProcess
) -> None:
    modbus_server.command("set ir 0 215 0 16812 1 4464")  # 21.5; 21.5 (CDAB); 70000
    async with running_node(node_config(tmp_path, modbus_server)) as node:
        status = node.adapters["dev"]
        await until_status(status, lambda s: s.counts["written"] >= 5)
        mark = modbus_server.mark()
        await polls(status, 3)
        values = {
            p: node.kv.get(Path.parse(f"dev.{p}")) for p in ("temperature", "power", "energy")
        }
        assert {p: e.value for p, e in values.items() if e} == {
            "temperature": 21.5,
            "power": 21.5,
            "energy": 70000,
        }
        assert values["energy"] is not None
        assert values["energy"].source == "modbus:1/input/3"
        # one poll round: the three input values in one read, the register, the coil
        reads = [r for r in modbus_server.requests(after=mark) if r[0] in (1, 2, 3, 4)]
        assert reads.count((4, 0, 5)) >= 2
        assert set(reads) == {(4, 0, 5), (3, 10, 1), (1, 2, 1)}
        assert status.counts["written"] == 5  # nothing new: the values stayed
        assert status.state == "connected"


async def test_a_change_below_the_threshold_is_no_event_and_above_it_is(
    tmp_path: FsPath, modbus_server: ModbusServerProcess
) -> None:
    modbus_server.command("set ir 0 200")
    async with running_node(node_config(tmp_path, modbus_server)) as node:
        status = node.adapters["dev"]
        await until_status(status, lambda s: s.counts["written"] >= 5)
        temperature = Path.parse("dev.temperature")
        assert node.kv.value(temperature) == 20.0
        modbus_server.command("set ir 0 204")  # +0.4 °C: under the 0.5 threshold
        await polls(status)
        assert node.kv.value(temperature) == 20.0
        modbus_server.command("set ir 0 206")  # +0.6 since the last event
        await until_status(status, lambda s: s.counts["written"] == 6)
        assert node.kv.value(temperature) == 20.6
        modbus_server.command("set ir 1 0 16832")  # a float: every change counts
        await until_status(status, lambda s: s.counts["written"] == 7)
        assert node.kv.value(Path.parse("dev.power")) == 24.0  # 0x41C00000, low word first
        events = [e for e in (e for _, e in node.journal.scan()) if e.path == temperature]
        assert [e.value for e in events] == [20.0, 20.6]


async def test_a_set_of_an_owned_path_is_written_and_its_echo_is_no_second_event(
    tmp_path: FsPath, modbus_server: ModbusServerProcess
) -> None:
    async with running_node(node_config(tmp_path, modbus_server)) as node:
        status = node.adapters["dev"]
        await until_status(status, lambda s: s.counts["written"] >= 5)
        before = node.journal.last_position
        await node.write(Change(Path.parse("dev.setpoint"), 21.5))
        await node.write(Change(Path.parse("dev.pump"), True))
        await until_status(status, lambda s: s.counts["sent"] == 2)
        client = bare_client(modbus_server)
        try:
            assert client.read_holding_registers(10, count=1).registers == [43]  # 21.5 / 0.5
            assert client.read_coils(2, count=1).bits[0] is True
            await polls(status, 3)
            assert node.journal.last_position == before + 2  # the echo made no event
            client.write_register(10, 44)  # the device's own panel: 22.0
            await until_status(status, lambda s: s.counts["written"] == 6)
            event = node.kv.get(Path.parse("dev.setpoint"))
            assert event is not None and (event.value, event.source) == (
                22.0,
                "modbus:1/holding/10",
            )
            await polls(status, 2)
            assert status.counts["sent"] == 2  # our own event of it was not written back
        finally:
            client.close()  # type: ignore[no-untyped-call]


async def test_a_value_that_does_not_fit_is_refused_and_not_written(
    tmp_path: FsPath, modbus_server: ModbusServerProcess
) -> None:
    async with running_node(node_config(tmp_path, modbus_server)) as node:
        status = node.adapters["dev"]
        await until_status(status, lambda s: s.counts["written"] >= 5)
        await node.write(Change(Path.parse("dev.setpoint"), 20000))  # raw 40000 > int16
        await until_status(status, lambda s: s.counts["bad"] == 1)
        assert status.last_bad is not None
        assert "does not fit int16" in status.last_bad and "not written" in status.last_bad
        assert modbus_server.command("get hr 10 1") == "values 0"
        assert status.counts["sent"] == 0


async def test_an_illegal_address_is_bad_data_and_the_other_values_still_come(
    tmp_path: FsPath, modbus_server: ModbusServerProcess
) -> None:
    mapping = (
        DEVICE
        + """
[[adapters.dev.map]]
path = "dev.missing"
function = "input"
address = 199
type = "uint32"
"""
    )  # 199..200: the server has 200 registers, 0..199
    modbus_server.command("set ir 3 0 7")
    mapping = mapping.replace("address = 199", "address = 199") + ""
    async with running_node(node_config(tmp_path, modbus_server, mapping)) as node:
        status = node.adapters["dev"]
        await until_status(status, lambda s: s.counts["bad"] >= 2)
        assert status.last_bad is not None
        assert status.last_bad.startswith("1/input/199: read input 199+2: exception 2")
        assert node.kv.get(Path.parse("dev.missing")) is None
        assert node.kv.value(Path.parse("dev.energy")) == 7
        assert status.state == "connected"


async def test_a_combined_read_refused_is_split_and_only_the_missing_value_is_bad(
    tmp_path: FsPath, modbus_server: ModbusServerProcess
) -> None:
    mapping = """
[[adapters.dev.map]]
path = "dev.last"
function = "holding"
address = 198
type = "uint16"

[[adapters.dev.map]]
path = "dev.beyond"
function = "holding"
address = 200
type = "uint16"
"""
    modbus_server.command("set hr 198 5")
    async with running_node(node_config(tmp_path, modbus_server, mapping)) as node:
        status = node.adapters["dev"]
        await until_status(status, lambda s: s.counts["bad"] >= 3)
        assert node.kv.value(Path.parse("dev.last")) == 5
        assert node.kv.get(Path.parse("dev.beyond")) is None
        mark = modbus_server.mark()
        await polls(status, 2)
        assert set(modbus_server.requests(after=mark)) == {(3, 198, 1), (3, 200, 1)}


async def test_a_device_killed_and_restarted_is_shown_and_recovers(
    tmp_path: FsPath, modbus_server: ModbusServerProcess
) -> None:
    modbus_server.command("set ir 3 0 1")
    async with running_node(node_config(tmp_path, modbus_server)) as node:
        status = node.adapters["dev"]
        await until_status(status, lambda s: s.counts["written"] >= 5)
        before = node.journal.last_position
        modbus_server.kill()
        await until_status(status, lambda s: s.state == "backing-off")
        assert status.last_error is not None and "modbus 127.0.0.1:" in status.last_error
        assert node.journal.last_position == before  # nothing stored for the gone device
        await node.write(Change(Path.parse("dev.setpoint"), 10.0))  # waits for the device
        modbus_server.restart()  # a fresh device: every register 0 again
        modbus_server.command("set ir 3 0 2")
        # the set that waited is written when it connects (the journal wins on connect)
        await until_status(status, lambda s: s.state == "connected" and s.counts["sent"] == 1)
        await until_status(status, lambda s: node.kv.value(Path.parse("dev.energy")) == 2)
        assert modbus_server.command("get hr 10 1") == "values 20"
        assert status.connections >= 2
        await polls(status, 2)
        assert node.kv.value(Path.parse("dev.setpoint")) == 10.0  # not the 0 of the fresh device
        values = [
            e.value
            for e in (e for _, e in node.journal.scan())
            if e.path == Path.parse("dev.energy")
        ]
        assert values == [1, 2]


def settings_of(table: dict[str, Any]) -> ModbusSettings:
    (config,) = adapters_from_table({"dev": {"type": "modbus", **table}})
    assert isinstance(config.settings, ModbusSettings)
    return config.settings


def test_describe_has_one_row_per_value() -> None:
    settings = settings_of(
        {"host": "10.0.0.5", "unit_id": 3, **tomllib.loads(DEVICE)["adapters"]["dev"]}
    )
    rows = settings.describe()
    assert [r["path"] for r in rows] == [
        "dev.temperature",
        "dev.power",
        "dev.energy",
        "dev.setpoint",
        "dev.pump",
    ]
    assert rows[0] == {
        "path": "dev.temperature",
        "address": "3/input/0",
        "direction": "in",
        "type": "int16",
        "device": "10.0.0.5:502",
        "interval": 10.0,
        "scale": 0.1,
        "offset": 0,
        "threshold": 0.5,
    }
    assert rows[1]["type"] == "float32 CDAB"
    assert (rows[3]["direction"], rows[4]["type"]) == ("both", "bool")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "adapters.dev: give host (Modbus TCP) or serial (Modbus RTU), one of them"),
        ({"host": "h", "serial": "/dev/x"}, "adapters.dev: give host"),
        ({"host": "h:99999"}, "adapters.dev.host: "),
        ({"host": "h", "timeout": 0}, "adapters.dev.timeout: expected"),
        ({"host": "h", "colour": 1}, "adapters.dev.colour: unknown key"),
        (
            {"host": "h", "map": [{"path": "a", "function": "holding"}]},
            "adapters.dev.map[0].address: is missing",
        ),
        (
            {"host": "h", "map": [{"path": "a", "function": "holdings", "address": 0}]},
            "adapters.dev.map[0].function",
        ),
        (
            {
                "host": "h",
                "map": [{"path": "a", "function": "holding", "address": 0, "type": "int8"}],
            },
            "adapters.dev.map[0].type: 'int8' is no register type",
        ),
        (
            {
                "host": "h",
                "map": [{"path": "a", "function": "coil", "address": 0, "type": "int16"}],
            },
            "adapters.dev.map[0].type: a coil is a bit: type is bool",
        ),
        (
            {
                "host": "h",
                "map": [{"path": "a", "function": "input", "address": 0, "direction": "both"}],
            },
            "adapters.dev.map[0].direction: a input cannot be written",
        ),
        (
            {
                "host": "h",
                "map": [{"path": "a", "function": "holding", "address": 65535, "type": "int32"}],
            },
            "adapters.dev.map[0].address: a int32 at 65535 ends past 65535",
        ),
        (
            {"host": "h", "map": [{"path": "a", "function": "holding", "address": 0, "scale": 0}]},
            "adapters.dev.map[0]: scale must not be 0",
        ),
        (
            {
                "host": "h",
                "map": [
                    {"path": "a", "function": "holding", "address": 0},
                    {"path": "a", "function": "holding", "address": 1},
                ],
            },
            "adapters.dev.map[1].path: a is mapped twice",
        ),
    ],
)
def test_settings_are_read_strictly(table: dict[str, Any], message: str) -> None:
    with pytest.raises(FieldError) as caught:
        settings_of(table)
    assert str(caught.value).startswith(message), str(caught.value)
