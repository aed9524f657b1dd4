"""Parsing and formatting of CLI time arguments."""

from __future__ import annotations

import calendar
import datetime as dt
import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.errors import InvalidInputError, TimeSyntaxError
from moat_log.ids import MAX_U64, EventId
from moat_log.timespec import ACCEPTED_FORMS, format_time, parse_time, time_spec

S = 1_000_000_000
MIN = 60 * S
HOUR = 60 * MIN
DAY = 24 * HOUR

PLUS2 = dt.timezone(dt.timedelta(hours=2))
# 2026-11-21T12:00:00Z, with some sub-second noise to show it is kept.
NOW = 1_795_262_400 * S + 123_456_789


def ns_at(text: str) -> int:
    """ns since the epoch of an ISO time with offset, computed independently."""
    moment = dt.datetime.fromisoformat(text)
    return calendar.timegm(moment.utctimetuple()) * S + moment.microsecond * 1000


def parse(text: str) -> object:
    return parse_time(text, now_ns=NOW, tz=PLUS2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("NOW", NOW),
        ("  now\n", NOW),
        ("-10m", NOW - 10 * MIN),
        ("-2h", NOW - 2 * HOUR),
        ("-30s", NOW - 30 * S),
        ("-1d", NOW - DAY),
        ("-1w", NOW - 7 * DAY),
        ("-1.5h", NOW - 90 * MIN),
        ("-250ms", NOW - 250_000_000),
        ("-1h30m", NOW - 90 * MIN),
        ("-1d2h3m4s5ms", NOW - DAY - 2 * HOUR - 3 * MIN - 4 * S - 5_000_000),
        ("-0s", NOW),
        ("+2d", NOW + 2 * DAY),
        ("+0.5s", NOW + S // 2),
        ("-0.0000000004s", NOW),  # rounded to the nearest ns
        ("-0.0000000006s", NOW - 1),
        # ISO without offset: local time in tz (+02:00).
        ("2026-11-21", ns_at("2026-11-21T00:00+02:00")),
        ("2026-11-21T10:00", ns_at("2026-11-21T10:00+02:00")),
        ("2026-11-21 10:00", ns_at("2026-11-21T10:00+02:00")),
        ("2026-11-21T10:00:07.25", ns_at("2026-11-21T10:00:07.250+02:00")),
        # ISO with offset: the offset wins over tz.
        ("2026-11-21T10:00Z", ns_at("2026-11-21T10:00+00:00")),
        ("2026-11-21T10:00:00+01:00", ns_at("2026-11-21T09:00+00:00")),
        ("2026-11-21T10:00:00.123456789-05:00", ns_at("2026-11-21T15:00:00.123456+00:00")),
        ("1970-01-01T00:00Z", 0),
        ("2554-07-21T23:34:33.709551Z", MAX_U64 - 615),
        # Event ids.
        ("pi1:42", EventId("pi1", 42)),
        (" pi1:42 ", EventId("pi1", 42)),
        ("heat-pump.cellar:1", EventId("heat-pump.cellar", 1)),
        ("12:345", EventId("12", 345)),  # not a time of day: three digits
    ],
)
def test_examples(text: str, expected: object) -> None:
    result = parse(text)
    assert result == expected
    assert type(result) is type(expected)


def test_relative_times_are_exact_nanoseconds() -> None:
    # 1.1h in binary floating point is not exactly 3960 s.
    assert parse("-1.1h") == NOW - 3960 * S
    assert parse("-0.001ms") == NOW - 1000


def test_local_time_follows_the_zone_rules() -> None:
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    winter = parse_time("2026-01-15T12:00", now_ns=NOW, tz=berlin)
    summer = parse_time("2026-07-15T12:00", now_ns=NOW, tz=berlin)
    assert winter == ns_at("2026-01-15T11:00+00:00")
    assert summer == ns_at("2026-07-15T10:00+00:00")


