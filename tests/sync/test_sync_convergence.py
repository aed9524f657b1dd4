"""The proof that sync converges: a Hypothesis state machine over 3-5 simulated nodes.

Each node is a `MemoryJournal` with its `Holdings`; a configured link (a
random connected topology: a spanning tree plus extra edges) is either cut or
a pair of `SyncConnection`s.  The rules interleave everything a network and
its nodes do: writes on any node (with clocks that jump and step back),
sending, delivering any number of bytes in any direction, serving wants with
full or short batches, storing received events in any order, pushing what the
journal stored, cutting links (bytes in flight are lost), reconnecting them
(a new handshake), restarting nodes (every link and everything not yet
stored is lost; the journal survives), and wiping a node: its journal is
lost too, and it gets its own events back from its peers before it writes
again, as a node does before it serves (moat_log.node._recover), while it
still lacks most of the others'.  Events therefore reach a node over several
paths, out of order, and twice.

Every write checks that the writer's deps do not decrease from its previous
event, and records what the writer had seen: everything it held
contiguously at any of its writes so far.  The test's memory of that
survives a wipe; the node's survives only in its events.

Nodes also compact (`compact`): with a rule that covers every path, they
remove what every neighbour has stated holding (its summary, its repeated
``have``s, `confirm`), keeping each path's winner and heads, each origin's
tip and the last position, with or without roll-ups (written by the raw
events' origin).  At each compaction the machine checks the safety rule
itself: every removed id is held, right now, by every neighbour that has not
lost its data since it said so.

`heal_and_check` (a rule, and again at the end of every run) reconnects every
link and runs the network until nothing moves.  Then:

* every node holds only events that were written, and, unless some node
  lost its data, every node's summary names every event written anywhere
  (held, or removed after every neighbour held it);
* every node's KV view (the winner per path, by greatest ``(hlc, origin)``)
  is byte-identical, and equal to the fold of the union of all events
  written, compacted or not; so are the heads and conflicts;
* per origin, deps never decrease from one event to the next, and the KV
  conflicts computed from deps are those of the record of what each writer
  had seen;
* every node's `Holdings` agree with its journal, and nothing is left
  requested;
* a fresh reconnect of every link exchanges summaries only, no event.

Throughout, `End.handle` checks that no event crosses a connection twice in
the same direction, and the connections themselves refuse any event the
sender knew the receiver held (a `RemoteProtocolError` fails the test).  The
duplicates that remain are events that arrived over two paths at once, which
nothing can avoid without a round trip before each push (see
docs/sync-protocol.md, "Duplicates").
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sync_support import SimLink, SimNode, settle

from moat_log.event import Event
from moat_log.ids import EventId
from moat_log.idset import IdSet
from moat_log.journal.change import Change
from moat_log.journal.compaction import (
    PathCompaction,
    PathPattern,
    RetentionRule,
    rolled_intervals,
    rollup_path,
)
from moat_log.path import Path
from moat_log.rangeset import RangeSet
from moat_log.sync import MAX_BATCH_CONTENT, LinkState
from moat_log.testing import kv_conflicts, kv_winners
from moat_log.vclock import VectorClock

PATHS = [(), ("a",), ("a", 1), ("b",), ("b", "c")]
Edge = tuple[int, int]


class SyncNetwork(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[SimNode] = []
        self.links: dict[Edge, SimLink | None] = {}
        self.written: set[bytes] = set()
        self.retired_duplicates = 0  # received twice over links that are gone
        #: Per node, what it had seen at its writes so far (kept across wipes).
        self.knew: dict[str, VectorClock] = {}
        #: Per event written, what its writer had seen then; per origin, its newest.
        self.seen: dict[EventId, VectorClock] = {}
        self.newest: dict[str, Event] = {}
        self.window = self.want_size = 1
        self.batch_bytes = MAX_BATCH_CONTENT
        self.any_wiped = False  # some node lost its data: what it lacked may be gone
        self.compacted = 0  # events removed, over all nodes

    # --- set-up -----------------------------------------------------------------

    #: How many nodes a run has.
    NODES = st.integers(3, 5)

    @initialize(data=st.data())
    def build(self, data: st.DataObject) -> None:
        count = data.draw(self.NODES, label="nodes")
        self.nodes = [SimNode(f"n{i}", now=10**18 + i * 1000) for i in range(count)]
        edges = {(data.draw(st.integers(0, i - 1), label="parent"), i) for i in range(1, count)}
        others = [(a, b) for a in range(count) for b in range(a + 1, count) if (a, b) not in edges]
        edges |= set(
            data.draw(st.lists(st.sampled_from(others), unique=True), label="extra")
            if others
            else []
        )
        self.window = data.draw(st.integers(1, 3), label="window")
        self.want_size = data.draw(st.integers(1, 8), label="want_size")
        self.batch_bytes = data.draw(st.sampled_from([MAX_BATCH_CONTENT, 100, 200]), label="batch")
        self.links = {edge: self.connect(edge) for edge in sorted(edges)}

    def connect(self, edge: Edge) -> SimLink:
        a, b = edge
        link = SimLink(self.nodes[a], self.nodes[b], window=self.window, want_size=self.want_size)
        for end in link.ends.values():
            end.batch_bytes = self.batch_bytes
        return link

    def live_links(self) -> list[SimLink]:
        return [link for link in self.links.values() if link is not None]

    def cut(self, edge: Edge) -> None:
        link = self.links[edge]
        if link is not None:
            link.cut()
            self.retired_duplicates += link.duplicates()
            for end in link.ends.values():  # received on it and not stored: lost
                end.node.pending = [item for item in end.node.pending if item[0] is not end]
            self.links[edge] = None

    # --- what the nodes do ----------------------------------------------------------

    @rule(
        data=st.data(),
        path=st.sampled_from(PATHS),
        value=st.integers(0, 9),
        delete=st.booleans(),
        step=st.integers(-(10**6), 10**6),
    )
    def write(
        self, data: st.DataObject, path: tuple[str | int, ...], value: int, delete: bool, step: int
    ) -> None:
        node = data.draw(st.sampled_from(self.nodes), label="writer")
        node.clock.advance(step)  # clocks drift and step back; the hlc copes
        self.record(node, node.write(path, value, delete=delete))

    @rule(data=st.data(), count=st.integers(2, 12), value=st.integers(0, 9))
    def write_burst(self, data: st.DataObject, count: int, value: int) -> None:
        """A node writes several events in a row (so catch-ups take several wants)."""
        node = data.draw(st.sampled_from(self.nodes), label="writer")
        for i in range(count):
            self.record(node, node.write(PATHS[i % len(PATHS)], value + i))

    def record(self, node: SimNode, event: Event) -> None:
        """Note a write and what its writer had seen; its deps must not decrease."""
        self.written.add(event.pack())
        held = node.journal.summary()
        now = VectorClock({o: r.contiguous_end() for o, r in held.items() if o != node.name})
        knew = self.knew[node.name] = self.knew.get(node.name, VectorClock()).join(now)
        self.seen[event.id] = knew
        previous = self.newest.get(node.name)
        if previous is not None:
            assert event.seq == previous.seq + 1
            behind = previous.deps.first_decrease(event.deps)
            assert behind is None, f"{event.id} claims less of {behind} than {previous.id}"
        self.newest[node.name] = event

    @rule(data=st.data())
    def store(self, data: st.DataObject) -> None:
        """A node stores one of its received batches or pushes, in any order."""
        waiting = [node for node in self.nodes if node.pending]
        if waiting:
            node = data.draw(st.sampled_from(waiting), label="storer")
            node.store_pending(data.draw(st.integers(0, len(node.pending) - 1), label="item"))

    @rule(data=st.data())
    def pump_feed(self, data: st.DataObject) -> None:
        """A node's feed hands what its journal stored to one of its links."""
        links = self.live_links()
        if links:
            link = data.draw(st.sampled_from(links), label="link")
            link.end(data.draw(st.sampled_from(sorted(link.ends)), label="node")).pump_feed()

    @rule(data=st.data(), size=st.integers(1, 400))
    def deliver(self, data: st.DataObject, size: int) -> None:
        """Some bytes of one direction of one link arrive (all sent bytes are queued first)."""
        links = self.live_links()
        if links:
            link = data.draw(st.sampled_from(links), label="link")
            link.collect()
            link.deliver(data.draw(st.sampled_from(sorted(link.ends)), label="sender"), size)

    @rule(data=st.data(), rounds=st.integers(1, 6), store=st.booleans())
    def run_link(self, data: st.DataObject, rounds: int, store: bool) -> None:
        """One link exchanges everything it has, a few rounds (its nodes may store as they go)."""
        links = self.live_links()
        if links:
            link = data.draw(st.sampled_from(links), label="link")
            for _ in range(rounds):
                for end in link.ends.values():
                    end.pump_feed()
                link.collect()
                for sender in sorted(link.ends):
                    link.deliver(sender)
                for end in link.ends.values() if store else ():
                    while end.node.pending:
                        end.node.store_pending()

    # --- what the network does --------------------------------------------------------

    @rule(data=st.data())
    def cut_link(self, data: st.DataObject) -> None:
        self.cut(data.draw(st.sampled_from(sorted(self.links)), label="cut"))

    @rule(data=st.data())
    def reconnect(self, data: st.DataObject) -> None:
        edge = data.draw(st.sampled_from(sorted(self.links)), label="reconnect")
        self.cut(edge)
        self.links[edge] = self.connect(edge)

    @rule(data=st.data())
    def restart(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.nodes) - 1), label="restart")
        for edge in self.links:
            if index in edge:
                self.cut(edge)
        self.nodes[index].restart()

    @rule(data=st.data(), write_at_once=st.booleans())
    def wipe_and_recover(self, data: st.DataObject, write_at_once: bool) -> None:
        """A node loses its data and gets its own events back before it writes again.

        First its links run until its neighbours hold all its events: a node
        that lost events no peer held would fork its history (a case the tips
        detect, tests/sync/test_sync_forks.py).  With *write_at_once* it
        writes as soon as it serves, like the reproduction of the issue.
        """
        writers = [i for i, node in enumerate(self.nodes) if node.name in self.newest]
        index = data.draw(st.sampled_from(writers or range(len(self.nodes))), label="wipe")
        node = self.nodes[index]
        # The whole network runs meanwhile: a neighbour may be fetching the
        # node's events over another link, and fetches each from one peer.
        self.reconnect_all_of(index)
        run_until(self.live_links(), lambda: self.neighbours_hold_all_of(index))
        offered = self.own_held_by_neighbours(index)
        node.wipe()
        self.any_wiped = True
        self.reconnect_all_of(index)
        own = node.journal.summary
        run_until(self.live_links(), lambda: offered.issubset(own().seqs(node.name)))
        if write_at_once:
            self.record(node, node.write(PATHS[1], data.draw(st.integers(0, 9))))

    # --- compaction ---------------------------------------------------------------------

    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        """One end of a live link tells its peer what its node holds (a repeated have)."""
        links = [link for link in self.live_links() if all(e.conn.live for e in link.ends.values())]
        if links:
            link = data.draw(st.sampled_from(links), label="link")
            link.end(data.draw(st.sampled_from(sorted(link.ends)), label="node")).conn.send_have()

    @rule(data=st.data(), rolled=st.booleans(), confirmed=st.booleans())
    def compact(self, data: st.DataObject, rolled: bool, confirmed: bool) -> None:
        """A node compacts everything its neighbours have stated holding (every path, any age).

        With *confirmed*, the live links first run until nothing moves and
        every end sends a ``have``: the frontier is then all that is shared.
        """
        index = data.draw(st.integers(0, len(self.nodes) - 1), label="compactor")
        node = self.nodes[index]
        if confirmed:
            settle(self.nodes, self.live_links())
            for link in self.live_links():
                for end in link.ends.values():
                    end.conn.send_have()
            settle(self.nodes, self.live_links())
        neighbours = self.neighbours(index)
        records = node.journal.peers()
        if any(peer.name not in records for peer in neighbours):
            return  # a configured peer that never answered holds everything back
        frontier = node.journal.summary() - node.journal.gone()
        for peer in neighbours:
            frontier = frontier & records[peer.name].held
        rule = RetentionRule(
            "all", (PathPattern.parse("#"),), raw_for=1, rollup=10**9 if rolled else None
        )
        rollups, removals = plan_compaction(node, rule, frontier)
        for peer in neighbours:  # the safety rule, against the peers' real journals
            if node.stated_by.get(peer.name) == peer.generation:
                lacking = [e.id for e in removals if e.id not in peer.journal.summary()]
                assert not lacking, f"{node.name} removes {lacking}, which {peer.name} lacks"
        for event in node.compact(rollups, removals):
            self.record(node, event)
        self.compacted += len(removals)

    def reconnect_all_of(self, index: int) -> None:
        """New connections on every link of a node (a node that starts dials its peers)."""
        for edge in self.links:
            if index in edge:
                self.cut(edge)
                self.links[edge] = self.connect(edge)

    def neighbours(self, index: int) -> list[SimNode]:
        return [self.nodes[b if a == index else a] for a, b in self.links if index in (a, b)]

    def own_held_by_neighbours(self, index: int, *, offered: bool = True) -> RangeSet:
        """The node's own seqs its neighbours hold: that they can serve, or also compacted."""
        name = self.nodes[index].name
        held = RangeSet()
        for peer in self.neighbours(index):
            gone = peer.journal.gone() if offered else IdSet()
            held |= (peer.journal.summary() - gone).seqs(name)
        return held

    def neighbours_hold_all_of(self, index: int) -> bool:
        """Its neighbours hold (or compacted) every own event it still has.

        Those it compacted itself may be gone everywhere (a neighbour that
        had confirmed them lost its data since): nobody can give them back.
        """
        journal = self.nodes[index].journal
        own = (journal.summary() - journal.gone()).seqs(self.nodes[index].name)
        return own.issubset(self.own_held_by_neighbours(index, offered=False))

    @precondition(lambda self: self.nodes)
    @rule()
    def heal_and_check(self) -> None:
        for edge, link in self.links.items():
            if link is None or any(e.conn.state is LinkState.CLOSED for e in link.ends.values()):
                self.cut(edge)  # a link that ended (a want for events compacted meanwhile)
                self.links[edge] = self.connect(edge)
        links = self.live_links()
        settle(self.nodes, links)
        self.check_converged()
        for link in links:
            for end in link.ends.values():
                assert end.conn.caught_up
        self.check_reconnect_sends_no_events()

    # --- the invariants ---------------------------------------------------------------

    @invariant()
    def holdings_never_claim_more_than_the_journal(self) -> None:
        for node in self.nodes:
            held = node.holdings.summary()
            assert held == node.journal.summary()

    def check_converged(self) -> None:
        events = _events_of(self.written)
        written_ids = IdSet.of_events(events)
        expected = _packed(kv_winners(events))
        conflicts = kv_conflicts(events)
        for node in self.nodes:
            assert node.event_set() <= self.written, f"{node.name} holds an event never written"
            held = node.journal.summary()
            assert held <= written_ids
            if not self.any_wiped:
                assert held == written_ids, f"{node.name} lacks {written_ids - held}"
            assert node.holdings.requested == IdSet()
            assert not node.pending
            stored = [e for _, e in node.journal.scan()]
            assert _packed(kv_winners(stored)) == expected, f"{node.name}: another KV view"
            assert kv_conflicts(stored) == conflicts, f"{node.name}: other heads"
        check_deps_never_decrease(events)
        assert kv_conflicts(events) == kv_conflicts(events, seen=lambda e: self.seen[e.id])

    def check_reconnect_sends_no_events(self) -> None:
        for edge in self.links:
            self.cut(edge)
            self.links[edge] = self.connect(edge)
        links = self.live_links()
        settle(self.nodes, links)
        for link in links:
            for end in link.ends.values():
                assert end.conn.stats.events_in == 0
                assert end.conn.stats.wants_in == 0

    def duplicates(self) -> int:
        """Events received by a node that held them or had them on their way already."""
        return self.retired_duplicates + sum(link.duplicates() for link in self.live_links())

    def teardown(self) -> None:
        if self.nodes:
            self.heal_and_check()


