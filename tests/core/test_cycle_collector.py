"""Pausing the cycle collector: nested, overlapping across threads, and restoring its state."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from moat_log import cycle_collector


@pytest.fixture(autouse=True)
def collector_enabled() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.enable()
    yield
    if was_enabled:  # the tests switch it off: leave it as the session had it
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_off_during_a_pause_and_on_after_it() -> None:
    with cycle_collector.paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with cycle_collector.paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_the_collector_comes_back_after_an_error() -> None:
    with pytest.raises(KeyError), cycle_collector.paused():
        raise KeyError("x")
    assert gc.isenabled()


def test_nested_pauses_end_with_the_outer_one() -> None:
    with cycle_collector.paused():
        with cycle_collector.paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_overlapping_pauses_in_two_threads_end_with_the_last() -> None:
    entered, release = threading.Event(), threading.Event()

    def other_thread() -> None:
        with cycle_collector.paused():
            entered.set()
            release.wait()

    thread = threading.Thread(target=other_thread)
    with cycle_collector.paused():
        thread.start()
        entered.wait()
    assert not gc.isenabled(), "the other thread's pause still runs"
    release.set()
    thread.join()
    assert gc.isenabled()