def test_system_zone_is_the_default() -> None:
    # With an explicit offset the machine's zone cannot matter.
    assert parse_time("2026-11-21T10:00Z", now_ns=NOW) == ns_at("2026-11-21T10:00+00:00")
    naive = dt.datetime(2026, 11, 21, 10, 0)
    expected = ns_at(naive.astimezone().isoformat())
    assert parse_time("2026-11-21T10:00", now_ns=NOW) == expected


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "1970-01-01T02:00:00+02:00"),
        (ns_at("2026-11-21T14:03:07.123456+01:00"), "2026-11-21T15:03:07.123456+02:00"),
        (ns_at("2026-11-21T14:03:07+01:00"), "2026-11-21T15:03:07+02:00"),
        (ns_at("2026-11-21T14:03:07+01:00") + 999, "2026-11-21T15:03:07+02:00"),
        (MAX_U64, "2554-07-22T01:34:33.709551+02:00"),
    ],
)
def test_format_time(ns: int, text: str) -> None:
    assert format_time(ns, tz=PLUS2) == text


def test_format_time_in_a_named_zone() -> None:
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    assert format_time(ns_at("2026-07-15T10:00Z"), tz=berlin) == "2026-07-15T12:00:00+02:00"
    assert format_time(ns_at("2026-01-15T10:00Z"), tz=berlin) == "2026-01-15T11:00:00+01:00"


zones = st.sampled_from(
    [
        dt.UTC,
        PLUS2,
        dt.timezone(dt.timedelta(hours=-9, minutes=-30)),
        zoneinfo.ZoneInfo("Europe/Berlin"),
        zoneinfo.ZoneInfo("America/New_York"),
        zoneinfo.ZoneInfo("Australia/Lord_Howe"),  # half-hour DST shifts
    ]
)
microsecond_times = st.datetimes(
    min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
).map(lambda moment: ns_at(moment.isoformat()))


@given(microsecond_times, zones)
def test_format_then_parse_round_trips(ns: int, tz: dt.tzinfo) -> None:
    # format_time shows the offset, so even times in a DST fold come back exactly.
    assert parse_time(format_time(ns, tz=tz), now_ns=NOW, tz=tz) == ns
    assert parse_time(format_time(ns, tz=tz), now_ns=NOW, tz=PLUS2) == ns


@given(st.integers(0, MAX_U64))
def test_format_drops_only_sub_microseconds(ns: int) -> None:
    assert parse_time(format_time(ns, tz=dt.UTC), now_ns=NOW) == ns - ns % 1000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty time"),
        ("   ", "empty time"),
        ("garbage", "'garbage' is not a time"),
        ("yesterday", "is not a time"),
        ("1700000000", "bare number, which is ambiguous"),
        ("20261121", "bare number"),
        ("-5", "bare number"),
        ("+1.5", "bare number"),
        ("-10M", "'-10M' is not a relative time"),
        ("-10 m", "not a relative time"),
        ("- 10m", "not a relative time"),
        ("-10", "bare number"),
        ("-m", "not a relative time"),
        ("-1.h", "not a relative time"),
        ("-.5h", "not a relative time"),
        ("-10min", "not a relative time"),
        ("-1y", "not a relative time"),
        ("-1h-30m", "not a relative time"),
        ("10m", "did you mean '-10m'"),
        ("1h30m", "did you mean '-1h30m'"),
        ("2026-02-30", "'2026-02-30' is not a valid ISO 8601 time"),
        ("2026-11-21T25:00", "not a valid ISO 8601 time"),
        ("2026-11-21T10:5", "not a valid ISO 8601 time"),
        ("2026-11-21T10:00+25:00", "not a valid ISO 8601 time"),
        ("10000-01-01", "not a valid ISO 8601 time"),
        ("0000-01-01", "not a valid ISO 8601 time"),
        ("10:30", "'10:30' is a time of day without a date"),
        ("9:05:00", "time of day without a date"),
        ("pi1:0", "neither an ISO 8601 time nor an event id NODE:SEQ"),
        ("pi1:042", "neither an ISO 8601 time nor an event id"),
        ("pi1:", "neither an ISO 8601 time nor an event id"),
        (":42", "neither an ISO 8601 time nor an event id"),
        ("pi 1:42", "neither an ISO 8601 time nor an event id"),
        ("pi1:18446744073709551616", "neither an ISO 8601 time nor an event id"),
        ("-" + "1" * 5000 + "s", "too long for a time"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(TimeSyntaxError, match=message) as info:
        parse(text)
    assert str(info.value).endswith(ACCEPTED_FORMS)
    assert isinstance(info.value, InvalidInputError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1969-12-31T23:59:59Z", "before 1970-01-01"),
        ("1970-01-01", "before 1970-01-01"),  # local midnight at +02:00
        ("0001-01-01", "before 1970-01-01"),
        ("9999-12-31", "after 2554-07-21"),
        ("2554-07-21T23:34:33.709552Z", "after 2554-07-21"),
        ("-3000w", "before 1970-01-01"),
        ("+30000w", "after 2554-07-21"),
    ],
)
def test_times_moat_log_cannot_store(text: str, message: str) -> None:
    with pytest.raises(TimeSyntaxError, match=message):
        parse(text)


