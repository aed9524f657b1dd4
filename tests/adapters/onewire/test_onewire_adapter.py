"""The 1-Wire adapter in a node: against the tests' own owserver (writes, devices that come and
go, bad data) and against a real owserver (--tester, --fake; killed and restarted)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path as FsPath

import trio
from fake_owserver import FakeOwserver, serve_fake_owserver
from onewire_node import node_config
from owserver_process import Owserver

from moat_log.journal.change import Change
from moat_log.node._node import Node
from moat_log.path import Path
from moat_log.testing import running_node
from moat_log.testing import until_adapter_status as until_status

TEMPERATURE = """
scan_interval = 0.05
[[adapters.ow.map]]
family = "28"
attribute = "temperature"
path = "onewire.+family.+code.temperature"
interval = 0.02
min_delta = 0.5
"""

SWITCH = """
scan_interval = 0.05
[[adapters.ow.map]]
family = "29"
attribute = "PIO.0"
path = "house.+id.relay"
interval = 0.02
codec = "bool"
direction = "both"
"""

T1, T2, S1 = "28.000000000001", "28.000000000002", "29.000000000003"


def path(text: str) -> Path:
    return Path.parse(text)


def event_of(node: Node, text: str) -> tuple[object, str] | None:
    event = node.kv.get(path(text))
    return None if event is None else (event.value, event.source)


async def polls(node: Node, server: FakeOwserver, count: int = 5) -> None:
    """Until the adapter has read the bus *count* more times."""
    start = server.requests
    await server.until(lambda: server.requests >= start + count)


async def test_readings_become_events_and_small_changes_do_not(tmp_path: FsPath) -> None:
    async with serve_fake_owserver() as server:
        server.add(T1, {"temperature": b"20.0"})
        async with running_node(node_config(tmp_path, server.port, TEMPERATURE)) as node:
            status = node.adapters["ow"]
            await until_status(
                status,
                lambda s: node.kv.get(path("onewire.28.000000000001.temperature")) is not None,
            )
            assert event_of(node, "onewire.28.000000000001.temperature") == (
                20.0,
                "onewire:28.000000000001/temperature",
            )
            written = status.counts["written"]
            server.set(T1, "temperature", b"20.4")  # within min_delta: no event
            await polls(node, server, 10)
            assert status.counts["written"] == written
            assert node.kv.value(path("onewire.28.000000000001.temperature")) == 20.0
            assert status.counts["suppressed"] >= 3
            server.set(T1, "temperature", b"19.5")  # 0.5 from the stored 20.0: a change
            await until_status(status, lambda s: s.counts["written"] == written + 1)
            assert node.kv.value(path("onewire.28.000000000001.temperature")) == 19.5
            report = node.status(None)["adapters"]["ow"]
            assert (report["type"], report["state"], report["devices"]) == (
                "onewire",
                "connected",
                1,
            )
            assert report["server"] == f"127.0.0.1:{server.port}"


async def test_devices_that_come_and_go_are_events(tmp_path: FsPath) -> None:
    async with serve_fake_owserver() as server:
        server.add(T1, {"temperature": b"20.0"})
        async with running_node(node_config(tmp_path, server.port, TEMPERATURE)) as node:
            status = node.adapters["ow"]
            present1 = "onewire.28.000000000001.present"
            present2 = "onewire.28.000000000002.present"
            await until_status(status, lambda s: node.kv.get(path(present1)) is not None)
            assert event_of(node, present1) == (True, "onewire:28.000000000001")
            server.add(T2, {"temperature": b"30.0"})
            await until_status(status, lambda s: node.kv.value(path(present2)) is True)
            assert status.details["devices"] == 2
            server.remove(T1)
            await until_status(status, lambda s: node.kv.value(path(present1)) is False)
            assert event_of(node, present1) == (False, "onewire:28.000000000001")
            assert node.kv.value(path("onewire.28.000000000002.temperature")) == 30.0
        # started again, the node learns from its journal that T2 was there: now it is gone
        server.remove(T2)
        async with running_node(node_config(tmp_path, server.port, TEMPERATURE)) as node:
            status = node.adapters["ow"]
            await until_status(status, lambda s: node.kv.value(path(present2)) is False)
            assert node.kv.value(path(present1)) is False


async def test_a_set_of_an_owned_path_reaches_the_bus_and_its_echo_is_no_event(
    tmp_path: FsPath,
) -> None:
    async with serve_fake_owserver() as server:
        server.add(S1, {"PIO.0": b"0"})
        async with running_node(node_config(tmp_path, server.port, SWITCH)) as node:
            status = node.adapters["ow"]
            relay = "house.29:.000000000003.relay"
            await until_status(status, lambda s: node.kv.get(path(relay)) is not None)
            assert event_of(node, relay) == (False, "onewire:29.000000000003/PIO.0")
            await node.write(Change(path(relay), True))
            await server.until(lambda: bool(server.writes))
            assert [(p, d) for p, d, _ in server.writes] == [("/29.000000000003/PIO.0", b"1")]
            last = node.journal.last_position
            await polls(node, server, 10)  # the polls read "1" back: the journal has it
            assert node.journal.last_position == last
            assert event_of(node, relay) == (True, "")
            assert status.counts["sent"] == 1
            server.set(S1, "PIO.0", b"0")  # switched at the device: a change from the bus
            await until_status(status, lambda s: node.kv.value(path(relay)) is False)
            assert event_of(node, relay) == (False, "onewire:29.000000000003/PIO.0")
            assert len(server.writes) == 1  # a bus change is not written back


async def test_bad_readings_are_counted_and_never_stored(tmp_path: FsPath) -> None:
    body = (
        TEMPERATURE
        + """
