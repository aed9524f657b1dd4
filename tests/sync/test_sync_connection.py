"""The connection's state machine, its strictness, flow control and shared holdings."""

from __future__ import annotations

from typing import Any

import pytest
from sync_support import (
    NONCE_A,
    NONCE_B,
    SECRET,
    SimLink,
    SimNode,
    events_of,
    fixed_random,
    handshake,
    settle,
)

from moat_log.event import Event
from moat_log.idset import IdSet
from moat_log.protocol import LocalProtocolError, RemoteProtocolError
from moat_log.protocol.framing import FrameDecoder, encode_frame
from moat_log.sync import (
    MAX_WANTS_IN_FLIGHT,
    ConnectionClosed,
    EventsReceived,
    EventsWanted,
    Goodbye,
    Holdings,
    LinkState,
    PeerHas,
    PeerSummary,
    SyncConnection,
    read_batch,
)
from moat_log.sync.batches import BatchCodec
from moat_log.sync.messages import Have, Message, Push, Want, encode, parse_message


def sent(conn: SyncConnection) -> list[Message]:
    """The messages *conn* has to send, decoded."""
    decoder = FrameDecoder()
    decoder.receive_data(conn.data_to_send())
    found = []
    while decoder.buffered:
        found.append(parse_message(decoder.next_frame()))
    return found


def refused(conn: SyncConnection, data: bytes, complaint: str, reason: str = "protocol") -> None:
    """Feeding *data* makes *conn* fail with *complaint* and say goodbye for *reason*."""
    conn.receive_data(data)
    with pytest.raises(RemoteProtocolError) as caught:
        events_of(conn)
    assert complaint in str(caught.value)
    goodbye = sent(conn)[-1]
    assert isinstance(goodbye, Goodbye)
    assert goodbye.reason == reason
    assert goodbye.message == str(caught.value)
    assert conn.state is LinkState.CLOSED


def nodes_with(**events: int) -> dict[str, SimNode]:
    """Nodes a and b; each writes the given number of events."""
    found = {}
    for name in ("a", "b"):
        node = found[name] = SimNode(name)
        for i in range(events.get(name, 0)):
            node.write((name, i), i)
    return found


def live_link(a: SimNode, b: SimNode, **options: Any) -> SimLink:
    link = SimLink(a, b, **options)
    handshake(link.end("a").conn, link.end("b").conn)
    return link


# --- the handshake, step by step -----------------------------------------------------


def recorded_peer() -> tuple[bytes, bytes, bytes]:
    """b's hello, proof and summary towards a connection "a" with nonce NONCE_A."""
    a = SyncConnection("a", SECRET, Holdings(), random=fixed_random(NONCE_A))
    b = SyncConnection("b", SECRET, Holdings(IdSet.parse("c:1-3")), random=fixed_random(NONCE_B))
    hello = b.data_to_send()
    b.receive_data(a.data_to_send())
    events_of(b)
    proof = b.data_to_send()
    a.receive_data(hello + proof)
    events_of(a)
    b.receive_data(a.data_to_send())
    events_of(b)
    return hello, proof, b.data_to_send()


HELLO, PROOF, SUMMARY = recorded_peer()
WANT = encode(Want(1, IdSet.parse("c:1")))
GOODBYE_WIRE = encode(Goodbye("shutdown", "bye"))


def fresh() -> SyncConnection:
    return SyncConnection("a", SECRET, Holdings(), random=fixed_random(NONCE_A))


def test_the_handshake_moves_through_the_states_in_order() -> None:
    a = fresh()
    states, sends, got = [a.state], [sent(a)], []
    for data in (HELLO, PROOF, SUMMARY):
        a.receive_data(data)
        got.append([type(event).__name__ for event in events_of(a)])
        states.append(a.state)
        sends.append(sent(a))
    assert states == [LinkState.HELLO, LinkState.AUTH, LinkState.SUMMARY, LinkState.LIVE]
    assert got == [[], ["Authenticated"], ["PeerSummary"]]
    assert [[type(m).__name__ for m in messages] for messages in sends] == [
        ["Hello"],
        ["Proof"],
        ["Summary"],
        ["Want"],
    ]
    assert sends[-1] == [Want(1, IdSet.parse("c:1-3"))]


