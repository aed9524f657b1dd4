"""A script's writes name what caused them: a watch item as *cause*, or `caused_by` per task."""

from __future__ import annotations

from pathlib import Path as FsPath

import pytest
import trio

import moat_log
from moat_log.event import Event
from moat_log.ids import EventId
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.projections.journal_chain import explain
from moat_log.projections.why import EndKind
from moat_log.protocol import LIVE


async def test_a_watch_item_given_as_cause_links_the_write_to_it(data_dir: FsPath) -> None:
    async with moat_log.open_node(data_dir=data_dir, node="pi1") as client:
        async with client.watch("sensor") as changes:
            assert await changes.__anext__() is LIVE
            frame = await client.set("sensor.motion", True, source="knx:1/2/3")
            item = await changes.__anext__()
            assert isinstance(item, Event) and item.id == frame.id
            written = await client.set("home.light", True, source="script:hall", cause=item)
            deleted = await client.delete("home.scene", cause=frame.id)
        light = await client.get("home.light")
        assert light is not None and light.cause == frame.id and light.id == written.id
    with open_journal(data_dir) as journal:
        tombstone = journal.get(deleted.id)
        assert tombstone is not None and tombstone.cause == frame.id
        chain = explain(journal, Path.parse("home.light"))
        assert chain is not None
        assert [s.event.id for s in chain.steps] == [written.id, frame.id]
        assert chain.end.kind is EndKind.ORIGIN and chain.end.last.source == "knx:1/2/3"


async def test_caused_by_holds_for_the_task_inside_the_block_only(data_dir: FsPath) -> None:
    cause = EventId("pi2", 7)
    other = EventId("pi3", 1)
    seen: dict[str, EventId | None] = {}

    async with moat_log.open_node(data_dir=data_dir, node="pi1") as client:
        started_inside = trio.Event()
        release = trio.Event()

        async def unrelated_task() -> None:
            await started_inside.wait()
            written = await client.set("home.b", 1)  # another task: no cause
            seen["b"] = (await client.get("home.b")).cause  # type: ignore[union-attr]
            assert written.id
            release.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(unrelated_task)
            with client.caused_by(cause) as given:
                assert given == cause
                await client.set("home.a", 1)
                started_inside.set()
                await release.wait()
                await client.set("home.c", 1, cause=other)  # its own cause wins
                with client.caused_by(other):
                    await client.set("home.d", 1)
                await client.set("home.e", 1)  # the outer block's cause again
            await client.set("home.f", 1)  # after the block: none
        for name in "acdef":
            seen[name] = (await client.get(f"home.{name}")).cause  # type: ignore[union-attr]
    assert seen == {"a": cause, "b": None, "c": other, "d": other, "e": cause, "f": None}


async def test_a_cause_of_another_type_is_refused(data_dir: FsPath) -> None:
    async with moat_log.open_node(data_dir=data_dir, node="pi1") as client:
        with pytest.raises(TypeError, match="Event or an EventId"):
            await client.set("home.a", 1, cause="pi2:7")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="Event or an EventId"):
            client.caused_by(None).__enter__()  # type: ignore[arg-type]
