"""The pure part of watching: which winners taken during the dump are still news."""

from __future__ import annotations

from moat_log.event import Event, Op
from moat_log.journal.item import FeedItem
from moat_log.path import Path
from moat_log.projections.watch import CatchUp

T0 = 1_767_225_600 * 10**9


def event(seq: int, path: str, value: object = None, *, origin: str = "pi1", hlc: int = 0) -> Event:
    op = Op.DELETE if value is None else Op.SET
    return Event(origin, seq, hlc or T0 + seq, {}, Path.parse(path), op, value)


def item(event: Event) -> FeedItem:
    return FeedItem(event.seq, event, event.pack(), True)


def remaining(catch_up: CatchUp) -> list[Event]:
    return [item.event for item in catch_up.remaining()]


def test_catch_up_drops_what_the_dump_read_and_keeps_what_came_later() -> None:
    catch_up = CatchUp()
    a1, b2, a3, c4 = event(1, "a", 1), event(2, "b", 2), event(3, "a", 3), event(4, "c", 4)
    for buffered in (a1, b2, a3, c4):
        catch_up.buffer(item(buffered))
    catch_up.dumped(a1)  # the dump read a when a1 had won, before a3
    catch_up.dumped(b2)  # the dump read b after b2: already sent
    catch_up.dumped(event(9, "d", 9))  # no buffered event for d
    # c was read before c4 (there was no record yet): nothing dumped for it
    assert remaining(catch_up) == [a3, c4]
    assert len(catch_up) == 2


def test_catch_up_compares_hlc_then_origin() -> None:
    catch_up = CatchUp()
    theirs = event(7, "x", "theirs", origin="pi2", hlc=T0)
    ours = event(7, "x", "ours", origin="pi1", hlc=T0)
    catch_up.buffer(item(theirs))
    catch_up.dumped(ours)  # same hlc, "pi2" > "pi1": theirs is newer than the dump
    assert remaining(catch_up) == [theirs]
    catch_up.dumped(theirs)
    assert remaining(catch_up) == []


def test_catch_up_keeps_deletes() -> None:
    catch_up = CatchUp()
    gone = event(2, "x")
    catch_up.buffer(item(gone))
    catch_up.dumped(event(1, "x", 1))  # the dump read the set before the delete
    assert remaining(catch_up) == [gone]
