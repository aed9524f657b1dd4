"""The KNX adapter's settings and mapping without a bus: strict reading, what a telegram means."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from moat_log.adapters.config import adapters_from_table
from moat_log.adapters.knx.adapter import KnxSettings
from moat_log.adapters.knx.mapping import (
    BusTelegram,
    format_group_address,
    parse_group_address,
)
from moat_log.errors import BusDataError
from moat_log.path import Path
from moat_log.records import FieldError

CONFIG = """
[adapters.knx]
type = "knx"
gateway = "192.168.1.20"

[[adapters.knx.map]]
address = "1/1/1"
state_address = "1/1/2"
path = "home.kitchen.light"
dpt = "switch"
direction = "both"

[[adapters.knx.map]]
address = "1/2/1"
path = "home.hall.temperature"
dpt = "9.001"

[[adapters.knx.map]]
address = "1/3/1"
path = "home.hall.blind"
dpt = "5.001"
direction = "out"
"""


def settings(text: str = CONFIG) -> KnxSettings:
    (config,) = adapters_from_table(tomllib.loads(text)["adapters"])
    assert isinstance(config.settings, KnxSettings)
    return config.settings


def refused(extra: str, base: str = CONFIG) -> str:
    with pytest.raises(FieldError) as info:
        settings(base + extra)
    return str(info.value)


def test_a_table_reads_into_the_gateway_and_the_mapping() -> None:
    knx = settings()
    assert knx.gateway.text == "tunnelling 192.168.1.20:3671"
    assert [str(p.path) for p in knx.mapping.points] == [
        "home.kitchen.light",
        "home.hall.temperature",
        "home.hall.blind",
    ]
    adapter = knx.create()
    assert adapter.owns(Path.parse("home.kitchen.light"))
    assert adapter.owns(Path.parse("home.hall.blind"))
    assert not adapter.owns(Path.parse("home.hall.temperature"))  # in only
    assert knx.mapping.reads_on_start() == [parse_group_address(a) for a in ("1/1/2", "1/2/1")]


def test_describe_has_one_row_per_group_address() -> None:
    rows = settings().describe()
    assert rows[0] == {
        "path": "home.kitchen.light",
        "address": "1/1/1",
        "state_address": "1/1/2",
        "direction": "both",
        "type": "DPT 1.001",
        "unit": None,
        "read_on_start": True,
        "changes_only": True,
    }
    assert [(r["direction"], r["type"], r["read_on_start"]) for r in rows[1:]] == [
        ("in", "DPT 9.001", True),
        ("out", "DPT 5.001", False),  # nothing listened to, nothing to read
    ]


def test_routing_needs_no_gateway_and_refuses_one() -> None:
    routing = (
        '[adapters.knx]\ntype = "knx"\nconnection = "routing"\nmulticast_group = "224.0.23.12"\n'
    )
    assert settings(routing).gateway.text == "routing 224.0.23.12:3671"
    assert "routing has no gateway" in refused('gateway = "10.0.0.1"\n', routing)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[adapters.knx]\ntype = "knx"\n', "adapters.knx.gateway: tunnelling needs"),
        ('[adapters.knx]\ntype = "knx"\ngateway = "x"\nspeed = 1\n', "speed"),
        ('[adapters.knx]\ntype = "knx"\ngateway = "x"\nrate_limit = -1\n', "rate_limit"),
        (
            '[adapters.knx]\ntype = "knx"\ngateway = "x"\nindividual_address = "16.1.1"\n',
            "individual_address",
        ),
    ],
)
def test_bad_gateway_settings_are_refused_with_their_key(text: str, problem: str) -> None:
    with pytest.raises(FieldError, match=problem):
        settings(text)


def entry(**fields: Any) -> str:
    body = {"address": '"2/0/1"', "path": '"x.y"', "dpt": '"1.001"', **fields}
    return "\n[[adapters.knx.map]]\n" + "".join(f"{k} = {v}\n" for k, v in body.items())


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (entry(address='"32/0/0"'), "map[3].address: '32/0/0': a group address is"),
        (entry(dpt='"99.001"'), "map[3].dpt: '99.001': datapoint type 99.001 is not supported"),
        (entry(dpt='"warm"'), "map[3].dpt: 'warm': 'warm' is no datapoint type"),
        (entry(direction='"sideways"'), "map[3].direction"),
        (entry(state_address='"2/0/2"'), "map[3].state_address: a state address needs direction"),
        (entry(path='"home.hall.blind"'), "map[3].path: home.hall.blind is mapped already by"),
        (entry(address='"1/2/1"'), "map[3].address: 1/2/1 is listened to already by"),
        (entry(colour='"red"'), "map[3]"),
    ],
)
def test_bad_map_entries_are_refused_with_their_key(extra: str, problem: str) -> None:
    assert problem in refused(extra)


def test_an_out_entry_may_share_its_address_with_a_listening_one() -> None:
    knx = settings(CONFIG + entry(address='"1/2/1"', direction='"out"', dpt='"9.001"'))
    assert knx.mapping.point_listening_on(parse_group_address("1/2/1")) is not None


def test_group_addresses_in_three_and_two_levels() -> None:
    assert parse_group_address("1/2/3") == 2563
    assert parse_group_address("1/515") == 2563
    assert format_group_address(2563) == "1/2/3"
    assert format_group_address(parse_group_address("31/7/255")) == "31/7/255"
    for bad in ("1/8/0", "1/2/256", "1.2.3", "1/2048", ""):
        with pytest.raises(ValueError, match="group address"):
            parse_group_address(bad)


def test_a_telegram_means_one_path_and_a_plain_value() -> None:
    mapping = settings().mapping
    light_state = parse_group_address("1/1/2")
    found = mapping.incoming(BusTelegram(light_state, "1.1.5", "write", 1))
    assert found is not None and (str(found[0].path), found[1]) == ("home.kitchen.light", True)
    response = BusTelegram(parse_group_address("1/2/1"), "1.1.6", "response", b"\x0c\x33")
    assert mapping.incoming(response) is not None
    # the command address of a "both" entry with a state address is not listened to
    assert mapping.incoming(BusTelegram(parse_group_address("1/1/1"), "1.1.5", "write", 1)) is None
    assert mapping.incoming(BusTelegram(parse_group_address("1/2/1"), "1.1.6", "read")) is None
    with pytest.raises(BusDataError, match="expected 2 bytes"):
        mapping.incoming(BusTelegram(parse_group_address("1/2/1"), "1.1.6", "write", b"\x00"))


def test_a_change_becomes_a_destination_and_a_payload() -> None:
    mapping = settings().mapping
    assert mapping.outgoing(Path.parse("home.hall.blind"), 100) == (
        parse_group_address("1/3/1"),
        b"\xff",
    )
    assert mapping.outgoing(Path.parse("home.kitchen.light"), False) == (
        parse_group_address("1/1/1"),  # the command address, not the state address
        0,
    )
    with pytest.raises(BusDataError, match="not sent to the KNX bus"):
        mapping.outgoing(Path.parse("home.hall.temperature"), 20.0)
    with pytest.raises(BusDataError, match=r"outside 0 \.\. 100"):
        mapping.outgoing(Path.parse("home.hall.blind"), 150)
