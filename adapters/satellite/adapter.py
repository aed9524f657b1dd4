"""The satellite adapter: one MicroPython satellite on one serial port.

A table with ``type = "satellite"`` (docs/satellites.md; the keys:
`moat_log.adapters.satellite.settings`).  One connection (`SatelliteAdapter.run`)
opens the port and serves it with a `SatelliteSession` until the line is
dead or the port vanishes; the supervisor then opens it again after its
back-off.
"""

from __future__ import annotations

from typing import Final

import trio

from moat_log.path import Path

from ..contract import AdapterLink, BusSession
from .port import open_serial_port
from .session import SatelliteSession
from .settings import SatelliteSettings, read_settings

__all__ = ["SatelliteAdapter", "read_settings"]


class SatelliteAdapter:
    """One satellite's parts as paths (one instance per run of the node)."""

    type: Final = "satellite"

    def __init__(self, settings: SatelliteSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self._owned = frozenset(part.path for part in settings.parts if part.outgoing)

    def owns(self, path: Path) -> bool:
        return path in self._owned

    async def run(self, link: AdapterLink, *, task_status: trio.TaskStatus[BusSession]) -> None:
        settings = self.settings
        async with open_serial_port(settings.port, settings.baudrate) as port:
            session = SatelliteSession(settings, link, port)
            await session.serve(task_status=task_status)
