"""Fixtures of the MQTT tests: a real mosquitto per test (helpers in mosquitto_broker.py).

Without mosquitto the tests that need it skip, except in CI (CI=true), where
a missing broker is a broken setup and fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mosquitto_broker import Mosquitto, require_mosquitto


@pytest.fixture
def make_mosquitto(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Start brokers with options: ``make_mosquitto(persistent=True)``; all stopped after."""
    require_mosquitto()
    brokers: list[Mosquitto] = []

    def make(**options: Any) -> Mosquitto:
        directory = tmp_path / f"broker{len(brokers)}"
        directory.mkdir()
        broker = Mosquitto(directory, **options)
        brokers.append(broker)
        broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.kill()


@pytest.fixture
def mosquitto(make_mosquitto: Callable[..., Mosquitto]) -> Mosquitto:
    """A running anonymous mosquitto without persistence, killed after the test."""
    return make_mosquitto()
