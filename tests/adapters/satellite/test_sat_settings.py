"""The satellite adapter's settings: strict reading with errors that name the field."""

from __future__ import annotations

import tomllib

import pytest

from moat_log.adapters.config import adapters_from_table
from moat_log.adapters.satellite.settings import SatelliteSettings
from moat_log.path import Path
from moat_log.records import FieldError

CONFIG = """
[adapters.boiler]
type = "satellite"
port = "/dev/ttyACM0"
prefix = "home.boiler"

[adapters.boiler.parts.door]
kind = "input"
pin = 4
pull = "up"

[adapters.boiler.parts.pump]
kind = "output"
pin = 5
min_on_ms = 2000

[adapters.boiler.parts.level]
kind = "adc"
pin = 7
scale = 0.1
threshold = 2

[adapters.boiler.parts.fan]
kind = "pwm"
pin = 6

[adapters.boiler.parts.meter]
kind = "counter"
pin = 8
edge = "falling"
"""


def settings_of(text: str) -> SatelliteSettings:
    (config,) = adapters_from_table(tomllib.loads(text)["adapters"])
    assert isinstance(config.settings, SatelliteSettings)
    return config.settings


def error_of(text: str) -> str:
    with pytest.raises(FieldError) as caught:
        settings_of(text)
    return str(caught.value)


def test_a_complete_table_reads_with_its_defaults() -> None:
    settings = settings_of(CONFIG)
    assert (settings.port, settings.baudrate, settings.sat_id) == ("/dev/ttyACM0", 115200, "boiler")
    assert settings.prefix == Path(("home", "boiler"))
    assert settings.keepalive_ms == 1000
    assert [(p.name, p.kind, str(p.path)) for p in settings.parts] == [
        ("door", "input", "home.boiler.door"),
        ("pump", "output", "home.boiler.pump"),
        ("level", "adc", "home.boiler.level"),
        ("fan", "pwm", "home.boiler.fan"),
        ("meter", "counter", "home.boiler.meter"),
    ]
    adapter = settings.create()
    assert adapter.owns(Path.parse("home.boiler.pump"))
    assert adapter.owns(Path.parse("home.boiler.fan"))
    assert not adapter.owns(Path.parse("home.boiler.door"))


def test_the_cfg_holds_the_parts_as_written() -> None:
    config = settings_of(CONFIG).parts_config()
    assert config["id"] == "boiler"
    assert config["keepalive_ms"] == 1000
    assert config["parts"]["door"] == {"kind": "input", "pin": 4, "pull": "up"}
    assert config["parts"]["pump"] == {"kind": "output", "pin": 5, "min_on_ms": 2000}


def test_describe_has_one_row_per_part() -> None:
    rows = settings_of(CONFIG).describe()
    assert rows[0] == {
        "path": "home.boiler.door",
        "address": "boiler/door",
        "direction": "in",
        "type": "input",
        "pin": 4,
        "port": "/dev/ttyACM0",
    }
    assert [row["direction"] for row in rows] == ["in", "out", "in", "out", "in"]


def test_id_and_keepalive_may_be_given() -> None:
    settings = settings_of(
        CONFIG.replace('prefix = "home.boiler"', 'prefix = "b"\nid = "sat-7"\nkeepalive = 0.5')
    )
    assert (settings.sat_id, settings.keepalive_ms) == ("sat-7", 500)
    assert settings.describe()[0]["address"] == "boiler/door"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('port = "/dev/ttyACM0"\n', ""), "adapters.boiler.port: is missing"),
        (('prefix = "home.boiler"', 'prefix = ""'), "adapters.boiler.prefix:"),
        (('prefix = "home.boiler"', 'prefix = "a..b"'), "adapters.boiler.prefix:"),
        (('port = "/dev/ttyACM0"', 'port = "/dev/x"\nbaud = 9600'), "adapters.boiler.baud"),
        (('port = "/dev/ttyACM0"', 'port = "/dev/x"\nid = "a b"'), "adapters.boiler.id:"),
        (('pull = "up"', 'pull = "sideways"'), "adapters.boiler.parts.door.pull"),
        (('kind = "input"', 'kind = "relay"'), "adapters.boiler.parts.door.kind: 'relay' is no"),
        (("pin = 4", "pin = 400"), "adapters.boiler.parts.door.pin"),
        (("pin = 4", "pin = 5"), "adapters.boiler.parts.pump.pin: pin 5 is part 'door'"),
        (("min_on_ms = 2000", "min_on_ms = -1"), "adapters.boiler.parts.pump.min_on_ms"),
        (('edge = "falling"', 'edge = "up"'), "adapters.boiler.parts.meter.edge"),
        (("scale = 0.1", 'scale = "x"'), "adapters.boiler.parts.level.scale"),
        (("pull = ", "debounce = 3\npull = "), "adapters.boiler.parts.door.debounce"),
        (("[adapters.boiler.parts.fan]", "[adapters.boiler.parts.'f n']"), "parts.f n:"),
    ],
)
def test_bad_tables_are_refused_naming_the_field(change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in CONFIG
    assert message in error_of(CONFIG.replace(old, new, 1))


def test_a_pwm_init_out_of_range_is_refused() -> None:
    text = CONFIG.replace('kind = "pwm"\npin = 6', 'kind = "pwm"\npin = 6\ninit = 1.5')
    assert "adapters.boiler.parts.fan.init" in error_of(text)
