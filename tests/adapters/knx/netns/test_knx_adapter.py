"""The KNX adapter in a node, against a real knxd (dummy bus), in a private network namespace.

How these run: knxd binds UDP 0.0.0.0:3671 and routes by multicast, so
tests/adapters/knx/test_knx_netns.py re-executes this folder under
``unshare -rn`` (loopback up, a multicast route on it); the rest of the
suite runs in the host's namespace as usual.  In here, each test starts
its own knxd (ready when it says READY=1 on NOTIFY_SOCKET), a node with a
KNX adapter tunnelling to it, and a second KNX client (`BusDevice`: bare
xknx) that plays the wall switch, the sensor and the actuator; knxtool
injects telegrams through knxd's Unix socket.  To run them by hand:
``unshare -rn sh -c 'ip link set lo up; ip route add 224.0.0.0/4 dev lo;
MOAT_LOG_KNX_NETNS=1 .venv/bin/python -m pytest tests/adapters/knx/netns'``.
"""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Any

import trio
from knx_device import bus_device
from knxd import Knxd

from moat_log.adapters.status import AdapterStatus
from moat_log.journal.change import Change
from moat_log.node._node import Node
from moat_log.path import Path
from moat_log.testing import in_process_config, running_node
from moat_log.testing import until_adapter_status as until_status

MAP = """
[[adapters.knx.map]]
address = "1/1/1"
state_address = "1/1/2"
path = "home.kitchen.light"
dpt = "1.001"
direction = "both"
read_on_start = false

[[adapters.knx.map]]
address = "1/2/1"
path = "home.hall.temperature"
dpt = "9.001"

[[adapters.knx.map]]
address = "1/3/1"
path = "home.hall.blind"
dpt = "5.001"
direction = "out"

[[adapters.knx.map]]
address = "1/4/1"
path = "home.display"
dpt = "16.000"
direction = "both"
read_on_start = false

[[adapters.knx.map]]
address = "1/5/1"
path = "home.meter.count"
dpt = "12.001"
read_on_start = false
changes_only = false
"""


def node_config(data_dir: FsPath, *, connection: str = "", mapping: str = MAP) -> Any:
    gateway = connection or 'gateway = "127.0.0.1"\nlocal_ip = "127.0.0.1"'
    text = f"""
node = "n1"
[adapters.knx]
type = "knx"
{gateway}
rate_limit = 0
reconnect_first = 0.05
reconnect_max = 0.1
{mapping}
"""
    return in_process_config(text, data_dir)


async def connected(node: Node) -> AdapterStatus:
    status = node.adapters["knx"]
    await until_status(status, lambda s: s.state == "connected")
    return status


def history(node: Node, path: str) -> list[Any]:
    return [event.value for event in node.journal.history(Path.parse(path))]


async def test_telegrams_on_the_bus_become_events_with_the_group_address_and_sender(
    tmp_path: FsPath, knxd: Knxd
) -> None:
    async with running_node(node_config(tmp_path)) as node, bus_device() as device:
        status = await connected(node)
        await device.write("1/2/1", b"\x0c\x33")  # 21.5 °C from a sensor
        await until_status(status, lambda s: s.counts["written"] == 1)
        event = node.kv.get(Path.parse("home.hall.temperature"))
        assert event is not None
        assert event.value == 21.5 and type(event.value) is float
        device_address = device.xknx.current_address
        assert event.source == f"knx:1/2/1 from {device_address}"
        knxd.groupwrite("1/1/2", 1)  # the light's actuator reports "on" (knxtool)
        await until_status(status, lambda s: s.counts["written"] == 2)
        assert node.kv.value(Path.parse("home.kitchen.light")) is True
        assert status.details["individual_address"] != str(device_address)


async def test_a_set_of_an_owned_path_is_one_group_value_write_and_its_echo_no_event(
    tmp_path: FsPath, knxd: Knxd
) -> None:
    async with running_node(node_config(tmp_path)) as node, bus_device() as device:
        status = await connected(node)
        await node.write(Change(Path.parse("home.hall.blind"), 50))
        await node.write(Change(Path.parse("home.kitchen.light"), True))
        await node.write(Change(Path.parse("home.display"), "Hello KNX"))
        await device.until(lambda ts: len([t for t in ts if t.kind == "write"]) >= 3)
        writes = [(t.destination, t.payload) for t in device.telegrams if t.kind == "write"]
        assert writes == [
            (1 << 11 | 3 << 8 | 1, b"\x80"),
            (1 << 11 | 1 << 8 | 1, 1),
            (1 << 11 | 4 << 8 | 1, b"Hello KNX" + bytes(5)),
        ]
        await until_status(status, lambda s: s.counts["sent"] == 3)  # counted once confirmed
        # the actuator confirms the light on its state address: the value we hold, no event
        await device.write("1/1/2", 1)
        await until_status(status, lambda s: s.counts["suppressed"] == 1)
        assert history(node, "home.kitchen.light") == [True]
        # "both" on one address: our write is not read back as a second event
        assert history(node, "home.display") == ["Hello KNX"]
        assert status.counts["written"] == 0


