"""The pure parts of watching: the catch-up decision and the hub."""

from __future__ import annotations

import trio
import trio.testing

from moat_log.event import Event, Op
from moat_log.node._watch import CatchUp, WatchHub
from moat_log.path import Path

T0 = 1_767_225_600 * 10**9


def event(seq: int, path: str, value: object = None, *, origin: str = "pi1", hlc: int = 0) -> Event:
    op = Op.DELETE if value is None else Op.SET
    return Event(origin, seq, hlc or T0 + seq, {}, Path.parse(path), op, value)


def test_catch_up_drops_what_the_dump_read_and_keeps_what_came_later() -> None:
    catch_up = CatchUp()
    a1, b2, a3, c4 = event(1, "a", 1), event(2, "b", 2), event(3, "a", 3), event(4, "c", 4)
    for buffered in (a1, b2, a3, c4):
        catch_up.buffer(buffered)
    catch_up.dumped(a1)  # the dump read a when a1 had won, before a3
    catch_up.dumped(b2)  # the dump read b after b2: already sent
    catch_up.dumped(event(9, "d", 9))  # no buffered event for d
    # c was read before c4 (there was no record yet): nothing dumped for it
    assert list(catch_up.remaining()) == [a3, c4]
    assert len(catch_up) == 2


def test_catch_up_compares_hlc_then_origin() -> None:
    catch_up = CatchUp()
    theirs = event(7, "x", "theirs", origin="pi2", hlc=T0)
    ours = event(7, "x", "ours", origin="pi1", hlc=T0)
    catch_up.buffer(theirs)
    catch_up.dumped(ours)  # same hlc, "pi2" > "pi1": theirs is newer than the dump
    assert list(catch_up.remaining()) == [theirs]
    catch_up.dumped(theirs)
    assert list(catch_up.remaining()) == []


def test_catch_up_keeps_deletes() -> None:
    catch_up = CatchUp()
    gone = event(2, "x")
    catch_up.buffer(gone)
    catch_up.dumped(event(1, "x", 1))  # the dump read the set before the delete
    assert list(catch_up.remaining()) == [gone]


def test_the_hub_offers_events_under_the_prefix_and_overflows_a_slow_subscriber() -> None:
    hub = WatchHub()
    home = hub.subscribe(Path.parse("home"), 2)
    everything = hub.subscribe(Path(), 10)
    assert hub.interested(Path.parse("home.a")) and hub.interested(Path.parse("x"))
    for seq, path in enumerate(["home.a", "hall.b", "home.c", "home"], 1):
        hub.publish(event(seq, path, seq))
    assert home.overflowed  # home.a, home.c fit; "home" itself did not
    assert [e.seq for e in home.drain()] == [1, 3]
    assert not everything.overflowed
    assert [e.seq for e in everything.drain()] == [1, 2, 3, 4]
    hub.unsubscribe(home)
    hub.unsubscribe(everything)
    assert len(hub) == 0
    assert not hub.interested(Path.parse("home.a"))


async def test_an_overflowed_subscription_ends_its_reader() -> None:
    hub = WatchHub()
    sub = hub.subscribe(Path(), 1)
    received: list[Event | None] = []

    async def reader() -> None:
        for _ in range(3):
            received.append(await sub.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        hub.publish(event(1, "a", 1))
        await trio.testing.wait_all_tasks_blocked()
        hub.publish(event(2, "a", 2))  # handed to the waiting reader
        hub.publish(event(3, "a", 3))  # buffered
        hub.publish(event(4, "a", 4))  # overflow: the reader stops after what it holds
    assert [e.seq if e else None for e in received] == [1, 2, None]
