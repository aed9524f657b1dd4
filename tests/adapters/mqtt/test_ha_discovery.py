"""Home Assistant discovery: topics HA accepts, keys HA documents, ids that follow the path."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.adapters.codec import BoolCodec, JsonCodec, NumberCodec, PayloadCodec
from moat_log.adapters.mqtt.discovery import (
    HA_STATUS_OFFLINE,
    HA_STATUS_ONLINE,
    HA_STATUS_TOPIC,
    DiscoveryMessage,
    DiscoverySettings,
    Entity,
    discovery_message,
    entity_from_config,
    object_id,
    removal_message,
)
from moat_log.adapters.mqtt.mapping import mapping_from_config
from moat_log.path import Path, Segment
from moat_log.records import FieldError

# HA's discovery topic (homeassistant/components/mqtt/discovery.py, TOPIC_MATCHER;
# BUSES.md 5.5), after the prefix.
TOPIC_MATCHER = re.compile(
    r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)"
    r"?(?P<object_id>[a-zA-Z0-9_-]+)/config"
)

# The keys HA's schemas accept, copied from home-assistant/core
# homeassistant/components/mqtt/:
# schemas.py MQTT_AVAILABILITY_SCHEMA + MQTT_ENTITY_COMMON_SCHEMA (every entity),
COMMON = {
    "availability_topic",
    "availability_template",
    "payload_available",
    "payload_not_available",
    "availability_mode",
    "availability",
    "device",
    "origin",
    "enabled_by_default",
    "entity_category",
    "icon",
    "json_attributes_topic",
    "json_attributes_template",
    "object_id",
    "unique_id",
}
# config.py MQTT_BASE_SCHEMA, MQTT_RO_SCHEMA and MQTT_RW_SCHEMA,
BASE = {"qos", "encoding"}
RO = BASE | {"state_topic", "value_template"}
RW = BASE | {"command_topic", "optimistic", "retain", "state_topic"}
# and each component's PLATFORM_SCHEMA_MODERN / _PLATFORM_SCHEMA_BASE.
HA_KEYS = {
    # switch.py
    "switch": COMMON
    | RW
    | {"name", "payload_off", "payload_on", "state_off", "state_on", "value_template"}
    | {"device_class"},
    # light/schema_basic.py (the part of it for an on/off light)
    "light": COMMON
    | RW
    | {"name", "on_command_type", "payload_off", "payload_on", "state_value_template"}
    | {"brightness_command_topic", "brightness_state_topic", "brightness_scale"},
    # binary_sensor.py
    "binary_sensor": COMMON
    | RO
    | {"device_class", "expire_after", "force_update", "name", "off_delay"}
    | {"payload_off", "payload_on"},
    # sensor.py
    "sensor": COMMON
    | RO
    | {"device_class", "expire_after", "force_update", "last_reset_value_template", "name"}
    | {"options", "suggested_display_precision", "state_class", "unit_of_measurement"},
    # number.py
    "number": COMMON
    | RW
    | {"command_template", "device_class", "max", "min", "mode", "name", "payload_reset"}
    | {"step", "unit_of_measurement", "value_template"},
    # climate.py (the target temperature part; it has no state_topic/command_topic)
    "climate": COMMON
    | BASE
    | {"name", "optimistic", "retain", "precision", "current_temperature_topic"}
    | {"temperature_command_topic", "temperature_command_template"}
    | {"temperature_state_topic", "temperature_state_template", "temperature_unit"}
    | {"min_temp", "max_temp", "temp_step", "initial", "modes", "mode_command_topic"}
    | {"mode_state_topic", "value_template"},
}
# schemas.py MQTT_ENTITY_DEVICE_INFO_SCHEMA and MQTT_ORIGIN_INFO_SCHEMA
DEVICE_KEYS = {"identifiers", "connections", "manufacturer", "model", "model_id", "name"} | {
    "hw_version",
    "serial_number",
    "sw_version",
    "via_device",
    "suggested_area",
    "configuration_url",
}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
AVAILABILITY_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}

SETTINGS = DiscoverySettings(
    node_id="pi1", availability_topic="moat/pi1/status", sw_version="0.1.0"
)
ON_OFF = BoolCodec()
CASES: list[tuple[Entity, PayloadCodec, str | None]] = [
    (Entity("switch", device_class="outlet", icon="mdi:power"), ON_OFF, "home/x/set"),
    (Entity("light"), BoolCodec(payload_on="on", payload_off="off"), "home/x/set"),
    (Entity("binary_sensor", device_class="door"), ON_OFF, None),
    (
        Entity("sensor", device_class="temperature", state_class="measurement"),
        NumberCodec(scale=0.1, unit="°C"),
        None,
    ),
    (
        Entity("number", minimum=5, step=0.5, mode="box", entity_category="config"),
        NumberCodec(maximum=30, unit="°C"),
        "home/x/set",
    ),
    (Entity("climate", step=0.5), NumberCodec(minimum=5, maximum=30, unit="°C"), "home/x/set"),
]


def message(entity: Entity, codec: PayloadCodec, command: str | None) -> DiscoveryMessage:
    return discovery_message(
        entity,
        path=Path.parse("home.kitchen:3.light"),
        state_topic="home/x/state",
        command_topic=command,
        codec=codec,
        settings=SETTINGS,
    )


@pytest.mark.parametrize(("entity", "codec", "command"), CASES)
def test_every_key_is_one_home_assistant_documents(
    entity: Entity, codec: PayloadCodec, command: str | None
) -> None:
    config = json.loads(message(entity, codec, command).payload)
    assert set(config) <= HA_KEYS[entity.component]
    assert set(config["device"]) <= DEVICE_KEYS
    assert set(config["origin"]) <= ORIGIN_KEYS
    assert all(set(item) <= AVAILABILITY_KEYS for item in config["availability"])


@pytest.mark.parametrize(("entity", "codec", "command"), CASES)
def test_the_topic_is_one_home_assistant_accepts(
    entity: Entity, codec: PayloadCodec, command: str | None
) -> None:
    sent = message(entity, codec, command)
    prefix, _, rest = sent.topic.partition("/")
    assert prefix == "homeassistant"
    match = TOPIC_MATCHER.fullmatch(rest)
    assert match is not None
    assert match["component"] == entity.component
    assert match["node_id"] == "pi1"
    assert match["object_id"] == "home-kitchen-_i3-light"
    assert sent.retain


def test_a_switch_config_in_full() -> None:
    entity, codec, command = CASES[0]
    assert json.loads(message(entity, codec, command).payload) == {
        "name": "home.kitchen:3.light",
        "unique_id": "pi1/home-kitchen-_i3-light",
        "device": {
            "identifiers": ["moat-log/pi1"],
            "name": "pi1",
            "manufacturer": "MoaT",
            "model": "moat-log",
            "sw_version": "0.1.0",
        },
        "origin": {"name": "moat-log", "sw_version": "0.1.0"},
        "availability": [
            {
                "topic": "moat/pi1/status",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ],
        "state_topic": "home/x/state",
        "command_topic": "home/x/set",
        "payload_on": "ON",
        "payload_off": "OFF",
        "device_class": "outlet",
        "icon": "mdi:power",
        "qos": 1,
    }


def test_the_number_codecs_unit_and_range_are_the_entitys_defaults() -> None:
    config = json.loads(message(*CASES[4]).payload)
    assert (config["unit_of_measurement"], config["min"], config["max"]) == ("°C", 5, 30)
    assert (config["step"], config["mode"], config["entity_category"]) == (0.5, "box", "config")
    sensor = json.loads(message(*CASES[3]).payload)
    assert sensor["unit_of_measurement"] == "°C"
    climate = json.loads(message(*CASES[5]).payload)
    assert (climate["min_temp"], climate["max_temp"], climate["temperature_unit"]) == (5, 30, "C")
    assert climate["temperature_command_topic"] == "home/x/set"


@pytest.mark.parametrize(
    "codec",
    [BoolCodec(), BoolCodec(payload_on="open", payload_off="closed"), JsonCodec()],
)
def test_payload_on_and_off_are_what_the_codec_writes_and_reads(codec: PayloadCodec) -> None:
    config = json.loads(message(Entity("binary_sensor"), codec, None).payload)
    assert config["payload_on"].encode() == codec.encode(True)
    assert config["payload_off"].encode() == codec.encode(False)
    assert codec.decode(config["payload_on"].encode()) is True
    assert codec.decode(config["payload_off"].encode()) is False


def test_removal_is_an_empty_retained_message_on_the_same_topic() -> None:
    sent = message(*CASES[2])
    removal = removal_message("binary_sensor", Path.parse("home.kitchen:3.light"), SETTINGS)
    assert removal == DiscoveryMessage(sent.topic, b"", retain=True)
    assert sent.removal() == removal


def test_home_assistants_status_topic_and_words() -> None:
    assert (HA_STATUS_TOPIC, HA_STATUS_ONLINE, HA_STATUS_OFFLINE) == (
        "homeassistant/status",
        "online",
        "offline",
    )


def test_extra_keys_are_merged_in() -> None:
    entity = entity_from_config(
        {"component": "sensor", "extra": {"suggested_display_precision": 1}}, "e"
    )
    config = json.loads(message(entity, NumberCodec(), None).payload)
    assert config["suggested_display_precision"] == 1


@pytest.mark.parametrize(
    ("table", "text"),
    [
        ({"component": "fan"}, "e.component: expected one of switch, light, sensor,"),
        ({"component": "sensor", "nme": "x"}, "e.nme: unknown key; known keys are component,"),
        ({"component": "switch", "state_class": "total"}, "e.state_class: does not apply to a"),
        (
            {"component": "sensor", "state_class": "avg"},
            "e.state_class: expected one of measurement, total, total_increasing, got 'avg'",
        ),
        ({"component": "light", "device_class": "x"}, "e.device_class: does not apply to a light"),
        ({"component": "sensor", "mode": "box"}, "e.mode: does not apply to a sensor"),
        ({"component": "number", "min": 5, "max": 5}, "e.max: must be greater than min (5.0)"),
        ({"component": "number", "step": 0}, "e.step: expected a number > 0"),
        (
            {"component": "sensor", "entity_category": "x"},
            "e.entity_category: expected one of config, diagnostic",
        ),
        ({"component": "sensor", "extra": {"state_topic": "x"}}, "e.extra.state_topic: is written"),
        ({"component": "sensor", "name": ""}, "e.name: expected a non-empty string"),
    ],
)
def test_a_bad_entity_table_names_its_field(table: dict[str, Any], text: str) -> None:
    with pytest.raises(FieldError) as info:
        entity_from_config(table, "e")
    assert text in str(info.value)


def test_settings_refuse_ids_home_assistant_would_not_accept() -> None:
    with pytest.raises(ValueError, match="only letters, digits"):
        DiscoverySettings(node_id="pi.1", availability_topic="s")
    with pytest.raises(ValueError, match="not a topic prefix"):
        DiscoverySettings(node_id="pi", availability_topic="s", discovery_prefix="ha/+")


def test_a_rule_describes_each_of_its_paths() -> None:
    rule = mapping_from_config(
        [
            {
                "path": "home.+room.light",
                "topic": "home/{room}/light",
                "command_topic": "home/{room}/light/set",
                "codec": "bool",
                "entity": {"component": "switch", "name": "Light"},
            }
        ],
        "m",
    ).rules[0]
    sent = rule.discovery(Path.parse("home.bath.light"), SETTINGS)
    assert sent is not None
    config = json.loads(sent.payload)
    assert (config["state_topic"], config["command_topic"]) == (
        "home/bath/light",
        "home/bath/light/set",
    )
    assert config["name"] == "Light"
    assert rule.discovery(Path.parse("home.bath"), SETTINGS) is None


SEGMENTS = st.one_of(st.text(st.characters(codec="utf-8"), max_size=6), st.integers(-9, 99))
PATHS = st.lists(SEGMENTS, max_size=5).map(Path)


@given(PATHS, PATHS)
def test_distinct_paths_have_distinct_ids_in_home_assistants_alphabet(a: Path, b: Path) -> None:
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", object_id(a))
    assert (object_id(a) == object_id(b)) == (a == b)


@given(st.lists(SEGMENTS, min_size=1, max_size=5))
def test_the_unique_id_follows_the_path_not_the_name(segments: list[Segment]) -> None:
    path = Path(segments)
    ids = {
        json.loads(
            discovery_message(
                Entity("sensor", name=name),
                path=path,
                state_topic="s",
                command_topic=None,
                codec=JsonCodec(),
                settings=SETTINGS,
            ).payload
        )["unique_id"]
        for name in ("a", "b", None)
    }
    assert ids == {f"pi1/{object_id(path)}"}
