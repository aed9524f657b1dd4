"""The byte-exact examples of docs/client-protocol.md are what the code sends.

Each example in the document is a fenced block after a ``<!-- frame: NAME -->``
marker; its hex is every leading two-digit hex token of each line (the rest
of the line is annotation).  The frames are produced here by the real
connection objects where possible, so the document shows what goes on the wire.
"""

from collections.abc import Callable
from pathlib import Path as FsPath
from typing import Any

import pytest
from protocol_support import (
    CHALLENGE,
    NONCE,
    SALT,
    client_events,
    fixed_random,
    sample_event,
    server_events,
)

from moat_log.ids import EventId
from moat_log.protocol import (
    LIVE,
    AuthChallenge,
    Authenticated,
    Authenticator,
    ClientConnection,
    RemoteProtocolError,
    ServerConnection,
    Written,
    encode_frame,
    make_token_verifier,
    make_verifier,
    salt_password,
)
from moat_log.testing import DOC_EVENT, documented_frames

DOC = FsPath(__file__).resolve().parents[2] / "docs" / "client-protocol.md"
FRAMES = documented_frames(DOC.read_text())
EVENT = DOC_EVENT


def answered(request: dict[str, Any], answer: Callable[[ServerConnection], bytes]) -> bytes:
    """What a server sends when *answer* answers *request*."""
    server = ServerConnection("pi1")
    server.greeting()
    server_events(server, encode_frame(request))
    return answer(server)


def test_every_documented_frame_is_checked() -> None:
    assert set(FRAMES) == set(EXPECTED) | {
        "greeting",
        "goodbye",
        "auth-1",
        "auth-1-ok",
        "auth-2",
        "auth-2-ok",
        "token",
        "token-ok",
    }
    assert sample_event()._replace(hlc=EVENT.hlc) == EVENT


GET = {"id": 1, "op": "get", "path": ["home", "kitchen", "temp"]}
SUBTREE = {"id": 3, "op": "subtree", "path": ["home"]}
EXPECTED: dict[str, Callable[[], bytes]] = {
    "get": lambda: encode_frame(GET),
    "get-ok": lambda: answered(GET, lambda server: server.send_reply(1, EVENT)),
    "get-not-found": lambda: answered(GET, lambda server: server.send_reply(1, None)),
    "set": lambda: encode_frame(
        {"id": 2, "op": "set", "path": ["home", "kitchen", "setpoint"], "value": 21.5}
    ),
    "set-ok": lambda: answered(
        {"id": 2, "op": "set", "path": ["a"], "value": 1},
        lambda server: server.send_reply(2, Written(EventId("pi1", 4), EVENT.hlc + 5)),
    ),
    "subtree": lambda: encode_frame(SUBTREE),
    "subtree-item": lambda: answered(SUBTREE, lambda server: server.send_item(3, EVENT)),
    "subtree-ok": lambda: answered(SUBTREE, lambda server: server.send_reply(3, None)),
    "watch-live": lambda: answered(
        {"id": 4, "op": "watch", "path": []}, lambda server: server.send_item(4, LIVE)
    ),
    "cancel": lambda: encode_frame({"id": 4, "cancel": True}),
    "error": lambda: answered(
        {"id": 5, "op": "set", "path": ["home", "door"], "value": True},
        lambda server: server.send_error(
            5, "permission-denied", "user 'bob' may not set home.door"
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_documented_frame(name: str) -> None:
    assert FRAMES[name] == EXPECTED[name]()


def test_documented_greeting_and_goodbye() -> None:
    server = ServerConnection("pi1", authenticator=Authenticator(), random=fixed_random(CHALLENGE))
    assert server.greeting() == FRAMES["greeting"]
    server.receive_data((16 << 20).to_bytes(4, "big"))
    with pytest.raises(RemoteProtocolError):
        server.next_event()
    assert server.data_to_send() == FRAMES["goodbye"]


def test_documented_logins_byte_for_byte() -> None:
    """The scram-scrypt and token examples, run through the real objects with default scrypt."""
    credentials = Authenticator(
        {"alice": make_verifier("pencil", salt=SALT)},
        {"heating": make_token_verifier("s3cr3t-t0ken")},
    )

    def pair() -> tuple[ServerConnection, ClientConnection]:
        server = ServerConnection("pi1", authenticator=credentials, random=fixed_random(CHALLENGE))
        client = ClientConnection(random=fixed_random(NONCE))
        client_events(client, server.greeting())
        return server, client

    server, client = pair()
    _, data = client.start_auth("alice", password="pencil")
    assert data == FRAMES["auth-1"]
    server_events(server, data)
    reply = server.data_to_send()
    assert reply == FRAMES["auth-1-ok"]
    (challenge,) = client_events(client, reply)
    assert isinstance(challenge, AuthChallenge)
    _, data = client.send_auth_proof(salt_password("pencil", challenge.salt, challenge.params))
    assert data == FRAMES["auth-2"]
    server_events(server, data)
    reply = server.data_to_send()
    assert reply == FRAMES["auth-2-ok"]
    assert client_events(client, reply) == [Authenticated(2, "alice", "scram-scrypt")]

    server, client = pair()
    _, data = client.start_auth("heating", token="s3cr3t-t0ken")
    assert data == FRAMES["token"]
    server_events(server, data)
    reply = server.data_to_send()
    assert reply == FRAMES["token-ok"]
    assert client_events(client, reply) == [Authenticated(1, "heating", "token")]
