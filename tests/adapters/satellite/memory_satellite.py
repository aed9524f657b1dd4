"""A satellite in the test's own trio run: satproto.SatelliteEnd on the master side of a pty.

The adapter opens the pty's slave side as its serial port (the real port
code, VMIN=1 and all); this satellite reads and writes the master side and
answers commands as the firmware would (``cfg``, ``w``, ``r``), so a
session test needs no MicroPython and runs in a fraction of a second.
"""

from __future__ import annotations

import os
import tty
from collections.abc import Callable
from typing import Any

import trio

from moat_log.firmware import satproto


class MemorySatellite:
    """One simulated satellite; `outputs` holds what ``w`` set, `configs` every ``cfg``."""

    def __init__(self, sat_id: str, *, boot: int = 0x2A, keepalive_ms: int = 200) -> None:
        self.sat_id = sat_id
        self.boot = boot
        self.keepalive_ms = keepalive_ms
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self._slave = slave  # kept open: the master never sees a hang-up when the host reopens
        os.set_blocking(self.master, False)
        self.outputs: dict[str, Any] = {}
        self.configs: list[dict[str, Any]] = []
        self.commands: list[tuple[int, str, list[Any]]] = []
        #: Verb -> reason: commands of that verb (and part, "w door") are refused.
        self.refuse: dict[str, str] = {}
        self.parts: dict[str, str] = {}
        self.silent = False
        self._changed = trio.Event()
        self.end = self._new_end()

    def _new_end(self) -> satproto.SatelliteEnd:
        return satproto.SatelliteEnd(
            self.sat_id,
            "memory-1",
            self.boot,
            dict(self.parts),
            keepalive_ms=self.keepalive_ms,
        )

    def restart(self, boot: int) -> None:
        """A reset: a new boot, an empty ring, nothing acknowledged."""
        self.boot = boot
        self.end = self._new_end()
        self._note()

    def report(self, part: str, value: Any) -> int:
        seq = int(self.end.report(part, value, self._now()))
        self._note()
        return seq

    async def until(self, predicate: Callable[[], bool]) -> None:
        with trio.fail_after(20):
            while not predicate():
                await self._changed.wait()

    def _note(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    @staticmethod
    def _now() -> int:
        return int(trio.current_time() * 1000)

    async def run(self) -> None:
        """Serve the line until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read)
            while True:
                now = self._now()
                data = self.end.poll(now)
                if data and not self.silent:
                    os.write(self.master, data)
                with trio.move_on_after(self.end.next_deadline(now) / 1000):
                    await self._changed.wait()

    async def _read(self) -> None:
        while True:
            await trio.lowlevel.wait_readable(self.master)
            try:
                data = os.read(self.master, 65536)
            except BlockingIOError:
                continue
            except OSError:  # closed at the end of the test
                return
            if self.silent:
                continue
            for cseq, verb, args in self.end.receive(data, self._now()):
                self._carry_out(cseq, verb, list(args))
            self._note()

    def _carry_out(self, cseq: int, verb: str, args: list[Any]) -> None:
        self.commands.append((cseq, verb, args))
        reason = self.refuse.get(f"{verb} {args[0]}" if args else verb, self.refuse.get(verb))
        if reason is not None:
            self.end.refuse(cseq, reason)
        elif verb == "cfg":
            config = args[0]
            self.configs.append(config)
            self.end.done(cseq)
            parts = {name: part["kind"] for name, part in config["parts"].items()}
            if parts != self.parts:
                self.parts = parts
                self.end.set_parts(parts)
        elif verb == "w":
            self.outputs[args[0]] = args[1]
            self.end.done(cseq)
        else:
            self.end.refuse(cseq, f"unknown verb {verb!r}")

    def close(self) -> None:
        os.close(self.master)
        os.close(self._slave)