def plan_compaction(
    node: SimNode, rule: RetentionRule, frontier: IdSet
) -> tuple[list[Change], list[Event]]:
    """What the node's compaction does (`moat_log.projections.compactor`, over a MemoryJournal)."""
    journal = node.journal
    stored = [event for _, event in journal.scan()]
    summary = journal.summary()
    protected = {EventId(origin, summary.max(origin)) for origin in summary.origins}
    if stored:
        protected.add(stored[-1].id)
    heads: dict[tuple[Path, str], int] = {}
    for event in stored:
        key = (event.path, event.origin)
        heads[key] = max(heads.get(key, 0), event.seq)
    protected |= {EventId(origin, seq) for (_, origin), seq in heads.items()}
    rollups: list[Change] = []
    removals: list[Event] = []
    for path in sorted({e.path for e in stored if rule.matches_path(e.path)}, key=Path.sort_key):
        rolled = {}
        if rule.rollup is not None:
            rolled = rolled_intervals(journal.history(rollup_path(rule.rollup, path)))
        plan = PathCompaction(
            path,
            rule,
            node=node.name,
            cutoff=node.clock() + 10**12,  # everything is old enough
            frontier=frontier,
            protected=protected,
            rolled=rolled,
        )
        for event in journal.history(path):
            plan.feed(event)
        plan.finish()
        rollups += plan.rollups
        removals += plan.removals
    return rollups, removals


