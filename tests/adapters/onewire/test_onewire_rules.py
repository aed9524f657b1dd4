"""The 1-Wire adapter's settings (moat_log.adapters.onewire.rules): strict, with field paths."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.adapters.config import adapters_from_table
from moat_log.adapters.onewire.rules import DevicePattern, OnewireSettings
from moat_log.errors import BusDataError
from moat_log.path import Path
from moat_log.records import FieldError


def settings(**table: Any) -> OnewireSettings:
    (config,) = adapters_from_table({"ow": {"type": "onewire", **table}})
    assert isinstance(config.settings, OnewireSettings)
    return config.settings


TEMPERATURE = {
    "family": "28",
    "attribute": "temperature",
    "path": "onewire.+family.+code.temperature",
}


def test_defaults_and_a_complete_rule() -> None:
    ow = settings(map=[TEMPERATURE | {"interval": 10, "min_delta": 0.2}])
    assert (ow.host, ow.port, ow.scan_interval, ow.connections) == ("127.0.0.1", 4304, 30.0, 2)
    (rule,) = ow.rules
    assert rule.families == frozenset({"28"})
    assert rule.uncached  # polled more often than owserver's 15 s cache keeps a temperature
    assert rule.bus_path("28.4AEC29CDBAAB") == "/uncached/28.4AEC29CDBAAB/temperature"
    assert str(rule.path_for("28.4AEC29CDBAAB")) == "onewire.28.4AEC29CDBAAB.temperature"
    assert ow.describe()[1] == {
        "path": "onewire.+family.+code.temperature",
        "address": "family 28/temperature",
        "direction": "in",
        "type": "number",
        "interval": 10.0,
        "min_delta": 0.2,
    }
    assert ow.describe()[0]["path"] == "onewire.+family.+code.present"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"server": "host:notaport"}, "adapters.ow.server: "),
        ({"polling": 3}, "adapters.ow.polling: unknown key; known keys are connections, map"),
        ({"map": [TEMPERATURE | {"interval": "often"}]}, "adapters.ow.map[0].interval: "),
        ({"map": [TEMPERATURE | {"family": "2X"}]}, "adapters.ow.map[0].family: '2X' is not"),
        (
            {"map": [TEMPERATURE | {"device": "28.4AEC29CDBAAB"}]},
            "adapters.ow.map[0].device: give family or device, not both",
        ),
        (
            {"map": [TEMPERATURE | {"path": "onewire.+name.temperature"}]},
            "adapters.ow.map[0].path: 'onewire.+name.temperature': '+name' is no variable",
        ),
        (
            {"map": [TEMPERATURE | {"path": "onewire.+family.t"}]},
            "adapters.ow.map[0].path: 'onewire.+family.t': a pattern names its device by",
        ),
        (
            {"map": [TEMPERATURE | {"path": "onewire.temperature"}]},
            "adapters.ow.map[0].path: ",
        ),
        (
            {"map": [TEMPERATURE | {"codec": "bool", "min_delta": 1}]},
            "adapters.ow.map[0].min_delta: only numbers have a min_delta",
        ),
        (
            {"map": [TEMPERATURE | {"codec": "nope"}]},
            "adapters.ow.map[0].codec.type: unknown codec",
        ),
        ({"map": [TEMPERATURE | {"direction": "up"}]}, "adapters.ow.map[0].direction: "),
        ({"presence": "onewire.present"}, "adapters.ow.presence: "),
    ],
)
def test_tables_are_read_strictly_naming_the_field(table: dict[str, Any], message: str) -> None:
    with pytest.raises(FieldError) as caught:
        settings(**table)
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_device_rule_may_have_a_literal_path_and_bool_reads_owservers_digits() -> None:
    ow = settings(
        presence="",
        map=[
            {
                "device": "29.000029d60200",
                "attribute": "PIO.0",
                "path": "kitchen.light",
                "codec": "bool",
                "direction": "both",
                "interval": 60,
            }
        ],
    )
    (rule,) = ow.rules
    assert ow.presence is None
    assert rule.device == "29.000029D60200"
    assert rule.device_of(Path.parse("kitchen.light")) == "29.000029D60200"
    assert not rule.uncached
    assert rule.decode(b"           1") is True
    assert rule.codec.encode(False) == b"0"


def test_the_deadband_and_the_power_on_reset_value() -> None:
    (rule,) = settings(map=[TEMPERATURE | {"min_delta": 0.5}]).rules
    assert rule.is_change(20.0, None, has_current=False)
    assert not rule.is_change(20.4, 20.0, has_current=True)
    assert rule.is_change(19.5, 20.0, has_current=True)
    assert rule.is_change(20, 20.0, has_current=True)  # another type: a change
    assert rule.check_reading("28.4AEC29CDBAAB", 85.0) is not None
    assert rule.check_reading("28.4AEC29CDBAAB", 84.9) is None
    assert rule.check_reading("26.4AEC29CDBAAB", 85.0) is None  # a DS2438 has no such reset
    with pytest.raises(BusDataError):
        rule.decode(b"            ")


devices = st.from_regex(r"[0-9A-F]{2}\.[0-9A-F]{12}", fullmatch=True)


@given(devices, st.sampled_from(["a.+id.t", "a.+family.+code", "+code.x.+family"]))
def test_device_patterns_round_trip(device: str, text: str) -> None:
    pattern = DevicePattern.compile(text, "p")
    path = pattern.path_for(device)
    assert pattern.device_of(path) == device
    assert pattern.device_of(Path([*path, "more"])) is None
