"""Put files on a satellite over its serial line: a firmware or config update without walking to it.

The satellite's ``put`` and ``commit`` verbs (docs/satellite-protocol.md,
section 3.4) write a file as ``NAME.new`` in chunks and then, once its size
and CRC-16 match, rename it to ``NAME`` in one step: a cut line leaves the
old file in place.  ``reset`` restarts the satellite on the new files.

This runs on a port that no adapter holds (the node's adapter opens its
port exclusively: disable it, or stop the node, for the update).  It speaks
only commands: it never asks for reports (no RESEND), so the reports the
satellite holds stay in its ring for the node, which fetches them when it
connects again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from moat_log.errors import AdapterError
from moat_log.firmware import satproto

from .port import SerialPort, open_serial_port

__all__ = ["SatelliteUpdate", "UpdateResult", "put_files"]

#: Payload bytes per ``put``: a COMMAND with this much data fits a satellite's mtu (512).
CHUNK = 384
#: Seconds to wait for the satellite's HELLO (and, after a reset, its next one).
ANSWER_TIMEOUT = 10.0


@dataclass(frozen=True)
class UpdateResult:
    """What an update did: the satellite's id, its boot before and (after a reset) after."""

    sat_id: str
    firmware: str
    boot: int
    files: tuple[str, ...]
    bytes_put: int
    new_boot: int | None


class SatelliteUpdate:
    """One command-only session with a satellite on an open port (thin shell on HostEnd)."""

    def __init__(self, port: SerialPort) -> None:
        self.port = port
        self.end = satproto.HostEnd("moat-log-update", int.from_bytes(os.urandom(4), "big"))
        self._answers: dict[int, satproto.Done | satproto.Refused] = {}
        self.hellos: list[satproto.Hello] = []

    @staticmethod
    def _now() -> int:
        return time.monotonic_ns() // 1_000_000

    async def until(self, done: Callable[[], bool], what: str) -> None:
        """Exchange bytes until *done()*; `AdapterError` naming *what* after `ANSWER_TIMEOUT`."""
        with trio.move_on_after(ANSWER_TIMEOUT) as scope:
            while not done():
                now = self._now()
                out = self.end.poll(now)
                if out:
                    await self.port.write(out)
                if done():
                    break
                with trio.move_on_after(self.end.next_deadline(now) / 1000):
                    self._take(self.end.receive(await self.port.read(), self._now()))
                    continue
                self._take(self.end.receive(b"", self._now()))
        if scope.cancelled_caught:
            raise AdapterError(f"serial port {self.port.name}: no answer from a satellite ({what})")

    def _take(self, events: list[object]) -> None:
        for event in events:
            if isinstance(event, satproto.Hello):
                self.hellos.append(event)
            elif isinstance(event, (satproto.Done, satproto.Refused)):
                self._answers[event.cseq] = event

    async def command(self, verb: str, *args: object) -> object:
        """Send one command; return its result, or raise `AdapterError` with the refusal."""
        cseq = self.end.command(verb, *args)
        await self.until(lambda: cseq in self._answers, f"to {verb}")
        answer = self._answers.pop(cseq)
        if isinstance(answer, satproto.Refused):
            raise AdapterError(f"the satellite refused {verb}: {answer.reason}")
        return answer.result

    async def put(self, name: str, data: bytes, progress: Callable[[int], None]) -> None:
        """Write *data* as file *name* on the satellite: chunks, then the checked rename."""
        if not data:
            await self.command("put", name, 0, b"")
        for offset in range(0, len(data), CHUNK):
            chunk = data[offset : offset + CHUNK]
            await self.command("put", name, offset, chunk)
            progress(len(chunk))
        await self.command("commit", name, len(data), satproto.crc16(data))


async def put_files(
    port_name: str,
    files: Sequence[tuple[str, bytes]],
    *,
    baudrate: int = 115200,
    reset: bool = False,
    progress: Callable[[int], None] = lambda _: None,
) -> UpdateResult:
    """Put *files* (name on the satellite, content) on the satellite at *port_name*.

    With *reset* the satellite restarts afterwards, and this returns once it
    said HELLO with its new boot.  Raises `AdapterError` (refusals, no
    answer) or `BusUnavailableError` (the port cannot be opened or went away).
    """
    async with open_serial_port(port_name, baudrate) as port:
        update = SatelliteUpdate(port)
        await update.until(lambda: update.end.ready, "to HOST_HELLO")
        hello = update.hellos[-1]
        for name, data in files:
            await update.put(name, data, progress)
        new_boot = None
        if reset:
            await update.command("reset")
            await update.until(
                lambda: any(h.boot != hello.boot for h in update.hellos), "after reset"
            )
            new_boot = next(h.boot for h in update.hellos if h.boot != hello.boot)
    return UpdateResult(
        sat_id=hello.sat_id,
        firmware=hello.firmware,
        boot=hello.boot,
        files=tuple(name for name, _ in files),
        bytes_put=sum(len(data) for _, data in files),
        new_boot=new_boot,
    )
