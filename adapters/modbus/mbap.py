"""Modbus TCP framing, sans-io: the MBAP header that carries each PDU over a stream.

Theory of operation
-------------------
Over TCP every Modbus request and response is one ADU: a 7-byte MBAP header
and the PDU (Modbus Messaging on TCP/IP Implementation Guide 1.0b, 3.1.3):

=========  =====  ==================================================
field      bytes  meaning
=========  =====  ==================================================
transaction  2    chosen by the client, echoed by the server
protocol     2    0 for Modbus; anything else is not Modbus
length       2    bytes that follow: the unit id and the PDU
unit         1    the unit (device) id behind a gateway
=========  =====  ==================================================

All big-endian.  A PDU is a function code and at most 252 bytes of data
(Modbus Application Protocol 1.1b3, 4.1), so *length* is 2 .. 254: a header
outside that range (or another protocol id) is not Modbus, and nothing after
it can be trusted to be in step.  `FrameReader` raises `ModbusProtocolError`
then, and stays broken: every later call raises the same error, and the
connection must be dropped (h11's sticky errors).

No sockets, no clock: `FrameReader.receive_data` takes bytes as they come,
`FrameReader.next_frame` cuts them into `Frame` objects, `encode_frame`
makes the bytes of one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from moat_log.errors import ModbusProtocolError

__all__ = ["HEADER", "MAX_PDU", "Frame", "FrameReader", "encode_frame"]

#: Transaction id, protocol id, length, unit id.
HEADER: Final = struct.Struct(">HHHB")
#: The largest PDU: a function code and 252 bytes of data.
MAX_PDU: Final = 253


@dataclass(frozen=True, slots=True)
class Frame:
    """One ADU: the transaction id, the unit id and the PDU (function code first)."""

    transaction: int
    unit: int
    pdu: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.transaction <= 0xFFFF:
            raise ValueError(f"a transaction id is 0 .. 65535, not {self.transaction}")
        if not 0 <= self.unit <= 0xFF:
            raise ValueError(f"a unit id is 0 .. 255, not {self.unit}")
        if not 1 <= len(self.pdu) <= MAX_PDU:
            raise ValueError(f"a PDU is 1 .. {MAX_PDU} bytes, not {len(self.pdu)}")


def encode_frame(frame: Frame) -> bytes:
    """The bytes of *frame* on the wire: MBAP header, then the PDU."""
    return HEADER.pack(frame.transaction, 0, len(frame.pdu) + 1, frame.unit) + frame.pdu


class FrameReader:
    """Collects bytes from a stream and cuts them into frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._broken: ModbusProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet part of a frame (a frame cut off at the end, if any)."""
        return len(self._buffer)

    def receive_data(self, data: bytes | bytearray) -> None:
        """Append *data* from the stream."""
        if self._broken is not None:
            raise self._broken
        self._buffer += data

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes came.

        Raises `ModbusProtocolError` (now and at every later call) for a
        header no Modbus peer sends.
        """
        if self._broken is not None:
            raise self._broken
        buffer = self._buffer
        if len(buffer) < HEADER.size:
            return None
        transaction, protocol, length, unit = HEADER.unpack_from(buffer)
        if protocol != 0 or not 2 <= length <= MAX_PDU + 1:
            self._broken = ModbusProtocolError(
                f"not Modbus TCP: a header with protocol id {protocol} and length {length} "
                f"(0 and 2 .. {MAX_PDU + 1} expected)"
            )
            raise self._broken
        end = HEADER.size - 1 + length
        if len(buffer) < end:
            return None
        pdu = bytes(buffer[HEADER.size : end])
        del buffer[:end]
        return Frame(transaction, unit, pdu)
