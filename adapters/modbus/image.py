"""The registers a Modbus server adapter shows: each mapped path's value, encoded (sans-io).

Theory of operation
-------------------
`RegisterImage` holds, for each `ServedValue`, the registers (or bit) its
path's current value encodes to, or nothing: a path that never had a value,
was deleted, or holds a value that does not encode (a string, a number out
of the type's range).  The image changes only by `RegisterImage.apply`,
with a committed event of the path, and keeps the greatest ``(hlc,
origin)`` it applied per value: an event that is not newer is ignored.
That is what keeps a client's own write from bouncing: the server applies
the event it stored for the write as soon as it is durable, and the same
event, delivered again by the output projection, is not newer.

Requests are checked against the map as devices do (Modbus Application
Protocol 1.1b3, 6 and 7):

* a read that touches an address no value is mapped to: exception 02
  (illegal data address), the whole read; reading part of a wider value
  is allowed (a client that reads a float32 one register at a time);
* a read that touches a value with no registers (no value, deleted, not
  encodable): exception 04 (server device failure), not zeros: a device
  acting on a made-up 0 is worse than one that knows it has no reading;
* a write to an unmapped address, to a value whose direction is ``out``
  (read-only), or to part of a wider value: exception 02; registers that
  do not decode (a NaN float) or a value outside the entry's ``min`` ..
  ``max``: exception 03 (illegal data value).  Nothing of a refused write
  is applied, not even its valid values.

Values may not overlap: each address belongs to one value at most.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from moat_log.errors import BusDataError
from moat_log.event import Event, Op, Value
from moat_log.journal.item import WinnerKey
from moat_log.path import Path

from .mapping import MappedValue
from .pdu import (
    ExceptionCode,
    ExceptionResponse,
    ReadRequest,
    ReadResponse,
    WriteRequest,
)
from .plan import FUNCTIONS, Function
from .registers import RegisterCodec

__all__ = ["ClientWrite", "RegisterImage", "ServedValue"]

Raw = tuple[int, ...] | tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class ServedValue(MappedValue):
    """One path the server shows, and what a client may write to it."""

    #: The least and the greatest value a client may write (None: no limit).
    minimum: float | None = None
    maximum: float | None = None
    #: A client's write of the registers the value holds already makes no event.
    changes_only: bool = True

    def out_of_range(self, value: Value) -> str | None:
        """Why *value* may not be written, or None if it may."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if self.minimum is not None and value < self.minimum:
            return f"{value} is less than the least allowed, {self.minimum}"
        if self.maximum is not None and value > self.maximum:
            return f"{value} is more than the greatest allowed, {self.maximum}"
        return None


@dataclass(frozen=True, slots=True)
class ClientWrite:
    """One value of a client's write: its index in the image, its registers and its value."""

    index: int
    raw: Raw
    value: Value


def _refuse(request: ReadRequest | WriteRequest, code: int, reason: str) -> ExceptionResponse:
    return ExceptionResponse(request.code, code, reason)


class RegisterImage:
    """The mapped values' registers, as a Modbus client reads and writes them."""

    def __init__(self, values: Sequence[ServedValue]) -> None:
        self.values = tuple(values)
        #: Per function: address -> the index of the value that holds it.
        self._at: dict[Function, dict[int, int]] = {function: {} for function in FUNCTIONS}
        self._index = {value.path: i for i, value in enumerate(self.values)}
        for index, value in enumerate(self.values):
            at = self._at[value.function]
            for address in range(value.address, value.span.end):
                if address in at:
                    other = self.values[at[address]].path
                    raise ValueError(f"{value.path} and {other} overlap at {address}")
                at[address] = index
        #: The registers each value shows (None: none, reads are refused).
        self.raw: list[Raw | None] = [None] * len(self.values)
        self._version: list[WinnerKey | None] = [None] * len(self.values)

    def index(self, path: Path) -> int | None:
        """The index of *path*'s value, or None if it is not mapped."""
        return self._index.get(path)

    # ------------------------------------------------------------ the journal

    def apply(self, index: int, event: Event) -> bool:
        """Show *event* (a winner of value *index*'s path) unless a newer one shows.

        Returns whether the image changed.  Raises `BusDataError` if the
        value does not encode; the value then shows nothing.
        """
        key = (event.hlc, event.origin)
        version = self._version[index]
        if version is not None and key <= version:
            return False
        self._version[index] = key
        if event.op is Op.DELETE:
            self.raw[index] = None
            return True
        try:
            self.raw[index] = self.values[index].codec.encode(event.value)
        except BusDataError:
            self.raw[index] = None
            raise
        return True

    # ------------------------------------------------------------ a client

    def read(self, request: ReadRequest) -> ReadResponse | ExceptionResponse:
        """The registers (bits) *request* reads, or the exception that refuses it."""
        at = self._at[request.function]
        found: list[int | bool] = []
        for address in range(request.address, request.end):
            index = at.get(address)
            if index is None:
                reason = f"{request.function} {address} is not mapped"
                return _refuse(request, ExceptionCode.ILLEGAL_DATA_ADDRESS, reason)
            raw = self.raw[index]
            if raw is None:
                value = self.values[index]
                reason = f"{value.path} ({request.function} {address}) has no value to show"
                return _refuse(request, ExceptionCode.SERVER_DEVICE_FAILURE, reason)
            found.append(raw[address - self.values[index].address])
        return ReadResponse(request.function, tuple(found))

    def decode_write(self, request: WriteRequest) -> list[ClientWrite] | ExceptionResponse:
        """The values *request* writes, each whole, or the exception that refuses it all."""
        at = self._at[request.function]
        writes: list[ClientWrite] = []
        address = request.address
        while address < request.end:
            index = at.get(address)
            if index is None:
                reason = f"{request.function} {address} is not mapped"
                return _refuse(request, ExceptionCode.ILLEGAL_DATA_ADDRESS, reason)
            value = self.values[index]
            problem = self._writable(value, request)
            if problem is not None:
                return _refuse(request, ExceptionCode.ILLEGAL_DATA_ADDRESS, problem)
            start, end = value.address - request.address, value.span.end - request.address
            raw = request.values[start:end]
            try:
                decoded = value.codec.decode(raw)  # type: ignore[arg-type]
                problem = value.out_of_range(decoded)
            except BusDataError as exc:
                problem = str(exc)
            if problem is not None:
                reason = f"{value.path}: {problem}"
                return _refuse(request, ExceptionCode.ILLEGAL_DATA_VALUE, reason)
            writes.append(ClientWrite(index, raw, decoded))
            address = value.span.end
        return writes

    @staticmethod
    def _writable(value: ServedValue, request: WriteRequest) -> str | None:
        where = f"{value.path} ({value.function} {value.address})"
        if not value.direction.incoming:
            return f"{where} is read-only (direction out)"
        span = value.span
        if span.address < request.address or span.end > request.end:
            last = span.end - 1
            codec = value.codec
            kind = codec.data_type.name if isinstance(codec, RegisterCodec) else "bool"
            return f"{where} is {kind} in {span.address} .. {last}: write it whole"
        return None

    def holds(self, write: ClientWrite) -> bool:
        """Whether the value shows *write*'s registers already."""
        return self.raw[write.index] == write.raw
