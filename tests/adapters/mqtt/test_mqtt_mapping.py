"""The mapping: rules from config, what goes out, what comes in, what to subscribe to."""

from __future__ import annotations

from typing import Any

import pytest

from moat_log.adapters.codec import BoolCodec, JsonCodec, NumberCodec
from moat_log.adapters.mqtt.mapping import (
    DELETE,
    Direction,
    IncomingChange,
    OutgoingMessage,
    mapping_from_config,
)
from moat_log.errors import BusDataError
from moat_log.path import Path
from moat_log.records import FieldError

CONFIG: list[dict[str, Any]] = [
    {
        "path": "home.+room.light",
        "topic": "home/{room}/light/state",
        "command_topic": "home/{room}/light/set",
        "codec": "bool",
        "entity": {"component": "light"},
    },
    {
        "path": "sensor.+room.temp",
        "topic": "home/{room}/temp",
        "direction": "out",
        "codec": {"type": "number", "precision": 1, "unit": "°C"},
        "qos": 0,
    },
    {"path": "raw.#rest", "topic": "moat/{rest}", "direction": "in", "changes_only": False},
    {"path": "any.#rest", "topic": "moat/{rest}", "qos": 2},
]


def mapping() -> Any:
    return mapping_from_config(CONFIG, "adapters.mqtt.map")


def test_rules_read_from_config_keep_order_and_defaults() -> None:
    rules = mapping().rules
    directions = [Direction.BOTH, Direction.OUT, Direction.IN, Direction.BOTH]
    assert [rule.direction for rule in rules] == directions
    assert rules[0].codec == BoolCodec()
    assert rules[1].codec == NumberCodec(precision=1, unit="°C")
    assert rules[2].codec == JsonCodec()
    assert [rule.qos for rule in rules] == [1, 0, 1, 2]
    assert all(rule.retain for rule in rules)
    assert [rule.changes_only for rule in rules] == [True, True, False, True]


def test_a_value_goes_out_on_the_state_topic_with_the_rules_codec() -> None:
    out = mapping().outgoing(Path.parse("home.kitchen.light"), True)
    assert out == OutgoingMessage("home/kitchen/light/state", b"ON", retain=True, qos=1)
    out = mapping().outgoing(Path.parse("sensor.bath.temp"), 21.25)
    assert out == OutgoingMessage("home/bath/temp", b"21.2", retain=True, qos=0)


def test_a_delete_publishes_an_empty_retained_payload() -> None:
    out = mapping().outgoing(Path.parse("sensor.bath.temp"), DELETE)
    assert out == OutgoingMessage("home/bath/temp", b"", retain=True, qos=0)


def test_an_unmapped_path_or_an_in_rule_publishes_nothing() -> None:
    assert mapping().outgoing(Path.parse("elsewhere"), 1) is None
    assert mapping().outgoing(Path.parse("raw.x"), 1) is None  # direction "in"


def test_a_value_the_codec_refuses_is_bus_data_error() -> None:
    with pytest.raises(BusDataError, match="bool codec: expected true or false"):
        mapping().outgoing(Path.parse("home.kitchen.light"), 1)


def test_a_command_comes_in_on_the_command_topic() -> None:
    rules = mapping().rules
    change = mapping().incoming("home/kitchen/light/set", b"on")
    assert change == IncomingChange(Path.parse("home.kitchen.light"), True, rules[0])
    assert mapping().incoming("home/kitchen/light/state", b"ON") is None  # not listened on


def test_an_empty_payload_comes_in_as_a_delete() -> None:
    change = mapping().incoming("moat/a/:3", b"")
    assert change is not None
    assert change.path == Path(["raw", "a", 3])
    assert change.value is DELETE


def test_the_first_matching_rule_wins_and_out_rules_do_not_listen() -> None:
    rules = mapping().rules
    change = mapping().incoming("moat/x", b"[1]")
    assert change == IncomingChange(Path.parse("raw.x"), [1], rules[2])
    assert mapping().incoming("home/bath/temp", b"21.5") is None  # direction "out"


def test_a_payload_that_does_not_decode_is_bus_data_error() -> None:
    with pytest.raises(BusDataError, match="bool codec: payload b'maybe' is neither"):
        mapping().incoming("home/kitchen/light/set", b"maybe")
    with pytest.raises(BusDataError, match="unknown escape"):
        mapping().incoming("moat/a:q", b"1")


def test_subscriptions_are_the_listened_filters_once_with_the_highest_qos() -> None:
    assert mapping().subscriptions() == [("home/+/light/set", 1), ("moat/#", 2)]


@pytest.mark.parametrize(
    ("value", "current", "changes"),
    [
        (True, True, False),
        (True, False, True),
        (1, 1.0, True),
        (1, True, True),
        ([1, {"a": 2}], [1, {"a": 2}], False),
        ([1], [1.0], True),
        (DELETE, DELETE, False),
        (DELETE, 3, True),
    ],
)
def test_changes_only_drops_a_value_equal_to_the_current_one(
    value: Any, current: Any, changes: bool
) -> None:
    rule = mapping().rules[0]
    assert IncomingChange(Path.parse("a"), value, rule).changes(current) is changes
    loose = mapping().rules[2]
    assert IncomingChange(Path.parse("a"), value, loose).changes(current) is True


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"topic": "a"}, "m[0].path: is missing"),
        ({"path": "a", "topic": "a", "qos": 3}, "m[0].qos: expected"),
        ({"path": "a", "topic": "a", "direction": "up"}, "m[0].direction: expected"),
        ({"path": "a", "topic": "a", "retain": "yes"}, "m[0].retain: expected true or false"),
        ({"path": "a", "topic": "a", "topics": "b"}, "m[0].topics: unknown key; known keys are"),
        ({"path": "a.+x", "topic": "a"}, "m[0].topic: 'a' does not use the path's variable(s)"),
        (
            {"path": "a.+x", "topic": "a/{x}", "command_topic": "a/{y}"},
            "m[0].command_topic: 'a/{y}': {y} is not a variable",
        ),
        (
            {"path": "a", "topic": "a", "command_topic": "b", "direction": "out"},
            "m[0].command_topic: is only listened on for direction",
        ),
        ({"path": "a", "topic": "a", "codec": "yaml"}, "m[0].codec.type: unknown codec 'yaml'"),
        (
            {"path": "a", "topic": "a", "codec": "string", "entity": {"component": "switch"}},
            "m[0].codec: a switch is on or off: use the bool codec (or json), not string",
        ),
        (
            {"path": "a", "topic": "a", "codec": "bool", "entity": {"component": "switch"}},
            "m[0].entity.component: a switch takes commands from Home Assistant",
        ),
        (
            {"path": "a", "topic": "a", "entity": {"component": "sensor", "min": 1}},
            "m[0].entity.min: does not apply to a sensor",
        ),
    ],
)
def test_a_bad_rule_is_refused_naming_its_field(table: dict[str, Any], message: str) -> None:
    with pytest.raises(FieldError) as info:
        mapping_from_config([table], "m")
    assert message in str(info.value)


def test_the_map_must_be_a_list() -> None:
    with pytest.raises(FieldError, match=r"m: expected a list of tables \(\[\[m\]\]\)"):
        mapping_from_config({"path": "a"}, "m")
