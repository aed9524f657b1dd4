"""Mutual authentication of two nodes that share the cluster secret.

Theory of operation
-------------------
Neither node ever sends the secret.  Each proves that it knows it with an
HMAC over a transcript that names the *prover* and the *verifier* and both
of their fresh nonces (docs/sync-protocol.md, "Authentication")::

    AuthKey      = HKDF-SHA-256(IKM = secret, salt = "moat-log sync",
                                info = "moat-log sync auth key 1", L = 32)
    AuthMessage  = lp("moat-log sync proof") || u32(1)
                   || lp(prover) || lp(prover nonce) || lp(verifier) || lp(verifier nonce)
    Proof        = HMAC-SHA-256(AuthKey, AuthMessage)

where ``lp(x)`` is x's length as u32 big-endian followed by x.

* The raw secret is only ever the input of the KDF, never a MAC key, so a
  secret shared with other software (or a weak one) is not used as-is.
* A recorded proof is worthless later: the verifier's nonce is fresh for
  every connection (replay).
* A proof cannot be turned around: the prover's own name and nonce come
  first, the verifier's second, so the proof a node sends is never the one
  it expects back (reflection).  The one case where both would coincide -
  the peer claims this node's own name *and* echoes its nonce - is refused
  by the connection before any proof is made.

Verification is constant-time (`hmac.compare_digest`) and takes the same
path for every wrong proof, whatever is wrong with it.
"""

from __future__ import annotations

import hmac
from typing import Final

__all__ = [
    "MIN_SECRET_SIZE",
    "NONCE_SIZE",
    "PROOF_SIZE",
    "auth_key",
    "auth_message",
    "make_proof",
    "proof_is_valid",
]

#: The sync protocol version, bound into every AuthMessage.
PROTOCOL_VERSION: Final = 1
#: Bytes of each side's random nonce in its hello.
NONCE_SIZE: Final = 32
#: Bytes of a proof (HMAC-SHA-256).
PROOF_SIZE: Final = 32
#: The shortest cluster secret accepted.  A recorded exchange lets an
#: eavesdropper test guesses of the secret offline, so it must be random:
#: 16 bytes are 128 bits when they are random bytes.
MIN_SECRET_SIZE: Final = 16

_KDF_SALT: Final = b"moat-log sync"
_KDF_INFO: Final = b"moat-log sync auth key 1"
_LABEL: Final = b"moat-log sync proof"


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, "sha256")


def auth_key(secret: bytes) -> bytes:
    """The MAC key derived from the cluster secret (HKDF-SHA-256, RFC 5869, 32 bytes)."""
    if type(secret) is not bytes:
        raise TypeError(f"the cluster secret must be bytes, not {type(secret).__name__}")
    if len(secret) < MIN_SECRET_SIZE:
        raise ValueError(
            f"the cluster secret is {len(secret)} bytes; use at least {MIN_SECRET_SIZE} "
            "random bytes (e.g. 32 bytes from a key file)"
        )
    pseudo_random_key = _hmac(_KDF_SALT, secret)  # HKDF-Extract
    return _hmac(pseudo_random_key, _KDF_INFO + b"\x01")  # HKDF-Expand, one block


def _field(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def auth_message(
    *, prover: str, prover_nonce: bytes, verifier: str, verifier_nonce: bytes
) -> bytes:
    """The transcript a proof is made over: who proves to whom, with which nonces."""
    return b"".join(
        (
            _field(_LABEL),
            PROTOCOL_VERSION.to_bytes(4, "big"),
            _field(prover.encode()),
            _field(prover_nonce),
            _field(verifier.encode()),
            _field(verifier_nonce),
        )
    )


def make_proof(key: bytes, message: bytes) -> bytes:
    """The proof over *message* with the key from `auth_key`."""
    return _hmac(key, message)


def proof_is_valid(key: bytes, message: bytes, proof: bytes) -> bool:
    """Whether *proof* is the right one for *message*; constant time, one path."""
    return hmac.compare_digest(_hmac(key, message), proof)
