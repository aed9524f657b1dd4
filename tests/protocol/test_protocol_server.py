"""The server's connection object: admission, replies, streams, cancel, errors."""

from typing import Any

import msgpack
import pytest
from protocol_support import (
    CHALLENGE,
    TOKEN,
    Wire,
    authenticator,
    fixed_random,
    sample_event,
    send,
    server_events,
)

from moat_log.ids import EventId
from moat_log.path import Path
from moat_log.protocol import (
    LIVE,
    NEED_DATA,
    Authenticated,
    Cancel,
    ConnectionClosed,
    FrameTooLargeError,
    GetRequest,
    LocalProtocolError,
    PackedEvent,
    Rejected,
    RemoteProtocolError,
    Request,
    ServerConnection,
    SubtreeRequest,
    Written,
    encode_frame,
)


def node(**options: Any) -> ServerConnection:
    server = ServerConnection("pi1", random=fixed_random(CHALLENGE), **options)
    server.greeting()
    return server


def decode(data: bytes) -> list[Any]:
    """Split bytes the server produced into decoded messages."""
    messages = []
    while data:
        length = int.from_bytes(data[:4], "big")
        messages.append(msgpack.unpackb(data[4 : 4 + length]))
        data = data[4 + length :]
    return messages


# (incoming message, the event's type, what the connection sends by itself) — as in h11's tables.
ADMISSION = [
    ({"id": 1, "op": "get", "path": ["a"]}, GetRequest, b""),
    (
        {"id": 1, "op": "nope"},
        Rejected,
        bytes.fromhex(
            "0000009a 82 a26964 01 a56572726f72 82 a474797065 aa756e6b6e6f776e2d6f70"
            " a76d657373616765 d974"
        )
        + b"unknown op 'nope'; protocol version 1 has get, set, delete, list, subtree,"
        + b" watch, history, log, replay, status, auth",
    ),
    ({"id": 1, "cancel": True}, type(NEED_DATA), b""),  # nothing in flight: ignored
]


@pytest.mark.parametrize(("message", "event_type", "sent"), ADMISSION)
def test_admission_table(message: dict[str, Any], event_type: type, sent: bytes) -> None:
    server = node()
    events = server_events(server, encode_frame(message))
    assert [type(event) for event in events] == (
        [] if event_type is type(NEED_DATA) else [event_type]
    )
    assert server.data_to_send() == sent


def test_the_greeting_without_auth() -> None:
    server = ServerConnection("pi1", random=fixed_random(CHALLENGE))
    (greeting,) = decode(server.greeting())
    assert greeting == {
        "moat-log": 1,
        "node": "pi1",
        "auth": [],
        "challenge": CHALLENGE,
        "max_frame": 4 << 20,
    }


def test_request_errors_keep_the_connection_usable() -> None:
    server = node()
    bad: list[dict[str, Any]] = [
        {"id": 1, "op": "nope"},
        {"id": 2, "op": "get"},
        {"id": 3, "op": "get", "path": [1.5]},
        {"id": 4, "op": "set", "path": [], "value": 1, "extra": 2},
        {"id": 5},
    ]
    for message in bad:
        event = send(server, message)
        assert isinstance(event, Rejected) and event.id == message["id"]
        (reply,) = decode(server.data_to_send())
        assert reply["id"] == message["id"] and set(reply) == {"id", "error"}
    assert server.in_flight == frozenset()
    request = send(server, {"id": 6, "op": "get", "path": ["a"]})
    assert request == GetRequest(6, Path(("a",)))
    assert decode(server.send_reply(6, None)) == [{"id": 6, "ok": None}]


def test_a_duplicate_in_flight_id_is_an_error_reply_and_the_original_goes_on() -> None:
    server = node()
    first = send(server, {"id": 7, "op": "subtree", "path": ["a"]})
    assert isinstance(first, SubtreeRequest)
    duplicate = send(server, {"id": 7, "op": "get", "path": ["b"]})
    assert isinstance(duplicate, Rejected) and duplicate.type == "duplicate-id"
    assert duplicate.op == "get"
    (reply,) = decode(server.data_to_send())
    assert reply["error"]["type"] == "duplicate-id"
    assert server.in_flight == {7}
    server.send_item(7, sample_event())
    server.send_reply(7, None)
    assert isinstance(send(server, {"id": 7, "op": "get", "path": ["b"]}), GetRequest), "free again"


