"""Waiting on real nodes over the client protocol, and reading their journals afterwards.

Every wait watches something the node tells (a followed log, a status), never
the clock; the caller bounds it with ``trio.fail_after``.
"""

from __future__ import annotations

import json
from contextlib import suppress
from itertools import pairwise
from pathlib import Path as FsPath

import trio
from process_support import NodeProcess

from moat_log import StreamOverflowError, open_client
from moat_log.event import Event
from moat_log.idset import IdSet
from moat_log.projections import open_journal
from moat_log.rangeset import RangeSet

#: How long one wait on a node may take before the test fails.
WAIT = 60


async def until_holds(node: NodeProcess, wanted: IdSet) -> None:
    """Follow *node*'s log until it holds every event *wanted* names."""
    for origin, seqs in wanted.items():
        missing = seqs.copy()
        while missing:
            # Events may arrive faster than the log streams (overflow): then
            # follow again; it starts with everything the journal holds by then.
            with suppress(StreamOverflowError):
                await _follow(node, origin, missing)


async def _follow(node: NodeProcess, origin: str, missing: RangeSet) -> None:
    async with (
        open_client(data_dir=node.data_dir) as client,
        client.log(origin=origin, follow=True) as items,
    ):
        async for item in items:
            if isinstance(item, Event):
                missing.discard_range(item.seq, item.seq)
                if not missing:
                    return


async def event_of(node: NodeProcess, path: str) -> Event:
    """The event holding *path*'s value on *node*."""
    async with open_client(data_dir=node.data_dir) as client:
        event = await client.get(path)
    assert event is not None, f"{node.name} has no value at {path}"
    return event


def journal_events(data_dir: FsPath) -> dict[str, bytes]:
    """Every event of a (stopped) node's journal, packed, by id."""
    with open_journal(data_dir) as journal:
        return {str(event.id): event.pack() for _, event in journal.scan()}


def deps_decreases(data_dir: FsPath) -> list[str]:
    """Per origin in seq order, each pair of events whose deps decrease (none, we hope)."""
    found = []
    with open_journal(data_dir) as journal:
        for origin in journal.summary().origins:
            for before, after in pairwise(journal.by_origin(origin)):
                behind = before.deps.first_decrease(after.deps)
                if behind is not None:
                    found.append(
                        f"{before.id} {dict(before.deps)} -> {after.id} {dict(after.deps)}"
                    )
    return found


def conflicts(node: NodeProcess) -> list[dict[str, str]]:
    """``moat-log --json conflicts`` on the node's data directory."""
    found: list[dict[str, str]] = json.loads(node.cli("--json", "conflicts"))
    return found


async def stopped(node: NodeProcess) -> int:
    """SIGTERM and wait, off the event loop (a test's proxies keep running meanwhile)."""
    return await trio.to_thread.run_sync(node.stop)


async def started(node: NodeProcess) -> None:
    """Start and wait for ``ready``, off the event loop."""
    await trio.to_thread.run_sync(node.start)
