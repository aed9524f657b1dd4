"""``log`` and ``replay`` served by a node in this process, through `open_client`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from pathlib import Path as FsPath
from typing import Any

import pytest
import trio
from node_support import (
    BOB_PASSWORD,
    FAST,
    LOOPBACK_ANY_PORT,
    UNIX,
    config,
    insert_from_another_process,
    running_node,
    stall_a_stream,
    tcp_address,
    users,
    write_from_another_process,
)

from moat_log import open_client
from moat_log.client import Client
from moat_log.event import Event, Op
from moat_log.ids import MAX_U64, EventId
from moat_log.journal import store
from moat_log.journal.change import Change
from moat_log.node import Node
from moat_log.node._node import READ_CHUNK
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.projections import replay as replay_module
from moat_log.projections.replay import state_at
from moat_log.protocol import LIVE, RequestError

T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
S = 10**9


def at(path: str, value: object, seconds: int) -> Change:
    op = Op.DELETE if value is None else Op.SET
    return Change(Path.parse(path), value, op, at=T0 + seconds * S)


def foreign(origin: str, seq: int, seconds: int, path: str, value: object) -> Event:
    op = Op.DELETE if value is None else Op.SET
    return Event(origin, seq, T0 + seconds * S, {}, Path.parse(path), op, value)


def prepare(data_dir: FsPath) -> list[Event]:
    """A journal of pi1 with its own and foreign events, stored out of hlc order."""
    with open_journal(data_dir, create_node="pi1") as journal:
        stored = [
            journal.append(at("home.kitchen.temp", 20.5, 10)),
            journal.append(at("home.kitchen", "room", 20)),
            journal.append(at("home.kitchenette.light", True, 30)),
            journal.append(at("home.kitchen.temp", None, 40)),
        ]
        # Foreign events arrive later, with older and equal times.
        for event in (
            foreign("pi2", 1, 5, "home.kitchen.temp", 19.0),
            foreign("pi2", 2, 20, "garage.door", "open"),  # the same hlc as pi1:2
            foreign("pi3", 1, 25, "home", {"floors": 2}),
            foreign("pi2", 3, 35, "home.kitchen.temp", 21.0),
            foreign("pi2", 4, 45, "garage.door", None),
        ):
            assert journal.insert(event)
            stored.append(event)
    return stored


def in_time_order(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda event: (event.hlc, event.origin))


def under(prefix: str) -> Callable[[Event], bool]:
    return lambda event: Path.parse(prefix).is_prefix_of(event.path)


LOG_FILTERS: dict[str, tuple[dict[str, Any], Callable[[Event], bool]]] = {
    "everything": ({}, lambda e: True),
    "since": ({"since": T0 + 20 * S}, lambda e: e.hlc >= T0 + 20 * S),
    "until": ({"until": T0 + 20 * S}, lambda e: e.hlc <= T0 + 20 * S),
    "event ids as times": (
        {"since": EventId("pi1", 1), "until": EventId("pi2", 2)},
        lambda e: T0 + 10 * S <= e.hlc <= T0 + 20 * S,
    ),
    "origin": ({"origin": "pi2"}, lambda e: e.origin == "pi2"),
    "path": ({"path": "home.kitchen"}, under("home.kitchen")),  # not home.kitchenette
    "path root": ({"path": ":"}, lambda e: True),
    "every filter": (
        {"since": T0 + 6 * S, "until": T0 + 40 * S, "origin": "pi1", "path": "home"},
        lambda e: T0 + 6 * S <= e.hlc <= T0 + 40 * S and e.origin == "pi1" and under("home")(e),
    ),
}


@pytest.mark.parametrize("name", list(LOG_FILTERS))
async def test_log_sends_the_matching_events_in_time_order_and_limit_keeps_the_newest(
    data_dir: FsPath, name: str
) -> None:
    arguments, wanted = LOG_FILTERS[name]
    expected = [event for event in in_time_order(prepare(data_dir)) if wanted(event)]
    assert expected
    async with running_node(config(data_dir)), open_client(data_dir=data_dir) as client:
        assert [event async for event in client.log(**arguments)] == expected
        for limit in (1, 3, 100):
            newest = [event async for event in client.log(**arguments, limit=limit)]
            assert newest == expected[-limit:], f"limit={limit}"


async def test_log_reads_times_given_as_datetimes_and_text_on_the_client(
    data_dir: FsPath,
) -> None:
    prepare(data_dir)
    async with running_node(config(data_dir)), open_client(data_dir=data_dir) as client:
        expected = [e.id async for e in client.log(since=T0 + 20 * S, until=T0 + 35 * S)]
        since = dt.datetime(2026, 1, 1, 0, 0, 20, tzinfo=dt.UTC)
        until = "2026-01-01T01:00:35+01:00"
        assert [e.id async for e in client.log(since=since, until=until)] == expected
        assert [e.id async for e in client.log(since="pi1:2", until="pi2:3")] == expected
        assert len(expected) == 5


async def test_log_arguments_are_checked_before_anything_is_sent(data_dir: FsPath) -> None:
    async with running_node(config(data_dir)), open_client(data_dir=data_dir) as client:
        with pytest.raises(ValueError, match="'follow' cannot be combined with 'until'"):
            client.log(until=1, follow=True)
        with pytest.raises(ValueError, match="is not a time"):
            client.log(since="yesterday")
        with pytest.raises(TypeError, match="a time is ns since the epoch"):
            client.log(since=1.5)  # type: ignore[call-overload]
        with pytest.raises(ValueError, match="'limit' must be an integer 1"):
            client.log(limit=0)
        assert await client.status()  # nothing broke


async def test_times_naming_unknown_events_are_not_found(data_dir: FsPath) -> None:
    prepare(data_dir)
    async with running_node(config(data_dir)), open_client(data_dir=data_dir) as client:
        for stream in (client.log(since="pi9:1"), client.replay("pi1:99")):
            with pytest.raises(RequestError, match="does not hold") as caught:
                [item async for item in stream]
            assert caught.value.error_type == "not-found"


# --- follow ------------------------------------------------------------------------------


async def follow_items(follower: Client, writer: Client, **arguments: Any) -> list[Any]:
    """A followed log's items up to the marker, and after it up to a last event.

    Once the marker arrives, *writer* sets ``home.zz``; the log must send
    it, after every event stored before it.
    """
    items: list[Any] = []
    with trio.fail_after(20):
        async with follower.log(**arguments, follow=True) as log:
            async for item in log:
                items.append(item)
                if item is LIVE:
                    await writer.set("home.zz", "end")
                elif LIVE in items and str(item.path) == "home.zz":
                    return items
    raise AssertionError("the log ended")


async def test_follow_sends_the_newest_then_the_marker_then_new_events_in_store_order(
    data_dir: FsPath,
) -> None:
    stored = prepare(data_dir)
    late = foreign("pi2", 5, 1, "home.late", "from a partitioned node")
    async with (
        running_node(config(data_dir)),
        open_client(data_dir=data_dir) as writer,
        open_client(data_dir=data_dir) as follower,
        follower.log(path="home", limit=2, follow=True) as log,
    ):
        newest = [e for e in in_time_order(stored) if under("home")(e)][-2:]
        assert [await log.__anext__() for _ in range(3)] == [*newest, LIVE]
        await writer.set("garage.light", 1)  # not under the path
        await writer.set("home.new", 1)
        await insert_from_another_process(data_dir, late)  # older than everything sent
        await writer.set("home.newer", 2)
        with trio.fail_after(20):
            live = [await log.__anext__() for _ in range(3)]
    assert all(isinstance(e, Event) for e in live)
    assert [str(e.path) for e in live if isinstance(e, Event)] == [
        "home.new",
        "home.late",
        "home.newer",
    ]
    assert live[1] == late


async def test_follow_loses_and_repeats_nothing_while_writes_interleave_the_initial_read(
    data_dir: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "SCAN_CHUNK", 4)  # the initial read takes several reads
    async with running_node(config(data_dir)) as node, open_client(data_dir=data_dir) as writer:
        node.feed.poll_interval = 3600  # other processes' writes come with the next gap
        for index in range(10):
            await writer.set(f"home.p{index:02}", index)
        await writer.set("other.x", 0)
        paused, go_on = trio.Event(), trio.Event()
        reads = 0

        async def read(function: Any) -> Any:
            if function != node.journal.summary_at:
                return await Node.read(node, function)
            # Stored before the summary: the initial read has them.
            await writer.set("home.before_summary", 1)
            await write_from_another_process(data_dir, "home.other_before_summary", "x")
            summary = await Node.read(node, function)
            await writer.set("home.after_summary", 2)  # after it: live, from the journal
            return summary

        async def read_chunk(items: Any, size: int = READ_CHUNK) -> Any:
            nonlocal reads
            reads += 1
            if reads == 2:
                paused.set()
                await go_on.wait()
            return await Node.read_chunk(node, items, 4)

        monkeypatch.setattr(node, "read", read)
        monkeypatch.setattr(node, "read_chunk", read_chunk)
        late = foreign("pi2", 1, 1, "home.late", "old")

        async def write_during_the_initial_read() -> None:
            await paused.wait()
            await writer.set("home.p00", "new")  # already sent: comes live
            await write_from_another_process(data_dir, "home.p09", "other")  # not sent yet
            await insert_from_another_process(data_dir, late)  # the oldest hlc of all
            await writer.set("other.y", 1)  # not under the path
            go_on.set()

        async with open_client(data_dir=data_dir) as follower, trio.open_nursery() as nursery:
            nursery.start_soon(write_during_the_initial_read)
            items = await follow_items(follower, writer, path="home")
        stored = [event for _, event in node.journal.scan()]

    marker = items.index(LIVE)
    initial, live = items[:marker], items[marker + 1 :]
    held_then = [e for e in stored[:13] if under("home")(e)]  # up to the summary
    assert [str(e.path) for e in stored[11:13]] == [
        "home.before_summary",
        "home.other_before_summary",
    ]
    assert initial == in_time_order(held_then)
    assert [(str(e.path), e.value) for e in live] == [
        ("home.after_summary", 2),
        ("home.p00", "new"),
        ("home.p09", "other"),
        ("home.late", "old"),
        ("home.zz", "end"),
    ]
    everything = [e for e in stored if under("home")(e)]
    assert sorted(e.id for e in initial + live) == sorted(e.id for e in everything)


async def test_writes_during_a_long_initial_read_are_read_back_not_buffered(
    data_dir: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More writes than the buffer holds while the initial read runs: no overflow, none lost."""
    async with (
        running_node(config(data_dir, watch_buffer=4)) as node,
        open_client(data_dir=data_dir) as writer,
    ):
        await writer.set("home.a", 0)
        paused, go_on = trio.Event(), trio.Event()

        async def read_chunk(items: Any, size: int = READ_CHUNK) -> Any:
            paused.set()
            await go_on.wait()
            return await Node.read_chunk(node, items, size)

        monkeypatch.setattr(node, "read_chunk", read_chunk)

        async def write_during_the_initial_read() -> None:
            await paused.wait()
            for index in range(10):
                await writer.set(f"home.n{index}", index)
            go_on.set()

        async with open_client(data_dir=data_dir) as follower, trio.open_nursery() as nursery:
            nursery.start_soon(write_during_the_initial_read)
            items = await follow_items(follower, writer, path="home")
    marker = items.index(LIVE)
    assert [str(e.path) for e in items[:marker]] == ["home.a"]
    assert [str(e.path) for e in items[marker + 1 :]] == [
        *(f"home.n{index}" for index in range(10)),
        "home.zz",
    ]