def test_too_many_requests_in_flight() -> None:
    server = node(max_in_flight=2)
    send(server, {"id": 1, "op": "watch", "path": []})
    send(server, {"id": 2, "op": "watch", "path": []})
    event = send(server, {"id": 3, "op": "status"})
    assert isinstance(event, Rejected) and event.type == "busy"
    server.send_error(1, "cancelled", "stopped")
    assert isinstance(send(server, {"id": 3, "op": "status"}), Request)


# Every op that names a path, and the path its permission check is about.
PATH_OPS = [
    ({"op": "get", "path": ["a", 1]}, "get", ("a", 1)),
    ({"op": "set", "path": ["a"], "value": 1}, "set", ("a",)),
    ({"op": "delete", "path": ["a"]}, "delete", ("a",)),
    ({"op": "list", "path": []}, "list", ()),
    ({"op": "subtree", "path": ["home"]}, "subtree", ("home",)),
    ({"op": "watch", "path": ["home"]}, "watch", ("home",)),
    ({"op": "history", "path": ["a"], "recursive": True}, "history", ("a",)),
    ({"op": "log", "path": ["home"], "follow": True}, "log", ("home",)),
    ({"op": "log"}, "log", ()),
    ({"op": "replay", "until": 5, "path": ["b"]}, "replay", ("b",)),
    ({"op": "replay", "until": ["pi1", 2]}, "replay", ()),
]


@pytest.mark.parametrize(("message", "op", "path"), PATH_OPS)
@pytest.mark.parametrize("allowed", [True, False])
def test_permission_is_checked_for_every_request_that_names_a_path(
    message: dict[str, Any], op: str, path: tuple[str | int, ...], allowed: bool
) -> None:
    calls: list[tuple[str | None, str, Path]] = []

    def permission(user: str | None, op: str, path: Path) -> bool:
        calls.append((user, op, path))
        return allowed

    server = node(permission=permission)
    event = send(server, {"id": 1, **message})
    assert calls == [(None, op, Path(path))]
    assert type(calls[0][2]) is Path
    if allowed:
        assert isinstance(event, Request) and op == event.OP
        assert server.data_to_send() == b""
    else:
        assert isinstance(event, Rejected) and event.type == "permission-denied"
        assert event.message == f"this connection may not {op} {Path(path)}"
        assert decode(server.data_to_send())[0]["error"]["type"] == "permission-denied"
        assert server.in_flight == frozenset()


def test_status_needs_no_permission() -> None:
    server = node(permission=lambda user, op, path: False)
    assert isinstance(send(server, {"id": 1, "op": "status"}), Request)


def test_permission_sees_the_authenticated_user() -> None:
    calls: list[tuple[str | None, str, Path]] = []

    def permission(user: str | None, op: str, path: Path) -> bool:
        calls.append((user, op, path))
        return True

    server = ServerConnection("pi1", authenticator=authenticator(), permission=permission)
    assert isinstance(Wire(server).login("heating", token=TOKEN), Authenticated)
    send(server, {"id": 5, "op": "watch", "path": ["heating"]})
    assert calls == [("heating", "watch", Path(("heating",)))]


# --- replies and streams ------------------------------------------------------


def test_a_stream_sends_items_then_its_final_reply() -> None:
    server = node()
    send(server, {"id": 3, "op": "watch", "path": ["home"]})
    event = sample_event()
    data = server.send_item(3, event) + server.send_item(3, LIVE) + server.send_reply(3, None)
    assert decode(data) == [
        {"id": 3, "item": msgpack.unpackb(event.pack())},
        {"id": 3, "item": {"state": "live"}},
        {"id": 3, "ok": None},
    ]
    assert server.in_flight == frozenset()


def test_a_packed_event_item_is_the_same_frame_as_the_event_and_not_packed_again() -> None:
    server = node()
    send(server, {"id": 3, "op": "watch", "path": ["home"]})
    event = sample_event()
    as_event = server.send_item(3, event)
    packed = server.send_item(3, PackedEvent(event.pack()))
    assert packed == as_event
    marker = b"\x9a\x01pretend"  # spliced as it is: the node hands the journal's bytes
    assert server.send_item(3, PackedEvent(marker)).endswith(marker)


