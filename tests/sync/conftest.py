"""Fixtures shared by the sync tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path as FsPath

import pytest

from moat_log.testing import short_temp_dir


@pytest.fixture
def base() -> Iterator[FsPath]:
    """A fresh directory in /tmp for real node processes (Unix socket paths stay short)."""
    with short_temp_dir() as directory:
        yield directory
