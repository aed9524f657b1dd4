"""Helpers for the client protocol tests: connections, pumping bytes, sample events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moat_log.event import Event, Op
from moat_log.ids import EventId
from moat_log.path import Path
from moat_log.protocol import (
    NEED_DATA,
    AuthChallenge,
    Authenticator,
    ClientConnection,
    Greeting,
    ScryptParams,
    ServerConnection,
    encode_frame,
    make_token_verifier,
    make_verifier,
    salt_password,
)
from moat_log.protocol.connection import ClientEvent, ServerEvent

#: Cheap scrypt for tests; the default is 2**14.
FAST = ScryptParams(n=2**10)
CHALLENGE = bytes(range(32))
NONCE = bytes(range(0x20, 0x40))
SALT = bytes(range(0x40, 0x50))
HLC = 1_763_712_000_000_000_000

PASSWORD = "correct horse battery staple"
TOKEN = "2Vq6m1y7xU0-b2fJ4kTz8HcQ"


def fixed_random(data: bytes) -> Callable[[int], bytes]:
    """A stand-in for os.urandom that returns the start of *data*."""
    return lambda size: data[:size]


def authenticator() -> Authenticator:
    """alice has a password, heating a token; fast parameters everywhere."""
    return Authenticator(
        {"alice": make_verifier(PASSWORD, params=FAST)},
        {"heating": make_token_verifier(TOKEN)},
        secret=b"k" * 32,
        decoy_params=FAST,
    )


def client() -> ClientConnection:
    return ClientConnection(min_scrypt_n=FAST.n)


def greet(server: ServerConnection, client: ClientConnection) -> Greeting:
    """Deliver the greeting; return what the client made of it."""
    client.receive_data(server.greeting())
    event = client.next_event()
    assert isinstance(event, Greeting)
    return event


def server_events(server: ServerConnection, data: bytes = b"") -> list[ServerEvent]:
    """Feed *data* and collect events up to NEED_DATA (or a ConnectionClosed)."""
    if data:
        server.receive_data(data)
    found: list[ServerEvent] = []
    while (event := server.next_event()) is not NEED_DATA:
        found.append(event)
        if type(event).__name__ == "ConnectionClosed":
            break
    return found


def client_events(client: ClientConnection, data: bytes = b"") -> list[ClientEvent]:
    """Feed *data* to the client and collect its events up to NEED_DATA."""
    if data:
        client.receive_data(data)
    found: list[ClientEvent] = []
    while (event := client.next_event()) is not NEED_DATA:
        found.append(event)
        if type(event).__name__ == "ConnectionClosed":
            break
    return found


def send(server: ServerConnection, message: dict[str, Any]) -> ServerEvent:
    """Deliver one encoded message to *server*; return the one event it causes."""
    (event,) = server_events(server, encode_frame(message))
    return event


def sample_event(seq: int = 3, path: tuple[str | int, ...] = ("home", "kitchen", "temp")) -> Event:
    return Event(
        "pi1", seq, HLC + seq, {"pi2": 7}, Path(path), Op.SET, 21.5, "knx:1/2/3", EventId("pi2", 7)
    )


class Wire:
    """A client and a server, with every byte that crossed between them recorded."""

    def __init__(self, server: ServerConnection | None = None, *, min_n: int = FAST.n) -> None:
        self.server = server or ServerConnection("pi1", authenticator=authenticator())
        self.client = ClientConnection(min_scrypt_n=min_n)
        self.transcript = bytearray()
        data = self.server.greeting()
        self.transcript += data
        self.client.receive_data(data)
        self.client.next_event()

    def to_server(self, data: bytes) -> None:
        self.transcript += data
        try:
            server_events(self.server, data)
        finally:
            self.transcript += (out := self.server.data_to_send())
            self.client.receive_data(out)

    def client_events(self) -> list[ClientEvent]:
        return client_events(self.client)

    def login(
        self, user: str, *, password: str | None = None, token: str | None = None
    ) -> ClientEvent:
        """Run a whole login; the last client event (Authenticated or ErrorReply)."""
        _, data = self.client.start_auth(user, password=password, token=token)
        self.to_server(data)
        (event,) = self.client_events()
        if isinstance(event, AuthChallenge):
            assert password is not None
            salted = salt_password(password, event.salt, event.params)
            _, data = self.client.send_auth_proof(salted)
            self.to_server(data)
            (event,) = self.client_events()
        return event