def test_results_are_encoded_per_op() -> None:
    server = node()
    messages: list[dict[str, Any]] = [
        {"op": "get", "path": []},
        {"op": "set", "path": [], "value": 1},
        {"op": "list", "path": []},
        {"op": "status"},
    ]
    for request_id, message in enumerate(messages):
        send(server, {"id": request_id, **message})
    data = (
        server.send_reply(0, sample_event())
        + server.send_reply(1, Written(EventId("pi1", 4), 99))
        + server.send_reply(2, ["a", 3])
        + server.send_reply(3, {"node": "pi1", "protocol": 1})
    )
    assert decode(data) == [
        {"id": 0, "ok": msgpack.unpackb(sample_event().pack())},
        {"id": 1, "ok": ["pi1", 4, 99]},
        {"id": 2, "ok": ["a", 3]},
        {"id": 3, "ok": {"node": "pi1", "protocol": 1}},
    ]


def test_a_result_of_the_wrong_shape_is_a_type_error_that_changes_nothing() -> None:
    server = node()
    send(server, {"id": 1, "op": "get", "path": []})
    send(server, {"id": 2, "op": "subtree", "path": []})
    with pytest.raises(TypeError, match="expected an Event"):
        server.send_reply(1, {"value": 1})
    with pytest.raises(TypeError, match="expected an Event"):
        server.send_item(2, LIVE)  # a subtree has no live marker
    with pytest.raises(TypeError, match="nil"):
        server.send_reply(2, 5)
    assert server.in_flight == {1, 2}
    assert decode(server.send_reply(1, None)) == [{"id": 1, "ok": None}]


def test_a_result_too_large_for_a_frame_can_still_be_answered_with_an_error() -> None:
    server = node()
    send(server, {"id": 1, "op": "list", "path": []})
    children = [f"child-{n:07d}" for n in range(300_000)]  # 15 bytes each: 4.5 MB
    with pytest.raises(FrameTooLargeError):
        server.send_reply(1, children)
    assert (
        decode(server.send_error(1, "too-large", "too many children"))[0]["error"]["type"]
        == "too-large"
    )


def test_cancel_stops_items_but_the_final_reply_still_comes() -> None:
    server = node()
    send(server, {"id": 4, "op": "watch", "path": []})
    assert server.send_item(4, sample_event()) != b""
    assert send(server, {"id": 4, "cancel": True}) == Cancel(4)
    assert server.send_item(4, sample_event()) == b"", "dropped after the cancel"
    assert server_events(server, encode_frame({"id": 4, "cancel": True})) == [], "only once"
    assert server.in_flight == {4}
    assert decode(server.send_error(4, "cancelled", "cancelled by the client")) == [
        {"id": 4, "error": {"type": "cancelled", "message": "cancelled by the client"}}
    ]
    assert server_events(server, encode_frame({"id": 4, "cancel": True})) == [], "crossed: ignored"


def test_misuse_is_a_sticky_local_protocol_error() -> None:
    server = node()
    send(server, {"id": 1, "op": "get", "path": []})
    with pytest.raises(LocalProtocolError, match="request 2: it is not in flight"):
        server.send_reply(2, None)
    with pytest.raises(LocalProtocolError, match="failed earlier"):
        server.send_reply(1, None)
    with pytest.raises(LocalProtocolError, match="failed earlier"):
        server.next_event()
    assert decode(server.data_to_send()) == [
        {
            "id": None,
            "error": {
                "type": "internal",
                "message": "the server hit an internal error and ends the connection",
            },
        }
    ]


@pytest.mark.parametrize(
    "misuse",
    [
        lambda server: server.send_item(1, sample_event()),  # get is not a stream
        lambda server: server.greeting(),
        lambda server: server.send_error(9, "internal", "x"),
        lambda server: server.receive_data(b"") or server.receive_data(b"x"),
    ],
)
def test_more_misuse(misuse: Any) -> None:
    server = node()
    send(server, {"id": 1, "op": "get", "path": []})
    with pytest.raises(LocalProtocolError):
        misuse(server)
    with pytest.raises(LocalProtocolError):
        server.send_reply(1, None)


