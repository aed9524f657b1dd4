"""One run of the Modbus server adapter: the register image, fed by the journal, used by clients.

Theory of operation
-------------------
`ServerSession.load` fills the `RegisterImage` from the snapshot of the
mapped paths taken when the run started; the snapshot's position is the
session's `start_position`, so the output projection delivers only what
came after it.  `ServerSession.send` is the out direction: each committed
winner of an owned path (``out``, ``both``) is applied to the image, and
the next read shows it.  Nothing can be unavailable here: the "bus" is in
memory, so `send` never raises `BusUnavailableError`.

`ServerSession.answer` serves a client's request.  A read is answered from
the image at once.  A write (functions 5, 6, 15, 16) is checked whole
against the map (`RegisterImage.decode_write`); its values become events
with the source ``modbus_server:UNIT/FUNCTION/ADDRESS`` through
`AdapterLink.write`, and the client is answered only once they are
durable: the acknowledgement is the promise.  The stored events are
applied to the image at once, so the client reads back what it wrote, and
the same events, when the output delivers them, are not newer and change
nothing (no second event, no bounce).  The registers a value shows
already make no event (``changes_only``, counted as ``suppressed``): a
PLC that writes its setpoint every cycle does not fill the journal.  A
write the journal refuses is answered with exception 04.

The counts go to the adapter's status: ``received`` (requests),
``written`` (events of client writes), ``sent`` (changes from other
sources applied to the image), ``suppressed``, ``bad`` (values that do not encode), and as
details ``clients``, ``requests``, ``writes``, ``exceptions``,
``refused_connections``, ``dropped_connections`` and ``last_refused``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from moat_log.errors import BusDataError
from moat_log.event import Event
from moat_log.journal.change import Change
from moat_log.journal.item import FeedItem

from ..contract import AdapterLink
from .image import ClientWrite, RegisterImage, ServedValue
from .pdu import (
    ExceptionCode,
    ExceptionResponse,
    ReadRequest,
    Response,
    WriteRequest,
    WriteResponse,
)
from .server import ANY_UNIT, Incoming

if TYPE_CHECKING:
    from .server_adapter import ModbusServerSettings

__all__ = ["ServerSession"]


class ServerSession:
    """The image and the client requests of one run of the server adapter."""

    def __init__(
        self, settings: ModbusServerSettings, link: AdapterLink, image: RegisterImage
    ) -> None:
        self.settings = settings
        self.link = link
        self.image = image
        self._start = 0
        self._counts = dict.fromkeys(
            (
                "clients",
                "requests",
                "writes",
                "exceptions",
                "refused_connections",
                "dropped_connections",
            ),
            0,
        )
        for key, value in self._counts.items():
            link.detail(key, value)

    # ---------------------------------------------------------------- the journal

    @property
    def start_position(self) -> int:
        return self._start

    def load(self, position: int, events: Sequence[Event]) -> None:
        """Fill the image from the snapshot *events* (winners as of *position*)."""
        self._start = position
        for event in events:
            index = self.image.index(event.path)
            if index is not None:
                self._apply(index, event)

    async def send(self, items: Sequence[FeedItem]) -> None:
        image = self.image
        ours = self.link.source("")
        for item in items:
            event = item.event
            index = image.index(event.path)
            if index is None or not self._apply(index, event):
                continue
            # A client's write shows once stored, whichever of the two applies it first:
            # `sent` counts what the registers got from elsewhere.
            if not event.source.startswith(ours):
                self.link.status.count("sent")

    def _apply(self, index: int, event: Event) -> bool:
        """Show *event*; whether the registers now show its value (bad data: they show none)."""
        value = self.image.values[index]
        try:
            return self.image.apply(index, event)
        except BusDataError as exc:
            address = self.settings.address(value, self.settings.unit_id)
            self.link.bad_data(str(value.path), f"{address} shows no value: {exc}")
            return False

    # ----------------------------------------------------------------- clients

    async def answer(self, incoming: Incoming, peer: str) -> Response:
        """The response to *incoming* from *peer*: a write waits until it is durable."""
        self.link.status.count("received")
        request = incoming.request
        if isinstance(request, ExceptionResponse):
            response: Response = request
        elif isinstance(request, ReadRequest):
            response = self.image.read(request)
        else:
            response = await self._write(request, incoming.unit)
        self._bump("requests")
        if isinstance(response, ExceptionResponse):
            self._bump("exceptions")
            self.link.detail("last_refused", f"{peer}: {response}")
        return response

    async def _write(self, request: WriteRequest, unit: int) -> Response:
        planned = self.image.decode_write(request)
        if isinstance(planned, ExceptionResponse):
            return planned
        image = self.image
        fresh: list[ClientWrite] = []
        for write in planned:
            if image.values[write.index].changes_only and image.holds(write):
                self.link.status.count("suppressed")
            else:
                fresh.append(write)
        changes = [self._change(write, unit) for write in fresh]
        stored = await self.link.write(changes)
        for write, event in zip(fresh, stored, strict=True):
            if event is not None:
                self._apply(write.index, event)
        if None in stored:
            reason = "the journal refused the write (the node's log says why)"
            return ExceptionResponse(request.code, ExceptionCode.SERVER_DEVICE_FAILURE, reason)
        self._bump("writes")
        return WriteResponse.acknowledging(request)

    def _change(self, write: ClientWrite, unit: int) -> Change:
        value: ServedValue = self.image.values[write.index]
        served = unit if self.settings.unit_id in ANY_UNIT else self.settings.unit_id
        address = self.settings.address(value, served)
        return Change(value.path, write.value, source=self.link.source(address))

    # ------------------------------------------------------------- connections

    def opened(self) -> None:
        self._bump("clients")

    def closed(self) -> None:
        self._bump("clients", -1)

    def refused(self, peer: str, reason: str) -> None:
        """A connection from *peer* was closed at once (*reason*: not allowed, over the limit)."""
        self._bump("refused_connections")
        self.link.detail("last_refused", f"{peer}: {reason}")

    def dropped(self, peer: str, reason: str) -> None:
        """A connection was closed for garbage or idleness (*reason* says which)."""
        self._bump("dropped_connections")
        self.link.detail("last_refused", f"{peer}: {reason}")

    def _bump(self, key: str, by: int = 1) -> None:
        self._counts[key] += by
        self.link.detail(key, self._counts[key])
