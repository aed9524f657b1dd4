"""``HOST:PORT``: one reader for every address a person writes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.address import host_and_port, join_host_port, socket_address
from moat_log.errors import InvalidInputError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pi1.lan:27586", ("pi1.lan", 27586)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("[::1]:65535", ("::1", 65535)),
        ("[fd00::3]:27601", ("fd00::3", 27601)),
    ],
)
def test_the_forms_it_reads(text: str, expected: tuple[str, int]) -> None:
    assert host_and_port(text) == expected


def test_a_host_alone_takes_the_default_port() -> None:
    assert host_and_port("pi3.local", 27600) == ("pi3.local", 27600)
    assert host_and_port("[fd00::3]", 27600) == ("fd00::3", 27600)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pi1:99999", "the port '99999' is not a number 1 .. 65535"),
        ("pi1:65536", "the port '65536' is not a number 1 .. 65535"),
        ("pi1:0", "the port '0' is not a number 1 .. 65535"),
        ("pi1:", "the port '' is not a number 1 .. 65535"),
        ("pi1:http", "the port 'http' is not a number 1 .. 65535"),
        ("pi1:\uff12\uff17", "is not a number 1 .. 65535"),  # fullwidth digits
        ("pi1", "the port is missing: write HOST:PORT"),
        (":27586", "the host is missing"),
        ("fd00::3:27601", "write an IPv6 address in brackets: [ADDRESS]:PORT"),
        ("[fd00::3:27601", "an IPv6 address is written [ADDRESS]:PORT"),
        ("[fd00::3]27601", "an IPv6 address is written [ADDRESS]:PORT"),
    ],
)
def test_mistakes_are_refused_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        host_and_port(text)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_port_0_only_where_a_listener_asks_for_any_free_port() -> None:
    assert host_and_port("127.0.0.1:0", any_port=True) == ("127.0.0.1", 0)
    with pytest.raises(InvalidInputError, match=r"0 \.\. 65535 \(0: any free port\)"):
        host_and_port("127.0.0.1:70000", any_port=True)


@given(
    st.one_of(
        st.from_regex(r"\A[a-z][a-z0-9.-]{0,20}\Z"),
        st.ip_addresses().map(str),
    ),
    st.integers(1, 65535),
)
def test_what_it_writes_it_reads_back(host: str, port: int) -> None:
    assert host_and_port(join_host_port(host, port)) == (host, port)


def test_socket_addresses_are_written_the_same_way() -> None:
    assert socket_address(("::1", 5, 0, 0)) == "[::1]:5"
    assert socket_address(("127.0.0.1", 5)) == "127.0.0.1:5"
    assert socket_address("/run/moat-log.sock") == "/run/moat-log.sock"
