"""``HOST:PORT``: the one reader and writer of TCP addresses.

Every address a person writes (``--connect``, ``open_client(connect=...)``,
``client.listen``, ``sync.listen``, ``sync.peers``, ``pull --from``) is read
here, so each accepts the same forms and refuses the same mistakes with the
same words: ``HOST:PORT``, ``[V6]:PORT`` (an IPv6 address in brackets, as in
URLs), or ``HOST`` alone where a default port exists.  A port is 1 .. 65535;
0 (any free port) only where a listener asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InvalidInputError

if TYPE_CHECKING:
    import trio

__all__ = [
    "host_and_port",
    "is_loopback_host",
    "join_host_port",
    "peer_address",
    "socket_address",
]


def host_and_port(
    text: str, default_port: int | None = None, *, any_port: bool = False
) -> tuple[str, int]:
    """The host and port of *text*; raises `InvalidInputError` saying what is wrong.

    ``HOST`` alone takes *default_port* (without one, the port is required);
    *any_port* admits port 0, a listener's "any free port".
    """
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise InvalidInputError("an IPv6 address is written [ADDRESS]:PORT")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:
        raise InvalidInputError("write an IPv6 address in brackets: [ADDRESS]:PORT")
    else:
        host, port_text = text, None
    if not host:
        raise InvalidInputError(
            "the host is missing: write HOST:PORT (0.0.0.0 for every IPv4 address)"
        )
    return host, _port(port_text, default_port, any_port)


def _port(text: str | None, default: int | None, any_port: bool) -> int:
    if text is None:
        if default is None:
            raise InvalidInputError("the port is missing: write HOST:PORT")
        return default
    low = 0 if any_port else 1
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= 65535:
        free = " (0: any free port)" if any_port else ""
        raise InvalidInputError(f"the port {text!r} is not a number {low} .. 65535{free}")
    return int(text)


def is_loopback_host(host: str) -> bool:
    """Whether only this machine can reach *host* (``localhost``, ``127.0.0.1``, ``::1``).

    A host name other than ``localhost`` is not: it may resolve to anything.
    """
    if host == "localhost":
        return True
    import ipaddress  # only where a listener is configured: not at every CLI start

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def join_host_port(host: str, port: int) -> str:
    """``HOST:PORT``, with an IPv6 address in brackets: what `host_and_port` reads back."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def socket_address(address: object) -> str:
    """A socket's address (``getsockname()``, ``getpeername()``) as `join_host_port` writes it.

    A Unix socket's address, a path, is shown as it is.
    """
    if isinstance(address, tuple) and len(address) >= 2:
        return join_host_port(str(address[0]), address[1])
    return str(address)


def peer_address(stream: trio.SocketStream) -> str:
    """Who is at the other end of *stream*, for the log."""
    try:
        return socket_address(stream.socket.getpeername())
    except OSError:
        return "a peer that already left"
