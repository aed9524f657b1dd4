"""The log of sync links: each change of state once, a repeated failure as a rare reminder.

A link that comes up is logged at INFO with what each side lacks; a link
that ends, once, with its reason (INFO for the ordinary ends, ERROR where an
operator must repair a node or a clock, WARNING otherwise); a dial that
fails, at WARNING.  The node retries for ever, so each of these goes through
the replicator's `RepeatFilter`, keyed by the peer (its name, or the address
while it has none) and the reason: the first time in full, then a one-line
reminder at most once per ``sync.remind_every`` with the count of repeats,
and the rest at DEBUG.  A link that stayed up `STEADY_LINK` seconds, or a
dial that connected, changed the state: that peer's next failure is news.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from .messages import GoodbyeReason
from .repeats import RepeatFilter, Say, Verdict

if TYPE_CHECKING:
    from .link import LinkEnded

__all__ = ["STEADY_LINK", "dial_connected", "dial_failed", "link_ended", "link_up"]

log = logging.getLogger("moat_log.sync")

#: A link that was up this many seconds was no retry of a failure: a change of state.
STEADY_LINK: Final = 10.0
_ORDINARY_ENDS: Final = frozenset({"shutdown", "closed", str(GoodbyeReason.DUPLICATE_LINK)})
_REPAIR_ENDS: Final = frozenset({str(GoodbyeReason.CONFLICT), str(GoodbyeReason.CLOCK)})


def link_up(
    repeats: RepeatFilter,
    now: float,
    *,
    node: str,
    peer: str,
    address: str,
    dialled: bool,
    lacks_here: int,
    lacks_there: int,
) -> None:
    """A link went live: logged at INFO, unless it is one more retry of a failing link."""
    verdict = repeats.occurred((peer, "up"), now)
    log.log(
        logging.INFO if verdict.say is Say.FULL else logging.DEBUG,
        "sync link with %s (%s, %s) is up: %s lacks %d events, %s lacks %d",
        peer,
        address or "-",
        "dialled" if dialled else "accepted",
        node,
        lacks_here,
        peer,
        lacks_there,
    )


def link_ended(
    repeats: RepeatFilter,
    now: float,
    ended: LinkEnded,
    *,
    address: str,
    live_for: float | None,
    unsent: int,
) -> None:
    """A link ended (*live_for*: seconds it was up, None if it never was): logged once."""
    subject = ended.peer or _host(address)
    if live_for is not None and live_for >= STEADY_LINK:
        repeats.forget(subject)
    level = _level(ended.reason, unsent)
    who = f"{ended.peer or 'an unauthenticated peer'} ({address or '-'})"
    side = "by the peer" if ended.by_peer else "here"
    verdict = repeats.occurred((subject, ended.reason), now)
    if verdict.say is Say.REMIND:
        log.log(level, "sync link with %s ended %s again: %s, %s", who, side, ended.reason,
                _repeated(verdict))  # fmt: skip
        return
    message = ended.message
    if unsent:  # the peer offered events and left before sending them
        message += f"; {unsent} events it offered were not received"
    log.log(
        level if verdict.say is Say.FULL else logging.DEBUG,
        "sync link with %s ended %s: %s: %s; %d events in, %d out",
        who,
        side,
        ended.reason,
        message,
        ended.stats.events_in,
        ended.stats.events_out,
    )


def dial_failed(repeats: RepeatFilter, now: float, address: str, error: str) -> None:
    """A dial of *address* failed with *error*: WARNING the first time, then reminders."""
    verdict = repeats.occurred((address, error), now)
    if verdict.say is Say.FULL:
        log.warning("sync: %s: %s; trying again with back-off", address, error)
    elif verdict.say is Say.REMIND:
        log.warning("sync: %s: %s again, %s", address, error, _repeated(verdict))
    else:
        log.debug("sync: %s: %s", address, error)


def dial_connected(repeats: RepeatFilter, address: str) -> None:
    """A dial of *address* connected: its next failure is news."""
    repeats.forget(address)


def _level(reason: str, unsent: int) -> int:
    if reason in _REPAIR_ENDS:
        return logging.ERROR  # an operator must repair a node or a clock
    if reason in _ORDINARY_ENDS and not unsent:
        return logging.INFO
    return logging.WARNING


def _repeated(verdict: Verdict) -> str:
    """``12 times in 10 min`` since the last line."""
    over = verdict.over
    span = f"{over / 60:.0f} min" if over >= 120 else f"{over:.0f} s"
    return f"{verdict.repeats} times in {span}"


def _host(address: str) -> str:
    """The host of ``HOST:PORT``: an accepted connection comes from a new port each time."""
    return address.rpartition(":")[0] or address
