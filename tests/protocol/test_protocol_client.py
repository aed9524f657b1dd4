"""The client's connection object: greeting, ids, decoding results, cancel, errors."""

from typing import Any

import msgpack
import pytest
from protocol_support import CHALLENGE, client_events, fixed_random, sample_event

from moat_log.errors import (
    AuthenticationError,
    BadRequestError,
    MoatLogError,
    NodeBusyError,
    NodeError,
    NodeStoppingError,
    NotFoundError,
    PermissionDeniedError,
    StreamOverflowError,
)
from moat_log.event import Event
from moat_log.ids import EventId
from moat_log.protocol import (
    LIVE,
    NEED_DATA,
    ClientConnection,
    ConnectionClosed,
    ErrorReply,
    FrameTooLargeError,
    Goodbye,
    Greeting,
    Item,
    LocalProtocolError,
    RemoteProtocolError,
    Reply,
    ServerConnection,
    Written,
    encode_frame,
)
from moat_log.protocol.framing import frame_bytes

GREETING = {"moat-log": 1, "node": "pi1", "auth": [], "challenge": CHALLENGE, "max_frame": 1000}


def connected(greeting: dict[str, Any] | None = None) -> ClientConnection:
    client = ClientConnection()
    (event,) = client_events(client, encode_frame(greeting or GREETING))
    assert event == Greeting(1, "pi1", (), CHALLENGE, 1000)
    return client


def test_the_greeting_comes_first_and_unknown_keys_are_ignored() -> None:
    client = ClientConnection()
    with pytest.raises(LocalProtocolError, match="wait for the server's greeting"):
        client.send_request("status")
    client = connected({**GREETING, "motd": "hello"})
    assert client.greeting is not None and client.greeting.node == "pi1"


@pytest.mark.parametrize(
    ("greeting", "fragment"),
    [
        ({**GREETING, "moat-log": 2}, "speaks protocol version 2; this client speaks version 1"),
        ({"hello": 1}, "no moat-log greeting"),
        ([1, "pi1"], "no moat-log greeting"),
        ({**GREETING, "node": "bad name"}, "invalid node name"),
        ({**GREETING, "auth": "scram-scrypt"}, "array of str"),
        ({**GREETING, "challenge": b"short"}, "32 bytes"),
        ({**GREETING, "max_frame": 0}, "max_frame"),
    ],
)
def test_bad_greetings(greeting: Any, fragment: str) -> None:
    client = ClientConnection()
    client.receive_data(encode_frame(greeting))
    with pytest.raises(RemoteProtocolError, match=fragment):
        client.next_event()


def test_ids_count_up_and_bad_arguments_use_none() -> None:
    client = connected()
    assert client.send_request("status")[0] == 1
    with pytest.raises(ValueError, match="'path'"):
        client.send_request("get", path="home.kitchen")
    with pytest.raises(TypeError):
        client.send_request("get", paht=["a"])
    with pytest.raises(ValueError, match="unknown op 'frob'"):
        client.send_request("frob")
    with pytest.raises(ValueError, match="start_auth"):
        client.send_request("auth")
    with pytest.raises(FrameTooLargeError):
        client.send_request("set", path=["a"], value="x" * 1000)  # the greeting's max_frame
    assert client.send_request("get", path=["a"]) == (
        2,
        encode_frame({"id": 2, "op": "get", "path": ["a"]}),
    )
    assert client.in_flight == {1, 2}


def answer(client: ClientConnection, message: dict[str, Any]) -> Any:
    (event,) = client_events(client, encode_frame(message))
    return event


