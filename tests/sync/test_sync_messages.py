"""Messages: each type's wire form, and every way a received one can be wrong."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from sync_support import NONCE_A

from moat_log.event import Event, Op
from moat_log.idset import IdSet
from moat_log.path import Path
from moat_log.protocol import RemoteProtocolError
from moat_log.protocol.framing import FrameDecoder
from moat_log.sync.messages import (
    MAX_BATCH_CONTENT,
    MAX_WANT_EVENTS,
    Batch,
    Goodbye,
    Hello,
    Message,
    Proof,
    Push,
    Summary,
    Want,
    encode,
    parse_message,
)

EVENT = Event("pi1", 3, 1_763_712_000_000_000_000, {"pi2": 7}, Path(("a", 1)), Op.SET, 21.5)
DELETE = Event("pi2", 8, 1_763_712_000_000_000_001, {}, Path(("a",)), Op.DELETE)

MESSAGES: list[Message] = [
    Hello(1, "pi1", NONCE_A),
    Proof(bytes(32)),
    Summary(IdSet.parse("pi1:1-10,12 pi2:1-3")),
    Summary(IdSet()),
    Want(7, IdSet.parse("pi2:21-40")),
    Batch(7, 2, 100, b"\x28\xb5\x2f\xfd..."),
    Push((EVENT, DELETE)),
    Goodbye("shutdown", "the node is stopping"),
]


def decoded(data: bytes) -> Any:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    return decoder.next_frame()


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_each_message_survives_its_wire_form(message: Message) -> None:
    wire = decoded(encode(message))
    assert wire["type"] == message.TYPE
    assert next(iter(wire)) == "type"
    assert parse_message(wire) == message


def test_a_push_splices_the_packed_events_like_msgpack_would() -> None:
    push = Push((EVENT, DELETE))
    assert encode(push)[4:] == msgpack.packb(push.to_wire(), use_bin_type=True)


def test_a_summary_lists_origins_in_byte_order_as_flat_ranges() -> None:
    summary = Summary(
        IdSet.parse("pi2:1-3 pi1:1-10,12"),
        {"pi2": (3, 7), "pi1": (12, 9)},
    )
    assert summary.to_wire() == {
        "type": "summary",
        "held": {"pi1": [1, 10, 12, 12], "pi2": [1, 3]},
        "tips": {"pi1": [12, 9], "pi2": [3, 7]},
    }
    assert list(summary.to_wire()["held"]) == ["pi1", "pi2"]
    assert list(summary.to_wire()["tips"]) == ["pi1", "pi2"]
    assert parse_message(summary.to_wire()) == summary


def test_a_hello_ignores_keys_it_does_not_know() -> None:
    wire = {**Hello(2, "pi1", NONCE_A).to_wire(), "compression": ["zstd", "lz4"]}
    assert parse_message(wire) == Hello(2, "pi1", NONCE_A)


BAD: list[tuple[object, str]] = [
    ([1, 2], "must be a map"),
    ({"op": "get"}, "unknown message type None"),
    ({"type": "ping"}, "unknown message type 'ping'"),
    ({"type": 3}, "unknown message type 3"),
    ({"moat-log": 1, "node": "pi1"}, "client port, not a sync port"),
    ({"type": "hello", "version": 1, "node": "pi 1", "nonce": NONCE_A}, "invalid node name"),
    ({"type": "hello", "version": 1, "node": "pi1", "nonce": NONCE_A[:8]}, "32 bytes"),
    ({"type": "hello", "version": -1, "node": "pi1", "nonce": NONCE_A}, "'version'"),
    ({"type": "hello", "node": "pi1", "nonce": NONCE_A}, "'version'"),
    ({"type": "auth", "proof": "text"}, "'proof' must be bin"),
    ({"type": "auth", "proof": bytes(32), "user": "x"}, "extra ['user']"),
    ({"type": "auth"}, "lacks ['proof']"),
    ({"type": "summary", "held": [1, 2], "tips": {}}, "must be a map"),
    ({"type": "summary", "held": {"pi1": [1, 2, 3]}, "tips": {}}, "even number"),
    ({"type": "summary", "held": {"pi1": [1, 2, 3, 4]}, "tips": {}}, "not canonical"),
    ({"type": "summary", "held": {"pi1": [0, 2]}, "tips": {}}, "invalid sequence number"),
    ({"type": "summary", "held": {"pi1": []}, "tips": {}}, "no seqs"),
    ({"type": "summary", "held": {"": [1, 1]}, "tips": {}}, "invalid origin"),
    ({"type": "summary", "held": {7: [1, 1]}, "tips": {}}, "invalid origin"),
    ({"type": "summary", "held": {}}, "lacks ['tips']"),
    ({"type": "summary", "held": {}, "tips": []}, "'tips' must be a map"),
    ({"type": "summary", "held": {}, "tips": {"pi 1": [1, 1]}}, "invalid origin"),
    ({"type": "summary", "held": {"pi1": [1, 1]}, "tips": {"pi1": [1]}}, "must be [seq, hlc]"),
    ({"type": "summary", "held": {"pi1": [1, 1]}, "tips": {"pi1": [0, 1]}}, "must be [seq, hlc]"),
    ({"type": "summary", "held": {"pi1": [1, 1]}, "tips": {"pi1": [1, -1]}}, "must be [seq, hlc]"),
    ({"type": "want", "id": 1, "seqs": {}}, "at least one event"),
    ({"type": "want", "id": -1, "seqs": {"pi1": [1, 1]}}, "'id'"),
    (
        {"type": "want", "id": 1, "seqs": {"pi1": [1, MAX_WANT_EVENTS + 1]}},
        f"at most {MAX_WANT_EVENTS}",
    ),
    ({"type": "batch", "id": 1, "count": 0, "size": 1, "zstd": b""}, "'count'"),
    ({"type": "batch", "id": 1, "count": 1, "size": 0, "zstd": b""}, "'size'"),
    ({"type": "batch", "id": 1, "count": 1, "size": MAX_BATCH_CONTENT + 1, "zstd": b""}, "'size'"),
    ({"type": "batch", "id": 1, "count": 1, "size": 1, "zstd": "x"}, "'zstd' must be bin"),
    ({"type": "batch", "id": True, "count": 1, "size": 1, "zstd": b""}, "'id'"),
    ({"type": "push", "events": []}, "non-empty array"),
    ({"type": "push", "events": [[1, "pi1"]]}, "10 fields"),
    ({"type": "push", "events": [[2, *EVENT.to_msgpack()[1:]]]}, "format version"),
    ({"type": "push", "events": [{"a": 1}]}, "non-empty msgpack array"),
    ({"type": "goodbye", "reason": 1, "message": ""}, "'reason'"),
    ({"type": "goodbye", "reason": "x"}, "lacks ['message']"),
]


@pytest.mark.parametrize(("wire", "complaint"), BAD, ids=[complaint for _, complaint in BAD])
def test_a_malformed_message_is_a_remote_protocol_error(wire: object, complaint: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_message(wire)
    assert complaint in str(caught.value)


def test_messages_validate_when_built_in_python_too() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        Want(1, IdSet())
    with pytest.raises(ValueError, match="at least one event"):
        Push(())
    with pytest.raises(ValueError, match="'count'"):
        Batch(1, MAX_WANT_EVENTS + 1, 1, b"")
