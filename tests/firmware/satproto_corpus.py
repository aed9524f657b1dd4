"""Print satproto's bytes for a fixed corpus and a faulty-line exchange, one fact per line.

Runs unchanged in CPython and in MicroPython (next to satproto.py in a flash directory);
test_satproto_micropython.py compares the two outputs line by line.  Deterministic: an
LCG stands in for random, and no dict with more than one key is printed (MicroPython's
dicts do not keep their order).
"""

import binascii

import satproto  # type: ignore[import-not-found]  # beside it in the flash directory


def hexed(data: bytes) -> str:
    return binascii.hexlify(bytes(data)).decode()


class Lcg:
    def __init__(self, seed: int) -> None:
        self.state = seed

    def below(self, limit: int) -> int:
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return self.state % limit


CORPUS: list[object] = [
    None, True, False, 0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63),
    1.5, -0.25, 1e300, "", "door", "é" * 20, "x" * 40, "y" * 300, b"", b"\x00\xfa", b"z" * 300,
    [], [1, [2, [3]]], list(range(20)), {}, {"pin": 4}, {7: [None]},
]  # fmt: skip

BAD = [
    b"",
    b"\xc1",
    b"\xd4\x01\x00",
    b"\x92\x01",
    b"\x01\x02",
    b"\xa2\xff\xfe",
    b"\x91" * 9 + b"\xc0",
]


def corpus() -> None:
    print("crc", hex(satproto.crc16(b"123456789")))
    for value in CORPUS:
        packed = satproto.pack(value)
        print("pack", hexed(packed), satproto.unpack(packed) == value)
    for data in BAD:
        try:
            satproto.unpack(data)
            print("unpack", hexed(data), "accepted")
        except satproto.ProtocolError as error:
            print("unpack", hexed(data), str(error))
    for size in (1, 127, 128, 300):
        print("frame", size, hexed(satproto.frame(b"\x5a" * size)[:4]))


def reader() -> None:
    stream = b"boot\r\n" + satproto.frame(b"one") + b"\xfa\x05xx" + satproto.frame(b"two")
    stream += b"\xfa\x50" + satproto.frame(b"three")
    frames = satproto.FrameReader()
    for at in range(0, len(stream), 7):
        for is_frame, chunk in frames.feed(stream[at : at + 7], at):
            print("feed", is_frame, hexed(chunk))
    for is_frame, chunk in frames.expire(len(stream) + 100):
        print("expire", is_frame, hexed(chunk))
    print("noise", frames.noise, frames.bad_crc, frames.pending)


def carry(rng: Lcg, data: bytes) -> bytes:
    if data and rng.below(10) == 0:
        at = rng.below(len(data))
        data = data[:at] + bytes(((data[at] ^ 0x10),)) + data[at + 1 :]
    if data and rng.below(10) == 0:
        data = data[: rng.below(len(data))]
    return data


def exchange() -> None:
    rng = Lcg(11)
    host = satproto.HostEnd("node", 1234)
    sat = satproto.SatelliteEnd("boiler", "fw1", 42, {"door": "input"}, ring=16)
    stored: list[int] = []
    answers: list[int] = []
    carried_out: list[int] = []
    now = 0
    for step in range(400):
        now += 1 + rng.below(120)
        if step % 9 == 0:
            sat.report("door", step % 2 == 0, now)
        if step % 13 == 0 and step < 300:
            host.command("w", "pump", step)
        for cseq, _verb, args in sat.receive(carry(rng, host.poll(now)), now):
            carried_out.append(args[1])
            sat.done(cseq, args[1])
        for event in host.receive(carry(rng, sat.poll(now)), now):
            if isinstance(event, satproto.Hello):
                host.resend(len(stored))
            elif isinstance(event, satproto.Report):
                stored.append(event.seq)
                host.ack(event.seq, event.boot)
            elif isinstance(event, (satproto.Done, satproto.Refused)):
                answers.append(event.cseq)
    print("stored", stored)
    print("answers", answers)
    print("carried", carried_out)
    print("counters", sat.sent, sat.resent, sat.lost, host.noise, host.bad_frames)
    print("now", now, host.unanswered, sat.line_up)


corpus()
reader()
exchange()