OUT_OF_ORDER = [
    ((), PROOF, "auth message while waiting for the peer's hello"),
    ((), SUMMARY, "summary message while waiting for the peer's hello"),
    ((HELLO,), HELLO, "hello message while waiting for the peer's proof"),
    ((HELLO,), SUMMARY, "summary message while waiting for the peer's proof"),
    ((HELLO,), WANT, "want message while waiting for the peer's proof"),
    ((HELLO, PROOF), WANT, "want message while waiting for the peer's summary"),
    ((HELLO, PROOF), PROOF, "auth message while waiting for the peer's summary"),
    ((HELLO, PROOF, SUMMARY), HELLO, "hello message while live"),
    ((HELLO, PROOF, SUMMARY), SUMMARY, "summary message while live"),
    ((HELLO, PROOF, SUMMARY), PROOF, "auth message while live"),
]


@pytest.mark.parametrize(("before", "message", "complaint"), OUT_OF_ORDER)
def test_a_message_out_of_turn_ends_the_link(
    before: tuple[bytes, ...], message: bytes, complaint: str
) -> None:
    a = fresh()
    for data in before:
        a.receive_data(data)
    events_of(a)
    sent(a)
    refused(a, message, complaint)


@pytest.mark.parametrize("before", [(), (HELLO,), (HELLO, PROOF), (HELLO, PROOF, SUMMARY)])
def test_a_goodbye_is_heard_in_every_state(before: tuple[bytes, ...]) -> None:
    a = fresh()
    a.receive_data(b"".join(before) + GOODBYE_WIRE + b"anything after it")  # never b""
    assert events_of(a)[-2:] == [Goodbye("shutdown", "bye"), ConnectionClosed()]
    assert a.state is LinkState.CLOSED
    a.receive_data(b"more")  # ignored: the link is over
    assert a.next_event() == ConnectionClosed()


def test_another_protocol_version_is_refused_with_a_version_goodbye() -> None:
    hello = encode_frame({"type": "hello", "version": 2, "node": "b", "nonce": NONCE_B})
    refused(fresh(), hello, "version 2, this node version 1", reason="version")


GARBAGE = [
    (b"\x00\x00\x00\x03\xc1\xc1\xc1", "not one valid msgpack value"),
    (b"\x00\x00\x00\x00", "empty frame"),
    (b"\x01\x00\x00\x00", "more than the limit of 4194304"),
    (b"\x00\x00\x00\x01\x07", "must be a map"),
    (encode_frame({"type": "ping"}), "unknown message type 'ping'"),
    (encode_frame({"moat-log": 1, "node": "pi1"}), "client port"),
    (b"\x00\x00\x00\x02\x81\xc0\x00", "not one valid msgpack value"),
]


@pytest.mark.parametrize(("data", "complaint"), GARBAGE, ids=[c for _, c in GARBAGE])
def test_garbage_ends_the_link_with_a_goodbye(data: bytes, complaint: str) -> None:
    refused(fresh(), data, complaint)


def test_a_frame_cut_off_by_the_end_of_the_stream_is_an_error() -> None:
    a = fresh()
    a.receive_data(HELLO[:-5])
    assert events_of(a) == []
    refused(a, b"", "closed in the middle of a frame")


def test_the_end_of_the_stream_between_frames_closes_the_link() -> None:
    a = fresh()
    a.receive_data(HELLO)
    a.receive_data(b"")
    assert events_of(a) == [ConnectionClosed()]
    assert a.state is LinkState.CLOSED


def test_errors_are_sticky_and_later_calls_do_nothing() -> None:
    a = fresh()
    refused(a, b"\x00\x00\x00\x00", "empty frame")
    with pytest.raises(RemoteProtocolError, match="failed earlier"):
        a.next_event()
    assert a.push([]) == 0
    a.send_batch(1, [])
    a.batch_stored(1)
    a.send_goodbye("shutdown", "again")
    assert a.data_to_send() == b""


# --- the peer's wants -----------------------------------------------------------------


