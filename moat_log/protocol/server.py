"""The server's end of a client connection (see `moat_log.protocol.connection`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from ..ids import check_node_name
from .auth import CHALLENGE_SIZE, SCRAM_METHOD, TOKEN_METHOD, Authenticator, ScramExchange
from .connection import (
    CLOSED,
    MAX_SERVER_FRAME_SIZE,
    Authenticated,
    Connection,
    InFlight,
    PermissionCheck,
    Rejected,
    ServerEvent,
)
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError, RequestError
from .framing import DEFAULT_MAX_FRAME_SIZE, NEED_DATA, encode_frame, frame_bytes
from .messages import (
    AuthProofRequest,
    AuthStartRequest,
    ErrorType,
    Request,
    TokenAuthRequest,
    message_id,
    parse_client_message,
    parse_request,
)
from .replies import (
    ITEMS,
    PROTOCOL_VERSION,
    RESULTS,
    AuthOk,
    AuthParams,
    Greeting,
    error_wire,
    item_body,
    reply_body,
)

__all__ = ["DEFAULT_MAX_AUTH_FAILURES", "DEFAULT_MAX_IN_FLIGHT", "ServerConnection"]

#: Default limit of requests in flight per connection (docs: "Limits").
DEFAULT_MAX_IN_FLIGHT: Final = 1024
#: Failed logins after which the server ends the connection.
DEFAULT_MAX_AUTH_FAILURES: Final = 3

#: Error messages are cut to this many characters.
_MAX_MESSAGE: Final = 4096
_GENERIC_AUTH_FAILURE = "authentication failed: unknown user or wrong password or token"


class ServerConnection(Connection):
    """The server's end of one client connection.

    *authenticator* None means the connection needs no authentication (the
    greeting offers no methods); otherwise only ``auth`` is accepted until it
    succeeds.  *permission* is asked about every request that names a path
    (a log or replay over all paths names the root).  *random* supplies the
    challenge (tests make it deterministic).
    """

    def __init__(
        self,
        node: str,
        *,
        authenticator: Authenticator | None = None,
        permission: PermissionCheck | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_auth_failures: int = DEFAULT_MAX_AUTH_FAILURES,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        super().__init__(max_frame_size)
        self.node = check_node_name(node)
        self._authenticator = authenticator
        self._permission = permission
        self._max_in_flight = max_in_flight
        self._max_auth_failures = max_auth_failures
        self.challenge: Final = random(CHALLENGE_SIZE)
        self._greeted = False
        self._goodbye_sent = False
        self._outgoing = bytearray()
        self._in_flight: dict[int, InFlight] = {}
        self._user: str | None = None
        self._authenticated = authenticator is None
        self._scram: ScramExchange | None = None
        self._auth_failures = 0

    # --- state --------------------------------------------------------------

    @property
    def user(self) -> str | None:
        """The authenticated user, None before authentication or without auth."""
        return self._user

    @property
    def authenticated(self) -> bool:
        """True once requests other than ``auth`` are accepted."""
        return self._authenticated

    @property
    def in_flight(self) -> frozenset[int]:
        """Ids of requests handed out by `next_event` and not yet finally answered."""
        return frozenset(self._in_flight)

    def data_to_send(self) -> bytes:
        """Bytes the connection produced by itself; send them after every ``next_event``."""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def _fail(self, error: ProtocolError) -> None:
        if self._error is None and self._greeted and not self._goodbye_sent:
            message = str(error)
            if isinstance(error, LocalProtocolError):
                message = "the server hit an internal error and ends the connection"
            self._outgoing += encode_frame(
                error_wire(None, error.error_type, message[:_MAX_MESSAGE])
            )
            self._goodbye_sent = True
        super()._fail(error)

    # --- receiving ----------------------------------------------------------

    def greeting(self) -> bytes:
        """The greeting frame; send it first, before calling `next_event`."""
        self._check_send()
        if self._greeted:
            self._local_error("greeting() was already called")
        self._greeted = True
        methods = () if self._authenticator is None else self._authenticator.methods
        greeting = Greeting(
            PROTOCOL_VERSION, self.node, methods, self.challenge, self._decoder.max_frame_size
        )
        return encode_frame(greeting.to_wire())

    def next_event(self) -> ServerEvent:
        """The next request or other event, or `NEED_DATA`.

        Raises `RemoteProtocolError` when the client broke the protocol; the
        goodbye is then in `data_to_send`.
        """
        self._check_receive()
        if not self._greeted:
            self._local_error("call greeting() and send its bytes before next_event()")
        if self._goodbye_sent:
            return CLOSED
        try:
            return self._next_event()
        except RemoteProtocolError as exc:
            self._fail(exc)
            raise

    def _next_event(self) -> ServerEvent:
        while True:
            frame = self._next_frame()
            if frame is NEED_DATA or frame is CLOSED:
                return frame
            request_id = message_id(frame)
            if "cancel" not in frame and request_id in self._in_flight:
                return self._reject(
                    request_id,
                    frame.get("op"),
                    ErrorType.DUPLICATE_ID,
                    f"request id {request_id} is already in flight; "
                    "ids must be unique among a connection's unanswered requests",
                )
            if "cancel" in frame:
                cancel = parse_client_message(frame)
                pending = self._in_flight.get(request_id)
                if pending is None or pending.cancelled:
                    continue  # already answered (a race) or cancelled: nothing to stop
                pending.cancelled = True
                return cancel
            try:
                request = parse_request(frame, request_id)
            except RequestError as exc:
                return self._reject(request_id, frame.get("op"), exc.error_type, exc.message)
            event = self._admit(request)
            if event is not None:
                return event

    def _reject(
        self, request_id: int, op: object, error_type: str, message: str, detail: str = ""
    ) -> Rejected:
        message = message[:_MAX_MESSAGE]
        self._outgoing += encode_frame(error_wire(request_id, error_type, message))
        return Rejected(request_id, op if type(op) is str else None, error_type, message, detail)

    def _admit(self, request: Request) -> ServerEvent | None:
        """Check a parsed request; the request itself if the caller must answer it."""
        if request.OP == "auth":
            return self._auth(request)
        if not self._authenticated:
            return self._reject(
                request.id,
                request.OP,
                ErrorType.AUTH_REQUIRED,
                "authenticate first: the greeting lists the methods",
            )
        if len(self._in_flight) >= self._max_in_flight:
            return self._reject(
                request.id,
                request.OP,
                ErrorType.BUSY,
                f"{self._max_in_flight} requests are in flight on this connection, the limit; "
                "wait for replies before sending more",
            )
        path = request.permission_path
        if (
            path is not None
            and self._permission is not None
            and not self._permission(self._user, request.OP, path)
        ):
            who = "this connection" if self._user is None else f"user {self._user!r}"
            return self._reject(
                request.id,
                request.OP,
                ErrorType.PERMISSION_DENIED,
                f"{who} may not {request.OP} {path}",
            )
        self._in_flight[request.id] = InFlight(request.OP, request.STREAM)
        return request

    # --- authentication ---------------------------------------------------------

    def _auth(self, request: Request) -> ServerEvent | None:
        authenticator = self._authenticator
        if authenticator is None:
            return self._reject(
                request.id, "auth", ErrorType.BAD_REQUEST, "this connection needs no authentication"
            )
        if self._authenticated:
            return self._reject(
                request.id,
                "auth",
                ErrorType.BAD_REQUEST,
                f"already authenticated as {self._user!r}; open a new connection to switch users",
            )
        node, challenge = self.node, self.challenge
        if type(request) is AuthStartRequest:
            self._scram = authenticator.scram_start(
                request.user, request.nonce, node=node, challenge=challenge
            )
            verifier = self._scram.verifier
            self._send_auth_result(request.id, AuthParams(verifier.salt, verifier.params))
            return None
        if type(request) is AuthProofRequest:
            exchange, self._scram = self._scram, None
            if exchange is None:
                return self._reject(
                    request.id, "auth", ErrorType.BAD_REQUEST, "auth step 2 without step 1"
                )
            signature = authenticator.scram_finish(exchange, request.proof)
            user, known = exchange.user, exchange.known
        else:
            assert type(request) is TokenAuthRequest
            user = request.user
            signature, known = authenticator.token_check(
                user, request.nonce, request.proof, node=node, challenge=challenge
            )
        if signature is None:
            return self._auth_failed(request, user, known)
        self._authenticated, self._user = True, user
        self._send_auth_result(request.id, AuthOk(user, signature))
        method = TOKEN_METHOD if type(request) is TokenAuthRequest else SCRAM_METHOD
        return Authenticated(request.id, user, method)

    def _send_auth_result(self, request_id: int, result: AuthParams | AuthOk) -> None:
        self._outgoing += frame_bytes(reply_body(request_id, RESULTS["auth"].pack(result)))

    def _auth_failed(self, request: Request, user: str, known: bool) -> Rejected:
        self._auth_failures += 1
        detail = f"{'wrong password or token' if known else 'unknown user'} {user!r}"
        rejected = self._reject(
            request.id, "auth", ErrorType.AUTH_FAILED, _GENERIC_AUTH_FAILURE, detail
        )
        if self._auth_failures >= self._max_auth_failures:
            raise RemoteProtocolError(
                f"{self._auth_failures} failed authentication attempts (last: {detail})",
                error_type=ErrorType.AUTH_FAILED,
            )
        return rejected

    # --- sending ------------------------------------------------------------

    def _pending(self, request_id: int, what: str) -> InFlight:
        self._check_send()
        if self._goodbye_sent:
            self._local_error(f"cannot send {what}: the connection was ended with a goodbye")
        pending = self._in_flight.get(request_id)
        if pending is None:
            self._local_error(f"cannot send {what} for request {request_id}: it is not in flight")
        assert pending is not None
        return pending

    def send_reply(self, request_id: int, result: object) -> bytes:
        """The final reply to a request; its shape depends on the op (docs: "Operations").

        Raises `TypeError` for a result of the wrong shape and
        `FrameTooLargeError` if it does not fit in a frame; both change
        nothing, so the caller can still answer with `send_error`.
        """
        pending = self._pending(request_id, "a reply")
        data = frame_bytes(
            reply_body(request_id, RESULTS[pending.op].pack(result)), MAX_SERVER_FRAME_SIZE
        )
        del self._in_flight[request_id]
        return data

    def send_item(self, request_id: int, item: object) -> bytes:
        """One stream item; ``b""`` once the client cancelled the stream."""
        pending = self._pending(request_id, "an item")
        if not pending.stream:
            self._local_error(f"request {request_id} ({pending.op}) is not a stream")
        body = item_body(request_id, ITEMS[pending.op].pack(item))
        if pending.cancelled:
            return b""
        return frame_bytes(body, MAX_SERVER_FRAME_SIZE)

    def send_error(self, request_id: int, error_type: str, message: str) -> bytes:
        """The final reply to a request: it failed (*error_type*: see `ErrorType`)."""
        self._pending(request_id, "an error")
        if not isinstance(error_type, str):
            raise TypeError(f"error_type must be a str, not {type(error_type).__name__}")
        if not isinstance(message, str):
            raise TypeError(f"message must be a str, not {type(message).__name__}")
        data = encode_frame(error_wire(request_id, str(error_type), message[:_MAX_MESSAGE]))
        del self._in_flight[request_id]
        return data

    def send_goodbye(self, error_type: str, message: str) -> bytes:
        """The last message of the connection (e.g. ``shutdown``); close afterwards."""
        self._check_send()
        if not self._greeted or self._goodbye_sent:
            self._local_error("send_goodbye() needs a greeting first and works once")
        self._goodbye_sent = True
        return encode_frame(error_wire(None, str(error_type), message[:_MAX_MESSAGE]))