def run_until(links: list[SimLink], done: Callable[[], bool]) -> None:
    """Run *links* (deliver, serve, store, push) until *done*; a recovery stops there.

    Peers serve wants in request order, so a node recovering its own events
    gets those of origins named before its own too, and the others' only partly.
    """
    nodes = {end.node.name: end.node for link in links for end in link.ends.values()}
    for _ in range(10_000):
        if done():
            return
        for link in links:
            for end in link.ends.values():
                end.pump_feed()
            link.collect()
            for sender in sorted(link.ends):
                link.deliver(sender)
        for node in nodes.values():
            while node.pending:
                node.store_pending()
    raise AssertionError("the links stopped moving before they were done")


def check_deps_never_decrease(events: list[Event]) -> None:
    """Per origin in seq order, every event's deps cover its predecessor's."""
    by_origin: dict[str, list[Event]] = {}
    for event in sorted(events, key=lambda e: e.id):
        by_origin.setdefault(event.origin, []).append(event)
    for origin_events in by_origin.values():
        for before, after in pairwise(origin_events):
            assert before.deps.first_decrease(after.deps) is None, f"{before.id} -> {after.id}"


def _events_of(packed: set[bytes]) -> list[Event]:
    return [Event.unpack(data) for data in packed]


def _packed(winners: dict[Path, Event]) -> dict[bytes, bytes]:
    return {path.key: event.pack() for path, event in winners.items()}


class TwoNodes(SyncNetwork):
    """With one path between two nodes, not a single event arrives that was held already.

    Whatever is cut, lost, restarted or reordered: an event reaches the other
    node once, by batch or by push, unless its first copy was lost.
    """

    NODES = st.just(2)

    @invariant()
    def no_event_arrives_twice(self) -> None:
        assert self.duplicates() == 0


RUNS = settings(
    max_examples=120,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SyncNetwork.TestCase.settings = RUNS
TwoNodes.TestCase.settings = settings(RUNS, max_examples=60)
test_sync_converges = SyncNetwork.TestCase
test_two_nodes_exchange_no_duplicates = TwoNodes.TestCase
