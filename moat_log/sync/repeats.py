"""Which repeats of a failure to log: the first in full, then a short reminder now and then.

A node retries a failing link for ever (a peer that is down, a forked
history, a clock that is wrong), every few seconds.  Logged in full each
time, the one line that matters drowns in its copies.  `RepeatFilter` is
keyed by what failed (a peer and a reason): the first occurrence is logged
in full; the next ones are counted, and at most once per *interval* summed
up in a one-line reminder.  When the state of a peer changes (a link that
stayed up, a dial that connected), the caller forgets its keys, so the next
failure is news again.  Pure: the caller passes the time.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_REMIND_EVERY", "RepeatFilter", "Say", "Verdict"]

#: Seconds between two reminders of a failure that keeps repeating.
DEFAULT_REMIND_EVERY: Final = 600.0
#: Keys kept at most; the oldest go first (strangers from many hosts cost no memory).
MAX_KEYS: Final = 1024


class Say(enum.Enum):
    """What to log for one occurrence."""

    FULL = "full"  # the first time: the whole message
    REMIND = "remind"  # a one-line reminder of the repeats since the last line
    NOTHING = "nothing"  # counted, to be told in the next reminder


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to log, and for a reminder: how often it happened since the last line, over how long."""

    say: Say
    repeats: int = 0
    over: float = 0.0  # seconds since the last line of this key


@dataclass(slots=True)
class _Seen:
    logged_at: float  # when the last line of this key was logged
    repeats: int = 0  # occurrences since, not logged


_QUIET: Final = Verdict(Say.NOTHING)
_FULL: Final = Verdict(Say.FULL)


class RepeatFilter:
    """Per key (a tuple starting with the peer), which occurrences to log."""

    def __init__(self, interval: float = DEFAULT_REMIND_EVERY) -> None:
        if interval <= 0:
            raise ValueError(f"the interval must be > 0 s, not {interval}")
        self.interval: Final = interval
        self._seen: dict[tuple[Hashable, ...], _Seen] = {}

    def occurred(self, key: tuple[Hashable, ...], now: float) -> Verdict:
        """*key* happened (again) at *now*: what to log."""
        seen = self._seen.get(key)
        if seen is None:
            if len(self._seen) >= MAX_KEYS:
                del self._seen[next(iter(self._seen))]
            self._seen[key] = _Seen(now)
            return _FULL
        seen.repeats += 1
        if now - seen.logged_at < self.interval:
            return _QUIET
        verdict = Verdict(Say.REMIND, seen.repeats, now - seen.logged_at)
        seen.logged_at, seen.repeats = now, 0
        return verdict

    def forget(self, peer: Hashable) -> None:
        """The state of *peer* changed: its next failure of any kind is logged in full."""
        for key in [key for key in self._seen if key[0] == peer]:
            del self._seen[key]
