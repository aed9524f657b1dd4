"""Payload codecs: the bytes a bus carries, turned into a stored value and back.

Theory of operation
-------------------
A codec is a pair of pure functions.  ``decode(payload)`` turns the bytes a
bus delivered into a plain value that an event can hold (None, bool, int,
float, str, bytes, list, map: `moat_log.event.normalize_value`), and
``encode(value)`` turns a stored value into the bytes to send.  Both raise
`BusDataError`, saying what was wrong, for anything they cannot convert:
a codec never passes its input through unchanged.

The codecs (docs/mqtt-mapping.md, "Codecs"):

=========  ==============================  =====================================
name       stored value                    bus bytes
=========  ==============================  =====================================
``bool``   True / False                    ``ON`` / ``OFF`` (configurable)
``number`` a float (an int with integer)   decimal text; stored = bus * scale + offset
``json``   any JSON value                  compact UTF-8 JSON
``string`` text                            its UTF-8 bytes
``raw``    bytes                           the same bytes
=========  ==============================  =====================================

Every codec takes an optional ``none_payload`` token (``"None"``,
``"unknown"``): None encodes to the token, and a payload equal to the token
(byte for byte) decodes to None.  Without a token, None is refused
(``json`` writes it as ``null``).  A value whose encoding would equal the
token is refused, so that decoding gives back what was encoded.

An empty payload means "delete" on MQTT (the mapping handles it before a
codec sees it), so no codec decodes or produces one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from typing import Annotated, ClassVar, Final, Protocol, runtime_checkable

import msgspec
from msgspec import Meta

from moat_log.errors import BusDataError, InvalidEventError
from moat_log.event import Value, normalize_value
from moat_log.records import FieldError, read

__all__ = [
    "CODEC_NAMES",
    "BoolCodec",
    "JsonCodec",
    "NumberCodec",
    "PayloadCodec",
    "RawCodec",
    "StringCodec",
    "codec_from_config",
]

#: Words that always decode to True / False in the bool codec (case-insensitive).
TRUE_WORDS: Final = frozenset({"on", "true", "1"})
FALSE_WORDS: Final = frozenset({"off", "false", "0"})
#: Most digits after the point the number codec writes.
MAX_PRECISION: Final = 15


@runtime_checkable
class PayloadCodec(Protocol):
    """Converts between bus bytes and a stored value; raises `BusDataError`."""

    @property
    def name(self) -> str:
        """The codec's config name (``"bool"``, ``"number"``, ...)."""

    def encode(self, value: Value) -> bytes:
        """The non-empty payload that carries *value*."""

    def decode(self, payload: bytes) -> Value:
        """The value a non-empty *payload* carries."""

    def discovery_options(self) -> dict[str, object]:
        """What Home Assistant discovery learns from the codec (``payload_on``, a unit)."""


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _payload_text(payload: bytes) -> str:
    """*payload* as text for a message: short, and never a crash on binary data."""
    text = repr(bytes(payload[:40]))
    return text + ("..." if len(payload) > 40 else "")


@dataclass(frozen=True, slots=True)
class _Codec:
    """The shared part: the None token and the refusal of empty payloads."""

    none_payload: bytes | None = None

    name: ClassVar[str] = ""

    def encode(self, value: Value) -> bytes:
        if value is None:
            if self.none_payload is None:
                return self._encode_none()
            return self.none_payload
        payload = self._encode(value)
        if payload == self.none_payload:
            raise BusDataError(
                f"{self.name} codec: {_describe(value)} would be written as the none_payload "
                f"{_payload_text(payload)} and read back as None"
            )
        return payload

    def decode(self, payload: bytes) -> Value:
        data = bytes(payload)
        if not data:
            raise BusDataError(f"{self.name} codec: empty payload (an empty payload is a delete)")
        if data == self.none_payload:
            return None
        return self._decode(data)

    def discovery_options(self) -> dict[str, object]:
        return {}

    def _encode_none(self) -> bytes:
        raise BusDataError(
            f"{self.name} codec: cannot write None without a none_payload token "
            '(configure none_payload = "None", for example)'
        )

    def _encode(self, value: Value) -> bytes:
        raise NotImplementedError  # pragma: no cover

    def _decode(self, payload: bytes) -> Value:
        raise NotImplementedError  # pragma: no cover


def _text(codec: str, payload: bytes) -> str:
    try:
        return payload.decode()
    except UnicodeDecodeError as exc:
        raise BusDataError(
            f"{codec} codec: payload {_payload_text(payload)} is not UTF-8 text ({exc.reason})"
        ) from None