def test_a_want_is_handed_out_and_answered_with_a_batch() -> None:
    nodes = nodes_with(a=5)
    link = live_link(nodes["a"], nodes["b"])
    b = link.end("b").conn
    assert sent(b) == [Want(1, IdSet.parse("a:1-5"))]
    a = link.end("a").conn
    a.receive_data(encode(Want(1, IdSet.parse("a:2-3"))))
    (wanted,) = events_of(a)
    assert wanted == EventsWanted(1, IdSet.parse("a:2-3"))
    events = read_batch(wanted.seqs, nodes["a"].journal.by_origin)
    with pytest.raises(ValueError, match="first events in request order"):
        a.send_batch(1, events[1:])
    with pytest.raises(ValueError, match="first events in request order"):
        a.send_batch(1, [])
    with pytest.raises(LocalProtocolError, match="no open want 2"):
        a.send_batch(2, events)
    a.send_batch(1, events[:1])
    (batch,) = sent(a)
    assert BatchCodec().unpack(batch) == events[:1]  # type: ignore[arg-type]
    assert a.stats.events_out == 1 and a.stats.wants_in == 1


def live_a(events: int = 10) -> tuple[SyncConnection, SimNode]:
    """a live connection of node a (holding *events* of its own) whose peer holds nothing."""
    nodes = nodes_with(a=events)
    link = live_link(nodes["a"], nodes["b"])
    link.end("b").conn.data_to_send()
    return link.end("a").conn, nodes["a"]


def want(request_id: int, origin: str, first: int, last: int) -> bytes:
    return encode(Want(request_id, IdSet.of_range(origin, first, last)))


def test_a_want_for_events_this_node_did_not_offer_is_refused() -> None:
    a, _ = live_a(10)
    refused(a, want(1, "a", 5, 11), "did not offer: a:11")


def test_a_want_for_another_origin_is_refused() -> None:
    a, _ = live_a(10)
    refused(a, want(1, "z", 1, 1), "did not offer: z:1")


def test_asking_twice_for_the_same_events_is_refused() -> None:
    a, _ = live_a(10)
    a.receive_data(want(1, "a", 1, 5))
    events_of(a)
    refused(a, want(2, "a", 5, 6), "asked for or received already: a:5")


def test_asking_again_for_events_already_sent_is_refused() -> None:
    a, node = live_a(10)
    a.receive_data(want(1, "a", 1, 5))
    (wanted,) = events_of(a)
    assert isinstance(wanted, EventsWanted)
    a.send_batch(1, read_batch(wanted.seqs, node.journal.by_origin)[:2])
    a.receive_data(want(2, "a", 3, 5))  # the rest of a short batch: fine
    assert len(events_of(a)) == 1
    refused(a, want(3, "a", 2, 2), "asked for or received already: a:2")


def test_a_want_id_in_use_is_refused() -> None:
    a, _ = live_a(10)
    a.receive_data(want(1, "a", 1, 1))
    events_of(a)
    refused(a, want(1, "a", 2, 2), "reused want id 1")


def test_more_open_wants_than_the_limit_are_refused() -> None:
    a, _ = live_a(20)
    for i in range(1, MAX_WANTS_IN_FLIGHT + 1):
        a.receive_data(want(i, "a", i, i))
    assert len(events_of(a)) == MAX_WANTS_IN_FLIGHT
    refused(a, want(99, "a", 20, 20), f"more than {MAX_WANTS_IN_FLIGHT} wants open")


# --- our wants and the batches answering them ------------------------------------------------


def waiting_b(events: int = 10, **options: Any) -> tuple[SyncConnection, list[Event]]:
    """b, live, having asked a for a's *events*; and those events."""
    nodes = nodes_with(a=events)
    link = live_link(nodes["a"], nodes["b"], **options)
    b = link.end("b").conn
    b.data_to_send()  # its wants, which the tests answer by hand
    return b, [event for _, event in nodes["a"].journal.scan()]


def batch(request_id: int, events: list[Event]) -> bytes:
    return encode(BatchCodec().pack(request_id, events))


def test_a_batch_for_no_open_want_is_refused() -> None:
    b, events = waiting_b()
    refused(b, batch(2, events[:1]), "want 2: it is not open")


