"""One client connection of a Modbus TCP server, sans-io: bytes in, requests out.

Theory of operation
-------------------
`ServerConnection.receive_data` takes the bytes a client sent;
`ServerConnection.next_request` gives each complete request as an
`Incoming` (its transaction id, unit id and the decoded request), or None
until more bytes come; `ServerConnection.respond` makes the bytes that
answer it.  A request the PDU codec refused (an unknown function, a bad
count) and a request to a unit this server does not serve come out as
`Incoming` too, with the `ExceptionResponse` that answers them: the
client hears why, and the connection goes on.

Bytes that are not Modbus TCP (another protocol id, a length no PDU has)
raise `ModbusProtocolError` from `next_request`, now and ever after; so does
`ServerConnection.data_ended` when the client went away in the middle of a
frame.  The caller drops the connection: the error is that client's, and
never reaches another connection or the node.

Which unit ids are served (Modbus Messaging on TCP/IP Implementation Guide
1.0b, 4.4.2: over TCP the unit id is "useless" for a device addressed by
its IP address, 0xFF is recommended, and 0 is accepted as well):

* a request to *unit_id*, to 0 or to 255 is answered;
* with *unit_id* 0 or 255, every unit id is answered;
* any other unit id gets exception 11 (gateway target device failed to
  respond), which tells a misconfigured client at once, where silence
  would cost it a timeout per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from moat_log.errors import ModbusProtocolError

from .mbap import Frame, FrameReader, encode_frame
from .pdu import (
    ExceptionCode,
    ExceptionResponse,
    Request,
    Response,
    decode_request,
    encode_response,
)

__all__ = ["ANY_UNIT", "Incoming", "ServerConnection"]

#: The unit ids every Modbus TCP server answers (and, configured, mean "answer any").
ANY_UNIT: Final = frozenset({0, 255})


@dataclass(frozen=True, slots=True)
class Incoming:
    """One request from a client; *request* is an `ExceptionResponse` if refused already."""

    transaction: int
    unit: int
    request: Request | ExceptionResponse


class ServerConnection:
    """The protocol state of one client connection."""

    def __init__(self, unit_id: int) -> None:
        self.unit_id = unit_id
        self._reader = FrameReader()

    def serves(self, unit: int) -> bool:
        """Whether a request to *unit* is answered (see the module)."""
        return unit == self.unit_id or unit in ANY_UNIT or self.unit_id in ANY_UNIT

    def receive_data(self, data: bytes | bytearray) -> None:
        self._reader.receive_data(data)

    def next_request(self) -> Incoming | None:
        """The next request, or None until more bytes come; `ModbusProtocolError` for garbage."""
        frame = self._reader.next_frame()
        if frame is None:
            return None
        if not self.serves(frame.unit):
            code = frame.pdu[0] & 0x7F
            reason = f"unit {frame.unit} is not served here (unit {self.unit_id})"
            refusal = ExceptionResponse(
                code, ExceptionCode.GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND, reason
            )
            return Incoming(frame.transaction, frame.unit, refusal)
        return Incoming(frame.transaction, frame.unit, decode_request(frame.pdu))

    def respond(self, incoming: Incoming, response: Response) -> bytes:
        """The bytes that answer *incoming* with *response*."""
        return encode_frame(Frame(incoming.transaction, incoming.unit, encode_response(response)))

    def data_ended(self) -> None:
        """The client closed its side: `ModbusProtocolError` if it left a frame cut off."""
        if self._reader.buffered:
            raise ModbusProtocolError(
                f"the client left {self._reader.buffered} bytes of a frame it never finished"
            )