async def test_a_followed_log_hears_of_another_process_writes(data_dir: FsPath) -> None:
    async with (
        running_node(config(data_dir)),
        open_client(data_dir=data_dir) as follower,
        follower.log(follow=True) as log,
    ):
        assert await log.__anext__() is LIVE
        await write_from_another_process(data_dir, "home.offline", "hello")
        with trio.fail_after(10):
            event = await log.__anext__()
    assert isinstance(event, Event)
    assert (str(event.path), event.value, event.source) == ("home.offline", "hello", "")


async def test_leaving_a_followed_log_cancels_it_and_closes_its_subscription(
    data_dir: FsPath,
) -> None:
    async with running_node(config(data_dir)) as node, open_client(data_dir=data_dir) as client:
        subscriptions = node.feed.subscriptions
        async with client.log(follow=True) as log:
            assert await log.__anext__() is LIVE
            assert node.feed.subscriptions == subscriptions + 1
        assert node.feed.subscriptions == subscriptions  # gone before the final reply
        assert await client.set("a", 1)


async def test_a_follower_that_stops_reading_is_told_it_fell_behind(data_dir: FsPath) -> None:
    async with (
        running_node(config(data_dir, watch_buffer=4)) as node,
        open_client(data_dir=data_dir) as writer,
    ):
        subscriptions = node.feed.subscriptions
        request = {"id": 1, "op": "log", "path": ["big"], "follow": True}
        raw, messages, message = await stall_a_stream(node, writer, request)
        assert message["error"]["type"] == "overflow"
        assert "log fell behind" in message["error"]["message"]
        assert 0 < len(messages) < 60
        assert node.feed.subscriptions == subscriptions
        await raw.send({"id": 2, "op": "get", "path": ["big", "v59"]})
        assert (await raw.receive())["id"] == 2  # the connection goes on


