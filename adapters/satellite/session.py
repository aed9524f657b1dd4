"""One connection of the satellite adapter: the protocol's host end on an open serial port.

Theory of operation
-------------------
The protocol itself is `moat_log.firmware.satproto.HostEnd` (sans-io: bytes
in, events out, bytes to write).  This session is its trio shell, three
tasks on one port:

* the **reader** feeds every read to the host end and dispatches what comes
  out: answers to commands wake the command's waiter at once, console
  bytes and LOG messages are logged, and HELLOs and reports go, in order,
  to the handler;
* the **writer** writes what the host end wants written (HOST_HELLO until a
  HELLO came, commands, ACKs, IDLE) whenever it is woken or its deadline is
  due, and ends the connection when the line is dead (no valid frame for
  three keepalives): `BusUnavailableError`, the supervisor reopens the port;
* the **handler** stores reports and answers HELLOs, one after the other,
  because both read or write the journal and the order matters.

**A HELLO** names the satellite (its id must be the configured one) and its
boot.  On the first of a connection the host sends the parts config
(``cfg``; the satellite rewrites its flash only when it differs).  It then
asks the journal which report of this boot it stored last: the newest event
on the satellite's paths whose source is ``sat:NAME/PART@BOOT.SEQ`` with
this ``BOOT`` (`AdapterLink.newest_from`); after ``kill -9`` this is the
truth, in a running session it is what the session stored.  It answers
``RESEND`` with that number: the satellite sends everything after it again.
On the first HELLO and on every new boot the outputs get their journal
values again (the repair).

**Reports** received together are written with one `AdapterLink.write`
(source ``sat:NAME/PART@BOOT.SEQ``, docs/satellite-protocol.md 3.3) and,
once durable, acknowledged with one ACK of the highest.  A report the
journal holds already (a number at or below the last stored) is not stored
again; a gap in the numbers (the satellite's ring overflowed) is counted as
lost and logged.

**Commands.** `SatelliteSession.send` turns owned paths' changes into ``w``
commands and waits for their answers; a REFUSED is bad data with the
satellite's reason and is not retried.  The satellite alone decides what
its parts take (a bool for an output, a duty 0 .. 1 for a PWM): the host
does not check values twice.  Commands and the repair's snapshot
take one lock, so a repair cannot overwrite a newer value with an older
one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from moat_log.errors import AdapterError, BusUnavailableError, SatelliteMismatchError
from moat_log.event import Op
from moat_log.firmware import satproto
from moat_log.journal.change import Change
from moat_log.journal.item import FeedItem

from ..contract import AdapterLink
from .port import SerialPort
from .settings import PART_NAME, Part, SatelliteSettings

__all__ = ["SatelliteSession", "report_source"]

log = logging.getLogger("moat_log.adapters.satellite")

#: A console line longer than this is logged in pieces.
MAX_CONSOLE_LINE: Final = 240
#: Keepalives a command may wait for its answer before the satellite counts as stuck.
ANSWER_KEEPALIVES: Final = 10
_SOURCE: Final = re.compile(r"sat:(?P<name>[^/]+)/(?P<part>[^@]+)@(?P<boot>[0-9a-f]{8})\.(\d+)")


def report_source(name: str, part: str, boot: int, seq: int) -> str:
    """The source of the event stored from a report: ``sat:NAME/PART@BOOT.SEQ``."""
    return f"sat:{name}/{part}@{boot:08x}.{seq}"


def _stored_seq(source: str, boot: int) -> int | None:
    """The report number in *source* if it is one of *boot*'s."""
    found = _SOURCE.fullmatch(source)
    if found is None or int(found["boot"], 16) != boot:
        return None
    return int(found[4])


@dataclass(slots=True)
class _Answer:
    """What a command's waiter learns: done (with a result) or refused (with a reason)."""

    verb: str
    arrived: trio.Event = field(default_factory=trio.Event)
    refused: str | None = None
    result: Any = None
    #: The connection ended before the answer came.
    lost: bool = False


