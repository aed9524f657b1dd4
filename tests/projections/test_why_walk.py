"""The chain walk over events in memory: causes followed exactly, every break named, no loops."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.event import Event, Op
from moat_log.ids import EventId
from moat_log.idset import IdSet
from moat_log.path import Path
from moat_log.projections.why import (
    EndKind,
    EventsInMemory,
    Held,
    Step,
    displaced,
    walk_chain,
)
from moat_log.testing import DEFAULT_NOW

LIGHT, MOTION = Path.parse("home.hall.light"), Path.parse("sensor.hall.motion")


def event(
    origin: str,
    seq: int,
    path: Path,
    value: object,
    *,
    source: str = "",
    cause: EventId | None = None,
    deps: dict[str, int] | None = None,
    hlc: int | None = None,
) -> Event:
    return Event(
        origin,
        seq,
        hlc if hlc is not None else DEFAULT_NOW + 1000 * seq,
        deps or {},
        path,
        Op.SET,
        value,
        source,
        cause,
    )


def test_a_chain_follows_causes_to_the_bus_frame_it_started_from() -> None:
    frame = event("pi2", 1, MOTION, True, source="knx:1/2/3")
    light = event("pi1", 5, LIGHT, True, source="script:hall", cause=frame.id, deps={"pi2": 1})
    chain = walk_chain(light, EventsInMemory([frame, light]))
    assert [step.event for step in chain.steps] == [light, frame]
    assert chain.end.kind is EndKind.ORIGIN
    assert chain.end.describe() == "origin: written by knx:1/2/3 without a cause"


def test_each_step_says_what_it_overwrote_or_whom_it_conflicted_with() -> None:
    old = event("pi1", 1, LIGHT, False, source="cli:alice")
    concurrent = event("pi2", 2, LIGHT, "dim", source="mqtt:hall/light")
    new = event("pi1", 3, LIGHT, True, source="cli:alice")  # pi1 never saw pi2:2
    source = EventsInMemory([old, concurrent, new])
    # pi1 won over pi2's unseen write, and knowingly replaced its own older one.
    assert walk_chain(new, source).steps[0] == Step(new, overwrote=old, conflict_with=concurrent)
    assert walk_chain(concurrent, source).steps[0] == Step(concurrent, conflict_with=old)
    seen = event("pi1", 4, LIGHT, None, deps={"pi2": 2})
    step = walk_chain(seen, EventsInMemory([old, concurrent, new, seen])).steps[0]
    assert (step.overwrote, step.conflict_with) == (new, None)
    assert displaced(old, source) == Step(old)


def test_a_cause_never_held_and_one_no_longer_held_are_told_apart() -> None:
    lost = EventId("pi3", 7)
    light = event("pi1", 1, LIGHT, True, cause=lost)
    never = walk_chain(light, EventsInMemory([light]))
    assert (never.end.kind, never.end.cause) == (EndKind.NEVER_HELD, lost)
    assert "never held" in never.end.describe()
    compacted = walk_chain(light, EventsInMemory([light], summary=IdSet.of_range("pi3", 1, 9)))
    assert compacted.end.kind is EndKind.NO_LONGER_HELD
    assert "no longer held (compacted)" in compacted.end.describe()
    assert EventsInMemory([light]).held(light.id) is Held.HELD


def test_a_cycle_of_causes_ends_the_walk() -> None:
    a = event("pi1", 1, LIGHT, 1, cause=EventId("pi1", 2))
    b = event("pi1", 2, LIGHT, 2, cause=a.id)
    chain = walk_chain(b, EventsInMemory([a, b]))
    assert [s.event.id for s in chain.steps] == [b.id, a.id]
    assert (chain.end.kind, chain.end.cause) == (EndKind.CYCLE, b.id)


def test_depth_bounds_the_steps_and_says_where_it_stopped() -> None:
    chain_events = [event("pi1", 1, LIGHT, 0)]
    for seq in range(2, 30):
        chain_events.append(event("pi1", seq, LIGHT, seq, cause=chain_events[-1].id))
    chain = walk_chain(chain_events[-1], EventsInMemory(chain_events), depth=5)
    assert len(chain.steps) == 5
    assert (chain.end.kind, chain.end.cause) == (EndKind.DEPTH, chain_events[-6].id)
    with pytest.raises(ValueError, match="at least 1"):
        walk_chain(chain_events[0], EventsInMemory(chain_events), depth=0)


ORIGINS = ("a", "b", "c")


@st.composite
def event_graphs(draw: st.DrawFn) -> tuple[list[Event], IdSet]:
    """Events whose causes point anywhere: at held events, missing ones, themselves, later ones."""
    count = draw(st.integers(1, 12))
    ids = [EventId(draw(st.sampled_from(ORIGINS)), seq) for seq in range(1, count + 1)]
    candidates = [*ids, EventId("a", 99), EventId("z", 1)]
    events = [
        Event(
            eid.origin,
            eid.seq,
            DEFAULT_NOW + draw(st.integers(0, 5)),
            {
                o: draw(st.integers(0, 3))
                for o in ORIGINS
                if o != eid.origin and draw(st.booleans())
            },
            draw(st.sampled_from([LIGHT, MOTION])),
            Op.SET,
            eid.seq,
            "",
            draw(st.one_of(st.none(), st.sampled_from(candidates))),
        )
        for eid in ids
    ]
    kept = [e for e in events if draw(st.booleans())] or events[:1]
    summary = IdSet.of_events(events) if draw(st.booleans()) else IdSet.of_events(kept)
    return kept, summary


@given(event_graphs(), st.integers(1, 15), st.data())
def test_any_graph_gives_a_finite_chain_that_follows_the_causes(
    graph: tuple[list[Event], IdSet], depth: int, data: st.DataObject
) -> None:
    events, summary = graph
    source = EventsInMemory(events, summary=summary)
    start = data.draw(st.sampled_from(events))
    chain = walk_chain(start, source, depth=depth)
    ids = [step.event.id for step in chain.steps]
    assert 1 <= len(ids) <= depth
    assert len(set(ids)) == len(ids)
    assert chain.steps[0].event == start
    for here, there in zip(chain.steps, chain.steps[1:], strict=False):
        assert here.event.cause == there.event.id
    last = chain.steps[-1].event
    assert chain.end.last == last
    assert chain.end.cause == last.cause
    held = {e.id for e in events}
    if last.cause is None:
        assert chain.end.kind is EndKind.ORIGIN
    elif last.cause in ids:
        assert chain.end.kind is EndKind.CYCLE
    elif len(ids) == depth:
        assert chain.end.kind is EndKind.DEPTH
    else:
        assert last.cause not in held, "a held cause must be followed"
        gone = summary.holds(*last.cause)
        assert chain.end.kind is (EndKind.NO_LONGER_HELD if gone else EndKind.NEVER_HELD)
    for step in chain.steps:
        mine = step.event
        earlier = [
            e for e in events if e.path == mine.path and (e.hlc, e.origin) < (mine.hlc, mine.origin)
        ]
        seen = [e for e in earlier if e.happened_before(mine)]
        latest = max(earlier, key=lambda e: (e.hlc, e.origin), default=None)
        assert step.overwrote == max(seen, key=lambda e: (e.hlc, e.origin), default=None)
        assert step.conflict_with == (None if latest is None or latest in seen else latest)
