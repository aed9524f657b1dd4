"""The node server in this process, through `open_client` and raw connections."""

from __future__ import annotations

import logging
import socket
import threading
from functools import partial
from pathlib import Path as FsPath
from typing import Any

import pytest
import trio
import trio.testing
from node_support import (
    ALICE_PASSWORD,
    BOB_PASSWORD,
    FAST,
    LOOPBACK_ANY_PORT,
    UNIX,
    RawConnection,
    config,
    open_raw,
    running_node,
    stall_a_stream,
    tcp_address,
    users,
    write_from_another_process,
)

from moat_log import open_client
from moat_log.client import Client, NodeConnectionError
from moat_log.errors import (
    AuthenticationError,
    BadRequestError,
    NodeStoppingError,
    PermissionDeniedError,
)
from moat_log.event import Event, Op
from moat_log.journal import store
from moat_log.journal.change import Change
from moat_log.journal.verify import verify_journal
from moat_log.node import Node, NodeRunningError, serve_node
from moat_log.node._node import READ_CHUNK
from moat_log.path import Path
from moat_log.projections import kv_view, open_journal
from moat_log.protocol import LIVE, Written


async def test_set_get_delete_list_subtree_history_status(data_dir: FsPath) -> None:
    async with running_node(config(data_dir)) as node, open_client(data_dir=data_dir) as client:
        assert client.node == "pi1"
        written = await client.set("home.kitchen.temp", 21.5)
        assert written.id.origin == "pi1"
        await client.set(Path.parse("home.kitchen.light"), True, source="test:1")
        await client.set(["home", "hall", 3], {"on": [1, 2]})
        event = await client.get("home.kitchen.temp")
        assert isinstance(event, Event)
        assert (event.id, event.hlc, event.value, event.source) == (
            written.id,
            written.hlc,
            21.5,
            "client",  # a local connection without a user
        )
        assert await client.value("home.kitchen.light") is True
        assert await client.list("home") == ["hall", "kitchen"]
        assert await client.list(":") == ["home"]
        paths = [str(e.path) async for e in client.subtree("home")]
        assert paths == ["home.hall:3", "home.kitchen.light", "home.kitchen.temp"]

        deleted = await client.delete("home.kitchen.temp")
        assert deleted.id.seq == written.id.seq + 3
        assert await client.get("home.kitchen.temp") is None
        assert await client.value("home.kitchen.temp", "gone") == "gone"
        assert await client.get("never.set") is None
        assert await client.list("home.kitchen") == ["light"]
        await client.set("home.kitchen.temp", 22.0)

        history = [e async for e in client.history("home.kitchen.temp")]
        assert [(e.op, e.value) for e in history] == [
            (Op.SET, 21.5),
            (Op.DELETE, None),
            (Op.SET, 22.0),
        ]
        newest = [e.value async for e in client.history("home.kitchen.temp", limit=2)]
        assert newest == [None, 22.0]
        per_path = [
            (str(e.path), e.value)
            async for e in client.history("home.kitchen", recursive=True, limit=1)
        ]
        assert per_path == [("home.kitchen.light", True), ("home.kitchen.temp", 22.0)]

        status = await client.status()
        assert status["node"] == "pi1"
        assert status["protocol"] == 1
        assert status["user"] is None
        assert status["journal"]["events"] == 5
        assert status["views"]["kv"]["checkpoint"] == status["journal"]["last_position"]
        assert status["connections"] == 1
        assert status["listen"] == node.addresses


async def test_bad_values_are_refused_and_the_connection_goes_on(data_dir: FsPath) -> None:
    async with running_node(config(data_dir)), open_client(data_dir=data_dir) as client:
        with pytest.raises(BadRequestError) as caught:
            await client.set("big", b"x" * (2 << 20))  # the event would be over 1 MiB
        assert caught.value.error_type in ("invalid-value", "bad-request")
        assert await client.set("small", 1)


