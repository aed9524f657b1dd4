"""A node with none of its own events gets them back from a peer before it serves.

`recover_own_history` against real journals linked over a socket pair: the
node that lost its data numbers its next event after its old ones, so its
history does not fork; a node with no peer waits no longer than asked.
"""

from __future__ import annotations

import logging
from pathlib import Path as FsPath

import pytest
import trio
import trio.testing
from test_sync_link import GUARD, link, running_node

from moat_log.node._recover import RECOVERY_MARKER, recover_own_history
from moat_log.rangeset import RangeSet


async def write_history(tmp_path: FsPath, events: int) -> None:
    """pi3 writes *events* events, and pi1 gets them all; then pi3's disk dies."""
    async with (
        running_node(tmp_path / "lost", "pi3") as pi3,
        running_node(tmp_path, "pi1") as pi1,
        trio.open_nursery() as nursery,
    ):
        await pi3.write(events)
        await link(pi3, pi1, nursery)
        await pi1.until(lambda: pi1.journal.summary().seqs("pi3") == RangeSet([(1, events)]))
        nursery.cancel_scope.cancel()


async def test_a_node_that_lost_its_data_gets_its_history_back_and_numbers_on(
    tmp_path: FsPath,
) -> None:
    with trio.fail_after(GUARD):
        await write_history(tmp_path, 1200)  # several wants' worth
        async with (
            running_node(tmp_path / "new-card", "pi3", want_size=500) as pi3,
            running_node(tmp_path, "pi1") as pi1,
            trio.open_nursery() as nursery,
        ):
            await link(pi1, pi3, nursery)
            recovered = await recover_own_history(pi3.replicator, wait=GUARD)
            assert recovered == 1200
            assert pi3.journal.summary().seqs("pi3") == RangeSet([(1, 1200)])
            (event,) = await pi3.write(1, prefix="after")
            assert event.seq == 1201
            assert event.hlc > pi1.journal.get(("pi3", 1200)).hlc  # type: ignore[arg-type, union-attr]
            await pi1.until(lambda: pi1.journal.summary().seqs("pi3") == RangeSet([(1, 1201)]))
            nursery.cancel_scope.cancel()


async def test_a_node_stopped_half_way_through_its_recovery_finishes_it_first(
    tmp_path: FsPath,
) -> None:
    """The marker file makes a restarted node wait again although it holds own events."""
    marker = tmp_path / "new-card" / RECOVERY_MARKER
    with trio.fail_after(GUARD):
        await write_history(tmp_path, 3000)
        async with (
            running_node(tmp_path / "new-card", "pi3", want_size=100) as pi3,
            running_node(tmp_path, "pi1") as pi1,
        ):
            async with trio.open_nursery() as first_run:
                await link(pi1, pi3, first_run)
                first_run.start_soon(recover_own_history, pi3.replicator, GUARD, marker)
                await pi3.until(lambda: "pi3" in pi3.journal.summary().origins)
                first_run.cancel_scope.cancel()  # the node is stopped half way
            got = pi3.journal.summary().seqs("pi3")
            assert 0 < got.count < 3000 and marker.exists()
            async with trio.open_nursery() as second_run:  # started again
                await link(pi1, pi3, second_run)
                assert await recover_own_history(pi3.replicator, GUARD, marker) == 3000
                assert not marker.exists()
                (event,) = await pi3.write(1, prefix="after")
                assert event.seq == 3001
                second_run.cancel_scope.cancel()


async def test_a_fresh_node_of_a_new_cluster_starts_at_once(tmp_path: FsPath) -> None:
    with trio.fail_after(GUARD):
        async with (
            running_node(tmp_path, "pi3") as pi3,
            running_node(tmp_path, "pi1") as pi1,
            trio.open_nursery() as nursery,
        ):
            await pi1.write(10)  # the peer holds events, none of pi3's
            await link(pi1, pi3, nursery)
            assert await recover_own_history(pi3.replicator, wait=GUARD) == 0
            nursery.cancel_scope.cancel()


async def test_without_a_peer_the_node_waits_as_long_as_asked_and_says_so(
    tmp_path: FsPath, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_node(tmp_path, "pi3") as pi3:
        start = trio.current_time()
        with caplog.at_level(logging.INFO, logger="moat_log.sync"):
            assert await recover_own_history(pi3.replicator, wait=10) == 0
        assert trio.current_time() - start == pytest.approx(10)
    assert "no peer answered within 10 s" in caplog.text


async def test_a_node_with_events_of_its_own_does_not_wait(
    tmp_path: FsPath, autojump_clock: trio.testing.MockClock
) -> None:
    async with running_node(tmp_path, "pi3") as pi3:
        (event,) = await pi3.write(1)
        await pi3.until(lambda: pi3.replicator.holdings.holds("pi3", event.seq))
        start = trio.current_time()
        assert await recover_own_history(pi3.replicator, wait=3600) == 0
        assert trio.current_time() == start


async def test_wait_0_does_not_wait(
    tmp_path: FsPath, autojump_clock: trio.testing.MockClock
) -> None:
    async with running_node(tmp_path, "pi3") as pi3:
        start = trio.current_time()
        assert await recover_own_history(pi3.replicator, wait=0) == 0
        assert trio.current_time() == start
