"""The contract of a side-effect projection: code that acts outside the journal.

A side-effect projection turns committed events into effects somewhere else:
publishing to MQTT, writing to a field bus, appending to a file.  Unlike a
view (`moat_log.journal.projection`), its effects cannot join the journal's
write transaction, so it cannot be exactly-once by itself.  The node runs it
behind the journal (`moat_log.projections.runner`) with **at-least-once**
delivery:

* every event the journal stores reaches `SideEffectProjection.apply` in
  position order, none skipped, from the projection's first start on (a new
  projection begins at the journal's first position, or after its last one
  if it has a true ``start_at_end`` attribute: a bus adapter must not replay
  a house's history to its bus);
* the runner saves a durable checkpoint (the last position whose batch
  `apply` returned) now and then, not after every batch, so after a crash or
  kill the batches since the last checkpoint are delivered **again**;
* an `apply` that raises is retried with the *same* batch, after a back-off,
  until it returns.

So `apply` must be idempotent: applying a batch a second time must leave the
target as applying it once did.  A target that remembers what it has done
dedups by ``item.position`` (increasing on this node: skip what is not above
the last position applied) or by ``item.event.id`` (global).  A target that
cannot remember (an MQTT publish) must tolerate the repeats: a retained
message published twice with the same value is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from moat_log.journal.item import FeedItem
from moat_log.journal.store import check_checkpoint_name

__all__ = ["SideEffectProjection", "check_side_effects"]


@runtime_checkable
class SideEffectProjection(Protocol):
    """Acts on the journal's events outside it; run by `moat_log.projections.runner`."""

    @property
    def name(self) -> str:
        """Names its checkpoint in the journal's meta: unique per journal, stable across runs.

        1 to 100 printable characters without spaces.  Renaming a projection
        starts it over from the journal's first position.
        """
        ...

    async def apply(self, items: Sequence[FeedItem]) -> None:
        """Act on *items*: consecutive stored events, in position order.

        Return only once the effects are done (or durably handed on): the
        runner may checkpoint past *items* after that.  Raise to have the
        same batch retried after a back-off.  Must be idempotent: after a
        crash the last batches since the checkpoint come again, and a
        cancelled (stopping) or failed `apply` sees its batch again.
        """
        ...


def check_side_effects(projections: Iterable[object]) -> list[SideEffectProjection]:
    """*projections* as a list, each checked to be a `SideEffectProjection` with a unique name."""
    if isinstance(projections, (str, bytes)):
        raise TypeError("projections is a list of side-effect projections, not a string")
    checked: list[SideEffectProjection] = []
    names: set[str] = set()
    for projection in projections:
        if not isinstance(projection, SideEffectProjection):
            raise TypeError(
                f"{projection!r} is not a side-effect projection: it needs a name and an "
                "async apply(items)"
            )
        name = check_checkpoint_name(projection.name)
        if name in names:
            raise ValueError(f"two side-effect projections are named {name!r}; names are unique")
        names.add(name)
        checked.append(projection)
    return checked
