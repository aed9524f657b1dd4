"""The handshake's two checks, for one connection: the peer's hello, then its proof.

A `Handshake` holds this side's name, nonce and auth key (see
`moat_log.sync.auth`).  `answer` checks the peer's hello and returns the
proof to send; `verify` checks the peer's proof and returns the peer's
proven name.  Each raises `RemoteProtocolError` with the goodbye reason as
its ``error_type`` (docs/sync-protocol.md, "The handshake").
"""

from __future__ import annotations

from typing import Final

from ..protocol.errors import RemoteProtocolError
from .auth import PROTOCOL_VERSION, auth_key, auth_message, make_proof, proof_is_valid
from .messages import GoodbyeReason, Hello, Proof

__all__ = ["AUTH_FAILURE_MESSAGE", "Handshake"]

#: The goodbye message for a wrong proof, whatever was wrong with it.
AUTH_FAILURE_MESSAGE: Final = "authentication failed: the nodes do not share the cluster secret"


class Handshake:
    """One side of the authentication of a link."""

    __slots__ = (
        "_key",
        "_peer",
        "_peer_nonce",
        "ask_have",
        "compaction",
        "node",
        "nonce",
        "transfer",
    )

    def __init__(
        self,
        node: str,
        secret: bytes,
        nonce: bytes,
        *,
        ask_have: bool = False,
        transfer: bool = False,
        compaction: bool = True,
    ) -> None:
        self.node = node
        self.compaction = compaction
        self.ask_have = ask_have
        self.transfer = transfer
        self.nonce = nonce
        self._key = auth_key(secret)
        self._peer = ""
        self._peer_nonce = b""

    @property
    def claimed_peer(self) -> str:
        """The name the peer's hello gave (not proven until `verify` returned it)."""
        return self._peer

    def hello(self) -> Hello:
        return Hello(
            PROTOCOL_VERSION, self.node, self.nonce, self.ask_have, self.transfer, self.compaction
        )

    def answer(self, hello: Hello) -> Proof:
        """Check the peer's hello; this side's proof, to send."""
        if hello.version != PROTOCOL_VERSION:
            raise RemoteProtocolError(
                f"the peer speaks sync protocol version {hello.version}, this node version "
                f"{PROTOCOL_VERSION}: run the same moat-log version on both",
                error_type=GoodbyeReason.VERSION,
            )
        if hello.node == self.node:
            raise RemoteProtocolError(
                f"the peer calls itself {hello.node!r}, like this node: either the link "
                "leads back to this node, or two nodes share a name (each needs its own)"
            )
        if hello.nonce == self.nonce:
            raise RemoteProtocolError("the peer's hello repeats this node's nonce: a reflection")
        self._peer, self._peer_nonce = hello.node, hello.nonce
        message = auth_message(
            prover=self.node,
            prover_nonce=self.nonce,
            verifier=self._peer,
            verifier_nonce=self._peer_nonce,
        )
        return Proof(make_proof(self._key, message))

    def verify(self, proof: Proof) -> str:
        """Check the peer's proof (constant time, one path); the peer's proven name."""
        message = auth_message(
            prover=self._peer,
            prover_nonce=self._peer_nonce,
            verifier=self.node,
            verifier_nonce=self.nonce,
        )
        if not proof_is_valid(self._key, message, proof.proof):
            raise RemoteProtocolError(AUTH_FAILURE_MESSAGE, error_type=GoodbyeReason.AUTH_FAILED)
        return self._peer