async def test_a_value_that_came_from_the_bus_is_not_sent_back_to_it(
    tmp_path: FsPath, knxd: Knxd
) -> None:
    async with running_node(node_config(tmp_path)) as node, bus_device() as device:
        status = await connected(node)
        await device.write("1/1/2", 1)  # the actuator reports "on" (switched at the wall)
        await device.write("1/4/1", b"from the wall" + bytes(1))  # a "both" address
        await until_status(status, lambda s: s.counts["written"] == 2)
        assert node.kv.value(Path.parse("home.kitchen.light")) is True
        await node.write(Change(Path.parse("home.hall.blind"), 50))  # sent after them, in order
        ours = status.details["individual_address"]
        await device.until(lambda ts: any(t.source == ours and t.kind == "write" for t in ts))
        ours_written = [t for t in device.telegrams if t.source == ours and t.kind == "write"]
        assert [(t.destination, t.payload) for t in ours_written] == [
            (1 << 11 | 3 << 8 | 1, b"\x80")  # only the blind: nothing went back to the bus
        ]
        assert status.counts["sent"] == 1


async def test_a_payload_of_the_wrong_length_is_counted_as_bad_and_not_stored(
    tmp_path: FsPath, knxd: Knxd
) -> None:
    async with running_node(node_config(tmp_path)) as node, bus_device() as device:
        status = await connected(node)
        await device.write("1/2/1", b"\x0c\x33\x00")  # three bytes for a 2-byte float
        knxd.groupwrite("1/2/1", 1)  # a 1-bit value for a 2-byte float
        await device.write("1/2/1", b"\x7f\xff")  # "invalid data"
        await device.write("1/2/1", b"\x0c\x1a")  # then 21.0, good
        await until_status(status, lambda s: s.counts["written"] == 1)
        assert status.counts["bad"] == 3
        assert status.last_bad is not None and status.last_bad.startswith("1/2/1 from ")
        assert "invalid data" in status.last_bad
        assert history(node, "home.hall.temperature") == [21.0]


async def test_current_values_are_read_on_start_and_the_answers_stored(
    tmp_path: FsPath, knxd: Knxd
) -> None:
    async with bus_device() as device:
        device.answers["1/2/1"] = b"\x0c\x1a"  # the sensor answers reads with 21.0 °C
        async with running_node(node_config(tmp_path)) as node:
            status = await connected(node)
            await until_status(status, lambda s: s.counts["written"] == 1)
            event = node.kv.get(Path.parse("home.hall.temperature"))
            assert event is not None and event.value == 21.0
            reads = [t for t in device.telegrams if t.kind == "read"]
            assert [t.destination for t in reads] == [1 << 11 | 2 << 8 | 1]  # only read_on_start


async def test_knxd_killed_and_restarted_while_the_node_runs(tmp_path: FsPath, knxd: Knxd) -> None:
    async with running_node(node_config(tmp_path)) as node:
        status = await connected(node)
        knxd.kill()
        # A set while the gateway is gone: the send is not confirmed, the
        # connection ends, status says so, and the change waits for the next one.
        await node.write(Change(Path.parse("home.hall.blind"), 25))
        await until_status(status, lambda s: s.state == "backing-off")
        assert status.last_error is not None and "KNX" in status.last_error
        assert history(node, "home.hall.blind") == [25]
        knxd.start()
        async with bus_device() as device:
            await until_status(status, lambda s: s.state == "connected")
            await device.until(lambda ts: any(t.kind == "write" for t in ts))
            blind = [t.payload for t in device.telegrams if t.kind == "write"]
            assert blind == [b"\x40"]  # 25 %, sent once the bus is back
            await device.write("1/2/1", b"\x0c\x33")
            await until_status(status, lambda s: s.counts["written"] == 1)
        assert node.kv.value(Path.parse("home.hall.temperature")) == 21.5
        assert history(node, "home.hall.blind") == [25]  # nothing else stored
        assert status.connections >= 2


async def test_a_flood_of_telegrams_is_stored_or_its_loss_counted(
    tmp_path: FsPath, knxd: Knxd
) -> None:
    count = 300
    async with running_node(node_config(tmp_path)) as node, bus_device() as device:
        status = await connected(node)
        with trio.fail_after(60):
            for n in range(count):
                await device.write("1/5/1", n.to_bytes(4, "big"))
            await until_status(
                status,
                lambda s: s.counts["written"] + s.details.get("lost", 0) >= count,
            )
        stored = history(node, "home.meter.count")
        assert status.details["lost"] == 0
        assert stored == list(range(count))  # all of them, in order
        assert status.counts["received"] == count


async def test_routing_carries_telegrams_both_ways(tmp_path: FsPath, knxd: Knxd) -> None:
    routing = 'connection = "routing"\nlocal_ip = "127.0.0.1"\nindividual_address = "1.1.250"'
    async with running_node(node_config(tmp_path, connection=routing)) as node:
        status = await connected(node)
        async with bus_device() as device:
            await device.write("1/2/1", b"\x0c\x33")
            await until_status(status, lambda s: s.counts["written"] == 1)
            await node.write(Change(Path.parse("home.hall.blind"), 100))
            await device.until(lambda ts: any(t.kind == "write" for t in ts))
        assert node.kv.value(Path.parse("home.hall.temperature")) == 21.5
        assert [t.payload for t in device.telegrams if t.kind == "write"] == [b"\xff"]
        event = node.kv.get(Path.parse("home.hall.temperature"))
        assert event is not None and event.source.startswith("knx:1/2/1 from ")