@dataclass(frozen=True, slots=True)
class BoolCodec(_Codec):
    """True and False as two words, by default Home Assistant's ``ON`` and ``OFF``.

    Encoding writes *payload_on* or *payload_off* exactly.  Decoding ignores
    case and accepts the configured words and also on/off, true/false and
    1/0; anything else is a `BusDataError`.  Only True and False encode (not
    1 or 0: the codec is the one place where words become booleans).
    """

    payload_on: str = "ON"
    payload_off: str = "OFF"

    name: ClassVar[str] = "bool"

    def __post_init__(self) -> None:
        on, off = self.payload_on.lower(), self.payload_off.lower()
        if not on or not off:
            raise ValueError("payload_on and payload_off must not be empty")
        if on == off:
            raise ValueError(
                f"payload_on {self.payload_on!r} and payload_off {self.payload_off!r} "
                "are the same word (case is ignored when reading)"
            )
        if on in FALSE_WORDS or off in TRUE_WORDS:
            raise ValueError(
                f"payload_on {self.payload_on!r} / payload_off {self.payload_off!r}: "
                "a word that always means the other state (on/true/1, off/false/0) "
                "cannot be used"
            )
        token = None if self.none_payload is None else self.none_payload.decode(errors="replace")
        if token is not None and token.lower() in {
            on,
            off,
            *TRUE_WORDS,
            *FALSE_WORDS,
        }:
            raise ValueError(f"none_payload {self.none_payload!r} is also a bool word")

    def _encode(self, value: Value) -> bytes:
        if type(value) is not bool:
            raise BusDataError(f"bool codec: expected true or false, got {_describe(value)}")
        return (self.payload_on if value else self.payload_off).encode()

    def _decode(self, payload: bytes) -> Value:
        word = _text(self.name, payload).lower()
        if word == self.payload_on.lower() or word in TRUE_WORDS:
            return True
        if word == self.payload_off.lower() or word in FALSE_WORDS:
            return False
        raise BusDataError(
            f"bool codec: payload {_payload_text(payload)} is neither "
            f"{self.payload_on!r} nor {self.payload_off!r} (nor on/off, true/false, 1/0)"
        )

    def discovery_options(self) -> dict[str, object]:
        return {"payload_on": self.payload_on, "payload_off": self.payload_off}


# A decimal number as devices write it: optional sign, digits with an
# optional point, an optional exponent.  Not nan, inf, hex or underscores.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WHITESPACE = " \t\r\n"
# Enough digits that scaling a float's 17 significant digits by a scale and
# an offset of 17 digits each loses nothing before the result is rounded.
_ARITHMETIC = Context(prec=60, Emax=10_000, Emin=-10_000)
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


