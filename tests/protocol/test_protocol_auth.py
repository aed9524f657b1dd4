"""Authentication: SCRAM with scrypt, tokens, verifiers, and what an eavesdropper gets."""

import hashlib
import hmac

import pytest
from protocol_support import (
    CHALLENGE,
    FAST,
    NONCE,
    PASSWORD,
    SALT,
    TOKEN,
    Wire,
    authenticator,
    client,
    client_events,
    fixed_random,
    greet,
    send,
    server_events,
)

from moat_log.errors import ConfigError
from moat_log.protocol import (
    AuthChallenge,
    Authenticated,
    ClientConnection,
    ErrorReply,
    Goodbye,
    Rejected,
    RemoteProtocolError,
    ScryptParams,
    ServerConnection,
    TokenVerifier,
    Verifier,
    make_token_verifier,
    make_verifier,
    salt_password,
)
from moat_log.protocol import auth as scram

# The test vector of docs/client-protocol.md, "Test vector".
VECTOR = {
    "SaltedPassword": "e04d28f3f52159e483485ef1fe4254635df69ac6baa77d1c2ae671b20b20afb1",
    "ClientKey": "3cafab48c2191e960f502f7ba88137cc3346a58cf83acc724cb307c1f7b74d66",
    "StoredKey": "7a1015635f04e076e15bf5b14feeb4a00d8ade71476afd370abd5e5b0df7a3ca",
    "ServerKey": "0b336bb39c09ac575921fcdf6963aa653818fdf9b739c21908beefa64446d93f",
    "ClientProof": "11d5a1d601195345b5bee287287611198afe5f66cad420887395780113dda5b9",
    "ServerSignature": "32846c6fb6be601313e2d8097cfac76acd48b1f81b10081494248107b5c5d677",
}
VECTOR_VERIFIER = (
    "scram-scrypt$16384$8$1$QEFCQ0RFRkdISUpLTE1OTw==$"
    "ehAVY18E4HbhW/WxT+60oA2K3nFHav03Cr1eWw33o8o=$CzNrs5wJrFdZIfzfaWOqZTgY/fm3OcIZCL7vpkRG2T8="
)
TOKEN_VECTOR = {
    "TokenKey": "fe5f98c6100cda04d9b74aafb65622e422ecfd80b4c766d4628d1fa735023c66",
    "ClientProof": "308c50c7afdf7cd1c9b07333368f8a860082c59242f462d13ec85b1942e82579",
    "ServerSignature": "0e52db81609b06478fafaa32e9f71d19de186baf30d63cd3f48f9430385428ce",
}


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def test_the_documented_vector_follows_from_the_formulas_alone() -> None:
    """Recompute the vector with hashlib only, the way a client in another language would."""
    salted = hashlib.scrypt(b"pencil", salt=SALT, n=16384, r=8, p=1, dklen=32)
    client_key = _hmac(salted, b"Client Key")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = _hmac(salted, b"Server Key")
    message = b"".join(
        [
            _lp(b"moat-log scram-scrypt"),
            (1).to_bytes(4, "big"),
            _lp(b"pi1"),
            _lp(b"alice"),
            _lp(CHALLENGE),
            _lp(NONCE),
            _lp(SALT),
            (16384).to_bytes(4, "big"),
            (8).to_bytes(4, "big"),
            (1).to_bytes(4, "big"),
        ]
    )
    assert len(message) == 149
    signature = _hmac(stored_key, message)
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    computed = {
        "SaltedPassword": salted,
        "ClientKey": client_key,
        "StoredKey": stored_key,
        "ServerKey": server_key,
        "ClientProof": proof,
        "ServerSignature": _hmac(server_key, message),
    }
    assert {name: value.hex() for name, value in computed.items()} == VECTOR


def test_the_implementation_reproduces_the_vector() -> None:
    verifier = make_verifier("pencil", salt=SALT)
    assert str(verifier) == VECTOR_VERIFIER
    message = scram.scram_auth_message(
        node="pi1",
        user="alice",
        challenge=CHALLENGE,
        client_nonce=NONCE,
        salt=SALT,
        params=scram.DEFAULT_SCRYPT_PARAMS,
    )
    proof, signature = scram.scram_client_proof(
        salt_password("pencil", SALT, verifier.params), message
    )
    assert proof.hex() == VECTOR["ClientProof"]
    assert signature.hex() == VECTOR["ServerSignature"]
    assert scram.verify_scram_proof(verifier, message, proof)


