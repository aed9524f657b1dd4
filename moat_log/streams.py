"""Small pieces shared by the trio shells around the protocol (node and client)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import trio

__all__ = ["COALESCE_BYTES", "coalesce", "single_errors_unwrapped"]

#: The most bytes of queued frames joined into one send.
COALESCE_BYTES: Final = 256 * 1024


def coalesce(frame: bytes, frames: trio.MemoryReceiveChannel[bytes]) -> bytes:
    """*frame* and whatever else is queued right now, up to `COALESCE_BYTES`: one send."""
    parts = [frame]
    size = len(frame)
    while size < COALESCE_BYTES:
        try:
            more = frames.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            break
        parts.append(more)
        size += len(more)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _only(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception in *group* (through nested groups of one), else None."""
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup):
        if len(inner.exceptions) != 1:
            return None
        inner = inner.exceptions[0]
    return inner


@contextmanager
def single_errors_unwrapped() -> Iterator[None]:
    """Re-raise an exception group holding one exception as that exception.

    A nursery wraps the caller's own error; hand it back as it was raised.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        inner = _only(group)
        if inner is None:
            raise
        raise inner from inner.__cause__
