"""The client's end of a client connection (see `moat_log.protocol.connection`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .auth import (
    MIN_SCRYPT_N,
    NONCE_SIZE,
    SCRAM_METHOD,
    TOKEN_METHOD,
    check_user_name,
    scram_auth_message,
    scram_client_proof,
    signatures_match,
    token_auth_message,
    token_client_proof,
)
from .connection import (
    CLOSED,
    MAX_SERVER_FRAME_SIZE,
    AuthChallenge,
    Authenticated,
    ClientEvent,
    Connection,
    InFlight,
)
from .errors import LocalProtocolError, RemoteProtocolError
from .framing import NEED_DATA, encode_frame
from .messages import (
    REQUEST_TYPES,
    AuthProofRequest,
    AuthStartRequest,
    Cancel,
    ErrorType,
    Request,
    TokenAuthRequest,
)
from .replies import (
    ITEMS,
    RESULTS,
    AuthOk,
    AuthParams,
    ErrorReply,
    Goodbye,
    Greeting,
    Item,
    Reply,
    parse_server_message,
)

__all__ = ["ClientConnection"]


@dataclass(slots=True)
class _ClientAuth:
    """The client's half of an authentication in progress."""

    id: int
    method: str
    user: str
    nonce: bytes
    auth_message: bytes = b""
    expected_signature: bytes = b""