@dataclass(frozen=True, slots=True)
class NumberCodec(_Codec):
    """A number written as decimal text; the stored value is ``bus * scale + offset``.

    *scale* and *offset* convert units (a bus value of tenths of a degree,
    ``215``, stores as ``21.5`` with ``scale = 0.1``); the arithmetic is
    decimal, so ``210 * 0.1`` is ``21.0``, not ``21.000000000000004``.
    *precision* is the number of digits after the point when encoding
    (rounded half to even; None: as many as the value needs).  With
    *integer* the stored value is an int, and a bus value whose stored value
    is not a whole number is refused.  *minimum* and *maximum* bound the
    stored value both ways.  NaN and infinity are refused.  *unit* is only
    metadata (Home Assistant's ``unit_of_measurement``).

    Decoding accepts surrounding whitespace, a sign, a point and an exponent
    (``" -1.5e2 "``); encoding writes plain decimal text (``-150``), with an
    exponent only for magnitudes below 1e-7 or from 1e21 on.
    """

    scale: float = 1.0
    offset: float = 0.0
    precision: int | None = None
    integer: bool = False
    minimum: float | None = None
    maximum: float | None = None
    unit: str | None = None

    name: ClassVar[str] = "number"

    def __post_init__(self) -> None:
        for label, number in (("scale", self.scale), ("offset", self.offset)):
            if not math.isfinite(number):
                raise ValueError(f"{label} must be a finite number, not {number!r}")
        if self.scale == 0:
            raise ValueError("scale must not be 0 (every bus value would store as the offset)")
        if self.precision is not None and not 0 <= self.precision <= MAX_PRECISION:
            raise ValueError(f"precision must be 0 .. {MAX_PRECISION}, not {self.precision}")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"min {self.minimum} is greater than max {self.maximum}")

    def _encode(self, value: Value) -> bytes:
        if self.integer and type(value) is not int:
            raise BusDataError(
                f"number codec (integer): expected an integer, got {_describe(value)}"
            )
        if type(value) not in (int, float):
            raise BusDataError(f"number codec: expected a number, got {_describe(value)}")
        if not math.isfinite(value):
            raise BusDataError(f"number codec: {value!r} cannot be sent (not a finite number)")
        self._check_range(value)
        bus = _ARITHMETIC.divide(
            _ARITHMETIC.subtract(Decimal(repr(value)), _decimal(self.offset)), _decimal(self.scale)
        )
        if self.precision is None:
            return _decimal_text(bus).encode()
        try:
            rounded = bus.quantize(Decimal(1).scaleb(-self.precision), context=_ARITHMETIC)
        except InvalidOperation:
            raise BusDataError(
                f"number codec: {value!r} is too large to write with {self.precision} digits "
                "after the point"
            ) from None
        return format(rounded, "f").encode()

    def _decode(self, payload: bytes) -> Value:
        text = _text(self.name, payload).strip(_WHITESPACE)
        if _NUMBER.fullmatch(text) is None:
            raise BusDataError(
                f"number codec: payload {_payload_text(payload)} is not a decimal number"
            )
        stored = _ARITHMETIC.add(
            _ARITHMETIC.multiply(Decimal(text), _decimal(self.scale)), _decimal(self.offset)
        )
        value: int | float
        if self.integer:
            if stored != stored.to_integral_value():
                raise BusDataError(
                    f"number codec (integer): payload {_payload_text(payload)} stores as "
                    f"{_decimal_text(stored)}, which is not a whole number"
                )
            value = int(stored)
            if not _INT_MIN <= value <= _INT_MAX:
                raise BusDataError(f"number codec: {value} does not fit in 64 bits")
        else:
            value = float(stored)
            if not math.isfinite(value):
                raise BusDataError(
                    f"number codec: payload {_payload_text(payload)} is too large for a float"
                )
        self._check_range(value)
        return value

    def _check_range(self, value: float) -> None:
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            low = "-inf" if self.minimum is None else repr(self.minimum)
            high = "inf" if self.maximum is None else repr(self.maximum)
            raise BusDataError(f"number codec: {value!r} is outside the range {low} .. {high}")

    def discovery_options(self) -> dict[str, object]:
        return {} if self.unit is None else {"unit_of_measurement": self.unit}


def _decimal(number: float) -> Decimal:
    """The decimal that *number* was written as (``0.1``, not its binary expansion)."""
    return Decimal(repr(number))


def _decimal_text(number: Decimal) -> str:
    """Shortest plain text of *number*: ``21``, ``21.5``, ``1e+25``."""
    if number.is_zero():
        return "0"
    normal = number.normalize(_ARITHMETIC)
    if -7 <= normal.adjusted() < 21:
        return format(normal, "f")
    return format(normal, "e")


@dataclass(frozen=True, slots=True)
class JsonCodec(_Codec):
    """Any JSON value as compact UTF-8 JSON (``{"a":1}``; None is ``null``).

    Refused when encoding: bytes, NaN and infinity, and maps with keys that
    are not strings (JSON would turn them into strings).  Refused when
    decoding: text that is not one JSON document, NaN and Infinity, integers
    that do not fit in 64 bits, nesting deeper than 32 levels.
    """

    name: ClassVar[str] = "json"

    def _encode_none(self) -> bytes:
        return b"null"

    def _encode(self, value: Value) -> bytes:
        _check_json_value(value, 0)
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode()

    def _decode(self, payload: bytes) -> Value:
        text = _text(self.name, payload)
        try:
            value = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise BusDataError(
                f"json codec: payload {_payload_text(payload)} is not JSON ({exc})"
            ) from None
        try:
            return normalize_value(value)
        except InvalidEventError as exc:
            raise BusDataError(f"json codec: payload {_payload_text(payload)}: {exc}") from None


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number a value can hold")


def _check_json_value(value: Value, depth: int) -> None:
    kind = type(value)
    if kind in (type(None), bool, int, str):
        return
    if kind is float:
        if not math.isfinite(value):
            raise BusDataError(f"json codec: {value!r} cannot be written as JSON")
        return
    if depth >= 32:
        raise BusDataError("json codec: the value nests deeper than 32 levels")
    if kind in (list, tuple):
        for item in value:
            _check_json_value(item, depth + 1)
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise BusDataError(
                    f"json codec: map key {_describe(key)} is not a string (JSON keys are text)"
                )
            _check_json_value(item, depth + 1)
        return
    raise BusDataError(f"json codec: {_describe(value)} cannot be written as JSON")


