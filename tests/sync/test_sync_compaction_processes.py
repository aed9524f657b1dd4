"""Compaction across three real ``moat-log serve`` processes over 127.0.0.1.

``na`` dials ``nb`` and ``nc``.  While ``nc`` is away, ``na`` gets an hour
of old temperature readings and compacts: it writes the roll-ups but removes
nothing, because ``nc``, a known peer, has not confirmed holding them.
``nc`` comes back, catches up and confirms; then ``na`` removes the raw
readings.  All three end with the same values and roll-ups, every id in
every summary, and a journal that verifies; a fourth node that starts
afterwards gets the state (values, roll-ups), not an error.

The peers' confirmations live in the journal's meta, which no stream tells
of: `until_confirmed` reads ``moat-log --json peer ls`` until it shows them.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path as FsPath

import pytest
import trio
from cluster_support import until_holds
from process_support import NodeProcess

from moat_log.idset import IdSet
from moat_log.projections import open_journal

HOUR_NS = 3600 * 10**9
RETENTION = """have_every = 0.2
[retention]
[[retention.rules]]
name = "temps"
paths = ["t.temp"]
keep_raw = "10m"
rollup = "10m"
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def nodes(base: FsPath) -> Iterator[dict[str, NodeProcess]]:
    made = {
        name: NodeProcess(
            name, base, sync_port=free_port(), sync_settings=RETENTION, follow_log=True
        )
        for name in ("nb", "nc")
    }
    made["na"] = NodeProcess(
        "na",
        base,
        [f"127.0.0.1:{made[name].sync_port}" for name in ("nb", "nc")],
        sync_settings=RETENTION,
        follow_log=True,
    )  # fmt: skip
    try:
        yield made
    finally:
        for node in made.values():
            node.stop()


def summary_of(node: NodeProcess) -> tuple[IdSet, IdSet]:
    """What a node's journal holds (in the summary's sense) and what it compacted."""
    with open_journal(node.data_dir) as journal:
        return journal.summary(), journal.gone()


def peer_ls(node: NodeProcess) -> dict[str, dict[str, object]]:
    return {row["peer"]: row for row in json.loads(node.cli("--json", "peer", "ls"))["peers"]}


async def until_confirmed(node: NodeProcess, peer: str) -> None:
    """Until *node* (the current process) records that *peer* holds everything it holds."""
    await trio.to_thread.run_sync(node.wait_for_line, f"peer {peer} holds every event")
    assert peer_ls(node)[peer]["lacks"] == 0


def compact(node: NodeProcess) -> dict[str, object]:
    result: dict[str, object] = json.loads(
        node.cli("--json", "compact", "--config", str(node.config))
    )
    return result


def ingest_old_readings(node: NodeProcess, count: int) -> None:
    """*count* readings of t.temp an hour or two ago, and a command (kept for ever)."""
    ten_minutes = HOUR_NS // 6
    start = (time.time_ns() - 2 * HOUR_NS) // ten_minutes * ten_minutes  # on a roll-up boundary
    lines = [
        json.dumps({"path": "t.temp", "value": 20 + i % 5, "time": start + i * 12 * 10**9,
                    "source": "knx:1/2/3"})
        for i in range(count)
    ]  # fmt: skip
    lines.append(json.dumps({"path": "t.light", "value": True, "time": start + HOUR_NS}))
    readings = node.base / "readings.jsonl"
    readings.write_text("\n".join(lines) + "\n")
    node.cli("ingest", str(readings))


@pytest.mark.slow
async def test_an_away_peer_holds_compaction_back_until_it_is_back(
    nodes: dict[str, NodeProcess],
) -> None:
    a, b, c = nodes["na"], nodes["nb"], nodes["nc"]
    b.start()
    c.start()
    a.start()
    with trio.fail_after(60):
        await until_confirmed(a, "nb")
        await until_confirmed(a, "nc")
    # nc goes away; na gets old readings while it is stopped (its clock allows them then)
    c.kill()
    a.stop()
    ingest_old_readings(a, 300)
    a.start()
    held, _ = summary_of_running(a)
    with trio.fail_after(60):
        await until_holds(b, held)
        await until_confirmed(a, "nb")
    first = compact(a)
    assert first["removed"] == 0, "nc has not confirmed the readings"
    assert first["rollups"] == 6  # the hour of readings in 10-minute roll-ups
    assert first["kept_unconfirmed"] == 299  # all but the path's winner
    assert peer_ls(a)["nc"]["lacks"] == 301 + 6

    c.start()  # on its old port: na dials it again
    held, _ = summary_of_running(a)
    with trio.fail_after(90):
        await until_holds(c, held)
        await until_holds(b, held)
        await until_confirmed(a, "nc")
    second = compact(a)
    assert second["removed"] == 299 and second["rollups"] == 0
    assert compact(b)["removed"] == 299  # na's roll-ups are there: nb may thin out too

    # a fourth node, new to all: it gets the state, not an error
    d = NodeProcess("nd", a.base, [a.sync_address])
    nodes["nd"] = d
    d.start()
    held, gone = summary_of_running(a)
    with trio.fail_after(60):
        await until_holds(d, held - gone)
    listings = {name: node.cli("ls", ":", "--recursive", "--json") for name, node in nodes.items()}
    assert len(set(listings.values())) == 1, listings
    state = json.loads(listings["na"])
    assert state["t.temp"] == 20 + 299 % 5 and state["t.light"] is True
    assert len(list(_history(d, ":.moat.rollup.10m.t.temp"))) == 6
    for node in nodes.values():
        assert "Traceback" not in node.stderr()
        assert node.stop() == 0
        node.cli("verify")
    for node in (a, b, c):  # nothing anyone lacks was lost: every id is in every summary
        assert summary_of(node)[0] == held


def summary_of_running(node: NodeProcess) -> tuple[IdSet, IdSet]:
    """`summary_of` a node that runs: a read of its journal beside it (LMDB allows it)."""
    return summary_of(node)


def _history(node: NodeProcess, path: str) -> Iterator[object]:
    yield from (json.loads(line) for line in node.cli("--json", "history", path).splitlines())