def test_a_second_batch_for_a_want_is_refused() -> None:
    b, events = waiting_b()
    b.receive_data(batch(1, events[:2]))
    events_of(b)
    refused(b, batch(1, events[2:3]), "want 1: it is not open")


def test_a_batch_with_events_not_asked_for_is_refused() -> None:
    b, events = waiting_b(10, want_size=5)
    refused(b, batch(1, events[:6]), "announces 6 events; the want asked for 5")
    b, events = waiting_b(10, want_size=5)
    refused(b, batch(1, events[1:3]), "not asked for, or not in request order")
    b, events = waiting_b(10, want_size=5)
    refused(b, batch(1, [events[1], events[0]]), "not asked for, or not in request order")


def test_a_short_batch_is_fine_and_the_rest_is_asked_for_again() -> None:
    b, events = waiting_b(10, window=1)
    b.receive_data(batch(1, events[:3]))
    (received,) = events_of(b)
    assert received == EventsReceived(tuple(events[:3]), 1)
    assert sent(b) == []  # the window is full until the batch is stored
    b.batch_stored(1)
    assert sent(b) == [Want(2, IdSet.parse("a:4-10"))]
    with pytest.raises(LocalProtocolError, match="no batch waiting"):
        b.batch_stored(1)
    with pytest.raises(LocalProtocolError, match="no batch waiting"):
        b.batch_stored(2)


def test_the_rest_of_a_short_batch_is_not_asked_for_if_it_came_another_way() -> None:
    nodes = nodes_with(a=10)
    link = live_link(nodes["a"], nodes["b"], window=1)
    b = link.end("b").conn
    assert sent(b) == [Want(1, IdSet.parse("a:1-10"))]
    events = [event for _, event in nodes["a"].journal.scan()]
    b.receive_data(batch(1, events[:3]))
    events_of(b)
    nodes["b"].store(events[:6])  # 4-6 arrived over another link meanwhile
    b.batch_stored(1)
    assert sent(b) == [Want(2, IdSet.parse("a:7-10"))]


def test_flow_control_keeps_a_big_catch_up_in_bounded_memory() -> None:
    """The receiver never has more than window x want_size events unstored."""
    nodes = nodes_with(a=1000)
    link = SimLink(nodes["a"], nodes["b"], window=3, want_size=50)
    most_pending = 0
    for _ in range(1000):
        link.collect()
        moved = link.deliver("a") | link.deliver("b")
        unstored = sum(len(received.events) for _, received in nodes["b"].pending)
        most_pending = max(most_pending, unstored)
        if nodes["b"].pending:
            nodes["b"].store_pending()  # one batch per round: the sender is faster
        elif not moved:
            break
    assert nodes["b"].event_set() == nodes["a"].event_set()
    assert most_pending == 3 * 50
    b = link.end("b").conn
    assert b.stats.wants_out == 1000 // 50 and b.caught_up


# --- pushes ------------------------------------------------------------------------------------


def test_push_sends_only_what_the_peer_is_not_known_to_hold() -> None:
    nodes = nodes_with(a=3, b=2)
    link = live_link(nodes["a"], nodes["b"])
    settle(nodes.values(), [link])
    a, b = link.end("a").conn, link.end("b").conn
    everything = [event for _, event in nodes["a"].journal.scan()]
    assert a.push(everything) == 0  # a's summary (a:1-3) and what b sent (b:1-2)
    new = nodes["a"].write(("x",), 1)
    assert a.push([*everything, new]) == 1
    assert a.push([new]) == 0  # sent once on this link
    b.receive_data(a.data_to_send())
    (received,) = events_of(b)
    assert received == EventsReceived((new,), None)
    nodes["b"].store([new])
    assert b.push([new]) == 0  # never echoed back
    assert a.peer_held == b.peer_held == IdSet.parse("a:1-4 b:1-2")