class SatelliteSession:
    """Serves one connection to one satellite."""

    def __init__(self, settings: SatelliteSettings, link: AdapterLink, port: SerialPort) -> None:
        self.settings = settings
        self.link = link
        self.port = port
        self.end = satproto.HostEnd(
            link.node_name,
            int.from_bytes(os.urandom(4), "big"),
            keepalive_ms=settings.keepalive_ms,
        )
        self._start = 0
        self._wake = trio.Event()
        self._answers: dict[int, _Answer] = {}
        self._lock = trio.Lock()
        self._failed: BusUnavailableError | None = None
        self._broken = trio.Event()
        self._to_handler, self._handler_inbox = trio.open_memory_channel[Any](math.inf)
        self._console = bytearray()
        #: The boot of the last HELLO, and the last report stored of it.
        self._boot: int | None = None
        self._last_seq = 0
        self._configured = False
        self._ready = trio.Event()
        self._name = f"satellite {settings.name}"
        self._nursery: trio.Nursery | None = None

    # ---------------------------------------------------------------- contract

    @property
    def start_position(self) -> int:
        return self._start

    async def send(self, items: Sequence[FeedItem]) -> None:
        answers: list[tuple[Part, _Answer]] = []
        async with self._lock:
            for item in items:
                event = item.event
                part = self.settings.part_at(event.path)
                if part is None or not part.outgoing or event.op is Op.DELETE:
                    continue  # a delete leaves the output as it is
                answers.append((part, self._command("w", part.name, event.value)))
        for part, answer in answers:
            await self._answered(answer, part.name)

    # ------------------------------------------------------------------- serve

    async def serve(self, *, task_status: trio.TaskStatus[SatelliteSession]) -> None:
        """Run the connection; report the session once the satellite's first HELLO is answered."""
        self.link.detail("port", self.settings.port)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._reader)
                nursery.start_soon(self._writer)
                nursery.start_soon(self._handler)
                nursery.start_soon(self._until_broken)
                await self._ready.wait()
                task_status.started(self)
        except BaseException as exc:
            first = _first(exc)
            self._fail(BusUnavailableError(f"{self._name}: the connection ended: {first}"))
            if isinstance(exc, BaseExceptionGroup) and isinstance(first, AdapterError):
                raise first from None  # the reader and the writer both saw the port go: one error
            raise
        finally:
            self._fail(BusUnavailableError(f"{self._name}: the connection ended"))

    def _fail(self, exc: BusUnavailableError) -> None:
        """End the connection with *exc*: waiting commands and later sends raise it."""
        if self._failed is None:
            self._failed = exc
            self._broken.set()
        for answer in self._answers.values():
            answer.lost = True
            answer.arrived.set()

    async def _until_broken(self) -> None:
        await self._broken.wait()
        assert self._failed is not None
        raise self._failed

    # ------------------------------------------------------------------ tasks

    def _now(self) -> int:
        return int(trio.current_time() * 1000)

    def _poke(self) -> None:
        self._wake.set()

    async def _writer(self) -> None:
        end = self.end
        while True:
            self._take(end.receive(b"", self._now()))  # expires a frame cut off mid-way
            data = end.poll(self._now())
            if data:
                await self.port.write(data)
            now = self._now()
            if end.line_dead(now):
                raise BusUnavailableError(
                    f"{self._name}: no valid frame on {self.settings.port} for "
                    f"{3 * self.settings.keepalive_ms / 1000:g} s"
                )
            with trio.move_on_after(end.next_deadline(now) / 1000):
                await self._wake.wait()
            self._wake = trio.Event()

    async def _reader(self) -> None:
        while True:
            data = await self.port.read()
            self._take(self.end.receive(data, self._now()))
            self._poke()

    def _take(self, events: list[Any]) -> None:
        """Dispatch what the host end made of the bytes: reports in batches to the handler."""
        batch: list[satproto.Report] = []
        for event in events:
            if isinstance(event, satproto.Report):
                batch.append(event)
                self.link.status.count("received")
                continue
            if batch:
                self._to_handler.send_nowait(batch)
                batch = []
            self._dispatch(event)
        if batch:
            self._to_handler.send_nowait(batch)
        if events:
            self.link.detail("console", self.end.console_bytes)

    def _dispatch(self, event: object) -> None:
        if isinstance(event, satproto.Hello):
            self._to_handler.send_nowait(event)
        elif isinstance(event, satproto.Done | satproto.Refused):
            answer = self._answers.pop(event.cseq, None)
            if answer is None:
                log.debug("%s: an answer to no command: %r", self._name, event)
                return
            if isinstance(event, satproto.Refused):
                answer.refused = event.reason
            else:
                answer.result = event.result
            answer.arrived.set()
        elif isinstance(event, satproto.Console):
            self._console_bytes(event.data)
        elif isinstance(event, satproto.Log):
            log.log(event.level, "%s says: %s", self._name, event.text)
        elif isinstance(event, satproto.BadFrame):
            self.link.bad_data(self.settings.name, f"bad frame: {event.reason}")

    def _console_bytes(self, data: bytes) -> None:
        """Log the satellite's console text line by line (never data: docs section 1)."""
        self._console += data
        while True:
            newline = self._console.find(b"\n")
            if newline < 0 and len(self._console) < MAX_CONSOLE_LINE:
                return
            cut = newline if newline >= 0 else MAX_CONSOLE_LINE
            line = bytes(self._console[:cut]).decode("utf-8", "replace").rstrip("\r")
            del self._console[: cut + (newline >= 0)]
            if line:
                log.info("%s console: %s", self._name, line)

    async def _handler(self) -> None:
        """Answer HELLOs and store reports in order; reports that queued up meanwhile go together.

        While one batch is being made durable, the next reports wait here:
        they are written with one `AdapterLink.write` (one commit) however
        many reads brought them.
        """
        inbox = self._handler_inbox
        waiting: Any = None
        while True:
            item = waiting if waiting is not None else await inbox.receive()
            waiting = None
            if isinstance(item, satproto.Hello):
                await self._hello(item)
                continue
            reports = list(item)
            while True:
                try:
                    more = inbox.receive_nowait()
                except trio.WouldBlock:
                    break
                if isinstance(more, satproto.Hello):
                    waiting = more
                    break
                reports.extend(more)
            await self._store(reports)

    # ------------------------------------------------------------------ hello

    async def _hello(self, hello: satproto.Hello) -> None:
        settings, link = self.settings, self.link
        if hello.sat_id != settings.sat_id:
            raise SatelliteMismatchError(
                f"{self._name}: the satellite on {settings.port} is {hello.sat_id!r}, "
                f"not {settings.sat_id!r}"
            )
        link.detail("satellite", hello.sat_id)
        link.detail("firmware", hello.firmware)
        link.detail("boot", f"{hello.boot:08x}")
        if not self._configured:
            self._configured = True
            answer = self._command("cfg", settings.parts_config())
            await self._answered(answer, "cfg", fatal=True)
        new_boot = hello.boot != self._boot
        if new_boot:
            self._last_seq = await self._journal_seq(hello)
            if self._boot is not None:
                log.info("%s restarted (boot %08x)", self._name, hello.boot)
            self._boot = hello.boot
            await self._repair()
        lost = self.end.lost
        self.end.resend(self._last_seq)
        if self.end.lost > lost:
            log.warning(
                "%s lost report(s) %d .. %d of boot %08x (its ring was full)",
                self._name,
                self._last_seq + 1,
                hello.first - 1,
                hello.boot,
            )
            link.detail("lost", self.end.lost)
        self._poke()
        self._ready.set()

    async def _journal_seq(self, hello: satproto.Hello) -> int:
        """The last report of *hello*'s boot that the journal holds (0: none)."""
        parts = {part.name for part in self.settings.parts if not part.outgoing}
        parts.update(name for name in hello.parts if PART_NAME.fullmatch(name))
        paths = [self.settings.path_of(name) for name in sorted(parts)]
        newest = await self.link.newest_from(paths, f"sat:{self.settings.name}/")
        seqs = [_stored_seq(event.source, hello.boot) for event in newest.values()]
        return max([seq for seq in seqs if seq is not None], default=0)

    async def _repair(self) -> None:
        """Send every output its journal value (on connecting, after a restart)."""
        outputs = [part for part in self.settings.parts if part.outgoing]
        if not outputs:
            return
        async with self._lock:
            position, events = await self.link.snapshot([part.path for part in outputs])
            if not self._start:
                self._start = position
            answers = []
            for event in events:
                part = self.settings.part_at(event.path)
                if part is None or event.op is not Op.SET:
                    continue
                answers.append((part, self._command("w", part.name, event.value)))
        for part, answer in answers:
            self._later(answer, part.name)

    # ---------------------------------------------------------------- reports

    async def _store(self, reports: list[satproto.Report]) -> None:
        """Write a batch of reports (the host end hands them up in order, each once); ACK it."""
        settings, link = self.settings, self.link
        changes: list[Change] = []
        last, boot = self._last_seq, reports[0].boot
        assert boot is not None  # reports come after a HELLO
        for report in reports:
            if report.boot != boot or report.seq <= last:
                continue  # cannot happen: the host end hands up each report once, in order
            last = report.seq
            part = settings.part_at(settings.path_of(report.part)) if _plain(report.part) else None
            if not _plain(report.part) or (part is not None and part.outgoing):
                link.bad_data(settings.address(str(report.part)), "a report of no input part")
                continue
            source = report_source(settings.name, report.part, boot, report.seq)
            changes.append(Change(settings.path_of(report.part), report.value, source=source))
        if changes:
            await link.write(changes)
            stored = link.status.details.get("reports_stored", 0) + len(changes)
            link.detail("reports_stored", stored)
        if boot == self._boot:
            self._last_seq = last
        self.end.ack(last, boot)
        self._poke()

    # --------------------------------------------------------------- commands

    def _command(self, verb: str, *args: Any) -> _Answer:
        if self._failed is not None:
            raise self._failed
        cseq = self.end.command(verb, *args)
        answer = self._answers[cseq] = _Answer(verb)
        self._poke()
        return answer

    async def _answered(self, answer: _Answer, what: str, *, fatal: bool = False) -> None:
        """Wait for *answer*; count it; a refusal is bad data (or, if *fatal*, the end)."""
        wait = ANSWER_KEEPALIVES * self.settings.keepalive_ms / 1000
        with trio.move_on_after(wait):
            await answer.arrived.wait()
        if not answer.arrived.is_set():
            self._fail(
                BusUnavailableError(
                    f"{self._name}: no answer to {answer.verb} {what} in {wait:g} s"
                )
            )
        if answer.lost:
            assert self._failed is not None
            raise self._failed
        if answer.refused is not None:
            if fatal:
                raise SatelliteMismatchError(f"{self._name} refused {what}: {answer.refused}")
            refused = self.link.status.details.get("commands_refused", 0) + 1
            self.link.detail("commands_refused", refused)
            self.link.bad_data(self.settings.address(what), f"refused: {answer.refused}")
            return
        if answer.verb == "w":
            self.link.status.count("sent")

    def _later(self, answer: _Answer, what: str) -> None:
        """Count *answer* when it comes, without waiting for it (the repair's commands)."""

        async def wait() -> None:
            with contextlib.suppress(BusUnavailableError):  # the connection is ending anyway
                await self._answered(answer, what)

        assert self._nursery is not None
        self._nursery.start_soon(wait)


def _first(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _plain(part: object) -> bool:
    return isinstance(part, str) and PART_NAME.fullmatch(part) is not None
