"""Requests: wire form, strict parsing, request-level errors that carry the id."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.durability import Durability
from moat_log.ids import EventId
from moat_log.path import Path
from moat_log.protocol import (
    AuthProofRequest,
    AuthStartRequest,
    Cancel,
    DeleteRequest,
    FrameDecoder,
    GetRequest,
    HistoryRequest,
    ListRequest,
    LogRequest,
    RemoteProtocolError,
    ReplayRequest,
    Request,
    RequestError,
    SetRequest,
    StatusRequest,
    SubtreeRequest,
    TokenAuthRequest,
    WatchRequest,
    encode_frame,
    parse_request,
)
from moat_log.protocol.messages import parse_client_message

# (request, frame) — worked out by hand from the msgpack specification.
REQUEST_FRAMES = [
    (GetRequest(1, Path(["a"])), "00000014 83 a26964 01 a26f70 a3676574 a470617468 91a161"),
    (StatusRequest(9), "0000000f 82 a26964 09 a26f70 a6737461747573"),
    (
        DeleteRequest(2, Path([3]), source="cli:bob"),
        "00000025 84 a26964 02 a26f70 a664656c657465 a470617468 9103"
        " a6736f75726365 a7636c693a626f62",
    ),
    (
        HistoryRequest(3, Path(["a"]), recursive=True, limit=10),
        "0000002a 85 a26964 03 a26f70 a7686973746f7279 a470617468 91a161"
        " a9726563757273697665 c3 a56c696d6974 0a",
    ),
    (
        LogRequest(4, since=EventId("pi1", 5), follow=True),
        "00000020 84 a26964 04 a26f70 a36c6f67 a573696e6365 92a370693105 a6666f6c6c6f77 c3",
    ),
    (
        ReplayRequest(5, until=1000),
        "00000018 83 a26964 05 a26f70 a67265706c6179 a5756e74696c cd03e8",
    ),
    (
        SetRequest(6, Path(["a"]), None),
        "0000001b 84 a26964 06 a26f70 a3736574 a470617468 91a161 a576616c7565 c0",
    ),
    (
        DeleteRequest(7, Path(["a"]), durability=Durability.BATCHED),
        "0000002a 84 a26964 07 a26f70 a664656c657465 a470617468 91a161"
        " aa6475726162696c697479 a762617463686564",
    ),
]


@pytest.mark.parametrize(("request_", "hex_frame"), REQUEST_FRAMES)
def test_request_frames_are_exact(request_: Request, hex_frame: str) -> None:
    frame = bytes.fromhex(hex_frame)
    assert encode_frame(request_.to_wire()) == frame
    decoder = FrameDecoder()
    decoder.receive_data(frame)
    assert parse_request(decoder.next_frame()) == request_


paths = st.lists(
    st.one_of(
        st.text(st.characters(exclude_categories=["Cs"]), max_size=6),
        st.integers(-(2**63), 2**63 - 1),
    ),
    max_size=5,
)
times = st.one_of(
    st.integers(0, 2**64 - 1),
    st.builds(
        EventId, st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True), st.integers(1, 2**64 - 1)
    ),
)
ids = st.integers(0, 2**64 - 1)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
optional_source = st.none() | st.text(max_size=20)
optional_cause = st.none() | st.builds(EventId, st.just("pi2"), st.integers(1, 99))
durabilities = st.none() | st.sampled_from(Durability)
requests = st.one_of(
    st.builds(GetRequest, ids, paths),
    st.builds(SetRequest, ids, paths, values, optional_source, optional_cause, durabilities),
    st.builds(DeleteRequest, ids, paths, optional_source, optional_cause, durabilities),
    st.builds(ListRequest, ids, paths),
    st.builds(SubtreeRequest, ids, paths),
    st.builds(WatchRequest, ids, paths),
    st.builds(HistoryRequest, ids, paths, st.booleans(), st.none() | st.integers(1, 2**64 - 1)),
    st.builds(
        LogRequest,
        ids,
        st.none() | times,
        st.none(),
        st.none() | st.just("pi2"),
        st.none() | paths,
        st.none() | st.integers(1, 1000),
        st.booleans(),
    ),
    st.builds(ReplayRequest, ids, times, st.none() | paths),
    st.builds(StatusRequest, ids),
    st.builds(AuthStartRequest, ids, st.just("alice"), st.binary(min_size=32, max_size=32)),
    st.builds(AuthProofRequest, ids, st.binary(min_size=32, max_size=32)),
    st.builds(
        TokenAuthRequest,
        ids,
        st.just("bot"),
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=32, max_size=32),
    ),
)


@given(requests)
def test_every_request_survives_the_wire(request_: Request) -> None:
    decoder = FrameDecoder()
    decoder.receive_data(encode_frame(request_.to_wire()))
    again = parse_request(decoder.next_frame())
    assert again == request_
    assert type(again) is type(request_)
    assert encode_frame(again.to_wire()) == encode_frame(request_.to_wire()), "canonical"


def test_constructors_normalise_paths_and_ids() -> None:
    # Python callers may pass plain sequences; the fields hold the normalised types.
    request = SetRequest(1, ("a", 2), (1, 2), cause=["pi2", 3])  # type: ignore[arg-type]
    assert type(request.path) is Path
    assert request.value == [1, 2]
    assert request.cause == EventId("pi2", 3)
    log = LogRequest(2, since=["pi1", 4])  # type: ignore[arg-type]
    assert log.since == EventId("pi1", 4)


def test_optional_arguments_at_their_default_are_left_out() -> None:
    assert HistoryRequest(1, Path(["a"])).to_wire() == {"id": 1, "op": "history", "path": ["a"]}
    assert LogRequest(2).to_wire() == {"id": 2, "op": "log"}
    assert SetRequest(3, Path(), None).to_wire() == {
        "id": 3,
        "op": "set",
        "path": [],
        "value": None,
    }


def test_nil_for_an_optional_argument_means_absent() -> None:
    message = {"id": 1, "op": "set", "path": ["a"], "value": 1, "source": None, "cause": None}
    assert parse_request(message) == SetRequest(1, Path(["a"]), 1)


BAD_REQUESTS: list[tuple[dict[Any, Any], str, str]] = [
    ({"id": 1}, "bad-request", "needs an 'op'"),
    ({"id": 1, "op": 5}, "bad-request", "needs an 'op' that is a str"),
    ({"id": 1, "op": "frobnicate"}, "unknown-op", "unknown op 'frobnicate'"),
    ({"id": 1, "op": "get"}, "bad-request", "needs the argument 'path'"),
    ({"id": 1, "op": "get", "path": "home.kitchen"}, "bad-request", "must be an array"),
    ({"id": 1, "op": "get", "path": ["a", 1.5]}, "bad-request", "not a valid path"),
    ({"id": 1, "op": "get", "path": [True]}, "bad-request", "is a bool"),
    ({"id": 1, "op": "get", "path": ["a"] * 65}, "bad-request", "at most 64"),
    ({"id": 1, "op": "get", "path": ["a"], "depth": 2}, "bad-request", "no argument 'depth'"),
    ({"id": 1, "op": "get", "path": ["a"], 7: 2}, "bad-request", "no argument 7"),
    ({"id": 1, "op": "set", "path": ["a"]}, "bad-request", "needs the argument 'value'"),
    ({"id": 1, "op": "set", "path": ["a"], "value": {1.5: 2}}, "bad-request", "map key"),
    ({"id": 1, "op": "set", "path": [], "value": 1, "source": 3}, "bad-request", "'source'"),
    (
        {"id": 1, "op": "set", "path": [], "value": 1, "source": "x" * 257},
        "bad-request",
        "'source'",
    ),
    ({"id": 1, "op": "set", "path": [], "value": 1, "cause": ["pi2"]}, "bad-request", "'cause'"),
    ({"id": 1, "op": "set", "path": [], "value": 1, "cause": ["pi2", 0]}, "bad-request", "'cause'"),
    (
        {"id": 1, "op": "set", "path": [], "value": 1, "durability": "now"},
        "bad-request",
        "argument 'durability' must be 'sync' or 'batched', not 'now'",
    ),
    ({"id": 1, "op": "delete", "path": [], "durability": 1}, "bad-request", "'durability'"),
    ({"id": 1, "op": "history", "path": [], "recursive": 1}, "bad-request", "true or false"),
    ({"id": 1, "op": "history", "path": [], "limit": 0}, "bad-request", "'limit'"),
    ({"id": 1, "op": "log", "since": -1}, "bad-request", "'since'"),
    ({"id": 1, "op": "log", "since": "-10m"}, "bad-request", "'since'"),
    ({"id": 1, "op": "log", "origin": "no such node!"}, "bad-request", "'origin'"),
    ({"id": 1, "op": "log", "until": 5, "follow": True}, "bad-request", "cannot be combined"),
    ({"id": 1, "op": "replay"}, "bad-request", "needs the argument 'until'"),
    ({"id": 1, "op": "status", "verbose": True}, "bad-request", "its arguments are: none"),
    ({"id": 1, "op": "auth"}, "bad-request", "auth method None"),
    ({"id": 1, "op": "auth", "method": "scram-scrypt", "step": 3}, "bad-request", "step 3"),
    ({"id": 1, "op": "auth", "method": "plain", "user": "a"}, "bad-request", "'plain'"),
    (
        {
            "id": 1,
            "op": "auth",
            "method": "scram-scrypt",
            "step": 1,
            "user": "alice",
            "nonce": b"x",
        },
        "bad-request",
        "bin of 32 bytes",
    ),
    (
        {
            "id": 1,
            "op": "auth",
            "method": "scram-scrypt",
            "step": 1,
            "user": "",
            "nonce": b"x" * 32,
        },
        "bad-request",
        "invalid user name",
    ),
]


@pytest.mark.parametrize(("message", "error_type", "fragment"), BAD_REQUESTS)
def test_bad_requests_are_request_errors_carrying_the_id(
    message: dict[Any, Any], error_type: str, fragment: str
) -> None:
    with pytest.raises(RequestError) as caught:
        parse_request(message)
    assert caught.value.error_type == error_type
    assert caught.value.request_id == 1
    assert fragment in caught.value.message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "message",
    [
        [1, "get"],
        "hello",
        None,
        {"op": "get", "path": []},
        {"id": -1, "op": "status"},
        {"id": 2**64, "op": "status"},
        {"id": True, "op": "status"},
        {"id": "1", "op": "status"},
        {"id": 1.0, "op": "status"},
        {"id": 1, "cancel": False},
        {"id": 1, "cancel": True, "op": "get"},
    ],
)
def test_messages_without_an_addressable_id_are_remote_protocol_errors(message: object) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_client_message(message)


def test_a_cancel_is_recognised() -> None:
    assert parse_client_message({"cancel": True, "id": 4}) == Cancel(4)


def test_requests_built_in_python_are_validated_too() -> None:
    with pytest.raises(ValueError, match="'path'"):
        GetRequest(1, "home")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'id'"):
        StatusRequest(-1)
    with pytest.raises(ValueError, match="'value'"):
        SetRequest(1, Path(), object())
