"""The adapter contract, with an adapter on a bus in memory (fake_bus.py).

What every adapter gets from the node: owned changes in journal order, bus
changes through the write path with their source, bad data counted and not
stored, reconnection after a back-off, isolation from other adapters'
faults, resumption after a restart and no repeats after a repair.  The real
buses' tests (tests/adapters/mqtt/) run the same contract against their
servers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path as FsPath

import pytest
import trio
from fake_bus import FakeBus, fake_config

from moat_log.adapters.config import AdapterConfig, adapters_from_table
from moat_log.journal.change import Change
from moat_log.node._node import Node
from moat_log.node.config import NodeConfig
from moat_log.node.server import serve_node
from moat_log.path import Path
from moat_log.records import FieldError


@asynccontextmanager
async def running_node(data_dir: FsPath, *adapters: AdapterConfig) -> AsyncIterator[Node]:
    config = NodeConfig(node="n1", data_dir=data_dir, listen=(), adapters=adapters)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        node = await nursery.start(partial(serve_node, config, shutdown_trigger=stop.wait))
        try:
            yield node
        finally:
            stop.set()


async def until_state(node: Node, name: str, state: str, bus: FakeBus) -> None:
    status = node.adapters[name]
    status.on_change.append(bus.changed)
    try:
        await bus.until(lambda: status.state == state)
    finally:
        status.on_change.remove(bus.changed)


def sent_paths(bus: FakeBus) -> list[str]:
    return [str(path) for path, _, _ in bus.sent]


async def set_values(node: Node, values: Sequence[tuple[str, int]]) -> None:
    for path, value in values:
        await node.write(Change(Path.parse(path), value))


async def test_owned_changes_reach_the_bus_in_journal_order(tmp_path: FsPath) -> None:
    bus = FakeBus()
    async with running_node(tmp_path, fake_config("fake", bus)) as node:
        await set_values(node, [("out.a", 1), ("other.x", 9), ("out.b", 2), ("out.a", 3)])
        await bus.until(lambda: len(bus.sent) == 3)
        assert [(str(p), v) for p, v, _ in bus.sent] == [("out.a", 1), ("out.b", 2), ("out.a", 3)]
        positions = [position for _, _, position in bus.sent]
        assert positions == sorted(positions)


async def test_bus_changes_become_events_naming_their_bus_address(tmp_path: FsPath) -> None:
    bus = FakeBus()
    async with running_node(tmp_path, fake_config("fake", bus)) as node:
        await until_state(node, "fake", "connected", bus)
        bus.message("k1", b"5")
        await bus.until(lambda: node.adapters["fake"].counts["written"] == 1)
        event = node.kv.get(Path(["in", "k1"]))
        assert event is not None
        assert (event.value, event.source) == (5, "fake:k1")
        report = node.status(None)["adapters"]["fake"]
        assert report["received"] == 1
        assert report["written"] == 1
        assert report["state"] == "connected"
        assert report["bus"] == "fake"  # the adapter's own detail


async def test_bad_bus_data_is_counted_logged_rarely_and_never_stored(
    tmp_path: FsPath, caplog: pytest.LogCaptureFixture
) -> None:
    bus = FakeBus()
    caplog.set_level(logging.WARNING, "moat_log.adapters")
    async with running_node(tmp_path, fake_config("fake", bus)) as node:
        await until_state(node, "fake", "connected", bus)
        for _ in range(5):
            bus.message("k1", b"garbage")
        bus.message("k1", b"7")
        await bus.until(lambda: node.adapters["fake"].counts["written"] == 1)
        status = node.adapters["fake"]
        assert status.counts["bad"] == 5
        assert status.last_bad is not None and "garbage" in status.last_bad
        assert node.kv.value(Path(["in", "k1"])) == 7
        lines = [r.getMessage() for r in caplog.records if "bad data" in r.getMessage()]
        assert len(lines) == 1, lines
        assert "k1" in lines[0] and "not stored" in lines[0]


async def test_a_bus_value_that_does_not_fit_its_type_is_bad_data_with_the_reason(
    tmp_path: FsPath,
) -> None:
    bus = FakeBus()
    async with running_node(tmp_path, fake_config("fake", bus)) as node:
        percent = {"schema": {"type": "int", "min": 0, "max": 100}, "good": [0], "bad": [101]}
        await node.write(Change(Path.parse(":.moat.type.in.+"), percent))
        await until_state(node, "fake", "connected", bus)
        bus.message("k1", b"250")
        bus.message("k1", b"7")
        await bus.until(lambda: node.adapters["fake"].counts["written"] == 1)
        status = node.adapters["fake"]
        assert status.counts["bad"] == 1
        assert status.last_bad == (
            "fake:k1: in.k1: 250 is above the maximum 100 (type in.+: int 0..100)"
        )
        assert node.kv.value(Path(["in", "k1"])) == 7


async def test_a_bus_that_comes_back_gets_what_was_written_while_it_was_away(
    tmp_path: FsPath,
) -> None:
    bus = FakeBus()
    async with running_node(tmp_path, fake_config("fake", bus)) as node:
        await set_values(node, [("out.a", 1)])
        await bus.until(lambda: len(bus.sent) == 1)
        bus.drop()
        await until_state(node, "fake", "backing-off", bus)
        await set_values(node, [("out.b", 2), ("out.c", 3)])
        status = node.status(None)["adapters"]["fake"]
        assert status["last_error"].startswith("fake bus: ")
        bus.up = True
        await bus.until(lambda: len(bus.sent) == 3)
        assert sent_paths(bus) == ["out.a", "out.b", "out.c"]
        assert node.adapters["fake"].connections >= 2


async def test_a_crashing_adapter_stops_neither_the_node_nor_another_adapter(
    tmp_path: FsPath,
) -> None:
    broken, healthy = FakeBus(crash=RuntimeError("a bug in the adapter")), FakeBus()
    async with running_node(
        tmp_path, fake_config("broken", broken), fake_config("healthy", healthy)
    ) as node:
        await broken.until(lambda: broken.connects >= 3)  # it keeps being retried
        await set_values(node, [("out.a", 1)])
        await healthy.until(lambda: len(healthy.sent) == 1)
        status = node.status(None)["adapters"]
        assert status["broken"]["last_error"] == "RuntimeError: a bug in the adapter"
        assert status["broken"]["state"] in ("backing-off", "connecting")
        assert status["healthy"]["state"] == "connected"
        assert node.kv.value(Path(["out", "a"])) == 1


async def test_changes_written_while_the_bus_was_down_survive_a_restart(
    tmp_path: FsPath,
) -> None:
    bus = FakeBus(up=False)
    async with running_node(tmp_path, fake_config("fake", bus)) as node:
        await set_values(node, [("out.a", 1), ("out.b", 2)])
        await until_state(node, "fake", "backing-off", bus)
        assert node.status(None)["adapters"]["fake"]["lag"] == 2
    assert bus.sent == []
    bus.up = True
    async with running_node(tmp_path, fake_config("fake", bus)) as node:
        await bus.until(lambda: len(bus.sent) == 2)
        assert sent_paths(bus) == ["out.a", "out.b"]


async def test_a_session_repaired_from_a_snapshot_gets_no_change_twice(tmp_path: FsPath) -> None:
    bus = FakeBus(up=False)
    async with running_node(tmp_path, fake_config("fake", bus, repair=True)) as node:
        await set_values(node, [("out.a", 1), ("out.a", 2), ("out.b", 3)])
    bus.up = True
    async with running_node(tmp_path, fake_config("fake", bus, repair=True)) as node:
        await until_state(node, "fake", "connected", bus)
        await set_values(node, [("out.c", 4)])
        await bus.until(lambda: len(bus.sent) == 3)
        # the snapshot (position 0 here) has the state; the queued changes are not sent again
        assert [(str(p), v, pos) for p, v, pos in bus.sent] == [
            ("out.a", 2, 0),
            ("out.b", 3, 0),
            ("out.c", 4, 4),
        ]


async def test_a_disabled_adapter_is_shown_and_not_run(tmp_path: FsPath) -> None:
    bus = FakeBus()
    async with running_node(tmp_path, fake_config("off", bus, enabled=False)) as node:
        assert node.status(None)["adapters"]["off"]["state"] == "disabled"
    assert bus.connects == 0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"x": {"type": "nope"}},
            "adapters.x.type: 'nope' is no adapter type; "
            "known: knx, modbus, modbus_server, mqtt, onewire",
        ),
        ({"x y": {"type": "mqtt"}}, "adapters.x y: an adapter's name is 1 to 64 letters"),
        ({"x": 3}, "adapters.x: must be a table"),
        ({"x": {}}, "adapters.x.type: is missing"),
        ({"x": {"type": "mqtt", "enabled": "yes"}}, "adapters.x.enabled: expected true or false"),
        ({"x": {"type": "mqtt", "durability": "often"}}, "adapters.x.durability: "),
        (
            {"x": {"type": "mqtt", "reconnect_first": 9, "reconnect_max": 1}},
            "adapters.x.reconnect_first: must not be more than reconnect_max",
        ),
    ],
)
def test_adapter_tables_are_read_strictly(table: dict[str, object], message: str) -> None:
    with pytest.raises(FieldError) as caught:
        adapters_from_table(table)
    assert str(caught.value).startswith(message), str(caught.value)


async def test_a_new_adapter_does_not_replay_the_history_of_its_paths(tmp_path: FsPath) -> None:
    async with running_node(tmp_path) as node:  # no adapter yet
        await set_values(node, [("out.a", 1), ("out.b", 2)])
    bus = FakeBus()
    async with running_node(tmp_path, fake_config("fake", bus)) as node:
        await until_state(node, "fake", "connected", bus)
        await set_values(node, [("out.c", 3)])
        await bus.until(lambda: len(bus.sent) == 1)
        assert sent_paths(bus) == ["out.c"]
