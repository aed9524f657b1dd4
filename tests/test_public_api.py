"""The curated API: a script imports what it needs from ``moat_log`` itself.

Every ``moat-log`` command imports the package, so the names load on first
use: importing it alone pulls in neither trio nor the client.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import moat_log


def imported_by(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running *code*."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.split())


def test_importing_moat_log_imports_neither_trio_nor_the_client() -> None:
    modules = imported_by("import moat_log")
    assert "moat_log" in modules
    assert not {"trio", "moat_log.client", "moat_log.node", "moat_log.protocol"} & modules


def test_a_name_loads_only_its_own_module() -> None:
    modules = imported_by("from moat_log import Path, NodeStoppingError")
    assert {"moat_log.path", "moat_log.errors"} <= modules
    assert "trio" not in modules


def test_every_public_name_resolves_to_the_object_of_its_home_module() -> None:
    for name in moat_log.__all__:
        assert getattr(moat_log, name) is not None, name
    from moat_log.client import open_client
    from moat_log.errors import NodeError
    from moat_log.path import Path

    assert (moat_log.open_client, moat_log.NodeError, moat_log.Path) == (
        open_client,
        NodeError,
        Path,
    )
    assert set(dir(moat_log)) >= set(moat_log.__all__)


def test_a_name_that_is_not_public_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        moat_log.no_such_name  # noqa: B018
