"""The strict reader of config tables and wire records: every refusal names its field."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest
from msgspec import Meta

from moat_log.errors import InvalidInputError
from moat_log.records import FieldError, parse, read


class Peer(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    host: str
    port: Annotated[int, Meta(ge=1, le=65535, description="an integer 1..65535")] = 27600


class Sync(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    peers: list[Peer] = []
    wait: Annotated[float, Meta(ge=0, le=60)] = 10.0
    names: dict[str, int] = {}


class Top(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    sync: Sync | None = None


def test_a_valid_document_becomes_typed_records() -> None:
    top = read(Top, {"sync": {"peers": [{"host": "pi2"}, {"host": "pi3", "port": 1}]}})
    assert top == Top(Sync([Peer("pi2"), Peer("pi3", 1)]))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"sync": {"peers": [{"host": "a"}, {"host": "b"}, {"host": "c", "port": "x"}]}},
            "sync.peers[2].port: expected an integer 1..65535, got 'x'",
        ),
        (
            {"sync": {"peers": [{"host": "a", "port": 0}]}},
            "sync.peers[0].port: expected an integer",
        ),
        ({"sync": {"peers": [{"port": 1}]}}, "sync.peers[0].host: is missing"),
        (
            {"sync": {"peers": [{"host": "a", "prot": 1}]}},
            "sync.peers[0].prot: unknown key; known keys are host, port",
        ),
        ({"synk": {}}, "synk: unknown key; known keys are sync"),
        ({"sync": []}, "sync: expected a table, got []"),
        ({"sync": {"wait": True}}, "sync.wait: expected a number, got True"),
        ({"sync": {"wait": 61}}, "sync.wait: expected a number <= 60.0, got 61"),
        ({"sync": {"names": {"a": "1"}}}, "sync.names.a: expected an integer, got '1'"),
        ({"sync": {"names": {1: 1}}}, "sync.names: has a key that is not a string"),
    ],
)
def test_every_refusal_names_the_path_of_the_bad_field(document: object, message: str) -> None:
    with pytest.raises(FieldError) as caught:
        read(Top, document)
    assert str(caught.value).startswith(message), caught.value
    assert isinstance(caught.value, InvalidInputError)


def test_where_puts_the_document_path_in_front() -> None:
    with pytest.raises(FieldError, match=r"^mqtt\.broker\.peers\[0\]\.host: is missing$"):
        read(Sync, {"peers": [{}]}, where="mqtt.broker")


def test_parse_names_the_field_and_quotes_the_text() -> None:
    assert parse(int, "12", "a.b") == 12
    with pytest.raises(FieldError, match=r"^a\.b\[3\]: 'x': invalid literal"):
        parse(int, "x", "a.b[3]")
