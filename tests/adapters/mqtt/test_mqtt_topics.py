"""Paths and topics: segment escaping, routes, filters; round trips by Hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.adapters.mqtt.topics import (
    TopicRoute,
    is_valid_topic_filter,
    is_valid_topic_name,
    level_to_segment,
    segment_to_level,
    topic_matches,
)
from moat_log.errors import BusDataError
from moat_log.path import Path, Segment
from moat_log.records import FieldError

LEVELS: list[tuple[Segment, str]] = [
    ("kitchen", "kitchen"),
    ("küche", "küche"),
    ("a:b", "a::b"),
    ("a/b", "a:|b"),
    ("a+b", "a:pb"),
    ("#", ":h"),
    ("a\x00b", "a:zb"),
    ("$SYS", ":$SYS"),
    ("a$", "a$"),
    ("$", ":$"),
    ("$:", ":$::"),
    ("", ":e"),
    ("e", "e"),
    (":e", "::e"),
    ("3", "3"),
    (3, ":3"),
    (-12, ":-12"),
    (0, ":0"),
    (2**63 - 1, ":9223372036854775807"),
    ("living room", "living room"),
    ("a.b", "a.b"),
]


@pytest.mark.parametrize(("segment", "level"), LEVELS)
def test_a_segment_is_written_as_exactly_its_level(segment: Segment, level: str) -> None:
    assert segment_to_level(segment) == level


@pytest.mark.parametrize(("segment", "level"), LEVELS)
def test_a_level_reads_back_as_its_segment_and_type(segment: Segment, level: str) -> None:
    back = level_to_segment(level)
    assert back == segment
    assert type(back) is type(segment)


@pytest.mark.parametrize(
    ("level", "message"),
    [
        ("", "empty topic level"),
        (":q", "unknown escape ':q'"),
        ("a:", "unknown escape ':'"),
        (":ex", "unknown escape ':e'"),
        (":01", "unknown escape ':0'"),
        (":-0", "unknown escape ':-'"),
        (":3x", "unknown escape ':3'"),
        ("$x", "starts with '$'"),
        ("a:$", "unknown escape ':$'"),
        (":9223372036854775808", "outside the signed 64-bit range"),
        ("a+", "holds '+', '#' or NUL"),
    ],
)
def test_a_level_no_segment_is_written_as_is_refused(level: str, message: str) -> None:
    with pytest.raises(BusDataError) as info:
        level_to_segment(level)
    assert message in str(info.value)


SEGMENTS = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=12),
    st.integers(-(2**63), 2**63 - 1),
)


@given(SEGMENTS)
def test_every_segment_round_trips_through_a_valid_level(segment: Segment) -> None:
    level = segment_to_level(segment)
    assert is_valid_topic_name(level)
    assert "/" not in level
    assert not level.startswith("$")
    back = level_to_segment(level)
    assert back == segment
    assert type(back) is type(segment)


@given(st.text(max_size=8))
def test_every_level_that_reads_is_the_one_its_segment_writes(level: str) -> None:
    try:
        segment = level_to_segment(level)
    except BusDataError:
        return
    assert segment_to_level(segment) == level


# --- names and filters -------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "valid"),
    [
        ("a/b", True),
        ("/a", True),
        ("a//b", True),
        ("$SYS/x", True),
        ("", False),
        ("a/+/b", False),
        ("a/#", False),
        ("a\x00", False),
        ("x" * 65535, True),
        ("x" * 65536, False),
        ("ü" * 32768, False),  # 65536 bytes
        ("\ud800", False),
    ],
)
def test_topic_names_follow_mqtt(topic: str, valid: bool) -> None:
    assert is_valid_topic_name(topic) is valid


@pytest.mark.parametrize(
    ("topic_filter", "valid"),
    [
        ("a/+/b", True),
        ("#", True),
        ("a/#", True),
        ("+", True),
        ("a/b#", False),
        ("a/#/b", False),
        ("a+/b", False),
        ("", False),
        ("a\x00", False),
    ],
)
def test_topic_filters_follow_mqtt(topic_filter: str, valid: bool) -> None:
    assert is_valid_topic_filter(topic_filter) is valid


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+", "a", False),
        ("a/#", "a", True),  # '#' includes the parent level
        ("a/#", "a/b/c", True),
        ("a/#", "b", False),
        ("#", "a/b", True),
        ("+/b", "/b", True),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("a/+/c", "a//c", True),
    ],
)
def test_topic_matches_is_mqtts_filter_rule(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


# --- routes ------------------------------------------------------------------


def test_a_route_maps_a_path_to_its_topic_and_back() -> None:
    route = TopicRoute.compile("home.+room.light", "home/{room}/light/state")
    assert route.subscription_filter == "home/+/light/state"
    assert route.path_prefix == Path(["home"])
    assert route.topic_for(Path.parse("home.kitchen.light")) == "home/kitchen/light/state"
    assert route.topic_for(Path.parse("home:3.light")) == "home/:3/light/state"
    assert route.path_for("home/a:|b/light/state") == Path(["home", "a/b", "light"])
    assert route.topic_for(Path.parse("home.kitchen.lamp")) is None
    assert route.topic_for(Path.parse("home.kitchen.light.x")) is None
    assert route.path_for("home/kitchen/light") is None
    assert route.path_for("home/kitchen/light/set") is None


def test_a_rest_variable_takes_zero_or_more_segments() -> None:
    route = TopicRoute.compile("sensor.#rest", "moat/s/{rest}")
    assert route.subscription_filter == "moat/s/#"
    assert route.path_prefix == Path(["sensor"])
    assert route.topic_for(Path.parse("sensor:3.temp")) == "moat/s/:3/temp"
    assert route.topic_for(Path.parse("sensor")) == "moat/s"
    assert route.path_for("moat/s/:3/temp") == Path(["sensor", 3, "temp"])
    assert route.path_for("moat/s") == Path(["sensor"])
    assert route.topic_for(Path.parse("other")) is None


def test_variables_may_change_order_and_literals_need_their_type() -> None:
    route = TopicRoute.compile("dev:1.+a.+b", "x/{b}/{a}")
    assert route.path_prefix == Path(["dev", 1])
    assert route.topic_for(Path(["dev", 1, "p", "q"])) == "x/q/p"
    assert route.topic_for(Path(["dev", "1", "p", "q"])) is None
    assert route.path_for("x/q/p") == Path(["dev", 1, "p", "q"])


def test_a_literal_route_maps_one_path() -> None:
    route = TopicRoute.compile("a.b", "c")
    assert route.topic_for(Path.parse("a.b")) == "c"
    assert route.path_for("c") == Path.parse("a.b")
    assert route.subscription_filter == "c"
    assert route.path_prefix == Path.parse("a.b")


def test_a_topic_with_a_bad_escape_is_bus_data_error() -> None:
    route = TopicRoute.compile("home.+room", "home/{room}")
    with pytest.raises(BusDataError, match="unknown escape ':q'"):
        route.path_for("home/a:q")
    with pytest.raises(BusDataError, match="empty topic level"):
        route.path_for("home/")


def test_a_rest_path_that_would_make_an_empty_topic_is_refused() -> None:
    route = TopicRoute.compile("#rest", "{rest}")
    assert route.topic_for(Path.parse("a.b")) == "a/b"
    with pytest.raises(BusDataError, match="empty topic"):
        route.topic_for(Path())


@pytest.mark.parametrize(
    ("pattern", "template", "message"),
    [
        ("a.+x", "a/{y}", "map[0].topic: 'a/{y}': {y} is not a variable of the path 'a.+x'"),
        ("a.+x.+y", "a/{x}", "map[0].topic: 'a/{x}' does not use the path's variable(s) {y}"),
        ("a.+x.+x", "{x}", "map[0].path: 'a.+x.+x' uses the variable 'x' twice"),
        ("a.+x", "{x}/{x}", "map[0].topic: '{x}/{x}' uses {x} twice"),
        ("a.#x.b", "a/{x}", "map[0].path: 'a.#x.b': '#x' must be the last segment"),
        ("a.+x.#r", "{r}/{x}", "map[0].topic: '{r}/{x}': {r} takes the rest of the path"),
        ("a.+x", "a/+/{x}", "map[0].topic: 'a/+/{x}': level '+': '+' and '#' cannot be"),
        ("a.+x", "a/#", "'+' and '#' cannot be in a topic"),
        ("a.+x", "a/b#/{x}", "'+' and '#' cannot be in a topic"),
        ("a.+x", "a//{x}", "map[0].topic: 'a//{x}' has an empty level"),
        ("a.+x", "/a/{x}", "has an empty level"),
        ("a.+x", "a/{x}/", "has an empty level"),
        ("a.+x", "", "map[0].topic: the topic template is empty"),
        ("a.+x", "$SYS/{x}", "map[0].topic: '$SYS/{x}' starts with '$'"),
        ("a.+x", "a/l{x}", "map[0].topic: 'a/l{x}': level 'l{x}': a variable '{name}' must fill"),
        ("a.+", "a/{x}", "map[0].path: path variable '+' needs a name"),
        ("a.+x", "a/{}", "map[0].topic: topic variable '+' needs a name"),
        ("a.+x", "a/{x-y}", "topic variable '+x-y' needs a name"),
        ("a..b", "a", "map[0].path: 'a..b' is not a path pattern"),
    ],
)
def test_a_bad_route_is_refused_at_config_time(pattern: str, template: str, message: str) -> None:
    with pytest.raises(FieldError) as info:
        TopicRoute.compile(pattern, template, where="map[0]")
    assert message in str(info.value)


# --- generated routes --------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c", "d", "room", "x_1"])
LITERAL_SEGMENTS = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="+#"), max_size=5).map(
        lambda s: s.lstrip("+#")
    ),
    st.integers(-5, 5),
)
LITERAL_LEVELS = st.text(
    st.characters(codec="utf-8", exclude_characters="/+#{}\x00"),
    min_size=1,
    max_size=5,
).filter(lambda s: not s.startswith("$"))


@st.composite
def routes_and_paths(draw: st.DrawFn) -> tuple[TopicRoute, Path]:
    """A random route and a path that matches it."""
    names = draw(st.lists(NAMES, unique=True, max_size=3))
    rest = draw(st.booleans()) and bool(names)
    singles, rest_name = (names[:-1], names[-1]) if rest else (names, None)
    path_items: list[Segment | str] = [
        draw(LITERAL_SEGMENTS) for _ in range(draw(st.integers(0, 2)))
    ]
    for name in singles:
        path_items.insert(draw(st.integers(0, len(path_items))), f"+{name}")
    if rest_name is not None:
        path_items.append(f"#{rest_name}")
    order = draw(st.permutations(singles))
    levels: list[str] = [
        draw(LITERAL_LEVELS) for _ in range(draw(st.integers(0 if names else 1, 2)))
    ]
    for name in order:
        levels.insert(draw(st.integers(0, len(levels))), f"{{{name}}}")
    if rest_name is not None:
        levels.append(f"{{{rest_name}}}")
    pattern = str(Path(path_items))
    route = TopicRoute.compile(pattern, "/".join(levels))
    segments: list[Segment] = []
    for item in path_items:
        if isinstance(item, str) and item.startswith("+"):
            segments.append(draw(SEGMENTS))
        elif isinstance(item, str) and item.startswith("#"):
            segments.extend(draw(st.lists(SEGMENTS, min_size=1, max_size=3)))
        else:
            segments.append(item)
    return route, Path(segments)


@given(routes_and_paths())
def test_every_matching_path_round_trips_through_a_valid_topic(
    case: tuple[TopicRoute, Path],
) -> None:
    route, path = case
    topic = route.topic_for(path)
    assert topic is not None
    assert is_valid_topic_name(topic)
    assert not topic.startswith("$")
    assert is_valid_topic_filter(route.subscription_filter)
    assert topic_matches(route.subscription_filter, topic)
    assert route.path_prefix.is_prefix_of(path)
    back = route.path_for(topic)
    assert back == path
    assert [type(s) for s in back] == [type(s) for s in path]
