"""Fixtures for the CLI tests (helpers are in cli_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path as FsPath

import pytest
from cli_support import NODE_ENV, Invoker, Script, find_script

from moat_log.projections import open_journal


@pytest.fixture(autouse=True)
def _no_node_settings_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """--connect, --user and the secrets come from the test, never from the caller's shell."""
    for name in NODE_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def data_dir(tmp_path: FsPath) -> FsPath:
    return tmp_path / "data"


@pytest.fixture
def script(data_dir: FsPath) -> Script:
    return Script(find_script(), data_dir)


@pytest.fixture
def invoke(data_dir: FsPath) -> Invoker:
    return Invoker(data_dir)


@pytest.fixture
def journal_pi1(data_dir: FsPath) -> Iterator[FsPath]:
    """A journal of node pi1 in *data_dir* (closed again; the tests open it)."""
    open_journal(data_dir, create_node="pi1").close()
    yield data_dir
