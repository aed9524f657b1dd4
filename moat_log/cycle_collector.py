"""Pausing CPython's cycle collector while a large acyclic result is built.

Theory of operation
-------------------
CPython frees objects by reference counting; the cycle collector (`gc`) only
looks for garbage that refers to itself.  It runs whenever enough new
objects have survived, and a full collection scans every object that is
still alive.  A function that builds a result of hundreds of thousands of
objects (a replay or diff over many paths keeps one or two events per path)
triggers a full collection each time the result has grown by a quarter, so
it rescans the result about five times over, and finds nothing: a result
under construction is not garbage.  In the replay benchmark that was 40 % of
a diff over 250,000 paths (docs/decisions.md).

`paused` turns the collector off while such a result is built.  CPython has
one switch for the whole process, so the pause holds for every thread:
their cyclic garbage waits until the pause ends (reference counting frees
everything else as usual).  Pauses nest and overlap across threads: the
collector is switched on again when the last one ends, and only if it was
on when the first began.

A long-running node has the opposite problem: a thousand requests in flight
keep their objects alive long enough to reach the oldest generation, and
the full collections that follow rescan everything the process loaded at
start-up (modules, configuration), which never becomes garbage.
`freeze_start_up` moves those objects out of the collector's sight once the
node runs (`gc.freeze`); it is for a process's own main program, not for a
library inside someone else's.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["freeze_start_up", "paused"]


class _Pauses:
    """How many pauses are running, and whether the collector was on before them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.was_enabled = False


_PAUSES = _Pauses()


@contextmanager
def paused() -> Iterator[None]:
    """Keep the cycle collector off for the duration (see the module docstring)."""
    with _PAUSES.lock:
        if _PAUSES.running == 0:
            _PAUSES.was_enabled = gc.isenabled()
            gc.disable()
        _PAUSES.running += 1
    try:
        yield
    finally:
        with _PAUSES.lock:
            _PAUSES.running -= 1
            if _PAUSES.running == 0 and _PAUSES.was_enabled:
                gc.enable()


def freeze_start_up() -> None:
    """Exempt every object alive now from future collections (see the module docstring).

    Call once, when start-up is done.  Objects frozen here that later become
    cyclic garbage are never freed: start-up state lives as long as the
    process anyway.  No collection first: it would delay the first answer,
    for the little garbage start-up leaves.
    """
    gc.freeze()
