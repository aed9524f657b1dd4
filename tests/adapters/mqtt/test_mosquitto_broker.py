"""The broker fixture's own rules: skip without mosquitto, but never in CI."""

from __future__ import annotations

import pytest
from mosquitto_broker import require_mosquitto


def test_without_mosquitto_a_test_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="mosquitto is not installed"):
        require_mosquitto(lambda: None)


def test_without_mosquitto_a_test_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="in CI the MQTT tests must run"):
        require_mosquitto(lambda: None)


def test_with_mosquitto_the_executable_is_found() -> None:
    assert require_mosquitto(lambda: "/usr/sbin/mosquitto") == "/usr/sbin/mosquitto"
