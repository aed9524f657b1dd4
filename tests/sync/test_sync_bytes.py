"""What crosses the wire: summaries only between nodes in sync, compact catch-ups."""

from __future__ import annotations

import random

import pytest
import zstandard
from sync_support import SimLink, SimNode, settle

from moat_log.event import Event
from moat_log.idset import IdSet
from moat_log.rangeset import RangeSet
from moat_log.sync.messages import Hello, Proof, Summary, encode
from moat_log.testing import bus_traffic


def write_bus_traffic(node: SimNode, count: int, seed: int = 1) -> list[Event]:
    rng = random.Random(seed)
    written = []
    for change in bus_traffic(random.Random(seed), count):
        node.clock.advance(rng.randint(10**6, 2 * 10**9))
        written.append(node.write(change.path, change.value))
    return written


def in_sync_nodes(origins: int) -> tuple[SimNode, SimNode]:
    """Two nodes holding the same events of *origins* origins."""
    a, b = SimNode("a"), SimNode("b")
    for index in range(origins):
        writer = SimNode(f"origin-{index:03d}")
        for i in range(3):
            writer.write(("x", i), i)
        events = [event for _, event in writer.journal.scan()]
        a.store(events)
        b.store(events)
    return a, b


@pytest.mark.parametrize("origins", [1, 10, 100])
def test_nodes_in_sync_exchange_only_their_summaries(origins: int) -> None:
    a, b = in_sync_nodes(origins)
    link = SimLink(a, b)
    settle([a, b], [link])
    for end in link.ends.values():
        stats = end.conn.stats
        assert (stats.events_in, stats.events_out, stats.wants_in, stats.wants_out) == (0, 0, 0, 0)
    held = a.holdings.summary()
    # Both hellos say 'compaction', so each summary carries an empty 'gone'.
    summary = len(encode(Summary(held, a.holdings.tips(), IdSet())))
    hello = len(encode(Hello(1, "a", bytes(32), compaction=True)))
    proof = len(encode(Proof(bytes(32))))
    assert link.bytes_sent == 2 * (hello + proof + summary)


def test_summary_bytes_grow_with_the_origins_not_the_events() -> None:
    def summary_bytes(origins: int, events: int) -> int:
        held = IdSet({f"origin-{i:03d}": RangeSet([(1, events)]) for i in range(origins)})
        tips = {origin: (events, 2**60) for origin in held.origins}
        return len(encode(Summary(held, tips)))

    # per origin, the range's end and the tip's seq are a uint32, not a fixint
    assert summary_bytes(10, 10**9) - summary_bytes(10, 1) == 10 * 2 * 4
    # per origin: "origin-000" (11 bytes) and [1, 5] (3 bytes) in held, and in
    # tips the name again and [5, hlc] (1 + 1 + 9 bytes)
    assert summary_bytes(100, 5) - summary_bytes(50, 5) == 50 * (14 + 22)


@pytest.mark.parametrize("events", [100, 5000])
def test_a_catch_up_costs_at_most_one_and_a_half_times_the_zstd_size(events: int) -> None:
    a, b = SimNode("a"), SimNode("b")
    missing = write_bus_traffic(a, events)
    link = SimLink(a, b)
    settle([a, b], [link])
    assert b.event_set() == a.event_set()
    compressed = len(zstandard.ZstdCompressor().compress(b"".join(e.pack() for e in missing)))
    assert link.bytes_sent <= 1.5 * compressed
    assert link.end("b").conn.stats.events_in == events


def test_a_node_back_from_a_partition_fetches_only_what_it_missed() -> None:
    a, b = SimNode("a"), SimNode("b")
    link = SimLink(a, b)
    write_bus_traffic(a, 200, seed=1)
    write_bus_traffic(b, 200, seed=2)
    settle([a, b], [link])
    link.cut()
    missed_by_b = write_bus_traffic(a, 300, seed=3)
    missed_by_a = write_bus_traffic(b, 50, seed=4)
    link = SimLink(a, b)
    settle([a, b], [link])
    assert a.event_set() == b.event_set()
    assert link.end("b").conn.stats.events_in == len(missed_by_b)
    assert link.end("a").conn.stats.events_in == len(missed_by_a)
    assert a.holdings.summary().count == 750
