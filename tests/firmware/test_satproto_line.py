"""FrameReader on a stream with garbage, and the two ends on a line that drops, corrupts,
duplicates, cuts and restores bytes, with satellite resets and host restarts.

The line simulation keeps what a real installation keeps: the host's store (reports by
boot and seq, which survives a host restart as the journal does) and, per satellite, what
it carried out.  Time is driven explicitly.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from moat_log.firmware import satproto
from moat_log.firmware.satproto import (
    Done,
    FrameReader,
    Hello,
    HostEnd,
    Refused,
    Report,
    SatelliteEnd,
)

payloads = st.binary(min_size=1, max_size=300)
console_text = st.text(max_size=40).map(lambda text: text.encode())  # UTF-8 never holds 0xFA
false_frames = st.tuples(st.integers(0, 255), st.binary(max_size=12)).map(
    lambda parts: bytes((satproto.FRAME_START, parts[0])) + parts[1]
)
garbage = st.lists(
    st.one_of(console_text, st.binary(max_size=20), false_frames, st.just(b"\xfa")), max_size=4
).map(b"".join)


@settings(max_examples=300)
@given(st.lists(st.tuples(garbage, payloads), max_size=8), garbage, st.data())
def test_frame_reader_finds_every_frame_and_passes_every_other_byte(
    pieces: list[tuple[bytes, bytes]], tail: bytes, data: st.DataObject
) -> None:
    stream = b"".join(junk + satproto.frame(payload) for junk, payload in pieces) + tail
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    reader = FrameReader()
    items: list[tuple[bool, bytes]] = []
    now = 0
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        if end > start:  # bytes keep coming: no partial frame expires
            now += data.draw(st.integers(0, 99))
        items += reader.feed(stream[start:end], now)
    items += reader.expire(now + 100)
    assert [chunk for is_frame, chunk in items if is_frame] == [p for _, p in pieces]
    rebuilt = b"".join(satproto.frame(chunk) if is_frame else chunk for is_frame, chunk in items)
    assert rebuilt == stream
    assert not reader.pending


def test_a_false_start_that_swallows_a_frame_gives_it_back_after_idle() -> None:
    reader = FrameReader()
    real = satproto.frame(b"hi")
    assert reader.feed(b"\xfa\x50" + real, 0) == [(False, b"")][:0]
    assert reader.pending
    assert reader.expires_in(40) == 60
    assert reader.expire(99) == []
    assert reader.expire(100) == [(False, b"\xfa\x50"), (True, b"hi")]
    assert reader.noise == 1


def test_a_length_above_the_mtu_is_noise_at_once() -> None:
    reader = FrameReader(mtu=64)
    assert reader.feed(b"\xfa\x41" + satproto.frame(b"ok"), 0) == [
        (False, b"\xfa\x41"),
        (True, b"ok"),
    ]
    assert reader.feed(b"\xfa\x00", 1) == [(False, b"\xfa\x00")]
    assert reader.noise == 2


class Line:
    """One direction of the serial line: drops, corrupts, duplicates, cuts or adds bytes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.fault_rate = 0.0
        self.cut = False

    def carry(self, data: bytes) -> list[bytes]:
        """What arrives of *data*, as the pieces the receiver reads."""
        if self.cut:
            return []
        rng = self.rng
        if data and rng.random() < self.fault_rate:
            fault = rng.choice(["drop", "corrupt", "duplicate", "truncate", "garbage"])
            if fault == "drop":
                data = b""
            elif fault == "corrupt":
                at = rng.randrange(len(data))
                data = data[:at] + bytes((data[at] ^ (1 << rng.randrange(8)),)) + data[at + 1 :]
            elif fault == "duplicate":
                data += data
            elif fault == "truncate":
                data = data[: rng.randrange(len(data))]
            else:
                noise = bytes(rng.choice((0xFA, rng.randrange(256))) for _ in range(5))
                data = data[:3] + noise + b"Traceback\r\n" + data[3:]
        if len(data) > 1 and rng.random() < 0.3:
            at = rng.randrange(1, len(data))
            return [data[:at], data[at:]]
        return [data]


