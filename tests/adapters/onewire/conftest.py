"""Fixtures of the 1-Wire tests: a real owserver per test (owserver_process.py).

Without owserver the tests that need it skip, except in CI (CI=true), where
a missing server is a broken setup and fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from owserver_process import Owserver, find_owserver


def _need_owserver() -> None:
    if find_owserver() is not None:
        return
    message = "owserver is not installed (tools/setup-env.sh test installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; in CI the 1-Wire tests must run", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def make_owserver() -> Iterator[Callable[..., Owserver]]:
    """Start owservers: ``make_owserver("--tester=10,28,29")``; all killed after the test."""
    _need_owserver()
    servers: list[Owserver] = []

    def make(*arguments: str) -> Owserver:
        server = Owserver(list(arguments))
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.kill()