def test_next_event_needs_the_greeting_first() -> None:
    server = ServerConnection("pi1")
    server.receive_data(encode_frame({"id": 1, "op": "status"}))
    with pytest.raises(LocalProtocolError, match="greeting"):
        server.next_event()
    assert server.data_to_send() == b"", "no goodbye before a greeting"


def test_garbage_ends_the_connection_with_a_goodbye_and_stays_failed() -> None:
    server = node()
    send(server, {"id": 1, "op": "watch", "path": []})
    server.receive_data((16 << 20).to_bytes(4, "big"))
    with pytest.raises(RemoteProtocolError, match="16777216 bytes, more than the limit of 4194304"):
        server.next_event()
    assert decode(server.data_to_send()) == [
        {
            "id": None,
            "error": {
                "type": "protocol",
                "message": "frame announces 16777216 bytes, more than the limit of 4194304",
            },
        }
    ]
    assert server.data_to_send() == b""
    with pytest.raises(RemoteProtocolError, match="failed earlier"):
        server.next_event()
    with pytest.raises(RemoteProtocolError, match="failed earlier"):
        server.receive_data(b"more")
    with pytest.raises(LocalProtocolError, match="failed earlier"):
        server.send_item(1, sample_event())


@pytest.mark.parametrize(
    "body",
    [
        msgpack.packb([1, 2]),
        msgpack.packb({"op": "get", "path": []}),
        msgpack.packb({"id": "seven", "op": "get"}),
        msgpack.packb({"id": 1, "cancel": 1}),
        b"\xc1",
        b"",
    ],
)
def test_messages_that_cannot_be_answered_end_the_connection(body: bytes) -> None:
    server = node()
    server.receive_data(len(body).to_bytes(4, "big") + body)
    with pytest.raises(RemoteProtocolError):
        server.next_event()
    (goodbye,) = decode(server.data_to_send())
    assert goodbye["id"] is None and goodbye["error"]["type"] == "protocol"


def test_end_of_stream() -> None:
    server = node()
    server.receive_data(encode_frame({"id": 1, "op": "status"}) + b"")
    server.receive_data(b"")
    assert isinstance(server.next_event(), Request)
    assert server.next_event() == ConnectionClosed()
    assert server.next_event() == ConnectionClosed()
    assert server.send_reply(1, {}) != b"", "a half-closed client may still read"


def test_end_of_stream_inside_a_frame_is_an_error() -> None:
    server = node()
    server.receive_data(encode_frame({"id": 1, "op": "status"})[:-1])
    server.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="in the middle of a frame"):
        server.next_event()


def test_goodbye_ends_everything() -> None:
    server = node()
    send(server, {"id": 1, "op": "watch", "path": []})
    assert decode(server.send_goodbye("shutdown", "the node is stopping")) == [
        {"id": None, "error": {"type": "shutdown", "message": "the node is stopping"}}
    ]
    assert server.next_event() == ConnectionClosed()
    with pytest.raises(LocalProtocolError, match="goodbye"):
        server.send_reply(1, None)


def test_error_messages_are_bounded() -> None:
    server = node()
    send(server, {"id": 1, "op": "status"})
    (reply,) = decode(server.send_error(1, "internal", "x" * 10_000))
    assert len(reply["error"]["message"]) == 4096


def test_huge_garbage_gives_short_errors() -> None:
    server = node()
    event = send(server, {"id": 1, "op": "get", "path": [["x" * 3_000_000]]})
    assert isinstance(event, Rejected)
    assert len(server.data_to_send()) < 5000
    server.receive_data(encode_frame({"id": "y" * 3_000_000}))
    with pytest.raises(RemoteProtocolError):
        server.next_event()
    assert len(server.data_to_send()) < 5000


def test_a_timestamp_extension_in_a_request_is_a_bad_request() -> None:
    server = node()
    timestamp = msgpack.packb(msgpack.Timestamp(1, 0))
    head = msgpack.packb({"id": 1, "op": "set", "path": ["a"]})
    body = b"\x84" + head[1:] + msgpack.packb("value") + timestamp  # a map of 4
    (event,) = server_events(server, len(body).to_bytes(4, "big") + body)
    assert isinstance(event, Rejected) and event.type == "bad-request"
    assert "Timestamp" in event.message
