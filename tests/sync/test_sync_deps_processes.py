"""A node that lost its data writes with deps no older than its last event's (real processes).

The reproduction of the bug report: two nodes, many events on one, a write
on the other that saw them all, then that node's data directory is removed.
It gets its own event back first (its name sorts first, so its wants name
it first) and serves long before it holds the other's events again.  Its
next write must still claim everything its previous one had seen, or
``moat-log conflicts`` lists a conflict that did not happen.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path as FsPath

import pytest
import trio
from cluster_support import WAIT, conflicts, deps_decreases, event_of, until_holds
from process_support import NodeProcess

from moat_log import open_client
from moat_log.idset import IdSet

#: Enough that the recovered node serves while it lacks most of them (it
#: gets its own event back in the first batch of at most 1,024 events).
EVENTS = 8000


@pytest.mark.slow
async def test_a_recovered_node_writes_with_deps_not_older_than_its_last_event(
    base: FsPath,
) -> None:
    n2 = NodeProcess("n2", base)
    n1 = NodeProcess("n1", base)
    try:
        n2.start()
        n1.peers = [n2.sync_address]
        n1.start()
        history = base / "history.jsonl"
        lines = (json.dumps({"path": f"home.t{i % 50}", "value": i}) for i in range(EVENTS))
        history.write_text("\n".join(lines) + "\n")
        n2.cli("ingest", str(history))  # beside the running node, into its journal
        async with open_client(data_dir=n2.data_dir) as client:
            await client.set("home.p", "written by n2")
        with trio.fail_after(WAIT):
            await until_holds(n1, IdSet.of_range("n2", 1, EVENTS + 1))
        async with open_client(data_dir=n1.data_dir) as client:
            await client.set("home.p", "n1, having seen n2")
        seen = await event_of(n1, "home.p")
        assert (seen.seq, dict(seen.deps)) == (1, {"n2": EVENTS + 1})
        with trio.fail_after(WAIT):
            await until_holds(n2, IdSet.parse("n1:1"))

        n1.stop()
        shutil.rmtree(n1.data_dir)
        n1.start()  # "ready" once it holds n1:1 again
        async with open_client(data_dir=n1.data_dir) as client:
            lacking = EVENTS + 2 - (await client.status())["journal"]["events"]
            await client.set("home.p", "n1 again")
        again = await event_of(n1, "home.p")
        assert lacking > 0, "the node served only once it held everything: no test"
        with trio.fail_after(WAIT):
            await until_holds(n2, IdSet.parse("n1:1-2"))
        assert (again.seq, dict(again.deps), conflicts(n2)) == (2, {"n2": EVENTS + 1}, [])
    finally:
        for node in (n1, n2):
            node.stop()
    for node in (n1, n2):
        assert deps_decreases(node.data_dir) == []
        assert "deps decrease" not in node.cli("verify")
