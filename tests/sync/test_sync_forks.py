"""Forked histories: one origin name used for two histories is refused, not merged.

A node that lost its data and writes again under its old name before it has
caught up issues ids its peers hold for other events.  Ids held are never
asked for again, so without the tips in the summary each side would keep
its own event under that id for ever, silently.
"""

from __future__ import annotations

import pytest
from sync_support import SimLink, SimNode, settle

from moat_log.idset import IdSet
from moat_log.protocol import RemoteProtocolError
from moat_log.protocol.framing import NEED_DATA
from moat_log.sync import ConnectionClosed, Goodbye, GoodbyeReason, Holdings, LinkState

LATER = 3_600 * 10**9  # the node came back an hour later, with its data gone


def old_history(events: int) -> tuple[SimNode, SimNode]:
    """pi1 holds *events* events that pi3 wrote before its data was lost."""
    pi1, pi3 = SimNode("pi1"), SimNode("pi3")
    for n in range(events):
        pi3.write(("heating", "setpoint"), 20 + n)
    settle([pi1, pi3], [SimLink(pi1, pi3)])
    assert pi1.event_set() == pi3.event_set()
    return pi1, pi3


def wiped(node: SimNode) -> SimNode:
    """The same node name on a fresh journal, its clock moved on."""
    return SimNode(node.name, now=node.clock.now + LATER)


def run_link(a: SimNode, b: SimNode) -> dict[str, list[object]]:
    """Run a link to its end; per node, what its connection reported, errors included."""
    link = SimLink(a, b)
    heard: dict[str, list[object]] = {a.name: [], b.name: []}
    for _ in range(20):
        link.collect()
        for sender in link.ends:
            receiver = link.other(sender)
            data, link.flight[sender][:] = bytes(link.flight[sender]), b""
            if not data:
                continue
            if receiver.conn.state is LinkState.CLOSED:
                continue
            receiver.conn.receive_data(data)
            try:
                while (event := receiver.conn.next_event()) is not NEED_DATA:
                    heard[receiver.node.name].append(event)
                    if isinstance(event, ConnectionClosed):
                        break
            except RemoteProtocolError as exc:
                heard[receiver.node.name].append(exc)
    return heard


def journal_bytes(node: SimNode) -> list[bytes]:
    return [event.pack() for _, event in node.journal.scan()]


@pytest.mark.parametrize(("old", "new"), [(5, 2), (5, 5), (3, 7)])
def test_a_node_that_lost_its_data_and_wrote_again_is_refused_by_its_peer(
    old: int, new: int
) -> None:
    pi1, pi3 = old_history(old)
    pi3 = wiped(pi3)
    for n in range(new):
        pi3.write(("heating", "setpoint"), 10 + n)
    before = {node.name: journal_bytes(node) for node in (pi1, pi3)}

    heard = run_link(pi1, pi3)

    # whoever holds the other's last event of pi3 notices; both end with conflict
    detector, other = (pi1, pi3) if new <= old else (pi3, pi1)
    (error,) = [e for e in heard[detector.name] if isinstance(e, RemoteProtocolError)]
    assert error.error_type == GoodbyeReason.CONFLICT
    assert f"pi3:{new if new <= old else old} is two different events" in str(error)
    assert "lost its data" in str(error)
    assert f"{other.name} holds one of 2023-11-1" in str(error)  # the peer's, with its time
    assert f"{detector.name} one of 2023-11-1" in str(error)
    # the other hears the goodbye, or (holding the detector's tip too) noticed itself
    reasons = [
        e.reason if isinstance(e, Goodbye) else e.error_type
        for e in heard[other.name]
        if isinstance(e, Goodbye | RemoteProtocolError)
    ]
    assert reasons == [GoodbyeReason.CONFLICT]
    # nothing crossed, nothing changed
    for node in (pi1, pi3):
        assert journal_bytes(node) == before[node.name]
        assert not node.pending


def test_a_node_that_lost_its_data_and_has_not_written_catches_up_and_writes_on() -> None:
    pi1, pi3 = old_history(5)
    pi3 = wiped(pi3)
    settle([pi1, pi3], [SimLink(pi1, pi3)])
    assert pi3.event_set() == pi1.event_set()
    event = pi3.write(("heating", "setpoint"), 30)
    assert event.seq == 6  # its own history continues where it ended
    settle([pi1, pi3], [SimLink(pi1, pi3)])
    assert pi3.event_set() == pi1.event_set()


def test_a_fork_is_refused_again_on_every_reconnect() -> None:
    pi1, pi3 = old_history(4)
    pi3 = wiped(pi3)
    pi3.write(("lights", "hall"), True)
    for _ in range(3):
        heard = run_link(pi1, pi3)
        assert any(isinstance(e, RemoteProtocolError) for e in heard["pi1"])
    assert len(journal_bytes(pi1)) == 4


def test_tips_of_other_origins_do_not_stop_a_link() -> None:
    """A peer's tips that this node does not hold, or holds alike, are fine."""
    pi1, pi3 = old_history(3)
    pi2 = SimNode("pi2")
    pi2.write(("x",), 1)
    settle([pi1, pi2], [SimLink(pi1, pi2)])  # pi2 holds pi3's tip 3 alike, pi1 pi2's
    settle([pi2, pi3], [SimLink(pi2, pi3)])
    assert pi1.event_set() == pi2.event_set() == pi3.event_set()


def test_no_tips_are_checked_without_a_journal_to_look_them_up_in() -> None:
    """`Holdings` without a lookup (a fake peer in tests) names and checks no tips."""
    holdings = Holdings(IdSet.parse("pi3:1-5"))
    assert holdings.tips() == {}
    assert holdings.contradiction({"pi3": (5, 123)}, here="pi1", there="pi3") is None