def test_the_token_vector_follows_from_the_formulas_alone() -> None:
    token_key = hashlib.sha256(b"s3cr3t-t0ken").digest()
    message = b"".join(
        [
            _lp(b"moat-log token"),
            (1).to_bytes(4, "big"),
            _lp(b"pi1"),
            _lp(b"heating"),
            _lp(CHALLENGE),
            _lp(NONCE),
        ]
    )
    assert len(message) == 112
    proof = _hmac(_hmac(token_key, b"Client Key"), message)
    signature = _hmac(_hmac(token_key, b"Server Key"), message)
    assert token_key.hex() == TOKEN_VECTOR["TokenKey"]
    assert proof.hex() == TOKEN_VECTOR["ClientProof"]
    assert signature.hex() == TOKEN_VECTOR["ServerSignature"]
    ours = scram.token_auth_message(
        node="pi1", user="heating", challenge=CHALLENGE, client_nonce=NONCE
    )
    assert ours == message
    assert scram.token_client_proof("s3cr3t-t0ken", message) == (proof, signature)


# --- verifiers ----------------------------------------------------------------


def test_verifier_text_form_round_trips() -> None:
    verifier = make_verifier(PASSWORD, params=FAST)
    assert Verifier.parse(str(verifier)) == verifier
    assert Verifier.parse(VECTOR_VERIFIER).params == ScryptParams(16384, 8, 1)
    token = make_token_verifier(TOKEN)
    assert TokenVerifier.parse(str(token)) == token
    assert (
        str(make_token_verifier("s3cr3t-t0ken"))
        == "token$/l+YxhAM2gTZt0qvtlYi5CLs/YC0x2bUYo0fpzUCPGY="
    )


def test_a_fresh_salt_each_time() -> None:
    assert make_verifier(PASSWORD, params=FAST) != make_verifier(PASSWORD, params=FAST)


