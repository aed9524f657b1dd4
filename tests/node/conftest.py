"""Fixtures of the node tests (helpers are in node_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path as FsPath

import pytest

from moat_log.testing import short_temp_dir


@pytest.fixture
def data_dir() -> Iterator[FsPath]:
    """A data directory short enough for the node's Unix socket."""
    with short_temp_dir() as path:
        yield path / "data"
