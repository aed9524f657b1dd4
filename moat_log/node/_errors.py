"""Errors out of nurseries as they were raised.

trio wraps every exception that leaves a nursery in an exception group.  When
a node fails to start (a port in use, another node on the data directory)
there is one error, and whoever started the node should see it as it was
raised, so that ``except MoatLogError`` works and the CLI prints one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["single_errors_unwrapped"]


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
    """Re-raise an exception group holding one exception as that exception."""
    try:
        yield
    except BaseExceptionGroup as group:
        inner = _only(group)
        if inner is None:
            raise
        raise inner from inner.__cause__