def test_passwords_are_normalised_to_nfc() -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert make_verifier(composed, salt=SALT, params=FAST) == make_verifier(
        decomposed, salt=SALT, params=FAST
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("pbkdf2$1$2$3$4$5$6", "looks like"),
        ("scram-scrypt$16384$8$1$QEFCQ0RFRkdISUpLTE1OTw==$abc", "looks like"),
        (VECTOR_VERIFIER.replace("$16384$", "$16000$"), "power of 2"),
        (VECTOR_VERIFIER.replace("$16384$", "$016384$"), "decimal"),
        (VECTOR_VERIFIER.replace("$8$", "$+8$"), "decimal"),
        (VECTOR_VERIFIER.replace("QEFCQ0RFRkdISUpLTE1OTw==", "QEFCQ0RFRkdISUpLTE1OTw"), "base64"),
        (VECTOR_VERIFIER.replace("QEFCQ0RFRkdISUpLTE1OTw==", "QEFC"), "salt must be 16"),
        (VECTOR_VERIFIER[:-4] + "AA==", "32 bytes"),
    ],
)
def test_broken_verifiers_are_config_errors(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Verifier.parse(text)


def test_token_verifier_errors() -> None:
    with pytest.raises(ConfigError, match="looks like"):
        TokenVerifier.parse("s3cr3t")
    with pytest.raises(ConfigError, match="32 bytes"):
        TokenVerifier.parse("token$AAAA")


@pytest.mark.parametrize(
    ("n", "r", "p"),
    [
        (2**9, 8, 1),
        (3 * 2**10, 8, 1),
        (2**21, 1, 1),
        (2**14, 0, 1),
        (2**14, 33, 1),
        (2**14, 8, 17),
        (2**20, 2, 1),
    ],
)
def test_scrypt_parameters_are_bounded(n: int, r: int, p: int) -> None:
    with pytest.raises(ValueError, match="scrypt"):
        ScryptParams(n, r, p)


def test_empty_secrets_and_bad_user_names_are_refused() -> None:
    with pytest.raises(ValueError, match="password"):
        make_verifier("", params=FAST)
    with pytest.raises(ValueError, match="token"):
        make_token_verifier("")
    with pytest.raises(ValueError, match="user name"):
        scram.Authenticator({"no spaces": make_verifier("x", params=FAST)})


# --- the exchange between the two connection objects ------------------------------


def test_login_with_the_right_password() -> None:
    wire = Wire()
    event = wire.login("alice", password=PASSWORD)
    assert event == Authenticated(2, "alice", "scram-scrypt")
    assert wire.server.user == "alice" and wire.server.authenticated
    assert wire.client.user == "alice"


def test_login_with_a_token() -> None:
    wire = Wire()
    assert wire.login("heating", token=TOKEN) == Authenticated(1, "heating", "token")
    assert wire.server.user == "heating"


def _failure(user: str, **secret: str) -> tuple[ErrorReply, Rejected]:
    wire = Wire()
    _, data = wire.client.start_auth(user, **secret)
    wire.server.receive_data(data)
    events: list[object] = []
    if "password" in secret:
        events += server_events(wire.server)  # step 1: answered inside, no event
        (challenge,) = client_events(wire.client, wire.server.data_to_send())
        assert isinstance(challenge, AuthChallenge)
        salted = salt_password(secret["password"], challenge.salt, challenge.params)
        wire.server.receive_data(wire.client.send_auth_proof(salted)[1])
    (rejected,) = server_events(wire.server)
    (reply,) = client_events(wire.client, wire.server.data_to_send())
    assert isinstance(reply, ErrorReply) and isinstance(rejected, Rejected)
    assert not wire.server.authenticated and wire.client.user is None
    return reply, rejected


def test_wrong_password_unknown_user_and_wrong_token_look_the_same() -> None:
    failures = [
        _failure("alice", password="wrong"),
        _failure("mallory", password=PASSWORD),
        _failure("heating", token="wrong"),
        _failure("mallory", token=TOKEN),
        _failure("heating", password=TOKEN),  # a token user has no password
    ]
    assert {(reply.type, reply.message) for reply, _ in failures} == {
        ("auth-failed", "authentication failed: unknown user or wrong password or token")
    }
    # The server's log learns more than the wire.
    details = [rejected.detail for _, rejected in failures]
    assert details == [
        "wrong password or token 'alice'",
        "unknown user 'mallory'",
        "wrong password or token 'heating'",
        "unknown user 'mallory'",
        "unknown user 'heating'",
    ]


def test_an_unknown_user_gets_a_stable_decoy_salt() -> None:
    def step_one(user: str) -> AuthChallenge:
        wire = Wire()
        wire.to_server(wire.client.start_auth(user, password="x")[1])
        (event,) = wire.client_events()
        assert isinstance(event, AuthChallenge)
        return event

    first, again, real = step_one("mallory"), step_one("mallory"), step_one("alice")
    assert first.salt == again.salt
    assert first.params == real.params and len(first.salt) == len(real.salt)
    assert step_one("eve").salt != first.salt


def test_the_transcript_holds_nothing_reusable() -> None:
    verifier = make_verifier(PASSWORD, salt=SALT, params=FAST)
    salted = salt_password(PASSWORD, SALT, FAST)
    client_key = _hmac(salted, b"Client Key")
    credentials = scram.Authenticator(
        {"alice": verifier}, {"heating": make_token_verifier(TOKEN)}, decoy_params=FAST
    )
    password_wire = Wire(ServerConnection("pi1", authenticator=credentials))
    token_wire = Wire(ServerConnection("pi1", authenticator=credentials))
    assert isinstance(password_wire.login("alice", password=PASSWORD), Authenticated)
    assert isinstance(token_wire.login("heating", token=TOKEN), Authenticated)
    transcript = bytes(password_wire.transcript + token_wire.transcript)
    assert SALT in transcript  # public by design
    secrets = [
        PASSWORD.encode(),
        TOKEN.encode(),
        salted,
        client_key,
        verifier.stored_key,
        verifier.server_key,
        scram.token_key(TOKEN),
    ]
    for secret in secrets:
        assert secret not in transcript


def _client_frames(wire: Wire, user: str, **secret: str) -> list[bytes]:
    """Log in on *wire*; return the frames the client sent (what an eavesdropper saw)."""
    sent: list[bytes] = []
    _, data = wire.client.start_auth(user, **secret)
    sent.append(data)
    wire.to_server(data)
    (event,) = wire.client_events()
    if isinstance(event, AuthChallenge):
        _, data = wire.client.send_auth_proof(
            salt_password(secret["password"], event.salt, event.params)
        )
        sent.append(data)
        wire.to_server(data)
        (event,) = wire.client_events()
    assert isinstance(event, Authenticated)
    return sent


@pytest.mark.parametrize("secret", [{"password": PASSWORD}, {"token": TOKEN}])
def test_a_recorded_login_does_not_work_against_a_new_challenge(secret: dict[str, str]) -> None:
    user = "alice" if "password" in secret else "heating"
    credentials = authenticator()
    recorded = _client_frames(
        Wire(ServerConnection("pi1", authenticator=credentials)), user, **secret
    )
    # The attacker connects to the same node (a new challenge) and replays the frames.
    victim = ServerConnection("pi1", authenticator=credentials)
    victim.greeting()
    events = [event for frame in recorded for event in server_events(victim, frame)]
    assert not victim.authenticated
    assert [type(event) for event in events] == [Rejected]
    assert events[0].type == "auth-failed"  # type: ignore[union-attr]


def test_the_same_login_replayed_with_the_same_challenge_would_work() -> None:
    """The control for the test above: the replay fails because of the challenge alone."""
    credentials = authenticator()

    def node() -> ServerConnection:
        return ServerConnection("pi1", authenticator=credentials, random=fixed_random(CHALLENGE))

    recorded = _client_frames(Wire(node()), "alice", password=PASSWORD)
    same = node()
    same.greeting()
    for frame in recorded:
        server_events(same, frame)
    assert same.authenticated


def test_a_server_without_the_verifier_cannot_fake_the_signature() -> None:
    wire = Wire()
    _, data = wire.client.start_auth("alice", password=PASSWORD)
    wire.to_server(data)
    (challenge,) = wire.client_events()
    assert isinstance(challenge, AuthChallenge)
    _, data = wire.client.send_auth_proof(salt_password(PASSWORD, challenge.salt, challenge.params))
    server_events(wire.server, data)
    reply = bytearray(wire.server.data_to_send())
    reply[-1] ^= 1  # the last byte of the signature
    wire.client.receive_data(bytes(reply))
    with pytest.raises(RemoteProtocolError, match="signature is wrong"):
        wire.client.next_event()
    assert wire.client.user is None


def test_the_client_refuses_cheap_scrypt_parameters() -> None:
    wire = Wire(min_n=2**14)  # the server's users have N = 2**10
    _, data = wire.client.start_auth("alice", password=PASSWORD)
    server_events(wire.server, data)
    wire.client.receive_data(wire.server.data_to_send())
    with pytest.raises(RemoteProtocolError, match="N=1024, below this client's minimum"):
        wire.client.next_event()


def test_three_failed_logins_end_the_connection() -> None:
    wire = Wire()
    assert isinstance(wire.login("alice", password="one"), ErrorReply)
    assert isinstance(wire.login("alice", password="two"), ErrorReply)
    _, data = wire.client.start_auth("heating", token="three")
    with pytest.raises(RemoteProtocolError, match="3 failed authentication attempts"):
        wire.to_server(data)
    reply, goodbye = wire.client_events()
    assert isinstance(reply, ErrorReply) and reply.type == "auth-failed"
    assert goodbye == Goodbye(
        "auth-failed", "3 failed authentication attempts (last: wrong password or token 'heating')"
    )


def test_only_auth_before_authentication() -> None:
    server = ServerConnection("pi1", authenticator=authenticator())
    server.greeting()
    event = send(server, {"id": 1, "op": "get", "path": []})
    assert isinstance(event, Rejected) and event.type == "auth-required"
    assert server.in_flight == frozenset()
    event = send(server, {"id": 2, "op": "status"})
    assert isinstance(event, Rejected) and event.type == "auth-required"


def test_auth_out_of_order_or_twice_is_a_bad_request() -> None:
    wire = Wire()
    event = send(
        wire.server,
        {"id": 1, "op": "auth", "method": "scram-scrypt", "step": 2, "proof": b"p" * 32},
    )
    assert isinstance(event, Rejected) and event.message == "auth step 2 without step 1"
    wire.server.data_to_send()
    assert isinstance(wire.login("heating", token=TOKEN), Authenticated)
    event = send(
        wire.server,
        {
            "id": 9,
            "op": "auth",
            "method": "token",
            "user": "heating",
            "nonce": b"n" * 32,
            "proof": b"p" * 32,
        },
    )
    assert isinstance(event, Rejected) and "already authenticated as 'heating'" in event.message


def test_no_auth_connection_refuses_auth_and_offers_nothing() -> None:
    server = ServerConnection("pi1")
    own = client()
    greeting = greet(server, own)
    assert greeting.auth == ()
    with pytest.raises(ValueError, match="needs no authentication"):
        own.start_auth("alice", password=PASSWORD)
    event = send(
        server,
        {
            "id": 1,
            "op": "auth",
            "method": "token",
            "user": "heating",
            "nonce": b"n" * 32,
            "proof": b"p" * 32,
        },
    )
    assert isinstance(event, Rejected) and event.type == "bad-request"
    assert server.authenticated and server.user is None


def test_start_auth_arguments_are_checked_before_anything_changes() -> None:
    wire = Wire()
    with pytest.raises(ValueError, match="either a password or a token"):
        wire.client.start_auth("alice")
    with pytest.raises(ValueError, match="either a password or a token"):
        wire.client.start_auth("alice", password="a", token="b")
    with pytest.raises(ValueError, match="user name"):
        wire.client.start_auth("al ice", password="a")
    assert isinstance(wire.login("alice", password=PASSWORD), Authenticated)


def test_client_nonce_comes_from_the_random_source() -> None:
    server = ServerConnection("pi1", authenticator=authenticator(), random=fixed_random(CHALLENGE))
    own = ClientConnection(min_scrypt_n=FAST.n, random=fixed_random(NONCE))
    greet(server, own)
    _, data = own.start_auth("alice", password=PASSWORD)
    assert NONCE in data