class Installation:
    """A host (restartable, with a durable store) and a satellite (resettable) on a line."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.to_sat = Line(self.rng)
        self.to_host = Line(self.rng)
        self.now = 0
        self.boot = 1
        self.stored: list[tuple[int, int, Any]] = []  # (boot, seq, value): the journal
        self.pending_acks: list[tuple[int, int]] = []  # stored, not yet acknowledged
        self.made: dict[int, list[int]] = {}  # boot -> seqs it made
        self.dropped: set[tuple[int, int]] = set()  # (boot, seq) the full ring dropped
        self.carried_out: list[Any] = []  # tokens, over all boots
        self.tokens = 0
        self.issued: dict[int, Any] = {}  # cseq of the current host -> token
        self.answers: dict[int, list[Any]] = {}  # cseq of the current host -> its answers
        self.refused_by_app: set[Any] = set()
        self.new_host()
        self.new_satellite()

    def new_host(self) -> None:
        self.host = HostEnd("node", self.rng.randrange(1 << 32), keepalive_ms=1000)
        self.issued = {}
        self.answers = {}
        self.pending_acks = []  # killed between storing and acknowledging

    def new_satellite(self) -> None:
        self.boot += 1
        self.made[self.boot] = []
        parts = {"door": "input", "pump": "output"}
        self.sat = SatelliteEnd("boiler", "fw1", self.boot, parts, ring=16, keepalive_ms=1000)

    def report(self, count: int) -> None:
        for _ in range(count):
            first, lost = self.sat.first, self.sat.lost
            seq = self.sat.report("door", self.rng.random() < 0.5, self.now)
            self.made[self.boot].append(seq)
            if self.sat.lost > lost:
                self.dropped.add((self.boot, first))

    def command(self, count: int) -> None:
        for _ in range(count):
            self.tokens += 1
            verb = "bad" if self.rng.random() < 0.1 else "w"
            cseq = self.host.command(verb, "pump", self.tokens)
            self.issued[cseq] = self.tokens

    def step(self, elapsed: int) -> None:
        self.now += elapsed
        now = self.now
        for boot, seq in self.pending_acks:
            self.host.ack(seq, boot)
        self.pending_acks = []
        to_sat = self.host.poll(now)
        to_host = self.sat.poll(now)
        for piece in [b"", *self.to_sat.carry(to_sat)]:
            for cseq, verb, args in self.sat.receive(piece, now):
                if verb == "w":
                    self.carried_out.append(args[1])
                    self.sat.done(cseq)
                else:
                    self.refused_by_app.add(args[1])
                    self.sat.refuse(cseq, f"unknown verb {verb!r}")
        for piece in [b"", *self.to_host.carry(to_host)]:
            for event in self.host.receive(piece, now):
                self.on_event(event)

    def on_event(self, event: Any) -> None:
        if isinstance(event, Hello):
            done = [seq for boot, seq, _ in self.stored if boot == event.boot]
            self.host.resend(max(done, default=0))
        elif isinstance(event, Report):
            assert event.boot is not None
            self.stored.append((event.boot, event.seq, event.value))
            self.pending_acks.append((event.boot, event.seq))
        elif isinstance(event, Done | Refused):
            self.answers.setdefault(event.cseq, []).append(event)

    def settle(self) -> None:
        """Heal the line and let the ends catch up."""
        self.to_sat.fault_rate = self.to_host.fault_rate = 0.0
        self.to_sat.cut = self.to_host.cut = False
        for _ in range(400):
            self.step(50)


actions = st.lists(
    st.one_of(
        st.tuples(st.just("report"), st.integers(1, 12)),
        st.tuples(st.just("command"), st.integers(1, 10)),
        st.tuples(st.just("steps"), st.integers(1, 30)),
        st.tuples(st.just("faults"), st.sampled_from([0.0, 0.05, 0.2, 0.5])),
        st.tuples(st.just("cut"), st.booleans()),
        st.tuples(st.just("sat_reset"), st.just(0)),
        st.tuples(st.just("host_restart"), st.just(0)),
    ),
    max_size=30,
)


def check(inst: Installation) -> None:
    keys = [(boot, seq) for boot, seq, _ in inst.stored]
    assert len(keys) == len(set(keys)), "a report was stored twice"
    for boot, made in inst.made.items():
        seqs = [seq for b, seq in keys if b == boot]
        assert seqs == sorted(seqs), f"boot {boot}: stored out of order"
        assert set(seqs) <= set(made)
    final = inst.boot
    held = [seq for seq in inst.made[final] if (final, seq) not in inst.dropped]
    assert [seq for b, seq in keys if b == final and seq in held] == held
    assert len(inst.carried_out) == len(set(inst.carried_out)), "a command was carried out twice"
    for cseq, token in inst.issued.items():
        answers = inst.answers.get(cseq, [])
        assert len(answers) == 1, f"command {cseq} answered {answers}"
        (answer,) = answers
        if isinstance(answer, Done):
            assert token in inst.carried_out
        elif "restarted" not in answer.reason:
            assert token in inst.refused_by_app
    assert inst.host.unanswered == 0


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32), actions)
def test_every_report_is_stored_once_in_order_and_every_command_answered_once(
    seed: int, script: list[tuple[str, Any]]
) -> None:
    inst = Installation(seed)
    for action, arg in script:
        if action == "report":
            inst.report(arg)
        elif action == "command":
            inst.command(arg)
        elif action == "steps":
            for _ in range(arg):
                inst.step(inst.rng.randrange(1, 300))
        elif action == "faults":
            inst.to_sat.fault_rate = inst.to_host.fault_rate = arg
        elif action == "cut":
            inst.to_sat.cut = inst.to_host.cut = arg
        elif action == "sat_reset":
            inst.new_satellite()
        else:
            inst.new_host()
    inst.settle()
    check(inst)
