"""Tests of `moat_log.path`: byte-exact examples, error cases, and properties."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from moat_log.errors import PathSyntaxError
from moat_log.path import MAX_KEY_BYTES, MAX_SEGMENTS, Path, segment_end

# --- strategies --------------------------------------------------------------

#: Text biased towards the characters the text form and key treat specially.
tricky_text = st.text(alphabet=st.sampled_from(".:_ e-09\x00\xff"), max_size=6)
any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
ints = st.integers(-(2**63), 2**63 - 1)
segments = st.one_of(tricky_text, any_text, ints, st.integers(-3, 3))
paths = st.lists(segments, max_size=8).map(Path)


def sort_model(path: Path) -> tuple[tuple[int, int | bytes], ...]:
    """The intended order, written independently of the key encoding."""
    return tuple((0, s) if isinstance(s, int) else (1, s.encode()) for s in path)


def same_segments(a: tuple[str | int, ...], b: tuple[str | int, ...]) -> bool:
    return [(type(s), s) for s in a] == [(type(s), s) for s in b]


# --- byte-exact examples -----------------------------------------------------

EXAMPLES: list[tuple[str, tuple[str | int, ...], str]] = [
    # text form, segments, key (hex, spaces for readability)
    (":", (), ""),
    ("home", ("home",), "03 686f6d65 0000"),
    (
        "home.kitchen.light",
        ("home", "kitchen", "light"),
        "03 686f6d65 0000 03 6b69746368656e 0000 03 6c69676874 0000",
    ),
    (
        "sensor:3.temp",
        ("sensor", 3, "temp"),
        "03 73656e736f72 0000 02 8000000000000003 03 74656d70 0000",
    ),
    (":3", (3,), "02 8000000000000003"),
    ("x:0", ("x", 0), "03 78 0000 02 8000000000000000"),
    ("a:-1:2", ("a", -1, 2), "03 61 0000 02 7fffffffffffffff 02 8000000000000002"),
    (":-9223372036854775808", (-(2**63),), "02 0000000000000000"),
    (":9223372036854775807", (2**63 - 1,), "02 ffffffffffffffff"),
    (":e", ("",), "03 0000"),
    ("a:e.b", ("a", "", "b"), "03 61 0000 03 0000 03 62 0000"),
    ("a:e", ("a", ""), "03 61 0000 03 0000"),
    (":e:e", ("", ""), "03 0000 03 0000"),
    (":3.e", (3, "e"), "02 8000000000000003 03 65 0000"),
    ("a::b", ("a:b",), "03 613a62 0000"),
    ("::", (":",), "03 3a 0000"),
    ("a:.b", ("a.b",), "03 612e62 0000"),
    ("living:_room", ("living room",), "03 6c6976696e6720726f6f6d 0000"),
    (":_x", (" x",), "03 2078 0000"),
    ("3.-1", ("3", "-1"), "03 33 0000 03 2d31 0000"),
    ("a\x00b", ("a\x00b",), "03 61 00ff 62 0000"),
    ("\x00", ("\x00",), "03 00ff 0000"),
    ("küche.licht", ("küche", "licht"), "03 6bc3bc636865 0000 03 6c69636874 0000"),
    ("🙂", ("🙂",), "03 f09f9982 0000"),
]


@pytest.mark.parametrize(("text", "segs", "key_hex"), EXAMPLES)
def test_example(text: str, segs: tuple[str | int, ...], key_hex: str) -> None:
    key = bytes.fromhex(key_hex)
    path = Path(segs)
    assert str(path) == text
    assert same_segments(Path.parse(text), segs)
    assert path.key == key
    assert same_segments(Path.from_key(key), segs)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("sensor.:3.temp", "sensor:3.temp"),
        ("a.:e.b", "a:e.b"),
        ("a.:-1.:2", "a:-1:2"),
        ("living room", "living:_room"),
        ("a.:_b", "a.:_b"),  # ".:_" is a dot and an escape, not the lenient rule
    ],
)
def test_lenient_input(text: str, canonical: str) -> None:
    assert str(Path.parse(text)) == canonical


def test_repr() -> None:
    assert repr(Path(["home", "kitchen"])) == "Path('home.kitchen')"
    assert repr(Path()) == "Path(':')"


# --- text form errors --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "use ':' for the root path"),
        ("a.", "position 1: trailing '.'"),
        ("a:3.", "position 3: trailing '.'"),
        ("a..b", "position 2: empty segment"),
        ("a:3..b", "position 4: empty segment"),
        (".a", "position 0: empty segment"),
        (".", "empty segment"),
        ("a:q", "position 1: unknown escape ':q'"),
        ("a:E", "unknown escape ':E'"),
        ("a:", "position 1: dangling ':'"),
        ("a.:", "position 2: dangling ':'"),
        (":1x", "malformed integer ':1x'"),
        (":-", "malformed integer ':-'"),
        (":--1", "malformed integer ':--1'"),
        (":1٣", "malformed integer"),
        (":01", "integer ':01' is not canonical"),
        (":-0", "integer ':-0' is not canonical"),
        (":9223372036854775808", "does not fit in signed 64 bits"),
        (":-9223372036854775809", "does not fit in signed 64 bits"),
        (":3:_a", "position 2: a string segment after an int or ':e' must start with '.'"),
        (":3a", "malformed integer ':3a'"),
        (":ex", "position 2: a string segment after an int or ':e' must start with '.'"),
        ("a\ud800", "lone surrogate"),
        (".".join(["a"] * (MAX_SEGMENTS + 1)), "at most 64"),
        ("x" * MAX_KEY_BYTES, "at most 400"),
    ],
)
def test_parse_error(text: str, message: str) -> None:
    with pytest.raises(PathSyntaxError) as info:
        Path.parse(text)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


# --- key errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (b"\x00", "unknown segment tag 0x00 at byte 0"),
        (b"\x03a\x00\x00\x01", "unknown segment tag 0x01 at byte 4"),
        (b"\x04", "unknown segment tag 0x04"),
        (b"\x02\x80\x00", "truncated int segment at byte 0"),
        (b"\x03ab", "no 00 00 terminator"),
        (b"\x03a\x00", "no 00 00 terminator"),
        (b"\x03a\x00\xff", "no 00 00 terminator"),
        (b"\x03a\x00b\x00\x00", "bad escape"),
        (b"\x03\xff\x00\x00", "not valid UTF-8"),
        (b"\x03\xed\xa0\x80\x00\x00", "not valid UTF-8"),  # encoded surrogate
        (b"\x03\xc0\xaf\x00\x00", "not valid UTF-8"),  # overlong "/"
        (b"\x03\x00\x00" * (MAX_SEGMENTS + 1), "more than 64 segments at byte 192"),
        (b"\x03" + b"x" * MAX_KEY_BYTES + b"\x00\x00", "at most 400"),
    ],
)
def test_from_key_error(key: bytes, message: str) -> None:
    with pytest.raises(PathSyntaxError) as info:
        Path.from_key(key)
    assert message in str(info.value)


def test_from_key_accepts_buffers() -> None:
    key = Path(["a", 1]).key
    assert Path.from_key(memoryview(key)) == Path.from_key(bytearray(key)) == ("a", 1)


# --- validation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("segs", "message"),
    [
        (["a", True], "segment 1 (True) is a bool"),
        ([False], "is a bool"),
        ([1.5], "has type float"),
        (["a", None], "has type NoneType"),
        ([b"a"], "has type bytes"),
        ([("a",)], "has type tuple"),
        ([2**63], "does not fit in signed 64 bits"),
        ([-(2**63) - 1], "does not fit in signed 64 bits"),
        (["ok", "bad\udc80"], "segment 1 ('bad\\udc80') is not valid Unicode"),
        ([0] * (MAX_SEGMENTS + 1), "65 segments; at most 64"),
        (["x" * (MAX_KEY_BYTES - 2)], f"path key would be {MAX_KEY_BYTES + 1} bytes"),
        (["\x00" * (MAX_KEY_BYTES // 2 - 1)], f"path key would be {MAX_KEY_BYTES + 1} bytes"),
        (["é" * (MAX_KEY_BYTES // 2 - 1)], f"path key would be {MAX_KEY_BYTES + 1} bytes"),
    ],
)
def test_invalid_segments(segs: list[object], message: str) -> None:
    with pytest.raises(PathSyntaxError) as info:
        Path(segs)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_limits_are_inclusive() -> None:
    assert len(Path([""] * MAX_SEGMENTS)) == MAX_SEGMENTS
    assert len(Path(["x" * (MAX_KEY_BYTES - 3)]).key) == MAX_KEY_BYTES
    assert len(Path(["\x00" * (MAX_KEY_BYTES // 2 - 2) + "x"]).key) == MAX_KEY_BYTES


def test_string_is_not_an_iterable_of_segments() -> None:
    with pytest.raises(TypeError, match=r"Path\.parse"):
        Path("home")


def test_extending_validates() -> None:
    with pytest.raises(PathSyntaxError):
        Path(["a"]) / True
    with pytest.raises(PathSyntaxError):
        Path(["a"]) + (1.5,)  # noqa: RUF005
    with pytest.raises(PathSyntaxError):
        Path([0] * MAX_SEGMENTS) / 1


# --- structure ---------------------------------------------------------------


def test_structure() -> None:
    path = Path(["home", "kitchen", 3])
    assert path / "x" == ("home", "kitchen", 3, "x")
    assert type(path / "x") is Path
    assert path.parent == ("home", "kitchen")
    assert type(path.parent) is Path
    assert path[0] == "home"
    assert path[-1] == 3
    assert type(path[1:]) is Path
    assert path[1:] == ("kitchen", 3)
    # `+` is what is under test here, not an unpacking oversight.
    assert type(path + ("x",)) is Path  # noqa: RUF005
    assert type(("x",) + path) is Path  # noqa: RUF005
    assert ("x",) + path == ("x", "home", "kitchen", 3)  # noqa: RUF005
    assert type(path + path) is Path
    assert Path(path) is path
    assert Path() == () and not Path()
    with pytest.raises(ValueError, match="root path ':' has no parent"):
        _ = Path().parent


def test_is_prefix_of() -> None:
    path = Path(["a", 1])
    assert Path().is_prefix_of(path)
    assert Path(["a"]).is_prefix_of(path)
    assert path.is_prefix_of(path)
    assert not (path / "b").is_prefix_of(path)
    assert not Path(["a", "1"]).is_prefix_of(path)
    assert not Path(["a\x00"]).is_prefix_of(Path(["a"]))


def test_hash_pickle() -> None:
    path = Path(["a", 1, ""])
    assert hash(path) == hash(("a", 1, ""))
    assert {path: 1}[Path.parse("a:1:e")] == 1
    copy = pickle.loads(pickle.dumps(path))
    assert type(copy) is Path
    assert copy == path


def test_sort_key_handles_mixed_types() -> None:
    ps = [Path(["a", "b"]), Path(["a", 2]), Path(["a"]), Path([1]), Path(), Path(["a", -5])]
    with pytest.raises(TypeError):
        sorted(ps)
    assert [str(p) for p in sorted(ps, key=Path.sort_key)] == [":", ":1", "a", "a:-5", "a:2", "a.b"]


# --- properties --------------------------------------------------------------


@given(paths)
@example(Path(["a", "", "b"]))
@example(Path([" ", ":", ".", ":e", "e", "-1", "01"]))
def test_text_round_trip(path: Path) -> None:
    text = str(path)
    parsed = Path.parse(text)
    assert same_segments(parsed, path)
    assert str(parsed) == text


@given(paths)
def test_key_round_trip(path: Path) -> None:
    decoded = Path.from_key(path.key)
    assert same_segments(decoded, path)
    assert type(decoded) is Path


@given(paths, paths)
@example(Path(["a"]), Path(["a\x00"]))
@example(Path(["a\x00"]), Path(["ab"]))
@example(Path(["a"]), Path(["a", ""]))
@example(Path([-1]), Path([0]))
@example(Path([2**63 - 1]), Path([""]))
def test_key_order_is_segment_order(a: Path, b: Path) -> None:
    assert (a.key < b.key) == (sort_model(a) < sort_model(b))
    assert (a.key == b.key) == (a == b)


@st.composite
def related_paths(draw: st.DrawFn) -> tuple[Path, Path]:
    """Pairs where the second often extends the first."""
    a = draw(paths)
    tail = draw(st.lists(segments, max_size=3))
    b = draw(st.one_of(st.just(Path([*a, *tail])), paths))
    return a, b


@given(related_paths())
@example((Path(["a"]), Path(["a\x00"])))
@example((Path(["a"]), Path(["ab"])))
@example((Path([""]), Path(["\x00"])))
def test_key_prefix_is_path_prefix(pair: tuple[Path, Path]) -> None:
    a, b = pair
    assert a.is_prefix_of(b) == b.key.startswith(a.key)


@given(paths, segments)
def test_journal_separator(path: Path, seg: str | int) -> None:
    """``key + 0x00`` sorts after the path and before all of its children."""
    child = path / seg
    assert path.key < path.key + b"\x00" < child.key
    assert not child.key.startswith(path.key + b"\x00")


@given(paths)
def test_segment_end_steps_through_the_segments_of_a_key(path: Path) -> None:
    key, ends, pos = path.key, [], 0
    while pos < len(key):
        pos = segment_end(key, pos)
        ends.append(pos)
    assert ends == [len(path[: n + 1].key) for n in range(len(path))]


@pytest.mark.parametrize(
    ("key", "pos"),
    [(b"", 0), (b"\x03ab", 0), (b"\x02" + bytes(7), 0), (b"\x04", 0), (b"\x03a\x00\x00", 4)],
)
def test_segment_end_of_no_segment_is_an_error(key: bytes, pos: int) -> None:
    with pytest.raises(PathSyntaxError, match=f"no complete segment at byte {pos}"):
        segment_end(key, pos)


# --- fuzz: garbage in, PathSyntaxError or a canonical path out ---------------


@given(st.text(alphabet=st.sampled_from(".:_ e-019ax\x00"), max_size=12) | st.text())
def test_parse_fuzz(text: str) -> None:
    try:
        path = Path.parse(text)
    except PathSyntaxError:
        return
    assert Path.parse(str(path)) == path


@given(st.binary(max_size=40) | paths.map(lambda p: p.key + b"\x00"))
def test_from_key_fuzz(key: bytes) -> None:
    try:
        path = Path.from_key(key)
    except PathSyntaxError:
        return
    assert path.key == key  # the encoding is a bijection onto valid keys
