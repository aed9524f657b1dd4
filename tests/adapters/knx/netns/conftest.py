"""Fixtures of the tests against knxd; they run inside a private network namespace.

`tests/adapters/knx/test_knx_netns.py` runs this folder in one (the outer
suite does not collect it: tests/adapters/knx/conftest.py).  Here knxd
binds 127.0.0.1:3671 of the namespace's own loopback, so restarting it on
the same address and routing by multicast need nothing from the host.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from knxd import Knxd, in_private_netns


@pytest.fixture
def knxd(tmp_path: Path) -> Iterator[Knxd]:
    assert in_private_netns(), "run through tests/adapters/knx/test_knx_netns.py"
    daemon = Knxd(tmp_path)
    daemon.start()
    yield daemon
    daemon.kill()