def test_push_sends_the_journal_bytes_it_is_given_without_packing_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nodes = nodes_with(a=1, b=0)
    link = live_link(nodes["a"], nodes["b"])
    settle(nodes.values(), [link])
    a, b = link.end("a").conn, link.end("b").conn
    new = nodes["a"].write(("x",), 1)
    stored = new.pack()  # what the journal holds: one object, sent as it is

    def no_packing(event: Event) -> bytes:
        raise AssertionError("packed again")

    with monkeypatch.context() as patched:
        patched.setattr(Event, "pack", no_packing)
        assert a.push([new], [stored]) == 1
        sent = a.data_to_send()
    assert stored in sent  # spliced in as the journal holds it
    b.receive_data(sent)
    assert events_of(b) == [EventsReceived((new,), None)]
    with pytest.raises(ValueError, match="1 events but 0 packed"):
        a.push([new], [])


def test_push_before_the_link_is_live_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError, match="needs a live link"):
        fresh().push([])


def test_pushing_an_event_a_summary_named_is_refused() -> None:
    nodes = nodes_with(a=3, b=2)
    link = live_link(nodes["a"], nodes["b"])
    b_event = next(nodes["b"].journal.by_origin("b", 1, 1))
    a_event = next(nodes["a"].journal.by_origin("a", 1, 1))
    for pushed in (a_event, b_event):
        link = live_link(nodes["a"], nodes["b"])
        refused(link.end("b").conn, encode(Push((pushed,))), "which a summary already named")


def test_pushing_an_event_twice_is_refused() -> None:
    nodes = nodes_with()
    link = live_link(nodes["a"], nodes["b"])
    new = nodes["a"].write(("x",), 1)
    b = link.end("b").conn
    b.receive_data(encode(Push((new,))))
    events_of(b)
    refused(b, encode(Push((new,))), "pushed a:1 a second time")
    link = live_link(nodes["a"], nodes["b"])
    newer = nodes["a"].write(("y",), 2)
    refused(link.end("b").conn, encode(Push((newer, newer))), "a second time")


def test_a_pushed_event_that_fails_validation_is_refused() -> None:
    nodes = nodes_with()
    link = live_link(nodes["a"], nodes["b"])
    wire = {"type": "push", "events": [[1, "a", 1, 5, {"a": 1}, ["x"], 0, 1, "", None]]}
    refused(link.end("b").conn, encode_frame(wire), "deps must not contain the event's own origin")


# --- shared holdings ---------------------------------------------------------------------------


def test_two_links_never_ask_for_the_same_events() -> None:
    a, b, c = SimNode("a"), SimNode("b"), SimNode("c")
    for i in range(30):
        b.write(("x", i), i)
    c.store(e for _, e in b.journal.scan())
    ab, ac = SimLink(a, b, want_size=7), SimLink(a, c, want_size=7)
    settle([a, b, c], [ab, ac])
    assert a.event_set() == b.event_set()
    asked = [link.end("a").conn.stats for link in (ab, ac)]
    assert sum(stats.events_in for stats in asked) == 30
    assert ab.duplicates() == ac.duplicates() == 0


def test_a_link_that_ends_gives_its_wants_to_the_other_links() -> None:
    a, b, c = SimNode("a"), SimNode("b"), SimNode("c")
    for i in range(30):
        b.write(("x", i), i)
    c.store(e for _, e in b.journal.scan())
    ab = SimLink(a, b, want_size=10, window=1)
    handshake(ab.end("a").conn, ab.end("b").conn)
    ab.collect()
    assert a.holdings.requested == IdSet.parse("b:1-10")
    ac = SimLink(a, c, want_size=10, window=3)
    settle([a, b, c], [ac])  # c serves everything but what ab asked for
    assert a.holdings.summary() == IdSet.parse("b:11-30")
    ab.cut()
    assert a.holdings.requested == IdSet()
    settle([a, b, c], [ac])
    assert a.event_set() == b.event_set()


def test_a_batch_received_but_not_stored_is_given_back_when_the_link_ends() -> None:
    nodes = nodes_with(a=10)
    link = SimLink(nodes["a"], nodes["b"])
    for _ in range(5):
        link.collect()
        link.deliver("a")
        link.deliver("b")
    assert nodes["b"].pending and nodes["b"].holdings.requested
    link.cut()
    assert nodes["b"].holdings.requested == IdSet()
    nodes["b"].store_pending()  # the shell finishes storing: batch_stored does nothing now
    assert nodes["b"].holdings.summary() == IdSet.parse("a:1-10")


