"""Held ranges on the wire: an `IdSet` received from a peer, and maps by origin.

A summary's ``held``, a want's ``seqs`` and a have's ``held`` are the wire
form of an `IdSet` (``IdSet.to_wire``: origin -> ``[s1, e1, s2, e2, ...]``).
What a peer sends is validated as `IdSet.from_wire` does, and a fault is the
peer's: `RemoteProtocolError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..errors import InvalidInputError
from ..ids import is_node_name
from ..idset import IdSet
from ..protocol.errors import RemoteProtocolError, show

_V = TypeVar("_V")

__all__ = ["by_origin_from_wire", "held_from_wire"]


def held_from_wire(wire: object, what: str) -> IdSet:
    """Validate a received holding; *what* names it in the error."""
    try:
        return IdSet.from_wire(wire, what)
    except InvalidInputError as exc:
        raise RemoteProtocolError(str(exc)) from None


def by_origin_from_wire(
    wire: object, what: str, value: Callable[[str, object], _V]
) -> dict[str, _V]:
    """A received map from origin to something *value* validates; *what* names it."""
    if type(wire) is not dict:
        raise RemoteProtocolError(f"{what} must be a map by origin, not {show(wire)}")
    result: dict[str, _V] = {}
    for origin, item in wire.items():
        if not is_node_name(origin):
            raise RemoteProtocolError(f"{what} names an invalid origin {show(origin)}")
        result[origin] = value(origin, item)
    return result