async def test_200_concurrent_sets_from_20_tasks_are_all_acknowledged(data_dir: FsPath) -> None:
    written: dict[str, Any] = {}
    async with running_node(config(data_dir)), open_client(data_dir=data_dir) as client:

        async def one(task: int, index: int) -> None:
            result = await client.set(f"load.t{task:02}.i{index}", task * 100 + index)
            written[f"load.t{task:02}.i{index}"] = result

        async def task(number: int) -> None:
            async with trio.open_nursery() as nursery:
                for index in range(10):
                    nursery.start_soon(one, number, index)

        async with trio.open_nursery() as nursery:
            for number in range(20):
                nursery.start_soon(task, number)

        assert len(written) == 200
        assert len({w.id.seq for w in written.values()}) == 200
        stored = {str(e.path): e async for e in client.subtree("load")}
        assert set(stored) == set(written)
        for path, result in written.items():
            assert stored[path].id == result.id


async def watch_items(watcher: Client, writer: Client, prefix: str) -> list[Any]:
    """Every watch item up to the live marker, and after it up to a last change.

    Once the marker arrives, *writer* sets ``PREFIX.zz``; the watch must
    send it, after every change made before it.
    """
    items: list[Any] = []
    end = f"{prefix}.zz"
    with trio.fail_after(20):
        async with watcher.watch(prefix) as watch:
            async for item in watch:
                items.append(item)
                if item is LIVE:
                    await writer.set(end, "end")
                elif LIVE in items and str(item.path) == end:
                    return items
    raise AssertionError("the watch ended")


