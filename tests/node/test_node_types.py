"""Typed paths in a running node: writes that do not fit are refused, peers' events are not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path as FsPath

import pytest
import trio
import trio.testing
from node_support import config, insert_from_another_process, running_node

from moat_log.client import Client, open_client_on
from moat_log.errors import BadRequestError, TypeMismatchError
from moat_log.event import Event, Op
from moat_log.node import Node
from moat_log.path import Path
from moat_log.reserved import TYPES
from moat_log.vclock import VectorClock


@asynccontextmanager
async def node_and_client(data_dir: FsPath) -> AsyncIterator[tuple[Node, Client]]:
    async with (
        running_node(config(data_dir)) as node,
        open_client_on(node.connect_in_process()) as client,
    ):
        yield node, client


LIGHT = {"schema": "bool", "good": [True, False], "bad": ["on", 1]}


async def until_types_change(node: Node) -> None:
    changed = trio.Event()
    node.checks.types.on_change.append(changed.set)
    try:
        with trio.fail_after(20):
            await changed.wait()
    finally:
        node.checks.types.on_change.remove(changed.set)


async def test_a_write_that_does_not_fit_its_type_is_refused_naming_path_type_and_problem(
    data_dir: FsPath,
) -> None:
    async with node_and_client(data_dir) as (_node, client):
        await client.set(":.moat.type.home.+.light", LIGHT)
        await client.set("home.hall.light", True)
        with pytest.raises(TypeMismatchError) as refused:
            await client.set("home.hall.light", "on")
        assert refused.value.error_type == "type-mismatch"
        assert refused.value.message == (
            "home.hall.light: 'on' is not true or false (type home.+.light: bool)"
        )
        assert await client.value("home.hall.light") is True
        await client.delete("home.hall.light")  # a tombstone is no value
        await client.set("home.hall.note", "on")  # another pattern's path: untyped


async def test_a_type_whose_examples_are_wrong_is_not_stored(data_dir: FsPath) -> None:
    async with node_and_client(data_dir) as (_node, client):
        wrong = {"schema": "bool", "good": [True], "bad": [False]}
        with pytest.raises(BadRequestError, match="the bad example False fits the schema"):
            await client.set(":.moat.type.home.+.light", wrong)
        assert await client.get(":.moat.type.home.+.light") is None


async def test_a_deleted_type_no_longer_refuses(data_dir: FsPath) -> None:
    async with node_and_client(data_dir) as (_node, client):
        await client.set(":.moat.type.home.+.light", LIGHT)
        with pytest.raises(TypeMismatchError):
            await client.set("home.hall.light", "on")
        await client.delete(":.moat.type.home.+.light")
        await client.set("home.hall.light", "on")


async def test_types_survive_a_restart(data_dir: FsPath) -> None:
    async with node_and_client(data_dir) as (_node, client):
        await client.set(":.moat.type.home.+.light", LIGHT)
    async with node_and_client(data_dir) as (_node, client):
        with pytest.raises(TypeMismatchError):
            await client.set("home.hall.light", "on")


def foreign(seq: int, path: str, value: object) -> Event:
    return Event.trusted(
        "pi9", seq, 1_000_000 + seq, VectorClock(), Path.parse(path), Op.SET, value, "pi9", None
    )


async def test_events_from_peers_are_stored_even_if_they_do_not_fit(data_dir: FsPath) -> None:
    """A peer accepted them (perhaps under other types); `type check` reports them."""
    async with node_and_client(data_dir) as (node, client):
        await client.set(":.moat.type.home.+.light", LIGHT)
        await node.writer.insert(foreign(1, "home.hall.light", "on"))  # as sync inserts
        assert await client.value("home.hall.light") == "on"


async def test_a_type_a_peer_or_another_process_stores_reaches_the_node(data_dir: FsPath) -> None:
    async with node_and_client(data_dir) as (node, client):
        await client.set("home.hall.light", "on")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(until_types_change, node)
            await trio.testing.wait_all_tasks_blocked()
            stored = foreign(1, str(TYPES + Path.parse("home.+.light")), LIGHT)
            await insert_from_another_process(data_dir, stored)
        with pytest.raises(TypeMismatchError):
            await client.set("home.hall.light", "off")