def test_accepted_forms_are_listed() -> None:
    for example in ("2026-11-21", "'now'", "-10m", "-1h30m", "ms, s, m, h, d, w", "NODE:SEQ"):
        assert example in ACCEPTED_FORMS


def test_range_boundaries() -> None:
    assert parse_time("now", now_ns=MAX_U64) == MAX_U64
    assert parse_time("+0s", now_ns=MAX_U64) == MAX_U64
    assert parse_time("-1s", now_ns=S) == 0
    with pytest.raises(TimeSyntaxError, match="after 2554-07-21"):
        parse_time("+0.000001ms", now_ns=MAX_U64)
    with pytest.raises(TimeSyntaxError, match="before 1970-01-01"):
        parse_time("-0.000001ms", now_ns=0)


# --- times given by scripts ------------------------------------------------------


def test_time_spec_passes_ns_and_event_ids_through() -> None:
    assert time_spec(NOW) == NOW
    assert time_spec(0) == 0
    assert time_spec(MAX_U64) == MAX_U64
    assert time_spec(EventId("pi1", 42)) == EventId("pi1", 42)


def test_time_spec_reads_datetimes_naive_ones_as_local_time() -> None:
    aware = dt.datetime(2026, 11, 21, 14, 0, 0, 500_000, tzinfo=PLUS2)
    assert time_spec(aware) == ns_at("2026-11-21T14:00:00.500000+02:00")
    naive = dt.datetime(2026, 11, 21, 14, 0)
    assert time_spec(naive) == time_spec(naive.astimezone())


def test_time_spec_parses_text_against_now() -> None:
    assert time_spec("-1h", now_ns=NOW) == NOW - HOUR
    assert time_spec("now", now_ns=NOW) == NOW
    assert time_spec("pi1:42") == EventId("pi1", 42)
    assert time_spec("2026-11-21T12:00Z") == ns_at("2026-11-21T12:00:00+00:00")


@pytest.mark.parametrize("value", [-1, MAX_U64 + 1, dt.datetime(1969, 12, 31, tzinfo=dt.UTC)])
def test_time_spec_refuses_times_moat_log_cannot_hold(value: object) -> None:
    with pytest.raises(TimeSyntaxError, match=r"moat-log times are"):
        time_spec(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, 1.5, None, ("pi1", 42), dt.date(2026, 1, 1)])
def test_time_spec_refuses_other_types(value: object) -> None:
    with pytest.raises(TypeError, match="a time is ns since the epoch"):
        time_spec(value)  # type: ignore[arg-type]
