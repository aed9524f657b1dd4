"""Fuzzing: a peer's garbage never does more than end its own connection.

Three harnesses: raw bytes, well-framed msgpack values shaped like requests,
and a stateful machine that runs a client and a server against each other
with arbitrary interleavings, cancels and partial deliveries.
"""

import contextlib
import itertools
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from protocol_support import (
    CHALLENGE,
    authenticator,
    client_events,
    fixed_random,
    sample_event,
    server_events,
)

from moat_log.protocol import (
    LIVE,
    ClientConnection,
    ErrorReply,
    Item,
    Rejected,
    RemoteProtocolError,
    Reply,
    Request,
    ServerConnection,
    Written,
    encode_frame,
)
from moat_log.protocol.framing import frame_bytes
from moat_log.protocol.replies import Greeting

servers = st.sampled_from(["open", "auth"]).map(
    lambda kind: ServerConnection(
        "pi1",
        authenticator=authenticator() if kind == "auth" else None,
        random=fixed_random(CHALLENGE),
    )
)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _feed_server(server: ServerConnection, chunks: list[bytes]) -> RemoteProtocolError | None:
    """Feed chunks, answering nothing; return the RemoteProtocolError if one came."""
    try:
        for chunk in chunks:
            server.receive_data(chunk)
            server_events(server)
            server.data_to_send()
        server.receive_data(b"")
        server_events(server)
    except RemoteProtocolError as exc:
        return exc
    return None


def _assert_failed_for_good(server: ServerConnection) -> None:
    goodbye = server.data_to_send()
    assert goodbye, "a goodbye is sent"
    message = msgpack.unpackb(goodbye[4:])
    assert message["id"] is None and message["error"]["type"] in ("protocol", "auth-failed")
    for call in (server.next_event, lambda: server.receive_data(b"x")):
        try:
            call()
        except RemoteProtocolError:
            continue
        raise AssertionError("the error state is sticky")


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(servers, st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=6))
def test_arbitrary_bytes_raise_nothing_but_remote_protocol_error(
    server: ServerConnection, data: bytes, cuts: list[int]
) -> None:
    server.greeting()
    if _feed_server(server, _chunks(data, cuts)) is not None:
        _assert_failed_for_good(server)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(servers, st.binary(max_size=200))
def test_arbitrary_frame_bodies_raise_nothing_but_remote_protocol_error(
    server: ServerConnection, body: bytes
) -> None:
    server.greeting()
    if _feed_server(server, [frame_bytes(body)]) is not None:
        _assert_failed_for_good(server)


KEYS = ["id", "op", "path", "value", "source", "cause", "recursive", "limit", "since"]
KEYS += ["until", "origin", "follow", "cancel", "method", "step", "user", "nonce", "proof"]
OPS = ["get", "set", "delete", "list", "subtree", "watch", "history", "log", "replay"]
OPS += ["status", "auth", "frob", ""]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**65),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=40),
    st.sampled_from([*OPS, "scram-scrypt", "token", "alice", "heating", "pi1"]),
)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(scalars, inner, max_size=3),
    max_leaves=10,
)
request_like = st.dictionaries(st.sampled_from(KEYS) | scalars, anything, max_size=7)
ids = st.integers(0, 5)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    servers,
    st.lists(
        st.one_of(
            request_like,
            anything,
            st.fixed_dictionaries(
                {"id": ids},
                optional={
                    "op": st.sampled_from(OPS),
                    "path": anything,
                    "value": anything,
                    "cancel": anything,
                },
            ),
        ),
        max_size=12,
    ),
)
def test_request_shaped_garbage_is_answered_or_ends_the_connection(
    server: ServerConnection, messages: list[Any]
) -> None:
    server.greeting()
    for message in messages:
        try:
            data = encode_frame(message)
        except ValueError:
            continue  # not packable (e.g. an integer beyond 64 bits)
        server.receive_data(data)
        try:
            events = server_events(server)
        except RemoteProtocolError:
            _assert_failed_for_good(server)
            return
        answered = server.data_to_send()
        for event in events:
            if isinstance(event, Rejected):
                assert answered, "every rejection is answered"
            if isinstance(event, Request):
                assert event.id in server.in_flight or event.OP == "auth"


def test_the_client_survives_garbage_from_a_server() -> None:
    @given(st.binary(max_size=300), st.lists(request_like | anything, max_size=5))
    def run(data: bytes, messages: list[Any]) -> None:
        client = ClientConnection()
        client.receive_data(ServerConnection("pi1").greeting())
        assert isinstance(client.next_event(), Greeting)
        client.send_request("watch", path=[])
        client.send_request("get", path=[])
        stream = bytearray(data)
        for message in messages:
            with contextlib.suppress(ValueError):  # not packable
                stream += encode_frame(message)
        with contextlib.suppress(RemoteProtocolError):
            client_events(client, bytes(stream))

    run()


