"""Fixtures of the Modbus tests: a real pymodbus server per test (modbus_process.py).

pymodbus is a dependency of moat-log, so the server always runs; the
fixture only starts it on a free port and kills it by pid after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from modbus_process import ModbusServerProcess


@pytest.fixture
def modbus_server(tmp_path: Path) -> Iterator[ModbusServerProcess]:
    """A running test server (one device, unit 1, 200 of each kind), killed after the test."""
    server = ModbusServerProcess(tmp_path / "modbus-server.log")
    server.start()
    yield server
    server.kill()
