"""Time arguments of the command line (``--since``, ``--until``, ...).

Inside moat-log a time is an int: nanoseconds since the Unix epoch, UTC, in
``0 .. 2**64-1`` (1970-01-01 .. 2554-07-21).  `parse_time` turns what a person
types into such an int, or into an `EventId` that the journal resolves to the
time of that event.  Surrounding whitespace is ignored.  Accepted forms, tried
in this order:

``now``
    The moment given as *now_ns* (case does not matter).

relative: ``-10m``, ``-2h``, ``-30s``, ``-1d``, ``-1w``, ``-1.5h``, ``-250ms``, ``-1h30m``
    An offset from *now_ns*: a sign, then one or more ``NUMBER UNIT`` parts
    (units ``ms s m h d w``, lower case; decimals allowed).  ``-`` is the past,
    ``+`` the future (``+2d``).  A day is 24 hours, a week 7 days; the result
    is rounded to the nearest nanosecond.

ISO 8601: ``2026-11-21``, ``2026-11-21T14:03``, ``2026-11-21 14:03:07.5+01:00``
    A date or date-time: anything `datetime.fromisoformat` accepts, including
    ``Z`` for UTC.  Without an offset it is local time (*tz*, else the system's
    zone); a date alone is local midnight.  Digits beyond microseconds are
    dropped.

event id ``NODE:SEQ``: ``pi1:42``
    Returned as an `EventId`.  ISO is tried first, so ``2026-11-21T10:00`` is a
    time.  Text that starts like a date or is a time of day (``10:30``) is
    never read as an event id, so a mistyped time is reported, not misread.

A bare number (``1700000000``) is rejected: seconds, milliseconds and
nanoseconds would all be plausible readings.  So are times outside
``0 .. 2**64-1`` ns.

`format_time` is the inverse for display: local ISO 8601 with offset, e.g.
``2026-11-21T14:03:07.123456+01:00``; the fraction is left out when it is zero.

`time_spec` takes what a Python script passes as a time (`TimeLike`): an int
in ns, an `EventId`, a `datetime.datetime` (naive means local time, as in
ISO text) or text in any of the forms above.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from fractions import Fraction
from typing import TypeAlias

from .errors import InvalidInputError, TimeSyntaxError
from .ids import MAX_U64, EventId

__all__ = ["TimeLike", "TimeSpec", "format_time", "parse_time", "time_spec"]

#: A parsed time argument: ns since the epoch, or an event to look up.
TimeSpec: TypeAlias = int | EventId
#: What a script may give as a time: a `TimeSpec`, a datetime, or text for `parse_time`.
TimeLike: TypeAlias = int | EventId | dt.datetime | str

#: Appended to every syntax error; also fit for ``--help`` texts.
ACCEPTED_FORMS = (
    "accepted forms: an ISO 8601 date or date-time ('2026-11-21', '2026-11-21T14:03', "
    "'2026-11-21 14:03:07+01:00'; local time unless it has an offset or 'Z'), 'now', "
    "a relative time ('-10m', '-1h30m', '-1.5h', '+2d'; units ms, s, m, h, d, w), "
    "or an event id NODE:SEQ ('pi1:42')"
)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NS_PER_US = 1_000
_NS_PER_S = 1_000_000_000

# The longest form, an ISO date-time with nanoseconds and offset, has 35
# characters.  The limit keeps error messages short and int() fast.
_MAX_LENGTH = 100

_UNIT_NS = {
    "ms": 1_000_000,
    "s": _NS_PER_S,
    "m": 60 * _NS_PER_S,
    "h": 3600 * _NS_PER_S,
    "d": 86400 * _NS_PER_S,
    "w": 7 * 86400 * _NS_PER_S,
}
# "ms" before "m": alternation takes the first branch that fits.
_RELATIVE_PART = r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)"
_RELATIVE_RE = re.compile(rf"([+-])((?:{_RELATIVE_PART})+)")
_RELATIVE_PART_RE = re.compile(_RELATIVE_PART)
_BARE_NUMBER_RE = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?")
# Text starting like this was meant as a date (or a time of day), not NODE:SEQ.
_DATE_LIKE_RE = re.compile(r"[0-9]{4,}-[0-9]|[0-9]{4}-?W[0-9]")
_TIME_OF_DAY_RE = re.compile(r"[0-9]{1,2}:[0-9]{2}(?![0-9])")


def parse_time(text: str, *, now_ns: int, tz: dt.tzinfo | None = None) -> TimeSpec:
    """Parse a time argument into ns since the epoch or an `EventId`.

    *now_ns* anchors ``now`` and relative forms; *tz* is the zone of ISO times
    without an offset (default: the system's local zone).  See the module
    docstring for the forms.  Raises `TimeSyntaxError`, whose message lists
    the accepted forms.
    """
    spec = text.strip()
    if not spec:
        raise _syntax_error("empty time")
    if len(spec) > _MAX_LENGTH:
        raise _syntax_error(f"{spec[:20]!r}... is too long for a time ({len(spec)} characters)")
    if spec.lower() == "now":
        return _checked_ns(now_ns, spec)
    if _BARE_NUMBER_RE.fullmatch(spec):
        raise _syntax_error(
            f"{spec!r} is a bare number, which is ambiguous (seconds? nanoseconds?); "
            "give a unit for a relative time ('-10m') or write a date"
        )
    if spec[0] in "+-":
        return _checked_ns(now_ns + _parse_offset_ns(spec), spec)
    try:
        moment = dt.datetime.fromisoformat(spec)
    except ValueError as iso_error:
        _reject_misspelt_times(spec, iso_error)
        return _parse_event_id(spec)
    return _checked_ns(_datetime_to_ns(moment, tz, spec), spec)


def time_spec(value: TimeLike, *, now_ns: int | None = None) -> TimeSpec:
    """A script's time as ns since the epoch, or an `EventId` for the node to look up.

    Text is read by `parse_time`, relative to *now_ns* (default: this
    machine's clock).  A naive datetime is local time.  Raises
    `TimeSyntaxError` for text or a time outside ``0 .. 2**64-1`` ns, and
    `TypeError` for anything else.
    """
    if isinstance(value, EventId):
        return value
    if type(value) is int:
        return _checked_ns(value, str(value))
    if isinstance(value, dt.datetime):
        return _checked_ns(_datetime_to_ns(value, None, value.isoformat()), value.isoformat())
    if isinstance(value, str):
        return parse_time(value, now_ns=time.time_ns() if now_ns is None else now_ns)
    raise TypeError(
        "a time is ns since the epoch (int), an EventId, a datetime or text like '-1h', "
        f"not {type(value).__name__}"
    )


def format_time(ns: int, *, tz: dt.tzinfo | None = None) -> str:
    """Format ns since the epoch as ISO 8601 with offset, for people to read.

    The time is shown in *tz* (default: the system's local zone), to the
    microsecond; the fraction is left out when it is zero.  `parse_time` reads
    the result back to the same microsecond.
    """
    moment = _EPOCH + dt.timedelta(microseconds=ns // _NS_PER_US)
    return moment.astimezone(tz).isoformat()


def short_time(ns: int, *, now_ns: int | None = None, tz: dt.tzinfo | None = None) -> str:
    """*ns* for a narrow table cell, in *tz* (default: local): ``14:03:07`` today, else
    ``2026-11-21 14:03``."""
    moment = (_EPOCH + dt.timedelta(microseconds=ns // _NS_PER_US)).astimezone(tz)
    now = (_EPOCH + dt.timedelta(microseconds=(now_ns or time.time_ns()) // _NS_PER_US)).astimezone(
        tz
    )
    if moment.date() == now.date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M")


def describe_time(ns: int) -> str:
    """*ns* for a log line: ISO 8601 in UTC to the second, or the plain ns out of range."""
    if not 0 <= ns < _MAX_DESCRIBED_NS:
        return f"{ns} ns"
    return format_time(ns - ns % 10**9, tz=dt.UTC)


_MAX_DESCRIBED_NS = 253_402_300_800 * 10**9  # year 10000


def parse_duration(text: str) -> int:
    """A positive duration like ``30d``, ``1h30m``, ``10s`` in ns (units ms, s, m, h, d, w)."""
    if not isinstance(text, str) or text[:1] in "+-":
        raise TimeSyntaxError(f"a duration is NUMBER UNIT parts like '30d' or '1h', not {text!r}")
    ns = _parse_offset_ns("+" + text)
    if ns <= 0:
        raise TimeSyntaxError(f"a duration must be positive, not {text!r}")
    return ns


def _parse_offset_ns(spec: str) -> int:
    """Return the signed offset in ns of a relative time like ``-1h30m``."""
    match = _RELATIVE_RE.fullmatch(spec)
    if match is None:
        raise _syntax_error(
            f"{spec!r} is not a relative time: write a sign and NUMBER UNIT parts, "
            "e.g. '-10m', '-1h30m', '-1.5h', '-250ms' (units ms, s, m, h, d, w)"
        )
    sign, parts = match.groups()[:2]
    total = Fraction(0)
    for number, unit in _RELATIVE_PART_RE.findall(parts):
        total += Fraction(number) * _UNIT_NS[unit]
    offset = round(total)
    return -offset if sign == "-" else offset


def _reject_misspelt_times(spec: str, iso_error: ValueError) -> None:
    """Raise for text that is not ISO 8601 but was clearly meant as a time.

    Such text must not fall through to `_parse_event_id`: ``2026-11-21T10:5``
    and ``10:30`` are well-formed ``NODE:SEQ``.
    """
    if _DATE_LIKE_RE.match(spec):
        raise _syntax_error(f"{spec!r} is not a valid ISO 8601 time ({iso_error})") from iso_error
    if _TIME_OF_DAY_RE.match(spec):
        raise _syntax_error(
            f"{spec!r} is a time of day without a date: write e.g. '2026-11-21T{spec}'"
        )
    if _RELATIVE_RE.fullmatch(f"-{spec}"):
        raise _syntax_error(f"{spec!r} is not a time: did you mean '-{spec}'?")


def _parse_event_id(spec: str) -> EventId:
    """Read *spec* as ``NODE:SEQ``, or raise `TimeSyntaxError`."""
    if ":" not in spec:
        raise _syntax_error(f"{spec!r} is not a time")
    try:
        return EventId.parse(spec)
    except InvalidInputError as exc:
        raise _syntax_error(
            f"{spec!r} is neither an ISO 8601 time nor an event id NODE:SEQ ({exc})"
        ) from exc


def _datetime_to_ns(moment: dt.datetime, tz: dt.tzinfo | None, spec: str) -> int:
    """Return *moment* as ns since the epoch; naive means local time in *tz*."""
    if moment.tzinfo is None:
        try:
            # astimezone() on a naive datetime reads it as system local time.
            moment = moment.replace(tzinfo=tz) if tz is not None else moment.astimezone()
        except (OverflowError, OSError, ValueError) as exc:  # year 1 or 9999 in some zones
            raise TimeSyntaxError(
                f"{spec!r} is out of range: moat-log times are 1970-01-01 .. 2554-07-21 UTC"
            ) from exc
    elapsed = moment - _EPOCH  # exact: timedelta arithmetic, no float
    return (elapsed.days * 86400 + elapsed.seconds) * _NS_PER_S + elapsed.microseconds * _NS_PER_US


def _checked_ns(ns: int, spec: str) -> int:
    """Return *ns* if moat-log can store it as a time, else raise."""
    if not 0 <= ns <= MAX_U64:
        when = "before 1970-01-01" if ns < 0 else "after 2554-07-21"
        raise TimeSyntaxError(
            f"{spec!r} is {when} UTC: moat-log times are 0 .. 2**64-1 ns since the epoch"
        )
    return ns


def _syntax_error(reason: str) -> TimeSyntaxError:
    return TimeSyntaxError(f"{reason}; {ACCEPTED_FORMS}")
