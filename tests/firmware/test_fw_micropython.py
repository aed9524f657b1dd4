"""The whole firmware in real MicroPython (WASI runner), driven by a satproto.HostEnd.

The firmware runs with sim hardware: its pins are lines on a Unix socket the
test serves; its serial line is the process's stdin/stdout.  Every wait is
for a message or a sim line (with a deadline that only turns a hang into a
failure).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from fw_support import fill_flash, runner

satproto = pytest.importorskip(
    "moat_log.firmware.satproto", reason="firmware/satproto.py comes from branch satproto"
)

pytestmark = pytest.mark.slow

DEADLINE = 20  # seconds: a hang fails the test instead of stopping the suite
KEEPALIVE_MS = 200
CONFIG = {
    "id": "boiler",
    "hardware": "sim",
    "keepalive_ms": KEEPALIVE_MS,
    "parts": {
        "door": {"kind": "input", "pin": 4, "pull": "up", "debounce_ms": 0},
        "pump": {"kind": "output", "pin": 5},
    },
}


def _ms() -> int:
    return int(trio.current_time() * 1000)


class Satellite:
    """The firmware process, its sim pins and the host end that talks to it."""

    def __init__(self, process: trio.Process, sim: trio.SocketStream) -> None:
        self.process = process
        self.sim = sim
        self.host = satproto.HostEnd("node1", secrets.randbits(32), keepalive_ms=KEEPALIVE_MS)
        self.events: list[Any] = []
        self.sim_lines: list[dict[str, Any]] = []
        self.away = False  # the host neither writes nor answers
        self.acked = 0  # the reports the host has stored
        self._changed = trio.Event()
        self._poke = trio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def read_line(self) -> None:
        assert self.process.stdout is not None
        async for data in self.process.stdout:
            events = self.host.receive(data, _ms())
            for event in events:
                if isinstance(event, satproto.Hello) and not self.away:
                    self.host.resend(self.acked)  # as a host does after every HELLO (3.3)
            self.events += events
            self._notify()
            self._poke.set()

    async def write_line(self) -> None:
        assert self.process.stdin is not None
        while True:
            if not self.away:
                out = self.host.poll(_ms())
                if out:
                    await self.process.stdin.send_all(out)
            with trio.move_on_after(self.host.next_deadline(_ms()) / 1000):
                await self._poke.wait()
            self._poke = trio.Event()

    async def read_sim(self) -> None:
        buffer = b""
        async for data in self.sim:
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            self.sim_lines += [json.loads(line) for line in lines if line]
            self._notify()

    async def wait_for(self, test: Callable[[], Any]) -> Any:
        with trio.fail_after(DEADLINE):
            while not (found := test()):
                await self._changed.wait()
            return found

    async def until(
        self, kind: type | tuple[type, ...], test: Callable[[Any], bool] = lambda e: True
    ) -> Any:
        def take() -> Any:
            for event in self.events:
                if isinstance(event, kind) and test(event):
                    self.events.remove(event)
                    return event
            return None

        return await self.wait_for(take)

    async def command(self, verb: str, *args: Any) -> Any:
        cseq = self.host.command(verb, *args)
        self._poke.set()
        return await self.until((satproto.Done, satproto.Refused), lambda e: e.cseq == cseq)

    def ack(self, seq: int) -> None:
        self.acked = seq
        self.host.ack(seq)
        self._poke.set()

    async def pin(self, message: dict[str, Any]) -> None:
        await self.sim.send_all(json.dumps(message).encode() + b"\n")

    def new_host(self) -> None:
        """A host that starts again (new session), as after a restart."""
        self.host = satproto.HostEnd("node1", secrets.randbits(32), keepalive_ms=KEEPALIVE_MS)
        self.away = False
        self._poke.set()

    async def hello(self, test: Callable[[Any], bool] = lambda e: True) -> Any:
        hello = await self.until(satproto.Hello, test)
        return hello


@asynccontextmanager
async def satellite(flash: Path) -> AsyncIterator[Satellite]:
    sock_path = str(flash.parent / "sim.sock")
    listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await listener.bind(sock_path)
    listener.listen(1)
    async with trio.open_nursery() as nursery:
        process = await trio.lowlevel.open_process(
            runner(flash, "--sim", sock_path), stdin=-1, stdout=-1
        )
        try:
            with trio.fail_after(DEADLINE):
                conn, _ = await listener.accept()
            sat = Satellite(process, trio.SocketStream(conn))
            nursery.start_soon(sat.read_line)
            nursery.start_soon(sat.write_line)
            nursery.start_soon(sat.read_sim)
            yield sat
        finally:
            nursery.cancel_scope.cancel()  # first: a task writing to the line must not see it break
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
            listener.close()


def _holding(seq: int) -> Callable[[Any], bool]:
    """A HELLO whose ring reaches report *seq*."""
    return lambda hello: bool(hello.last >= seq)


@pytest.fixture
def flash(tmp_path: Path) -> Path:
    flash = fill_flash(tmp_path / "flash")
    (flash / "sat.json").write_text(json.dumps(CONFIG))
    return flash


async def test_reports_commands_and_refusals(flash: Path) -> None:
    async with satellite(flash) as sat:
        hello = await sat.hello()
        assert (hello.sat_id, hello.parts) == ("boiler", {"door": "input", "pump": "output"})
        start = await sat.until(satproto.Report)
        assert (start.seq, start.part, start.value) == (1, "door", True)
        await sat.pin({"pin": 4, "in": 0})
        change = await sat.until(satproto.Report)
        assert (change.seq, change.part, change.value) == (2, "door", False)
        sat.ack(2)
        assert isinstance(await sat.command("w", "pump", True), satproto.Done)
        await sat.wait_for(lambda: {"pin": 5, "out": 1} in sat.sim_lines)
        refused = await sat.command("w", "door", True)
        assert refused.reason == "part 'door' is an input"
        assert (await sat.command("nope")).reason == "unknown verb 'nope'"
        assert (await sat.command("r", "pump")).result is True


async def test_reports_made_while_the_host_is_away_are_resent_in_order(flash: Path) -> None:
    async with satellite(flash) as sat:
        await sat.hello()
        await sat.until(satproto.Report)
        sat.ack(1)
        await sat.command("r", "door")  # the ACK has gone out with it
        sat.away = True
        await sat.hello()  # the satellite took the line as dead
        for level, seq in ((0, 2), (1, 3), (0, 4)):
            await sat.pin({"pin": 4, "in": level})
            await sat.hello(_holding(seq))  # made and held
        sat.events.clear()
        sat.new_host()
        hello = await sat.hello()
        assert (hello.first, hello.last) == (2, 4)  # RESEND 1 follows it
        reports = [await sat.until(satproto.Report) for _ in range(3)]
        assert [(r.seq, r.value) for r in reports] == [(2, False), (3, True), (4, False)]


async def test_cfg_put_commit_and_reset(flash: Path) -> None:
    async with satellite(flash) as sat:
        hello = await sat.hello()
        new_parts = {"lamp": {"kind": "output", "pin": 9, "init": True}}
        assert isinstance(await sat.command("cfg", {"parts": new_parts}), satproto.Done)
        again = await sat.hello(lambda e: e.parts == {"lamp": "output"})
        assert again.boot == hello.boot
        await sat.wait_for(lambda: {"pin": 9, "out": 1} in sat.sim_lines)
        data = b'{"note": "put over the link"}'
        assert isinstance(await sat.command("put", "note.json", 0, data), satproto.Done)
        crc = satproto.crc16(data)
        assert isinstance(await sat.command("commit", "note.json", len(data), crc), satproto.Done)
        assert (flash / "note.json").read_bytes() == data
        assert isinstance(await sat.command("reset"), satproto.Done)
        sat.new_host()
        restarted = await sat.hello(lambda e: e.boot != hello.boot)
        assert restarted.boot == (hello.boot + 1) & 0xFFFFFFFF
        assert restarted.parts == {"lamp": "output"}  # the saved config
