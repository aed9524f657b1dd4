"""The 1-Wire adapter: devices of an owserver polled into paths, owned paths written back.

A table with ``type = "onewire"`` (docs/adapters.md, "The 1-Wire adapter")::

    [adapters.ow]
    type = "onewire"
    server = "127.0.0.1:4304"

    [[adapters.ow.map]]
    family = "28"
    attribute = "temperature"
    path = "onewire.+family.+code.temperature"
    interval = 10
    min_delta = 0.1

Theory of operation
-------------------
One connection (`OnewireAdapter.run`) opens an `OwserverClient`, lists
the bus once (`OnewireSession.scan`: the presence of every device), reports
its session, and then runs a scan every ``scan_interval`` and one poller per
rule.  A poller reads its attribute of every present device it selects,
through the client (so at most ``connections`` requests are at the server);
each reading is decoded by the rule's codec and becomes an event only if it
is a change from what the journal holds (`Rule.is_change`: the deadband).

Writes of owned paths go to the device's attribute.  The next poll reads
the written value back: it equals the journal's, so it is no event (the
echo).  A reading that was under way while the path was set or written is
dropped (it may show the state before the write) and the next poll decides.

Presence: a device that appears in the listing gets ``present = true``, one
that goes (or that the journal holds as present at start and the bus lacks)
``present = false``.  While the server is away nothing is concluded about
the devices: the session ends and no presence or value is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Final

import trio

from moat_log.errors import BusDataError, BusUnavailableError
from moat_log.event import Event, Op, Value
from moat_log.journal.change import Change
from moat_log.journal.item import FeedItem
from moat_log.path import Path

from ..contract import AdapterLink, BusSession
from .client import OwserverClient, OwserverError, open_owserver
from .rules import OnewireSettings, Rule, is_device_id, read_onewire_settings

__all__ = ["OnewireAdapter", "OnewireSession", "read_settings"]

log = logging.getLogger("moat_log.adapters.onewire")

_NEVER: Final = float("-inf")


def read_settings(name: str, table: object, where: str) -> OnewireSettings:
    """The settings of ``[adapters.NAME]`` (type onewire); raises `FieldError`."""
    return read_onewire_settings(name, table, where)


class OnewireAdapter:
    """One owserver's devices as paths (one instance per run of the node)."""

    type: Final = "onewire"

    def __init__(self, settings: OnewireSettings) -> None:
        self.settings = settings
        self.name = settings.name

    def owns(self, path: Path) -> bool:
        return rule_for(self.settings.rules, path) is not None

    async def run(self, link: AdapterLink, *, task_status: trio.TaskStatus[BusSession]) -> None:
        settings = self.settings
        link.detail("server", f"{settings.host}:{settings.port}")
        async with open_owserver(
            settings.host,
            settings.port,
            connections=settings.connections,
            timeout=settings.timeout,
        ) as client:
            session = OnewireSession(settings, link, client)
            await session.scan()
            task_status.started(session)
            await session.serve()