def test_results_are_decoded_according_to_the_op() -> None:
    client = connected()
    event = sample_event()
    wire_event = msgpack.unpackb(event.pack())
    get, set_, list_, status, missing = (
        client.send_request("get", path=["a"])[0],
        client.send_request("set", path=["a"], value=1)[0],
        client.send_request("list", path=[])[0],
        client.send_request("status")[0],
        client.send_request("get", path=["b"])[0],
    )
    assert answer(client, {"id": get, "ok": wire_event}) == Reply(get, event)
    assert type(answer(client, {"id": missing, "ok": None}).result) is type(None)
    assert answer(client, {"id": set_, "ok": ["pi1", 4, 99]}) == Reply(
        set_, Written(EventId("pi1", 4), 99)
    )
    assert answer(client, {"id": list_, "ok": ["a", 3]}) == Reply(list_, ("a", 3))
    assert answer(client, {"id": status, "ok": {"node": "pi1", "x": [1]}}) == Reply(
        status, {"node": "pi1", "x": [1]}
    )
    assert client.in_flight == frozenset()


def test_a_stream_and_its_live_marker() -> None:
    client = connected()
    watch, _ = client.send_request("watch", path=["home"])
    event = msgpack.unpackb(sample_event().pack())
    data = b"".join(
        encode_frame(message)
        for message in (
            {"id": watch, "item": event},
            {"id": watch, "item": {"state": "live"}},
            {"id": watch, "error": {"type": "shutdown", "message": "bye", "detail": 1}},
        )
    )
    events = client_events(client, data)
    assert events == [
        Item(watch, sample_event()),
        Item(watch, LIVE),
        ErrorReply(watch, "shutdown", "bye"),
    ]
    error = events[2].exception()  # type: ignore[union-attr]
    assert isinstance(error, NodeStoppingError) and error.error_type == "shutdown"
    assert (str(error), error.message, error.request_id) == ("shutdown: bye", "bye", watch)


@pytest.mark.parametrize(
    ("error_type", "kind"),
    [
        ("auth-required", AuthenticationError),
        ("auth-failed", AuthenticationError),
        ("permission-denied", PermissionDeniedError),
        ("not-found", NotFoundError),
        ("overflow", StreamOverflowError),
        ("shutdown", NodeStoppingError),
        ("busy", NodeBusyError),
        ("bad-request", BadRequestError),
        ("unknown-op", BadRequestError),
        ("duplicate-id", BadRequestError),
        ("invalid-value", BadRequestError),
        ("too-large", BadRequestError),
        ("cancelled", NodeError),
        ("internal", NodeError),
        ("a-type-of-a-later-version", NodeError),
    ],
)
def test_each_error_reply_raises_the_kind_a_script_catches(
    error_type: str, kind: type[NodeError]
) -> None:
    error = ErrorReply(7, error_type, "why").exception()
    assert type(error) is kind
    assert isinstance(error, NodeError) and isinstance(error, MoatLogError)
    assert (error.error_type, error.message, error.request_id) == (error_type, "why", 7)
    assert isinstance(error, ValueError) == (kind is BadRequestError)


@pytest.mark.parametrize("error_type", ["shutdown", "permission-denied", "overflow", "busy"])
def test_except_value_error_does_not_swallow_what_the_node_reports(error_type: str) -> None:
    """A script guarding its own parsing with ``except ValueError`` still hears the node."""
    error = ErrorReply(1, error_type, "why").exception()
    with pytest.raises(NodeError):
        try:
            raise error
        except ValueError:  # a script's own bad-input handler
            pytest.fail(f"except ValueError caught {error_type}")


def test_items_after_a_cancel_are_dropped_and_the_final_reply_arrives() -> None:
    client = connected()
    watch, _ = client.send_request("watch", path=[])
    assert client.send_cancel(watch) == encode_frame({"id": watch, "cancel": True})
    assert client.send_cancel(watch) == b"", "once is enough"
    item = encode_frame({"id": watch, "item": msgpack.unpackb(sample_event().pack())})
    final = encode_frame({"id": watch, "error": {"type": "cancelled", "message": "cancelled"}})
    assert client_events(client, item + item + final) == [
        ErrorReply(watch, "cancelled", "cancelled")
    ]
    assert client.send_cancel(watch) == b"", "already finished"
    with pytest.raises(LocalProtocolError, match="never sent"):
        client.send_cancel(99)


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        ({"id": 7, "ok": None}, "request 7, which is not in flight"),
        ({"id": 1, "item": 5}, "stream item for request 1 \\(get\\)"),
        ({"id": 1, "ok": [1, 2]}, "invalid event"),
        ({"id": 1, "ok": None, "error": {"type": "x", "message": "y"}}, "ok and error"),
        ({"id": 1}, "none of ok/item/error"),
        ({"ok": None}, "not a map with an 'id'"),
        ({"id": None, "ok": None}, "without an id"),
        ({"id": -1, "ok": None}, "invalid id"),
        ({"id": 1, "error": "oops"}, "'type': str"),
        ([1, 2], "not a map"),
    ],
)
def test_server_garbage_is_a_remote_protocol_error(message: Any, fragment: str) -> None:
    client = connected()
    client.send_request("get", path=[])
    client.receive_data(encode_frame(message))
    with pytest.raises(RemoteProtocolError, match=fragment):
        client.next_event()
    with pytest.raises(RemoteProtocolError, match="failed earlier"):
        client.next_event()
    with pytest.raises(LocalProtocolError, match="failed earlier"):
        client.send_request("status")