class ClientServerMachine(RuleBasedStateMachine):
    """A client and a server, bytes in flight both ways, delivered in arbitrary pieces."""

    def __init__(self) -> None:
        super().__init__()
        self.server = ServerConnection("pi1", random=fixed_random(CHALLENGE))
        self.client = ClientConnection()
        self.to_server = bytearray()
        self.to_client = bytearray(self.server.greeting())
        self.greeted = False
        self.open_requests: dict[int, str] = {}  # what the server handed out, by id
        self.cancelled: set[int] = set()  # cancels the client sent
        self.finished: set[int] = set()  # final replies the client received

    @rule(op=st.sampled_from(["get", "set", "subtree", "watch", "status"]))
    @precondition(lambda self: self.greeted)
    def request(self, op: str) -> None:
        arguments: dict[str, dict[str, Any]] = {
            "get": {"path": ["a"]},
            "set": {"path": ["a"], "value": 1},
            "subtree": {"path": []},
            "watch": {"path": ["a"]},
            "status": {},
        }
        _, data = self.client.send_request(op, **arguments[op])
        self.to_server += data

    @rule(data=st.data())
    @precondition(lambda self: self.greeted and self.client.in_flight)
    def cancel(self, data: st.DataObject) -> None:
        request_id = data.draw(st.sampled_from(sorted(self.client.in_flight)))
        self.to_server += self.client.send_cancel(request_id)
        self.cancelled.add(request_id)

    @rule(size=st.integers(1, 200))
    @precondition(lambda self: self.to_server)
    def deliver_to_server(self, size: int) -> None:
        chunk, self.to_server[:size] = bytes(self.to_server[:size]), b""
        for event in server_events(self.server, chunk):
            assert not isinstance(event, Rejected), event
            if isinstance(event, Request):
                self.open_requests[event.id] = event.OP
        self.to_client += self.server.data_to_send()

    @rule(data=st.data())
    @precondition(
        lambda self: any(op in ("subtree", "watch") for op in self.open_requests.values())
    )
    def server_item(self, data: st.DataObject) -> None:
        streams = sorted(i for i, op in self.open_requests.items() if op in ("subtree", "watch"))
        request_id = data.draw(st.sampled_from(streams))
        item = (
            data.draw(st.sampled_from([sample_event(), LIVE]))
            if self.open_requests[request_id] == "watch"
            else sample_event()
        )
        self.to_client += self.server.send_item(request_id, item)

    @rule(data=st.data(), fail=st.booleans())
    @precondition(lambda self: self.open_requests)
    def server_final(self, data: st.DataObject, fail: bool) -> None:
        request_id = data.draw(st.sampled_from(sorted(self.open_requests)))
        op = self.open_requests.pop(request_id)
        if fail:
            self.to_client += self.server.send_error(request_id, "cancelled", "stopped")
            return
        result: Any = {
            "get": None,
            "set": Written(sample_event().id, 5),
            "status": {"node": "pi1"},
        }.get(op)
        self.to_client += self.server.send_reply(request_id, result)

    @rule(size=st.integers(1, 300))
    @precondition(lambda self: self.to_client)
    def deliver_to_client(self, size: int) -> None:
        chunk, self.to_client[:size] = bytes(self.to_client[:size]), b""
        for event in client_events(self.client, chunk):
            if isinstance(event, Greeting):
                self.greeted = True
            elif isinstance(event, Item):
                assert event.id not in self.cancelled, "no items after a cancel"
                assert event.id not in self.finished
            elif isinstance(event, Reply | ErrorReply):
                assert event.id not in self.finished
                self.finished.add(event.id)

    @invariant()
    def the_server_never_knows_more_than_the_client(self) -> None:
        assert self.server.in_flight <= self.client.in_flight
        assert set(self.open_requests) == self.server.in_flight

    @invariant()
    def quiet_wires_agree(self) -> None:
        if not self.to_server and not self.to_client and self.greeted:
            assert self.client.in_flight == self.server.in_flight
            assert not self.client.in_flight & self.finished


ClientServerMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None
)
test_client_and_server_agree_under_any_interleaving = ClientServerMachine.TestCase


@given(st.integers(0, 2**64 - 1))
def test_any_id_round_trips(request_id: int) -> None:
    server = ServerConnection("pi1")
    server.greeting()
    (event,) = server_events(server, encode_frame({"id": request_id, "op": "status"}))
    assert isinstance(event, Request) and event.id == request_id