# --- replay ------------------------------------------------------------------------------


async def test_replay_streams_what_state_at_computes_from_the_same_journal(
    data_dir: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare(data_dir)
    monkeypatch.setattr(replay_module, "CHUNK_ENTRIES", 2)  # many read transactions
    async with running_node(config(data_dir)) as node, open_client(data_dir=data_dir) as client:
        monkeypatch.setattr(node, "read_chunk", partial(Node.read_chunk, node, size=2))
        for index in range(6):
            await client.set(f"home.hall.lamp{index}", index)
        await client.delete("home.hall.lamp2")
        moments: list[tuple[Any, int, str]] = [
            (T0 + 30 * S, T0 + 30 * S, ":"),
            (T0 + 37 * S, T0 + 37 * S, "home.kitchen"),
            (EventId("pi2", 2), T0 + 20 * S, "garage"),  # the same hlc as pi1:2
            ("pi2:4", T0 + 45 * S, ":"),  # garage.door deleted
            (T0, T0, ":"),  # before everything
            (MAX_U64, MAX_U64, "home"),  # everything, as of now
        ]
        for until, ns, prefix in moments:
            expected = list(state_at(node.journal, ns, prefix=Path.parse(prefix)).values())
            got = [event async for event in client.replay(until, path=prefix)]
            assert got == expected, (until, prefix)
        now = [e async for e in client.replay(MAX_U64, path="home")]
        assert [str(e.path) for e in now] == [
            "home",
            "home.hall.lamp0",
            "home.hall.lamp1",
            "home.hall.lamp3",
            "home.hall.lamp4",
            "home.hall.lamp5",
            "home.kitchen",  # home.kitchen.temp: pi1's delete wins over pi2's later set
            "home.kitchenette.light",
        ]
        assert now == [e async for e in client.subtree("home")]  # as of now: the KV view


# --- permissions -------------------------------------------------------------------------


async def test_log_and_replay_need_read_access_to_their_whole_path(data_dir: FsPath) -> None:
    prepare(data_dir)
    node_config = config(data_dir, users=users(), listen=(UNIX, LOOPBACK_ANY_PORT))
    async with running_node(node_config) as node:
        login = partial(open_client, connect=tcp_address(node), min_scrypt_n=FAST.n)
        async with login(user="bob", password=BOB_PASSWORD) as bob:  # bob may read home
            assert [str(e.path) async for e in bob.log(path="home.kitchen", limit=1)] == [
                "home.kitchen.temp"
            ]
            assert [str(e.path) async for e in bob.replay(T0 + 25 * S, path="home")] == [
                "home",
                "home.kitchen",
                "home.kitchen.temp",
            ]
            for stream, denied in (
                (bob.log(), "may not log :"),  # no path: everything
                (bob.log(path="garage"), "may not log garage"),
                (bob.log(path=":", follow=True), "may not log :"),
                (bob.replay(T0), "may not replay :"),
                (bob.replay(T0, path="garage.door"), "may not replay garage.door"),
            ):
                with pytest.raises(RequestError, match=denied) as caught:
                    [item async for item in stream]
                assert caught.value.error_type == "permission-denied"
            assert await bob.value("home.kitchen") == "room"  # still connected
