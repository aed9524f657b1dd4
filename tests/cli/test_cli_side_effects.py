"""Side-effect projections in `status` and `projection list`: checkpoint, lag, state."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path as FsPath

import pytest
import trio
from cli_support import Invoker

from moat_log.journal.change import Change
from moat_log.journal.feed import FeedItem
from moat_log.node import open_node
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.testing import short_temp_dir


class Target:
    """A side-effect projection that applies, or fails every time with *error*."""

    def __init__(self, name: str, error: str | None = None) -> None:
        self.name = name
        self.error = error
        self.applied = 0
        self.attempted = trio.Event()
        self._changed = trio.Event()

    async def apply(self, items: Sequence[FeedItem]) -> None:
        self.attempted.set()
        if self.error is not None:
            raise ConnectionError(self.error)
        self.applied = items[-1].position
        self._changed.set()
        self._changed = trio.Event()

    async def until_applied(self, position: int) -> None:
        while self.applied < position:
            await self._changed.wait()


@pytest.fixture
def short_data_dir() -> Iterator[FsPath]:
    """A data directory short enough for the node's Unix socket."""
    with short_temp_dir() as path:
        yield path / "data"


async def test_a_running_node_shows_each_side_effect_with_lag_and_state(
    short_data_dir: FsPath,
) -> None:
    invoke = Invoker(short_data_dir)
    healthy, broken = Target("archive"), Target("mqtt", error="broker refused the connection")
    async with open_node(
        data_dir=short_data_dir, node="pi1", listen=["unix"], projections=[healthy, broken]
    ) as client:
        for value in range(3):
            await client.set("home.temp", value)
        await healthy.until_applied(3)
        await broken.attempted.wait()

        status = json.loads((await invoke("--json", "status")).stdout)
        assert status["side_effects"]["archive"] | {"checkpoint": 0} == {
            "state": "running",
            "applied": 3,
            "checkpoint": 0,  # saved now and then, not after every batch
            "lag": 0,
            "failures": 0,
            "last_error": None,
        }
        mqtt = status["side_effects"]["mqtt"]
        assert mqtt["state"] == "retrying" and mqtt["lag"] == 3 and mqtt["failures"] >= 1
        assert mqtt["last_error"] == "ConnectionError: broker refused the connection"

        table = (await invoke("projection", "list")).stdout
        assert "SIDE EFFECT" in table
        assert "retrying" in table and "broker refused the connection" in table
        listed = json.loads((await invoke("--json", "projection", "list")).stdout)
        assert listed["side_effects"]["mqtt"]["lag"] == 3
        assert "archive" in (await invoke("status")).stdout

    # stopped: what the journal stores, the clean stop's checkpoint included
    listed = json.loads((await invoke("--json", "projection", "list")).stdout)
    assert listed["side_effects"] == {
        "archive": {
            "state": "not running",
            "applied": 3,
            "checkpoint": 3,
            "lag": 0,
            "failures": 0,
            "last_error": None,
        }
    }
    offline = json.loads((await invoke("--json", "status")).stdout)
    assert offline["side_effects"]["archive"]["checkpoint"] == 3


async def test_projection_list_shows_a_checkpoint_behind_the_journal_as_lag(
    short_data_dir: FsPath,
) -> None:
    with open_journal(short_data_dir, create_node="pi1") as journal:
        for value in range(5):
            journal.append(Change(Path(["k"]), value))
        journal.save_checkpoint("mqtt", 2)
    table = (await Invoker(short_data_dir)("projection", "list")).stdout
    row = next(line for line in table.splitlines() if line.startswith("mqtt"))
    assert row.split() == ["mqtt", "not", "running", "2", "2", "5", "3", "-"]