@dataclass(frozen=True, slots=True)
class StringCodec(_Codec):
    """Text as its UTF-8 bytes.  The empty string is refused (it would be a delete)."""

    name: ClassVar[str] = "string"

    def _encode(self, value: Value) -> bytes:
        if type(value) is not str:
            raise BusDataError(f"string codec: expected text, got {_describe(value)}")
        if not value:
            raise BusDataError(
                "string codec: the empty string would be an empty payload, which deletes"
            )
        try:
            return value.encode()
        except UnicodeEncodeError as exc:
            raise BusDataError(
                f"string codec: {_describe(value)} is not valid Unicode ({exc.reason})"
            ) from None

    def _decode(self, payload: bytes) -> Value:
        return _text(self.name, payload)


@dataclass(frozen=True, slots=True)
class RawCodec(_Codec):
    """Bytes as they are.  Empty bytes are refused (they would be a delete)."""

    name: ClassVar[str] = "raw"

    def _encode(self, value: Value) -> bytes:
        if type(value) not in (bytes, bytearray, memoryview):
            raise BusDataError(f"raw codec: expected bytes, got {_describe(value)}")
        data = bytes(value)
        if not data:
            raise BusDataError("raw codec: empty bytes would be an empty payload, which deletes")
        return data

    def _decode(self, payload: bytes) -> Value:
        return payload


# --- config ----------------------------------------------------------------


class _CodecTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    type: str
    none_payload: Annotated[str, Meta(min_length=1, description="a non-empty string")] | None = None


class _BoolTable(_CodecTable, forbid_unknown_fields=True, frozen=True):
    payload_on: Annotated[str, Meta(min_length=1, description="a non-empty string")] = "ON"
    payload_off: Annotated[str, Meta(min_length=1, description="a non-empty string")] = "OFF"


class _NumberTable(_CodecTable, forbid_unknown_fields=True, frozen=True):
    scale: float = 1.0
    offset: float = 0.0
    precision: (
        Annotated[int, Meta(ge=0, le=MAX_PRECISION, description=f"an integer 0 .. {MAX_PRECISION}")]
        | None
    ) = None
    integer: bool = False
    min: float | None = None
    max: float | None = None
    unit: str | None = None


_TABLES: Final[Mapping[str, type[_CodecTable]]] = {
    "bool": _BoolTable,
    "number": _NumberTable,
    "int": _NumberTable,
    "float": _NumberTable,
    "json": _CodecTable,
    "string": _CodecTable,
    "raw": _CodecTable,
}
#: The codec names ``codec = "..."`` accepts (``int`` and ``float`` are numbers).
CODEC_NAMES: Final = tuple(_TABLES)


def codec_from_config(value: object, where: str) -> PayloadCodec:
    """The codec a config value names: ``"json"`` or a table ``{type = "number", ...}``.

    Strict: an unknown name, an unknown key or a value of the wrong type is a
    `FieldError` naming *where* (``adapters.mqtt.map[2].codec.scale``).
    """
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict):
        raise FieldError(where, f"expected a codec name or a table, got {value!r}")
    name = value.get("type")
    if not isinstance(name, str) or name not in _TABLES:
        raise FieldError(
            f"{where}.type" if isinstance(value.get("type"), str) else where,
            f"unknown codec {name!r}; known codecs are {', '.join(CODEC_NAMES)}",
        )
    table = read(_TABLES[name], value, where=where)
    try:
        return _codec(name, table)
    except ValueError as exc:
        raise FieldError(where, str(exc)) from None


def _codec(name: str, table: _CodecTable) -> PayloadCodec:
    token = None if table.none_payload is None else table.none_payload.encode()
    if isinstance(table, _BoolTable):
        return BoolCodec(token, table.payload_on, table.payload_off)
    if isinstance(table, _NumberTable):
        if name == "float" and table.integer:
            raise ValueError('a "float" codec cannot be integer: use type = "int"')
        return NumberCodec(
            token,
            table.scale,
            table.offset,
            table.precision,
            table.integer or name == "int",
            table.min,
            table.max,
            table.unit,
        )
    plain: dict[str, type[JsonCodec | StringCodec | RawCodec]] = {
        "json": JsonCodec,
        "string": StringCodec,
        "raw": RawCodec,
    }
    return plain[name](token)