class ClientConnection(Connection):
    """The client's end of a connection.

    Wait for the `Greeting` event before sending.  *min_scrypt_n* refuses
    servers (or men in the middle) that ask for cheaper password hashing than
    that, which would make a recorded login cheaper to attack offline.
    """

    def __init__(
        self,
        *,
        max_frame_size: int = MAX_SERVER_FRAME_SIZE,
        min_scrypt_n: int = 2**14,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        super().__init__(max_frame_size)
        self._min_scrypt_n = max(min_scrypt_n, MIN_SCRYPT_N)
        self._random = random
        self._greeting: Greeting | None = None
        self._goodbye: Goodbye | None = None
        self._closed = False
        self._next_id = 1
        self._in_flight: dict[int, InFlight] = {}
        self._auth: _ClientAuth | None = None
        self._user: str | None = None

    @property
    def greeting(self) -> Greeting | None:
        """The server's greeting, once received."""
        return self._greeting

    @property
    def user(self) -> str | None:
        """The user this connection authenticated as, if any."""
        return self._user

    @property
    def in_flight(self) -> frozenset[int]:
        """Ids of requests sent and not yet finally answered."""
        return frozenset(self._in_flight)

    # --- receiving ----------------------------------------------------------

    def next_event(self) -> ClientEvent:
        """The next event from the server, or `NEED_DATA`.

        Raises `RemoteProtocolError` when the server broke the protocol.
        """
        self._check_receive()
        try:
            return self._next_event()
        except RemoteProtocolError as exc:
            self._fail(exc)
            raise

    def _next_event(self) -> ClientEvent:
        while True:
            frame = self._next_frame()
            if frame is CLOSED:
                self._closed = True
            if frame is NEED_DATA or frame is CLOSED:
                return frame
            if self._greeting is None:
                self._greeting = Greeting.from_wire(frame)
                return self._greeting
            if self._goodbye is not None:
                raise RemoteProtocolError("the server sent a message after its goodbye")
            message = parse_server_message(frame)
            if type(message) is Goodbye:
                self._goodbye = message
                return message
            assert not isinstance(message, Goodbye)
            event = self._answer(message)
            if event is not None:
                return event

    def _answer(self, message: Reply | Item | ErrorReply) -> ClientEvent | None:
        """The event for a message about a request; None for a dropped item."""
        pending = self._in_flight.get(message.id)
        if pending is None:
            raise RemoteProtocolError(
                f"the server answered request {message.id}, which is not in flight"
            )
        if type(message) is Item:
            if not pending.stream:
                raise RemoteProtocolError(
                    f"the server sent a stream item for request {message.id} ({pending.op})"
                )
            if pending.cancelled:
                return None  # the caller stopped listening
            return Item(message.id, ITEMS[pending.op].unpack(message.value))
        assert not isinstance(message, Item)
        del self._in_flight[message.id]
        if pending.op == "auth":
            return self._auth_answer(message)
        if type(message) is Reply:
            return Reply(message.id, RESULTS[pending.op].unpack(message.result))
        return message

    # --- sending ------------------------------------------------------------

    def _check_ready(self) -> Greeting:
        self._check_send()
        if self._greeting is None:
            self._local_error("wait for the server's greeting before sending")
        if self._closed or self._goodbye is not None:
            # Not sticky: the connection is over anyway, and a task that sends
            # while another one reads the goodbye is a race, not a bug.
            raise LocalProtocolError("the server has closed the connection")
        assert self._greeting is not None
        return self._greeting

    def _send(self, request: Request) -> tuple[int, bytes]:
        greeting = self._greeting
        assert greeting is not None
        data = encode_frame(request.to_wire(), greeting.max_frame)
        self._in_flight[request.id] = InFlight(request.OP, request.STREAM)
        self._next_id += 1
        return request.id, data

    def send_request(self, op: str, **args: Any) -> tuple[int, bytes]:
        """A new request: its id and its bytes.

        *args* are the op's arguments (docs: "Operations"); bad ones raise
        `ValueError`/`TypeError` before anything changes.
        """
        self._check_ready()
        if op == "auth":
            raise ValueError("use start_auth() to authenticate")
        cls = REQUEST_TYPES.get(op)
        if cls is None:
            raise ValueError(f"unknown op {op!r}: use one of {', '.join(REQUEST_TYPES)}")
        return self._send(cls(self._next_id, **args))

    def send_cancel(self, request_id: int) -> bytes:
        """Ask the server to stop request *request_id*; ``b""`` if there is nothing to stop.

        Items that arrive afterwards are dropped; the final reply still comes.
        """
        self._check_ready()
        if not 1 <= request_id < self._next_id:
            self._local_error(f"request {request_id} was never sent")
        pending = self._in_flight.get(request_id)
        if pending is None or pending.cancelled:
            return b""
        pending.cancelled = True
        return encode_frame(Cancel(request_id).to_wire())

    # --- authentication -----------------------------------------------------

    def start_auth(
        self, user: str, *, password: str | None = None, token: str | None = None
    ) -> tuple[int, bytes]:
        """Begin authenticating as *user* with a password or a token.

        With a password the server answers with `AuthChallenge`; then call
        `send_auth_proof`.  The exchange ends with `Authenticated` or an
        `ErrorReply` of type ``auth-failed``.
        """
        greeting = self._check_ready()
        check_user_name(user)
        if (password is None) == (token is None):
            raise ValueError("give either a password or a token")
        method = SCRAM_METHOD if token is None else TOKEN_METHOD
        if method not in greeting.auth:
            offered = ", ".join(greeting.auth) or "nothing: it needs no authentication"
            raise ValueError(f"the server does not offer {method!r}; it offers {offered}")
        if self._auth is not None or self._user is not None:
            self._local_error("authentication is already in progress or done")
        nonce = self._random(NONCE_SIZE)
        request_id = self._next_id
        state = _ClientAuth(request_id, method, user, nonce)
        request: Request
        if token is not None:
            state.auth_message = token_auth_message(
                node=greeting.node, user=user, challenge=greeting.challenge, client_nonce=nonce
            )
            proof, state.expected_signature = token_client_proof(token, state.auth_message)
            request = TokenAuthRequest(request_id, user, nonce, proof)
        else:
            request = AuthStartRequest(request_id, user, nonce)
        self._auth = state
        return self._send(request)

    def send_auth_proof(self, salted_password: bytes) -> tuple[int, bytes]:
        """``scram-scrypt`` step 2, after `AuthChallenge`.

        *salted_password* is ``salt_password(password, event.salt,
        event.params)``; it is slow (scrypt), so a trio client computes it in
        a worker thread.
        """
        self._check_ready()
        state = self._auth
        if state is None or not state.auth_message or state.expected_signature:
            self._local_error("send_auth_proof() belongs after an AuthChallenge event")
        assert state is not None
        proof, state.expected_signature = scram_client_proof(salted_password, state.auth_message)
        state.id = self._next_id
        return self._send(AuthProofRequest(state.id, proof))

    def _auth_answer(self, message: Reply | ErrorReply) -> ClientEvent:
        state = self._auth
        assert state is not None
        if type(message) is ErrorReply:
            self._auth = None
            return message
        assert type(message) is Reply
        result = RESULTS["auth"].unpack(message.result)
        if state.method == SCRAM_METHOD and not state.auth_message:
            if type(result) is not AuthParams:
                raise RemoteProtocolError("the server answered auth step 1 without salt")
            return self._challenge(state, result)
        if type(result) is not AuthOk:
            raise RemoteProtocolError("the server answered the auth proof without a signature")
        if result.user != state.user or not signatures_match(
            state.expected_signature, result.signature
        ):
            raise RemoteProtocolError(
                "the server's signature is wrong: it does not hold this user's verifier "
                "(a wrong server, or someone in between)",
                error_type=ErrorType.AUTH_FAILED,
            )
        self._auth, self._user = None, state.user
        return Authenticated(message.id, state.user, state.method)

    def _challenge(self, state: _ClientAuth, result: AuthParams) -> AuthChallenge:
        if result.params.n < self._min_scrypt_n:
            raise RemoteProtocolError(
                f"the server asks for scrypt N={result.params.n}, below this client's "
                f"minimum of {self._min_scrypt_n}; refusing to weaken the password hash"
            )
        greeting = self._greeting
        assert greeting is not None
        state.auth_message = scram_auth_message(
            node=greeting.node,
            user=state.user,
            challenge=greeting.challenge,
            client_nonce=state.nonce,
            salt=result.salt,
            params=result.params,
        )
        return AuthChallenge(state.id, result.salt, result.params)