def test_sending_a_goodbye_ends_the_link_and_gives_back_its_wants() -> None:
    b, _ = waiting_b(10)
    b.send_goodbye("shutdown", "stopping")
    assert sent(b)[-1] == Goodbye("shutdown", "stopping")
    assert b.state is LinkState.CLOSED
    assert b.next_event() == ConnectionClosed()


# --- one-way links and the have ------------------------------------------------------------


def exchange(x: SyncConnection, y: SyncConnection) -> tuple[list[Any], list[Any]]:
    """Pass bytes both ways until none flow; the events each side saw."""
    seen_x: list[Any] = []
    seen_y: list[Any] = []
    while True:
        to_y, to_x = x.data_to_send(), y.data_to_send()
        if not to_y and not to_x:
            return seen_x, seen_y
        if to_y:
            y.receive_data(to_y)
        if to_x:
            x.receive_data(to_x)
        seen_y += events_of(y)
        seen_x += events_of(x)


def test_a_node_says_have_once_when_it_stored_all_a_shipper_offered() -> None:
    a, b = SimNode("a"), SimNode("b")
    for i in range(5):
        a.write(("k", i), i)
    b.write(("mine",), 1)
    shipper = SyncConnection(
        "a", SECRET, a.holdings, random=fixed_random(NONCE_A), fetch=False, ask_have=True
    )
    node = SyncConnection("b", SECRET, b.holdings, random=fixed_random(NONCE_B))
    seen_shipper, seen_node = exchange(shipper, node)
    assert PeerSummary(IdSet.parse("b:1")) in seen_shipper
    assert not any(isinstance(event, EventsWanted) for event in seen_node), "fetch=False"
    [wanted] = [event for event in seen_shipper if isinstance(event, EventsWanted)]
    shipper.send_batch(wanted.request_id, read_batch(wanted.seqs, a.journal.by_origin))
    seen_shipper, seen_node = exchange(shipper, node)
    [received] = seen_node
    assert isinstance(received, EventsReceived) and len(received.events) == 5
    assert seen_shipper == [], "no have before the batch is stored"
    b.store(received.events)
    node.batch_stored(wanted.request_id)
    seen_shipper, _ = exchange(shipper, node)
    assert seen_shipper == [PeerHas(IdSet.parse("a:1-5 b:1"))]
    assert shipper.peer_held == IdSet.parse("a:1-5 b:1")
    b.write(("more",), 2)
    assert exchange(shipper, node) == ([], []), "a have is sent once"


def test_a_node_that_lacks_nothing_says_have_at_once_and_only_when_asked() -> None:
    a, b = SimNode("a"), SimNode("b")
    a.write(("k",), 1)
    b.store(a.log_after(0))
    asked = SyncConnection("a", SECRET, a.holdings, random=fixed_random(NONCE_A), ask_have=True)
    seen, _ = exchange(asked, SyncConnection("b", SECRET, b.holdings, random=fixed_random(NONCE_B)))
    assert seen[-1] == PeerHas(IdSet.parse("a:1"))
    plain = SyncConnection("a", SECRET, a.holdings, random=fixed_random(NONCE_A))
    seen, _ = exchange(plain, SyncConnection("b", SECRET, b.holdings, random=fixed_random(NONCE_B)))
    assert not any(isinstance(event, PeerHas) for event in seen)


def test_a_puller_offers_nothing() -> None:
    a, b = SimNode("a"), SimNode("b")
    a.write(("k",), 1)
    b.write(("k",), 2)
    puller = SyncConnection("a", SECRET, a.holdings, random=fixed_random(NONCE_A), offer=False)
    seen_puller, seen_node = exchange(
        puller, SyncConnection("b", SECRET, b.holdings, random=fixed_random(NONCE_B))
    )
    assert PeerSummary(IdSet()) in seen_node
    assert [type(event) for event in seen_puller].count(EventsWanted) == 0
    assert puller.stats.wants_out == 1  # it asked for b:1


def test_a_have_before_the_link_is_live_is_refused() -> None:
    conn = SyncConnection("a", SECRET, Holdings(), random=fixed_random(NONCE_A))
    refused(
        conn,
        encode(Have(IdSet())),
        "the peer sent a have message while waiting for the peer's hello",
    )