@pytest.mark.parametrize(
    ("op", "args", "result", "fragment"),
    [
        ("set", {"path": [], "value": 1}, ["pi1", 0, 5], "origin, seq, hlc"),
        ("list", {"path": []}, ["a", 1.5], "child segment"),
        ("list", {"path": []}, "a", "not an array"),
        ("status", {}, {1: 2}, "str keys"),
        ("subtree", {"path": []}, 5, "not nil"),
    ],
)
def test_results_of_the_wrong_shape(
    op: str, args: dict[str, Any], result: Any, fragment: str
) -> None:
    client = connected()
    request_id, _ = client.send_request(op, **args)
    client.receive_data(encode_frame({"id": request_id, "ok": result}))
    with pytest.raises(RemoteProtocolError, match=fragment):
        client.next_event()


def test_a_watch_item_must_be_an_event_or_the_live_marker() -> None:
    client = connected()
    request_id, _ = client.send_request("watch", path=[])
    client.receive_data(encode_frame({"id": request_id, "item": {"state": "dead"}}))
    with pytest.raises(RemoteProtocolError, match="unknown stream marker"):
        client.next_event()


def test_goodbye_and_end_of_stream() -> None:
    client = connected()
    client.send_request("watch", path=[])
    goodbye = encode_frame({"id": None, "error": {"type": "shutdown", "message": "stopping"}})
    assert client_events(client, goodbye) == [Goodbye("shutdown", "stopping")]
    with pytest.raises(LocalProtocolError, match="closed the connection"):
        client.send_request("status")
    client.receive_data(b"")
    assert client.next_event() == ConnectionClosed()


def test_nothing_may_follow_a_goodbye() -> None:
    client = connected()
    goodbye = encode_frame({"id": None, "error": {"type": "shutdown", "message": "stopping"}})
    client.receive_data(goodbye + goodbye)
    assert isinstance(client.next_event(), Goodbye)
    with pytest.raises(RemoteProtocolError, match="after its goodbye"):
        client.next_event()


def test_end_of_stream_with_requests_in_flight() -> None:
    client = connected()
    client.send_request("get", path=[])
    client.receive_data(frame_bytes(b"\x81")[:3])
    client.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="middle of a frame"):
        client.next_event()


def test_a_client_and_a_server_talk() -> None:
    server = ServerConnection("pi1", random=fixed_random(CHALLENGE))
    client = ClientConnection()
    client.receive_data(server.greeting())
    assert isinstance(client.next_event(), Greeting)
    request_id, data = client.send_request("subtree", path=["home"])
    server.receive_data(data)
    request = server.next_event()
    assert server.next_event() is NEED_DATA
    events = [sample_event(seq, ("home", name)) for seq, name in enumerate(["a", "b"], 1)]
    reply = b"".join(server.send_item(request_id, event) for event in events)
    client.receive_data(reply + server.send_reply(request.id, None))  # type: ignore[union-attr]
    received = client_events(client)
    assert [item.value for item in received[:2]] == events  # type: ignore[union-attr]
    assert received[2] == Reply(request_id, None)
    assert all(type(item.value) is Event for item in received[:2])  # type: ignore[union-attr]