[[adapters.ow.map]]
family = "28"
attribute = "humidity"
path = "onewire.+id.humidity"
interval = 0.02
"""
    )
    async with serve_fake_owserver() as server:
        server.add(T1, {"temperature": b"85.0"})  # power-on reset; and no humidity (ENOENT)
        server.add(T2, {"temperature": b"warm", "humidity": b"41.5"})
        async with running_node(node_config(tmp_path, server.port, body)) as node:
            status = node.adapters["ow"]
            await until_status(status, lambda s: s.counts["bad"] >= 6)
            assert node.kv.get(path("onewire.28.000000000001.temperature")) is None
            assert node.kv.get(path("onewire.28.000000000002.temperature")) is None
            assert node.kv.value(path("onewire.28:.000000000002.humidity")) == 41.5
            assert node.kv.get(path("onewire.28:.000000000001.humidity")) is None
            assert status.state == "connected"
            server.set(T1, "temperature", b"21.0")
            await until_status(
                status,
                lambda s: node.kv.get(path("onewire.28.000000000001.temperature")) is not None,
            )
            assert node.kv.value(path("onewire.28.000000000001.temperature")) == 21.0
            assert status.last_bad is not None


async def test_many_devices_polled_fast_all_arrive(tmp_path: FsPath) -> None:
    async with serve_fake_owserver() as server:
        devices = [f"28.{index:012X}" for index in range(1, 201)]
        for index, device in enumerate(devices):
            server.add(device, {"temperature": f"{index}.5".encode()})  # never 85.0
        async with running_node(node_config(tmp_path, server.port, TEMPERATURE)) as node:
            status = node.adapters["ow"]
            await until_status(status, lambda s: s.counts["written"] >= 400)  # presence + value
            for index, device in enumerate(devices):
                family, code = device.split(".")
                assert node.kv.value(Path(["onewire", family, code, "temperature"])) == index + 0.5
            assert status.counts["bad"] == 0


async def test_a_server_that_stops_answering_stalls_neither_the_node_nor_its_writes(
    tmp_path: FsPath,
) -> None:
    body = TEMPERATURE.replace("scan_interval = 0.05", "scan_interval = 0.05\ntimeout = 0.5")
    async with serve_fake_owserver() as server:
        server.add(T1, {"temperature": b"20.0"})
        async with running_node(node_config(tmp_path, server.port, body)) as node:
            status = node.adapters["ow"]
            await until_status(status, lambda s: s.counts["written"] >= 2)
            server.hold = trio.Event()
            await until_status(status, lambda s: s.state == "backing-off")
            assert "did not answer within 0.5 s" in (status.last_error or "")
            await node.write(Change(path("other.thing"), 1))  # the node goes on meanwhile
            assert node.kv.value(path("other.thing")) == 1
            server.hold.set()
            server.hold = None
            connections = status.connections
            server.set(T1, "temperature", b"25.0")
            await until_status(
                status,
                lambda s: (
                    s.connections > connections
                    and node.kv.value(path("onewire.28.000000000001.temperature")) == 25.0
                ),
            )


# --- a real owserver --------------------------------------------------------------

TESTER = """
scan_interval = 0.05
[[adapters.ow.map]]
family = ["10", "28"]
attribute = "temperature"
path = "onewire.+family.+code.temperature"
interval = 0.02
[[adapters.ow.map]]
family = "29"
attribute = "PIO.0"
path = "onewire.+family.+code.relay"
codec = "bool"
direction = "both"
interval = 0.02
"""

TESTER_DEVICES = ("10.000010EF0000", "28.000028D70100", "29.000029D60200")


async def test_the_tester_bus_becomes_events(
    tmp_path: FsPath, make_owserver: Callable[..., Owserver]
) -> None:
    server = make_owserver("--tester=10,28,29")
    async with running_node(node_config(tmp_path, server.port, TESTER)) as node:
        status = node.adapters["ow"]
        temperatures = [f"onewire.{d}.temperature" for d in TESTER_DEVICES[:2]]
        await until_status(
            status, lambda s: all(node.kv.get(path(t)) is not None for t in temperatures)
        )
        for device, text in zip(TESTER_DEVICES, temperatures, strict=False):
            event = node.kv.get(path(text))
            assert event is not None
            assert event.source == f"onewire:{device}/temperature"
            assert isinstance(event.value, float)
        for device in TESTER_DEVICES:
            assert event_of(node, f"onewire.{device}.present") == (True, f"onewire:{device}")
        relay = path("onewire.29.000029D60200.relay")
        await until_status(status, lambda s: node.kv.get(relay) is not None)
        await node.write(Change(relay, True))
        await until_status(status, lambda s: s.counts["sent"] == 1)  # owserver took the write
        assert status.counts["bad"] == 0


async def test_a_killed_owserver_is_waited_for_and_nothing_wrong_is_stored(
    tmp_path: FsPath, make_owserver: Callable[..., Owserver]
) -> None:
    server = make_owserver("--tester=10,28,29")
    async with running_node(node_config(tmp_path, server.port, TESTER)) as node:
        status = node.adapters["ow"]
        presents = [path(f"onewire.{d}.present") for d in TESTER_DEVICES]
        await until_status(status, lambda s: all(node.kv.value(p) is True for p in presents))
        before = {str(p): node.kv.get(p) for p in presents}
        await trio.to_thread.run_sync(server.kill)
        await until_status(status, lambda s: s.state == "backing-off")
        assert status.last_error is not None and str(server.port) in status.last_error
        await until_status(status, lambda s: s.connections >= 2 or s.state == "backing-off")
        await trio.to_thread.run_sync(server.restart)
        connections = status.connections
        await until_status(
            status, lambda s: s.state == "connected" and s.connections > connections - 1
        )
        await until_status(status, lambda s: s.counts["received"] > 20)
        assert {str(p): node.kv.get(p) for p in presents} == before  # no device "went"
        assert status.counts["bad"] == 0


async def test_random_readings_within_the_deadband_make_one_event(
    tmp_path: FsPath, make_owserver: Callable[..., Owserver]
) -> None:
    server = make_owserver("--fake=28")  # a random temperature 0 .. 100 on every read
    body = TEMPERATURE.replace("min_delta = 0.5", "min_delta = 1000")
    async with running_node(node_config(tmp_path, server.port, body)) as node:
        status = node.adapters["ow"]
        await until_status(status, lambda s: s.counts["suppressed"] >= 10)
        (device,) = [
            k for k in (node.kv.snapshot([path("onewire.28")])[1]) if k.path[-1] == "temperature"
        ]
        assert device.source.startswith("onewire:28.")
        assert status.counts["written"] == 2  # its presence and its first temperature
