"""Mutual authentication: the right secret, a wrong one, reflection and replay."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from sync_support import (
    NONCE_A,
    NONCE_B,
    OTHER_SECRET,
    SECRET,
    events_of,
    fixed_random,
)

from moat_log.idset import IdSet
from moat_log.protocol import RemoteProtocolError
from moat_log.protocol.framing import FrameDecoder, encode_frame
from moat_log.sync import (
    Authenticated,
    Goodbye,
    Holdings,
    LinkState,
    PeerSummary,
    SyncConnection,
)
from moat_log.sync.auth import auth_key, auth_message, make_proof, proof_is_valid
from moat_log.sync.handshake import AUTH_FAILURE_MESSAGE
from moat_log.sync.messages import Proof, parse_message


def connection(node: str, secret: bytes = SECRET, nonce: bytes = NONCE_A) -> SyncConnection:
    holdings = Holdings(IdSet.parse("pi9:1-10"))
    return SyncConnection(node, secret, holdings, random=fixed_random(nonce))


def messages(data: bytes) -> list[object]:
    """The messages in *data*, decoded."""
    decoder = FrameDecoder()
    decoder.receive_data(data)
    found: list[object] = []
    while decoder.buffered:
        found.append(parse_message(decoder.next_frame()))
    return found


def exchange(a: SyncConnection, b: SyncConnection) -> tuple[list[object], list[object]]:
    """Run both connections until neither sends; the events each produced."""
    seen_a: list[object] = []
    seen_b: list[object] = []
    for _ in range(4):
        for sender, receiver in ((a, b), (b, a)):
            if data := sender.data_to_send():
                receiver.receive_data(data)
        for conn, seen in ((a, seen_a), (b, seen_b)):
            try:
                seen.extend(events_of(conn))
            except RemoteProtocolError as exc:
                seen.append(exc)
    return seen_a, seen_b


# --- the key and the transcript ---------------------------------------------------


def test_the_auth_key_is_hkdf_sha256_of_the_secret() -> None:
    prk = hmac.digest(b"moat-log sync", SECRET, "sha256")
    expected = hmac.digest(prk, b"moat-log sync auth key 1\x01", "sha256")
    assert auth_key(SECRET) == expected
    assert auth_key(SECRET) != SECRET and len(auth_key(SECRET)) == 32


def test_the_auth_message_names_prover_then_verifier() -> None:
    message = auth_message(
        prover="pi1", prover_nonce=NONCE_A, verifier="pi2", verifier_nonce=NONCE_B
    )
    assert message == (
        b"\x00\x00\x00\x13moat-log sync proof"
        + b"\x00\x00\x00\x01"
        + b"\x00\x00\x00\x03pi1"
        + b"\x00\x00\x00\x20"
        + NONCE_A
        + b"\x00\x00\x00\x03pi2"
        + b"\x00\x00\x00\x20"
        + NONCE_B
    )
    reverse = auth_message(
        prover="pi2", prover_nonce=NONCE_B, verifier="pi1", verifier_nonce=NONCE_A
    )
    key = auth_key(SECRET)
    assert make_proof(key, message) != make_proof(key, reverse)


def test_proof_checks_accept_any_length_and_match_hmac_sha256() -> None:
    key = auth_key(SECRET)
    message = auth_message(prover="a", prover_nonce=NONCE_A, verifier="b", verifier_nonce=NONCE_B)
    proof = make_proof(key, message)
    assert proof_is_valid(key, message, proof)
    assert not proof_is_valid(key, message, proof[:-1])
    assert not proof_is_valid(key, message, b"")
    assert proof == hmac.new(key, message, hashlib.sha256).digest()


@pytest.mark.parametrize("secret", [b"", b"short", b"x" * 15])
def test_a_short_secret_is_refused(secret: bytes) -> None:
    with pytest.raises(ValueError, match="at least 16"):
        connection("pi1", secret)


def test_a_secret_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        connection("pi1", "a text secret, long enough")  # type: ignore[arg-type]


# --- the handshake ------------------------------------------------------------------


def test_nodes_with_the_same_secret_authenticate_each_other() -> None:
    a, b = connection("pi1"), connection("pi2", nonce=NONCE_B)
    seen_a, seen_b = exchange(a, b)
    assert seen_a == [Authenticated("pi2"), PeerSummary(IdSet.parse("pi9:1-10"))]
    assert seen_b == [Authenticated("pi1"), PeerSummary(IdSet.parse("pi9:1-10"))]
    assert a.peer == "pi2" and b.peer == "pi1"
    assert a.live and b.live


def test_a_wrong_secret_is_refused_by_both_with_the_same_generic_goodbye() -> None:
    a, b = connection("pi1"), connection("pi2", OTHER_SECRET, NONCE_B)
    a.receive_data(b.data_to_send())
    b.receive_data(a.data_to_send())
    events_of(a), events_of(b)  # hellos: each sends its proof
    proof_from_b, proof_from_a = b.data_to_send(), a.data_to_send()
    for conn, data in ((a, proof_from_b), (b, proof_from_a)):
        conn.receive_data(data)
        with pytest.raises(RemoteProtocolError) as caught:
            conn.next_event()
        assert str(caught.value) == AUTH_FAILURE_MESSAGE
        assert caught.value.error_type == "auth-failed"
        assert messages(conn.data_to_send()) == [Goodbye("auth-failed", AUTH_FAILURE_MESSAGE)]
        assert conn.peer is None and conn.state is LinkState.CLOSED


def test_a_proof_of_the_wrong_length_fails_exactly_like_a_wrong_one() -> None:
    for proof in (b"", b"\x00" * 31, b"\x00" * 32, b"\x00" * 64):
        a, b = connection("pi1"), connection("pi2", nonce=NONCE_B)
        a.receive_data(b.data_to_send())
        events_of(a)
        a.data_to_send()
        a.receive_data(encode_frame({"type": "auth", "proof": proof}))
        with pytest.raises(RemoteProtocolError) as caught:
            a.next_event()
        assert str(caught.value) == AUTH_FAILURE_MESSAGE
        assert messages(a.data_to_send()) == [Goodbye("auth-failed", AUTH_FAILURE_MESSAGE)]


def test_nothing_about_the_node_is_sent_before_the_peer_is_authenticated() -> None:
    a = connection("pi1")
    b = connection("pi2", OTHER_SECRET, NONCE_B)
    b.receive_data(a.data_to_send())
    events_of(b)  # b answers a's hello with its (wrong) proof
    a.receive_data(b.data_to_send())
    with pytest.raises(RemoteProtocolError):
        events_of(a)
    sent = messages(a.data_to_send())
    assert [type(message) for message in sent] == [Proof, Goodbye]


def test_a_reflected_hello_is_refused_before_any_proof() -> None:
    a = connection("pi1")
    hello = a.data_to_send()
    a.receive_data(hello)  # an attacker echoes the hello back
    with pytest.raises(RemoteProtocolError, match="like this node"):
        a.next_event()
    assert not any(isinstance(m, Proof) for m in messages(a.data_to_send()))


def test_a_hello_with_this_nodes_nonce_is_refused_as_a_reflection() -> None:
    a = connection("pi1")
    b = connection("pi2", nonce=NONCE_A)  # echoes a's nonce under another name
    a.data_to_send()
    a.receive_data(b.data_to_send())
    with pytest.raises(RemoteProtocolError, match="reflection"):
        a.next_event()


def test_a_proof_relayed_from_another_connection_is_refused() -> None:
    """An attacker without the secret plays pi1's proof on one link back to it on another."""
    victim_1 = connection("pi1", nonce=NONCE_A)
    victim_2 = connection("pi1", nonce=bytes(range(0x40, 0x60)))
    # The attacker claims to be "pi2" on both, with the victim's nonce of the other link.
    victim_1.receive_data(
        encode_frame({"type": "hello", "version": 1, "node": "pi2", "nonce": victim_2.nonce})
    )
    victim_2.receive_data(
        encode_frame({"type": "hello", "version": 1, "node": "pi2", "nonce": victim_1.nonce})
    )
    events_of(victim_1), events_of(victim_2)
    proof_1 = [m for m in messages(victim_1.data_to_send()) if isinstance(m, Proof)]
    proof_2 = [m for m in messages(victim_2.data_to_send()) if isinstance(m, Proof)]
    victim_1.receive_data(encode_frame(proof_2[0].to_wire()))
    victim_2.receive_data(encode_frame(proof_1[0].to_wire()))
    for victim in (victim_1, victim_2):
        with pytest.raises(RemoteProtocolError, match="authentication failed"):
            victim.next_event()


def test_a_recorded_proof_does_not_work_on_a_new_connection() -> None:
    """Replay: a proof recorded from an earlier exchange, against a fresh nonce."""
    a, b = connection("pi1"), connection("pi2", nonce=NONCE_B)
    a.receive_data(b.data_to_send())
    events_of(a)
    recorded_from_a = [m for m in messages(a.data_to_send()) if isinstance(m, Proof)]
    # Later: an attacker poses as pi1 towards a fresh pi2, with pi1's old hello and proof.
    fresh_b = connection("pi2", nonce=bytes(range(0x80, 0xA0)))
    fresh_b.receive_data(
        encode_frame({"type": "hello", "version": 1, "node": "pi1", "nonce": NONCE_A})
    )
    events_of(fresh_b)
    fresh_b.receive_data(encode_frame(recorded_from_a[0].to_wire()))
    with pytest.raises(RemoteProtocolError, match="authentication failed"):
        fresh_b.next_event()