def _first(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


def rule_for(rules: Sequence[Rule], path: Path) -> tuple[Rule, str] | None:
    """The first outgoing rule whose pattern *path* is, with the device it names."""
    for rule in rules:
        if rule.outgoing:
            device = rule.device_of(path)
            if device is not None:
                return rule, device
    return None


class OnewireSession:
    """Serves one owserver connection: scans, polls, writes."""

    def __init__(self, settings: OnewireSettings, link: AdapterLink, client: OwserverClient):
        self.settings = settings
        self.link = link
        self.client = client
        #: The devices of the last listing (None before the first).
        self.devices: set[str] | None = None
        #: When a write of a path last reached the bus (trio time).
        self._written_at: dict[Path, float] = {}
        #: The hlc of the last event of each owned path that `send` dealt with.
        self._handled: dict[Path, int] = {}
        self._started_ns = time.time_ns()

    # ---------------------------------------------------------------- contract

    @property
    def start_position(self) -> int:
        return 0  # nothing is repaired: an owned change is written when it comes

    async def send(self, items: Sequence[FeedItem]) -> None:
        for item in items:
            await self._write(item.event)
            self._handled[item.event.path] = item.event.hlc

    async def _write(self, event: Event) -> None:
        found = rule_for(self.settings.rules, event.path)
        if found is None or event.op is not Op.SET:
            return  # a delete has nothing to write to a device
        rule, device = found
        address = f"{device}/{rule.attribute}"
        if event.source == self.link.source(address):
            self.link.status.count("suppressed")
            return  # read from this very attribute: the bus holds it already
        try:
            data = rule.codec.encode(event.value)
            await self.client.write(f"/{device}/{rule.attribute}", data)
        except (BusDataError, OwserverError) as exc:
            self.link.bad_data(address, f"{event.path} cannot be written: {exc}")
            return
        self._written_at[event.path] = trio.current_time()
        self.link.status.count("sent")

    # ------------------------------------------------------------------- serve

    async def serve(self) -> None:
        """Scan and poll until the server goes away (`BusUnavailableError`)."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._scan_loop)
                for rule in self.settings.rules:
                    if rule.incoming:
                        nursery.start_soon(self._poll_loop, rule)
        except BaseExceptionGroup as group:
            lost, rest = group.split(BusUnavailableError)
            if lost is None or rest is not None:
                raise
            raise _first(lost) from None  # several pollers saw the server go: say it once

    async def _scan_loop(self) -> None:
        while True:
            await trio.sleep(self.settings.scan_interval)
            await self.scan()

    async def scan(self) -> None:
        """List the bus; write the presence of devices that came or went."""
        entries = await self.client.dir("/")
        self.link.status.count("received")
        found = {entry.strip("/") for entry in entries}
        now = {device for device in found if is_device_id(device)}
        before = self.devices
        self.devices = now
        self.link.detail("devices", len(now))
        pattern = self.settings.presence
        if pattern is None:
            return
        if before is None:  # the journal says which devices were there when we last looked
            _, events = await self.link.snapshot([pattern.prefix])
            before = set()
            for event in events:
                device = pattern.device_of(event.path)
                if device and event.op is Op.SET and event.value is True:
                    before.add(device)
        changes = [
            Change(pattern.path_for(device), device in now, source=self.link.source(device))
            for device in sorted(now ^ before)
        ]
        if changes:
            for change in changes:
                log.info(
                    "adapter %s: %s %s",
                    self.link.status.name,
                    change.source.split(":", 1)[1],
                    "appeared" if change.value else "is gone",
                )
            await self._write_changes(changes)

    async def _poll_loop(self, rule: Rule) -> None:
        due = trio.current_time()
        while True:
            await trio.sleep_until(due)
            due = max(due + rule.interval, trio.current_time())  # late: no burst to catch up
            await self.poll(rule)

    async def poll(self, rule: Rule) -> None:
        """Read *rule*'s attribute of every present device it selects; store the changes."""
        devices = sorted(d for d in self.devices or () if rule.selects(d))
        if not devices:
            return
        readings: list[tuple[str, float, Value]] = []
        lost: list[BusUnavailableError] = []
        async with trio.open_nursery() as nursery:
            for device in devices:
                nursery.start_soon(self._read, rule, device, readings, lost)
        if lost:
            raise lost[0]
        await self._store(rule, readings)

    async def _read(
        self,
        rule: Rule,
        device: str,
        readings: list[tuple[str, float, Value]],
        lost: list[BusUnavailableError],
    ) -> None:
        started = trio.current_time()
        address = f"{device}/{rule.attribute}"
        try:
            raw = await self.client.read(rule.bus_path(device))
        except BusUnavailableError as exc:
            lost.append(exc)
            return
        except OwserverError as exc:
            self.link.status.count("received")
            self.link.bad_data(address, str(exc))
            return
        self.link.status.count("received")
        try:
            value = rule.decode(raw)
        except BusDataError as exc:
            self.link.bad_data(address, str(exc))
            return
        problem = rule.check_reading(device, value)
        if problem is not None:
            self.link.bad_data(address, problem)
            return
        readings.append((device, started, value))

    async def _store(self, rule: Rule, readings: list[tuple[str, float, Value]]) -> None:
        if not readings:
            return
        paths = [rule.path_for(device) for device, _, _ in readings]
        currents = await self.link.current(paths)
        changes: list[Change] = []
        suppressed = 0
        for path, (device, started, value), current in zip(paths, readings, currents, strict=True):
            address = f"{device}/{rule.attribute}"
            if self._overtaken(rule, address, path, started, current):
                suppressed += 1
                continue
            has = current is not None and current.op is Op.SET
            if not rule.is_change(value, current.value if has else None, has):  # type: ignore[union-attr]
                suppressed += 1
                continue
            changes.append(Change(path, value, source=self.link.source(address)))
        if suppressed:
            self.link.status.count("suppressed", suppressed)
        await self._write_changes(changes)

    def _overtaken(
        self, rule: Rule, address: str, path: Path, started: float, current: Event | None
    ) -> bool:
        """Whether a reading may show the bus before a write of the path: then it is dropped.

        That is when the write finished after the reading began, or when the
        journal holds a value set during this session (not read from this
        address) that the output has not handed to `send` yet.
        """
        if self._written_at.get(path, _NEVER) >= started:
            return True
        if not rule.outgoing or current is None or current.source == self.link.source(address):
            return False
        return current.hlc > self._started_ns and self._handled.get(path) != current.hlc

    async def _write_changes(self, changes: list[Change]) -> None:
        if changes:
            await self.link.write(changes)