async def test_watch_sends_the_state_the_marker_then_changes_once(
    data_dir: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_node(config(data_dir)) as node, open_client(data_dir=data_dir) as writer:
        for index in range(12):
            await writer.set(f"home.p{index:02}", f"old{index}")
        await writer.set("other.x", 1)

        # Pause the dump after its first chunk of four and write meanwhile.
        paused, go_on = trio.Event(), trio.Event()
        reads = 0

        async def read_chunk_at(items: Any, size: int = READ_CHUNK) -> Any:
            nonlocal reads
            reads += 1
            if reads == 2:
                paused.set()
                await go_on.wait()
            return await Node.read_chunk_at(node, items, 4)

        monkeypatch.setattr(node, "read_chunk_at", read_chunk_at)
        # ... and make the KV view read LMDB four records at a time, so that
        # each chunk is read when the dump asks for it.
        monkeypatch.setattr(store, "SCAN_CHUNK", 4)

        async def write_during_the_dump() -> None:
            await paused.wait()
            await writer.set("home.p01", "new1")  # already dumped: must come live
            await writer.set("home.p02x", "new")  # new, in the dumped range: live
            await writer.set("home.p05", "new5")  # not dumped yet: in the dump only
            await writer.delete("home.p09")  # not dumped yet: left out, no live delete
            await writer.set("home.p99", "new")  # new, after the dumped range: dump only
            await writer.set("other.y", 2)  # not under the prefix
            go_on.set()

        async with open_client(data_dir=data_dir) as watcher, trio.open_nursery() as nursery:
            nursery.start_soon(write_during_the_dump)
            items = await watch_items(watcher, writer, "home")

    marker = items.index(LIVE)
    dump = {str(e.path): e.value for e in items[:marker]}
    live = [(str(e.path), e.value) for e in items[marker + 1 :]]
    expected = {f"home.p{i:02}": f"old{i}" for i in range(12) if i != 9}
    expected.update({"home.p01": "old1", "home.p05": "new5", "home.p99": "new"})
    assert dump == expected
    assert live == [("home.p01", "new1"), ("home.p02x", "new"), ("home.zz", "end")]
    assert [str(e.path) for e in items[:marker]] == sorted(dump)  # key order


async def test_watch_waits_until_what_its_dump_read_is_published(
    data_dir: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write the dump read but the feed had not yet handed out is sent once, in the dump.

    Another process's write is committed to the journal before the node's
    feed knows of it.  Had the dump not waited for the feed to catch up, the
    write would also come live, after the marker.
    """
    monkeypatch.setattr(store, "SCAN_CHUNK", 4)
    async with running_node(config(data_dir)) as node, open_client(data_dir=data_dir) as writer:
        node.feed.poll_interval = 3600  # only a gap or a watch's wait wake the feed
        for index in range(12):
            await writer.set(f"home.p{index:02}", f"old{index}")
        paused, go_on = trio.Event(), trio.Event()
        reads = 0

        async def read_chunk_at(items: Any, size: int = READ_CHUNK) -> Any:
            nonlocal reads
            reads += 1
            if reads == 2:
                paused.set()
                await go_on.wait()
            return await Node.read_chunk_at(node, items, 4)

        monkeypatch.setattr(node, "read_chunk_at", read_chunk_at)

        async def interleave() -> None:
            await paused.wait()
            await write_from_another_process(data_dir, "home.p05", "new5")
            assert node.feed.position < node.journal.last_position  # not handed out yet
            go_on.set()  # the dump reads p05's new value

        async with open_client(data_dir=data_dir) as watcher, trio.open_nursery() as nursery:
            nursery.start_soon(interleave)
            items = await watch_items(watcher, writer, "home")
    marker = items.index(LIVE)
    assert {str(e.path): e.value for e in items[:marker]}["home.p05"] == "new5"
    assert [str(e.path) for e in items[marker + 1 :]] == ["home.zz"]


async def test_two_winners_of_one_path_in_one_commit_both_reach_the_watcher(
    data_dir: FsPath,
) -> None:
    """Each was the path's current value when it was stored, so each is a change."""
    async with (
        running_node(config(data_dir)) as node,
        open_client(data_dir=data_dir) as watcher,
        watcher.watch("home") as watch,
    ):
        assert await watch.__anext__() is LIVE
        results: list[object] = []
        for value in ("first", "second"):  # queued together: one group commit
            node.writer.submit(Change(Path.parse("home.x"), value), results.append)
        with trio.fail_after(10):
            changes = [await watch.__anext__(), await watch.__anext__()]
    assert [e.value for e in changes if isinstance(e, Event)] == ["first", "second"]
    assert [e.value for e in results if isinstance(e, Event)] == ["first", "second"]


async def test_a_write_reads_nothing_back_for_its_watchers(
    data_dir: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit says which events won their paths: the acknowledgement waits on no KV read."""
    async with (
        running_node(config(data_dir)) as node,
        open_client(data_dir=data_dir) as client,
        client.watch("home") as watch,
    ):
        assert await watch.__anext__() is LIVE
        reads: list[Path] = []
        get = node.kv.get

        def counting_get(path: Path) -> Event | None:
            reads.append(path)
            return get(path)

        monkeypatch.setattr(node.kv, "get", counting_get)
        await client.set("home.x", 1)
        with trio.fail_after(10):
            change = await watch.__anext__()
    assert isinstance(change, Event) and change.value == 1
    assert reads == []


async def test_an_event_is_packed_once_for_all_its_watchers(
    data_dir: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        running_node(config(data_dir)),
        open_client(data_dir=data_dir) as client,
        client.watch("home") as first,
        client.watch("home") as second,
        client.log(path="home", follow=True) as log,
    ):
        for stream in (first, second, log):
            assert await stream.__anext__() is LIVE
        packed = 0
        pack = Event.pack

        def counting(event: Event) -> bytes:
            nonlocal packed
            packed += 1
            return pack(event)

        monkeypatch.setattr(Event, "pack", counting)
        await client.set("home.x", 1)
        with trio.fail_after(10):
            for stream in (first, second, log):
                assert (await stream.__anext__()).value == 1
    assert packed == 1  # by the journal's write; the three streams send its bytes


async def test_a_watch_hears_of_another_process_writes(data_dir: FsPath) -> None:
    async with (
        running_node(config(data_dir)),
        open_client(data_dir=data_dir) as watcher,
        watcher.watch("home") as watch,
    ):
        assert await watch.__anext__() is LIVE
        await write_from_another_process(data_dir, "home.offline", "hello")
        with trio.fail_after(10):
            event = await watch.__anext__()
    assert isinstance(event, Event)
    assert (str(event.path), event.value, event.source) == ("home.offline", "hello", "")


async def test_watch_under_constant_writes_has_no_gap_and_no_duplicate(
    data_dir: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small reads, so that writes commit between the reads of the dump.
    monkeypatch.setattr(store, "SCAN_CHUNK", 8)
    async with running_node(config(data_dir)) as node, open_client(data_dir=data_dir) as writer:
        monkeypatch.setattr(node, "read_chunk_at", partial(Node.read_chunk_at, node, size=8))
        async with trio.open_nursery() as nursery:
            for index in range(600):
                nursery.start_soon(writer.set, f"w.k{index:03}", index)
        stop, started = trio.Event(), trio.Event()

        async def keep_writing(task: int) -> None:
            count = 0
            while not stop.is_set():
                await writer.set(f"w.k{(count * 7 + task * 101) % 600:03}", 1000 + count)
                if count % 3 == 0:
                    await writer.delete(f"w.k{(count * 11 + task * 37) % 600:03}")
                count += 1
                started.set()

        state: dict[str, Event] = {}
        seen: set[Any] = set()
        live = 0

        async def apply(watch: Any, stop_at: int | None, end: str | None) -> None:
            nonlocal live
            async for item in watch:
                if item is LIVE:
                    live = 1
                    continue
                assert item.id not in seen, f"{item.id} was sent twice"
                seen.add(item.id)
                before = state.get(str(item.path))
                if before is not None:  # never an older state after a newer one
                    assert (item.hlc, item.origin) > (before.hlc, before.origin)
                state[str(item.path)] = item
                live += 1 if live else 0
                if live == stop_at or str(item.path) == end:
                    return

        async with open_client(data_dir=data_dir) as watcher:
            async with trio.open_nursery() as writers:
                for task in range(6):
                    writers.start_soon(keep_writing, task)
                await started.wait()
                watch = watcher.watch("w")
                await apply(watch, 200, None)
                stop.set()
            # Every writer has finished; a last change marks the end.
            await writer.set("w.zz", "end")
            with trio.fail_after(20):
                await apply(watch, None, "w.zz")
            await watch.aclose()
        current = {str(e.path): e async for e in writer.subtree("w")}
    held = {path: e for path, e in state.items() if e.op is Op.SET}
    assert held == current  # the watcher holds an exact copy


async def test_leaving_a_watch_cancels_it(data_dir: FsPath) -> None:
    async with running_node(config(data_dir)) as node, open_client(data_dir=data_dir) as client:
        await client.set("home.a", 1)
        node_own = node.feed.subscriptions  # the node's types and scripts follow the feed
        async with client.watch("home") as watch:
            assert [item async for item in _until_live(watch)] == [LIVE]
            assert node.feed.subscriptions == node_own + 1
        assert node.feed.subscriptions == node_own  # the final reply came after the watch
        assert await client.value("home.a") == 1


async def _until_live(watch: Any) -> Any:
    async for item in watch:
        if item is LIVE:
            yield item
            return


async def test_a_raw_cancel_gets_the_final_reply_cancelled(data_dir: FsPath) -> None:
    async with running_node(config(data_dir)) as node:
        raw = RawConnection(await open_raw(node.addresses[0]))
        assert (await raw.receive())["node"] == "pi1"
        await raw.send({"id": 7, "op": "watch", "path": []})
        assert await raw.receive() == {"id": 7, "item": {"state": "live"}}
        await raw.send({"id": 7, "cancel": True})
        error = await raw.receive()
        assert error["id"] == 7
        assert error["error"]["type"] == "cancelled"
        await raw.send({"id": 7, "op": "get", "path": ["x"]})  # the id is free again
        assert await raw.receive() == {"id": 7, "ok": None}


async def test_a_watcher_that_stops_reading_is_told_it_fell_behind(data_dir: FsPath) -> None:
    async with (
        running_node(config(data_dir, watch_buffer=4)) as node,
        open_client(data_dir=data_dir) as writer,
    ):
        request = {"id": 1, "op": "watch", "path": ["big"]}
        node_own = node.feed.subscriptions  # the node's types and scripts follow the feed
        raw, messages, message = await stall_a_stream(node, writer, request)
        assert message["error"]["type"] == "overflow"
        assert "watch fell behind" in message["error"]["message"]
        assert 0 < len(messages) < 60
        assert node.feed.subscriptions == node_own
        await raw.send({"id": 2, "op": "get", "path": ["big", "v59"]})
        assert (await raw.receive())["id"] == 2  # the connection goes on


async def test_protocol_garbage_ends_only_that_connection(data_dir: FsPath) -> None:
    async with running_node(config(data_dir)) as node, open_client(data_dir=data_dir) as client:
        for address in node.addresses:
            for garbage in (
                b"\x00\x00\x00\x03\xc1\xc1\xc1",
                b"\xff\xff\xff\xff",
                b"\x00\x00\x00\x00",
            ):
                raw = RawConnection(await open_raw(address))
                await raw.receive()
                await raw.stream.send_all(garbage)
                with trio.fail_after(10):
                    messages = await raw.until_closed()
                assert len(messages) == 1
                assert messages[0]["id"] is None
                assert messages[0]["error"]["type"] == "protocol"
                await client.set("still.working", address)
        assert await client.value("still.working") == node.addresses[-1]


async def test_a_connection_that_sends_nothing_is_closed(data_dir: FsPath) -> None:
    async with (
        running_node(config(data_dir, handshake_timeout=0.2)) as node,
        open_client(data_dir=data_dir) as client,
    ):
        await client.set("a", 1)  # this client has sent a request: it may idle
        raw = RawConnection(await open_raw(tcp_address(node)))
        with trio.fail_after(10):
            messages = await raw.until_closed()
        assert "moat-log" in messages[0]  # the greeting, then the goodbye
        assert [m.get("id", "-") for m in messages[1:]] == [None]
        assert "no request within 0.2 s" in messages[-1]["error"]["message"]
        assert await client.value("a") == 1


async def test_connections_beyond_the_limit_are_refused(data_dir: FsPath) -> None:
    async with (
        running_node(config(data_dir, max_connections=2)) as node,
        open_client(data_dir=data_dir) as first,
        open_client(data_dir=data_dir) as second,
    ):
        with trio.fail_after(10):
            assert (await first.status())["connections"] == 2
        raw = RawConnection(await open_raw(node.addresses[0]))
        messages = await raw.until_closed()
        assert messages[1]["error"]["type"] == "busy"
        assert "its limit" in messages[1]["error"]["message"]
        with pytest.raises(NodeConnectionError, match="busy"):
            async with open_client(data_dir=data_dir) as third:
                await third.status()
        assert await second.set("x", 1)


# --- authentication and permissions -------------------------------------------------


def auth_config(data_dir: FsPath) -> Any:
    return config(data_dir, users=users(), listen=(UNIX, LOOPBACK_ANY_PORT))


async def test_users_need_a_login_over_tcp_and_get_their_permissions(
    data_dir: FsPath, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="moat_log.node")
    async with running_node(auth_config(data_dir)) as node:
        tcp = tcp_address(node)
        login = partial(open_client, connect=tcp, min_scrypt_n=FAST.n)
        async with login(user="alice", password=ALICE_PASSWORD) as alice:
            assert alice.user == "alice"
            await alice.set("home.door", "closed")
            await alice.set("garage.door", "open")
            assert (await alice.status())["user"] == "alice"
            event = await alice.get("home.door")
            assert event is not None and event.source == "client:alice"
            # a source the client gives follows the user the node vouches for
            await alice.set("garage.light", "on", source="cli:root")
            event = await alice.get("garage.light")
            assert event is not None and event.source == "client:alice cli:root"
            await alice.set("garage.light", "off", source="client:bob")  # no posing as bob
            event = await alice.get("garage.light")
            assert event is not None and event.source == "client:alice client:bob"

        async with login(user="bob", password=BOB_PASSWORD) as bob:
            assert await bob.value("home.door") == "closed"
            assert [str(e.path) async for e in bob.subtree("home")] == ["home.door"]
            with pytest.raises(
                PermissionDeniedError, match=r"user 'bob' may not set home\.door"
            ) as caught:
                await bob.set("home.door", "open")
            assert caught.value.error_type == "permission-denied"
            with pytest.raises(PermissionDeniedError, match=r"may not get garage\.door"):
                await bob.get("garage.door")
            with pytest.raises(PermissionDeniedError, match="may not watch :"):
                async with bob.watch(":") as watch:
                    [item async for item in watch]
            assert await bob.list("home") == ["door"]  # still connected

        with pytest.raises(NodeConnectionError, match="requires a login"):
            async with open_client(connect=tcp):
                pass
        # The Unix socket is local: no login, no restrictions.
        async with open_client(data_dir=data_dir) as local:
            assert await local.value("garage.door") == "open"

    assert "denied: user 'bob' may not set home.door" in caplog.text
    assert ALICE_PASSWORD not in caplog.text and BOB_PASSWORD not in caplog.text


async def test_except_value_error_in_a_script_does_not_swallow_a_refusal_or_a_shutdown(
    data_dir: FsPath,
) -> None:
    """``except ValueError`` guards a script's own parsing; the node's refusals pass it."""

    async def set_guarded(client: Client, path: str, text: str) -> str:
        try:
            await client.set(path, float(text))
        except ValueError:
            return "not a number"
        return "written"

    async with running_node(auth_config(data_dir)) as node:
        login = partial(open_client, connect=tcp_address(node), min_scrypt_n=FAST.n)
        async with login(user="bob", password=BOB_PASSWORD) as bob:
            assert await set_guarded(bob, "home.t", "x") == "not a number"
            with pytest.raises(PermissionDeniedError):
                await set_guarded(bob, "home.t", "21.5")
    stop = trio.Event()

    async def watch_guarded(client: Client) -> str:
        try:
            async with client.watch("home") as watch:
                async for item in watch:
                    if item is LIVE:
                        stop.set()  # the node stops: the watch ends with shutdown
        except ValueError:
            return "swallowed"
        return "ended quietly"

    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve_node, config(data_dir), shutdown_trigger=stop.wait))
        async with open_client(data_dir=data_dir) as client:
            with pytest.raises(NodeStoppingError):
                await watch_guarded(client)


async def test_a_wrong_password_is_refused_clearly_and_the_node_goes_on(
    data_dir: FsPath, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="moat_log.node")
    async with running_node(auth_config(data_dir)) as node:
        login = partial(open_client, connect=tcp_address(node), min_scrypt_n=FAST.n)
        for user in ("bob", "nobody"):
            with pytest.raises(AuthenticationError, match="authentication failed") as caught:
                async with login(user=user, password="wrong guess"):
                    pass
            assert caught.value.error_type == "auth-failed"
        async with login(user="bob", password=BOB_PASSWORD) as bob:
            assert await bob.get("home.x") is None
    assert "authentication failed: wrong password or token 'bob'" in caplog.text
    assert "authentication failed: unknown user 'nobody'" in caplog.text
    assert "wrong guess" not in caplog.text


# --- starting and stopping ------------------------------------------------------------


def leave_a_stale_socket(data_dir: FsPath) -> None:
    """What a killed node leaves: the socket file, and nobody listening."""
    data_dir.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(data_dir / "moat-log.sock"))
    stale.close()


async def test_a_stale_socket_is_replaced_and_a_running_node_is_not(data_dir: FsPath) -> None:
    leave_a_stale_socket(data_dir)
    async with running_node(config(data_dir)), open_client(data_dir=data_dir) as client:
        await client.set("a", 1)
        with pytest.raises(NodeRunningError, match=r"another node \(.*\) is already serving"):
            await serve_node(config(data_dir))
        assert await client.value("a") == 1
    assert not (data_dir / "moat-log.sock").exists()


async def test_stopping_ends_watches_with_shutdown_and_keeps_every_write(data_dir: FsPath) -> None:
    stop = trio.Event()
    acknowledged: list[str] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve_node, config(data_dir), shutdown_trigger=stop.wait))
        async with open_client(data_dir=data_dir) as client:
            for index in range(20):
                await client.set(f"s.k{index}", index)
                acknowledged.append(f"s.k{index}")
            async with client.watch("s") as watch:
                async for item in watch:
                    if item is LIVE:
                        stop.set()
                        break
                with pytest.raises(NodeStoppingError, match="the node is stopping") as caught:
                    async for _ in watch:
                        pass
                assert caught.value.error_type == "shutdown"
            with pytest.raises(NodeConnectionError, match="shutdown"):
                await client.get("s.k1")
    with open_journal(data_dir) as journal:
        assert verify_journal(journal).ok
        kv = kv_view(journal)
        assert [str(e.path) for e in kv.walk(Path(["s"]))] == sorted(acknowledged)


async def test_writes_in_flight_when_the_node_stops_are_committed_and_answered(
    data_dir: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop = trio.Event()
    answers: list[object] = []
    async with trio.open_nursery() as nursery:
        node = await nursery.start(
            partial(serve_node, config(data_dir), shutdown_trigger=stop.wait)
        )
        real_commit = node.journal.commit
        entered, release = trio.Event(), threading.Event()
        token = trio.lowlevel.current_trio_token()

        def held_commit(items: Any) -> Any:
            token.run_sync_soon(entered.set)
            release.wait()
            return real_commit(items)

        monkeypatch.setattr(node.journal, "commit", held_commit)
        async with open_client(data_dir=data_dir) as client:

            async def write(index: int) -> None:
                answers.append(await client.set(f"s.k{index}", index))

            try:
                async with trio.open_nursery() as writers:
                    for index in range(5):
                        writers.start_soon(write, index)
                    await entered.wait()  # the writes are in the node's writer
                    stop.set()
                    await trio.testing.wait_all_tasks_blocked()  # the node is stopping
                    release.set()
            finally:
                release.set()
    assert len(answers) == 5
    assert all(isinstance(answer, Written) for answer in answers)
    with open_journal(data_dir) as journal:
        assert sorted(str(e.path) for e in kv_view(journal).walk(Path(["s"]))) == [
            f"s.k{index}" for index in range(5)
        ]


async def test_an_idle_connection_on_the_unix_socket_is_not_timed_out(
    data_dir: FsPath, autojump_clock: trio.abc.Clock
) -> None:
    async with running_node(config(data_dir, handshake_timeout=0.2)) as node:
        unix = next(a for a in node.addresses if a.startswith("unix:"))
        raw = RawConnection(await open_raw(unix))
        assert "moat-log" in await raw.receive()  # the greeting
        await trio.sleep(60)  # virtual time: a script thinking for a minute
        await raw.send({"id": 1, "op": "status"})
        reply = await raw.receive()
        assert reply["id"] == 1 and reply["ok"]["node"] == "pi1"


def test_the_recorded_source_names_the_logged_in_user_first() -> None:
    from moat_log.node._session import recorded_source

    assert recorded_source(None, None) == "client"
    assert recorded_source(None, "script:heating") == "script:heating"  # local: as given
    assert recorded_source("alice", None) == "client:alice"
    assert recorded_source("alice", "client:alice") == "client:alice"
    assert recorded_source("alice", "script:heating") == "client:alice script:heating"
    long = recorded_source("alice", "x" * 256)
    assert len(long) == 256 and long.startswith("client:alice x")
