"""HostEnd and SatelliteEnd over a perfect line: start-up, reports, commands, keep-alive."""

from __future__ import annotations

from typing import Any

from moat_log.firmware import satproto
from moat_log.firmware.satproto import Done, Hello, HostEnd, Refused, Report, SatelliteEnd


class Pair:
    """A host and a satellite end joined by a perfect line; the test drives time."""

    def __init__(self, boot: int = 0x2A) -> None:
        self.host = HostEnd("node", 7)
        self.sat = SatelliteEnd("boiler", "fw1", boot, {"door": "input", "pump": "output"})
        self.stored: list[tuple[int, int]] = []  # (boot, seq)
        self.events: list[Any] = []
        self.carried_out: list[tuple[int, str, list[Any]]] = []

    def run(self, now: int) -> None:
        """Exchange until both ends are quiet at *now*."""
        for _ in range(20):
            to_sat = self.host.poll(now)
            to_host = self.sat.poll(now)
            for event in self.host.receive(to_host, now):
                self.events.append(event)
                if isinstance(event, Hello):
                    done = [seq for boot, seq in self.stored if boot == event.boot]
                    self.host.resend(max(done, default=0))
                elif isinstance(event, Report):
                    assert event.boot is not None
                    self.stored.append((event.boot, event.seq))
                    self.host.ack(event.seq, event.boot)
            for command in self.sat.receive(to_sat, now):
                self.carried_out.append(command)
                cseq, verb, args = command
                if verb == "bad":
                    self.sat.refuse(cseq, f"unknown verb {verb!r}")
                else:
                    self.sat.done(cseq, args[0] if verb == "r" else None)
            if not to_sat and not to_host:
                return
        raise AssertionError("the ends did not go quiet")


def test_start_up_reports_are_stored_once_in_order() -> None:
    pair = Pair()
    pair.sat.report("door", True, 0)
    pair.run(0)
    for index in range(20):
        pair.sat.report("door", index % 2 == 0, 5)
    pair.run(10)
    assert pair.stored == [(0x2A, seq) for seq in range(1, 22)]
    assert pair.sat.first == 22
    assert pair.sat.line_up
    assert pair.host.ready


def test_commands_are_answered_once_each() -> None:
    pair = Pair()
    pair.run(0)
    cseqs = [pair.host.command("w", "pump", True), pair.host.command("r", 5)]
    cseqs.append(pair.host.command("bad"))
    assert pair.host.unanswered == 3
    pair.run(10)
    answers = [e for e in pair.events if isinstance(e, Done | Refused)]
    assert answers == [Done(1, None), Done(2, 5), Refused(3, "unknown verb 'bad'")]
    assert cseqs == [1, 2, 3]
    assert pair.host.unanswered == 0
    assert [c[0] for c in pair.carried_out] == [1, 2, 3]


def test_at_most_window_commands_are_on_the_line() -> None:
    pair = Pair()
    pair.run(0)
    for index in range(20):
        pair.host.command("w", "pump", index)
    sent = satproto.FrameReader().feed(pair.host.poll(10), 10)
    assert len(sent) == 8


def test_idle_keeps_the_line_alive() -> None:
    pair = Pair()
    pair.run(0)
    for now in range(500, 10_000, 500):
        pair.run(now)
    assert not pair.host.line_dead(10_000)
    assert pair.sat.line_up
    assert pair.host.next_deadline(10_000) <= 1000


def test_silence_kills_the_line_on_both_ends() -> None:
    pair = Pair()
    pair.run(0)
    assert pair.host.line_dead(3000)
    pair.sat.poll(3000)
    assert not pair.sat.line_up


def test_a_satellite_restart_refuses_commands_in_doubt_and_renumbers() -> None:
    pair = Pair()
    pair.run(0)
    pair.sat.report("door", True, 0)
    first = pair.host.command("w", "pump", True)
    pair.host.poll(1)  # the command goes out, and the satellite dies before it
    pair.sat = SatelliteEnd("boiler", "fw1", 0x2B, {"door": "input"})
    pair.sat.report("door", False, 2)
    pair.run(2)
    second = pair.host.command("w", "pump", False)
    pair.run(3)
    assert Refused(first, "satellite restarted (boot 0000002b) before answering") in pair.events
    assert Done(second, None) in pair.events
    assert pair.carried_out == [(1, "w", ["pump", False])]
    assert pair.stored == [(0x2B, 1)]
    assert pair.host.session == 8


def test_a_host_restart_resends_from_what_it_stored() -> None:
    pair = Pair()
    pair.run(0)
    for _ in range(5):
        pair.sat.report("door", True, 0)
    pair.host.poll(1)
    pair.sat.receive(b"", 1)
    pair.host.receive(pair.sat.poll(1), 1)  # reports sent, never acknowledged
    pair.host = HostEnd("node", 99)
    pair.run(2)
    assert pair.stored == [(0x2A, seq) for seq in range(1, 6)]
