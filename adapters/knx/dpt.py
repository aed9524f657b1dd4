"""KNX datapoint types: a telegram's payload turned into a plain value and back.

Theory of operation
-------------------
A KNX group telegram carries its value in one of two forms (KNX Standard
03.07.02, "Datapoint Types"): up to six bits inside the APCI (a *small*
payload: DPT 1 and 3), or a few bytes after it (every other type).  Here a
payload is an ``int`` for the first form and ``bytes`` for the second, the
same split xknx makes with ``DPTBinary`` and ``DPTArray``.

`dpt_codec` gives the codec of a datapoint type number (``"9.001"``); its
``decode(payload)`` returns a plain value an event can hold and its
``encode(value)`` the payload to send.  Both raise `BusDataError` saying
what was wrong: a payload of the wrong form or length, a value out of the
type's range, a value of the wrong type.  Nothing is passed through or
silently changed (xknx replaces unencodable characters with ``?``; this
refuses them).

The encodings match xknx 4.0's transcoders byte for byte
(tests/adapters/knx/test_dpt.py), with one deliberate difference: DPT 14
decodes to the shortest decimal that packs to the same four bytes
  (``21.1``, not ``21.100000381``), so decoding and encoding again gives
the same bytes; xknx rounds to seven significant digits, which does not
always.

=========== ======================= ===========================================
DPT         stored value            payload
=========== ======================= ===========================================
1.x         True / False            1 bit (1.008 up/down: ``"up"``/``"down"``)
3.007/3.008 {"control", "step_code"} 4 bits: control bit and a step code 0..7
5.001       int 0 .. 100 (percent)  1 byte, 0..255 scaled (5.003: 0 .. 360)
5.x, 6.x    int                     1 byte unsigned (5.x) / signed (6.x)
7.x, 8.x    int                     2 bytes unsigned / signed, big-endian
9.x         float                   2-byte KNX float, resolution 0.01
12.x, 13.x  int                     4 bytes unsigned / signed, big-endian
14.x        float                   IEEE 754 single precision, big-endian
16.000      str (ASCII, <= 14)      14 bytes, NUL padded (16.001: Latin-1)
=========== ======================= ===========================================
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import ClassVar, Final

from moat_log.errors import BusDataError

__all__ = ["DPT_NAMES", "DptCodec", "Payload", "Value", "dpt_codec", "payload_text"]

#: A telegram's value: an int for up to 6 bits inside the APCI, else its bytes.
Payload = int | bytes
#: What an event stores for a datapoint.
Value = bool | int | float | str | dict[str, object]

_NUMBER: Final = re.compile(r"(\d{1,3})\.(\d{1,3})")


def payload_text(payload: Payload) -> str:
    """A payload as a log line shows it: ``bits 0x1`` or ``bytes 0c 33``."""
    if isinstance(payload, int):
        return f"bits {payload:#x}"
    return f"bytes {payload.hex(' ') or '(none)'}"


@dataclass(frozen=True, slots=True)
class DptCodec:
    """One datapoint type: its number, and payload <-> value."""

    number: str
    unit: str | None = None
    kind: ClassVar[str] = "?"

    def decode(self, payload: Payload) -> Value:
        raise NotImplementedError

    def encode(self, value: object) -> Payload:
        raise NotImplementedError

    def _bytes(self, payload: Payload, size: int) -> bytes:
        if isinstance(payload, int):
            raise BusDataError(
                f"DPT {self.number}: expected {size} bytes, got a small value "
                f"({payload_text(payload)})"
            )
        if len(payload) != size:
            raise BusDataError(
                f"DPT {self.number}: expected {size} bytes, got {len(payload)} "
                f"({payload_text(payload)})"
            )
        return payload

    def _bits(self, payload: Payload, bits: int) -> int:
        if not isinstance(payload, int):
            raise BusDataError(
                f"DPT {self.number}: expected a {bits}-bit value, got {len(payload)} bytes "
                f"({payload_text(payload)})"
            )
        if not 0 <= payload < 1 << bits:
            raise BusDataError(
                f"DPT {self.number}: {payload_text(payload)} does not fit in {bits} bits"
            )
        return payload

    def _refuse(self, value: object, expected: str) -> BusDataError:
        return BusDataError(f"DPT {self.number}: expected {expected}, got {_describe(value)}")


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


@dataclass(frozen=True, slots=True)
class BitDpt(DptCodec):
    """DPT 1.x: one bit.  True/False, or two words (1.008: ``up`` = 0, ``down`` = 1)."""

    words: tuple[str, str] | None = None
    kind: ClassVar[str] = "bool"

    def decode(self, payload: Payload) -> Value:
        bit = self._bits(payload, 1)
        if self.words is not None:
            return self.words[bit]
        return bool(bit)

    def encode(self, value: object) -> Payload:
        if self.words is not None:
            if value in self.words and type(value) is str:
                return self.words.index(value)
            raise self._refuse(value, f"{self.words[0]!r} or {self.words[1]!r}")
        if type(value) is not bool:
            raise self._refuse(value, "true or false")
        return int(value)


@dataclass(frozen=True, slots=True)
class ControlDpt(DptCodec):
    """DPT 3.007 / 3.008: ``{"control": "increase", "step_code": 3}`` (xknx's ``as_dict``).

    Step code 0 means stop; 1..7 divide the range into 2**(code-1) steps.
    """

    words: tuple[str, str] = ("decrease", "increase")
    kind: ClassVar[str] = "map"

    def decode(self, payload: Payload) -> Value:
        raw = self._bits(payload, 4)
        return {"control": self.words[raw >> 3], "step_code": raw & 0b111}

    def encode(self, value: object) -> Payload:
        expected = f'{{"control": {self.words[0]!r} or {self.words[1]!r}, "step_code": 0..7}}'
        if not isinstance(value, dict) or set(value) != {"control", "step_code"}:
            raise self._refuse(value, expected)
        control, step = value["control"], value["step_code"]
        if control not in self.words or type(step) is not int or not 0 <= step <= 7:
            raise self._refuse(value, expected)
        return self.words.index(control) << 3 | step


def _integral(codec: DptCodec, value: object) -> int:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise codec._refuse(value, "an integer")


@dataclass(frozen=True, slots=True)
class IntDpt(DptCodec):
    """DPT 5.x / 6.x / 7.x / 8.x / 12.x / 13.x: an integer of 1, 2 or 4 bytes, big-endian."""

    size: int = 1
    signed: bool = False
    kind: ClassVar[str] = "int"

    @property
    def bounds(self) -> tuple[int, int]:
        bits = 8 * self.size
        if self.signed:
            return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return 0, (1 << bits) - 1

    def decode(self, payload: Payload) -> Value:
        return int.from_bytes(self._bytes(payload, self.size), "big", signed=self.signed)

    def encode(self, value: object) -> Payload:
        number = _integral(self, value)
        low, high = self.bounds
        if not low <= number <= high:
            raise BusDataError(f"DPT {self.number}: {number} is outside {low} .. {high}")
        return number.to_bytes(self.size, "big", signed=self.signed)


@dataclass(frozen=True, slots=True)
class ScaledDpt(DptCodec):
    """DPT 5.001 (0..100 %) and 5.003 (0..360 °): one byte scaled to 0 .. *top*, as an int.

    255 steps map to 101 (361) integers: every integer encodes to its own
    byte and decodes back to itself; not every byte does.
    """

    top: int = 100
    kind: ClassVar[str] = "int"

    def decode(self, payload: Payload) -> Value:
        raw = self._bytes(payload, 1)[0]
        return round(raw / 255 * self.top)

    def encode(self, value: object) -> Payload:
        if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
            raise self._refuse(value, f"a number 0 .. {self.top}")
        assert isinstance(value, int | float)
        if not 0 <= value <= self.top:
            raise BusDataError(f"DPT {self.number}: {value!r} is outside 0 .. {self.top}")
        return bytes([round(value / self.top * 255)])


#: 0x7FFF is "invalid data" in every DPT 9 (03.07.02 §3.10).
_FLOAT16_INVALID: Final = b"\x7f\xff"


@dataclass(frozen=True, slots=True)
class Float16Dpt(DptCodec):
    """DPT 9.x: KNX's 2-byte float, ``0.01 * mantissa * 2**exponent``.

    The sign and an 11-bit two's-complement mantissa, a 4-bit exponent.  A
    value rounds to the nearest step of its exponent (0.01 up to 20.47,
    0.02 up to 40.94, ...).  0x7FFF ("invalid data") decodes to an error.
    """

    minimum: float = -671088.64
    maximum: float = 670433.28
    kind: ClassVar[str] = "float"

    def decode(self, payload: Payload) -> Value:
        raw = self._bytes(payload, 2)
        if raw == _FLOAT16_INVALID:
            raise BusDataError(f"DPT {self.number}: 7f ff means invalid data (from the sender)")
        data = raw[0] << 8 | raw[1]
        exponent = (data >> 11) & 0x0F
        mantissa = data & 0x7FF
        if data >> 15:
            mantissa -= 2048
        value = float(mantissa << exponent) / 100
        if not self.minimum <= value <= self.maximum:
            raise BusDataError(
                f"DPT {self.number}: {value!r} is outside {self.minimum} .. {self.maximum}"
            )
        return value

    def encode(self, value: object) -> Payload:
        if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
            raise self._refuse(value, "a finite number")
        assert isinstance(value, int | float)
        if not self.minimum <= value <= self.maximum:
            raise BusDataError(
                f"DPT {self.number}: {value!r} is outside {self.minimum} .. {self.maximum}"
            )
        scaled = float(value) * 100  # the same float steps as xknx, for the same bytes
        if round(scaled) == 0:
            return b"\x00\x00"  # as ETS: -0.004 is 0, not the negative zero 0x87FF
        exponent = 0
        while not -2048 <= scaled <= 2047:
            exponent += 1
            scaled /= 2
        mantissa = round(scaled)  # -2048 .. 2047: above 2047 took the next exponent
        high = exponent << 3 | (mantissa & 0x7FF) >> 8
        if scaled < 0:
            high |= 0x80
        return bytes([high, mantissa & 0xFF])


@dataclass(frozen=True, slots=True)
class Float32Dpt(DptCodec):
    """DPT 14.x: an IEEE 754 single, big-endian; decoded to the shortest equal decimal."""

    kind: ClassVar[str] = "float"

    def decode(self, payload: Payload) -> Value:
        raw = self._bytes(payload, 4)
        (single,) = struct.unpack(">f", raw)
        if not math.isfinite(single):
            raise BusDataError(f"DPT {self.number}: {payload_text(raw)} is not a finite number")
        for digits in range(6, 10):  # 9 significant digits always round-trip a single
            shortest = float(f"{single:.{digits}g}")
            if struct.pack(">f", shortest) == raw:
                return shortest
        return float(single)  # not reached: 9 digits are always enough

    def encode(self, value: object) -> Payload:
        if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
            raise self._refuse(value, "a finite number")
        try:
            return struct.pack(">f", value)
        except OverflowError:
            raise BusDataError(
                f"DPT {self.number}: {value!r} is too large for a single-precision float"
            ) from None


@dataclass(frozen=True, slots=True)
class TextDpt(DptCodec):
    """DPT 16.000 (ASCII) / 16.001 (Latin-1): up to 14 characters, NUL padded."""

    encoding: str = "ascii"
    kind: ClassVar[str] = "str"

    def decode(self, payload: Payload) -> Value:
        raw = self._bytes(payload, 14).replace(b"\x00", b"")  # as xknx: padding and stray NULs
        try:
            return raw.decode(self.encoding)
        except UnicodeDecodeError:
            raise BusDataError(
                f"DPT {self.number}: {payload_text(payload)} is not {self.encoding} text"
            ) from None

    def encode(self, value: object) -> Payload:
        if type(value) is not str:
            raise self._refuse(value, "text")
        if "\x00" in value:
            raise BusDataError(f"DPT {self.number}: the text holds a NUL character")
        try:
            data = value.encode(self.encoding)
        except UnicodeEncodeError:
            raise BusDataError(
                f"DPT {self.number}: {value!r} has characters {self.encoding} cannot hold"
            ) from None
        if len(data) > 14:
            raise BusDataError(f"DPT {self.number}: {value!r} is longer than 14 characters")
        return data.ljust(14, b"\x00")


#: The subtypes with their own range or words; other subtypes of a main type use its default.
_SPECIAL: Final[Mapping[str, DptCodec]] = {
    "1.008": BitDpt("1.008", words=("up", "down")),
    "3.007": ControlDpt("3.007", words=("decrease", "increase")),
    "3.008": ControlDpt("3.008", words=("up", "down")),
    "5.001": ScaledDpt("5.001", "%", top=100),
    "5.003": ScaledDpt("5.003", "°", top=360),
    "9.001": Float16Dpt("9.001", "°C", minimum=-273),
    "9.004": Float16Dpt("9.004", "lx", minimum=0),
    "9.007": Float16Dpt("9.007", "%", minimum=0),
    "12.001": IntDpt("12.001", "pulses", size=4),
    "13.010": IntDpt("13.010", "Wh", size=4, signed=True),
    "16.000": TextDpt("16.000", encoding="ascii"),
    "16.001": TextDpt("16.001", encoding="latin-1"),
}

#: Names accepted for the common types (as xknx's value_type names them).
DPT_NAMES: Final[Mapping[str, str]] = {
    "switch": "1.001",
    "up_down": "1.008",
    "control_dimming": "3.007",
    "percent": "5.001",
    "pulse": "5.010",
    "temperature": "9.001",
    "illuminance": "9.004",
    "pulse_4_ucount": "12.001",
    "active_energy": "13.010",
    "string": "16.000",
    "latin_1": "16.001",
}


#: The codec of a main type's other subtypes, made from the subtype's number.
_GENERIC: Final[Mapping[int, Callable[[str], DptCodec]]] = {
    1: BitDpt,
    5: partial(IntDpt, size=1),
    6: partial(IntDpt, size=1, signed=True),
    7: partial(IntDpt, size=2),
    8: partial(IntDpt, size=2, signed=True),
    9: Float16Dpt,
    12: partial(IntDpt, size=4),
    13: partial(IntDpt, size=4, signed=True),
    14: Float32Dpt,
}


def dpt_codec(text: str) -> DptCodec:
    """The codec of ``"9.001"`` (or a name: ``"temperature"``); `ValueError` if unknown."""
    number = DPT_NAMES.get(text, text)
    match = _NUMBER.fullmatch(number)
    if match is None:
        raise ValueError(
            f'{text!r} is no datapoint type: write MAIN.SUB ("9.001") or one of '
            f"{', '.join(DPT_NAMES)}"
        )
    main, sub = int(match[1]), int(match[2])
    number = f"{main}.{sub:03d}"
    special = _SPECIAL.get(number)
    if special is not None:
        return special
    generic = _GENERIC.get(main)
    if generic is None:
        raise ValueError(
            f"datapoint type {number} is not supported; supported: 1.x, 3.007, 3.008, "
            "5.x, 6.x, 7.x, 8.x, 9.x, 12.x, 13.x, 14.x, 16.000, 16.001"
        )
    return generic(number)
