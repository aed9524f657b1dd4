"""A Modbus device as the client adapter's session sees it, over TCP or a serial line.

`open_device` picks the transport: Modbus TCP on a trio socket of our own
(`tcp_client`, the sans-io codec of `mbap` and `pdu`), Modbus RTU on a
serial line through pymodbus's sync client in a worker thread (`client`).
Both give a `Device` and translate errors the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from .client import Endpoint, open_pymodbus_device
from .plan import Function, Read
from .tcp_client import open_tcp_device

__all__ = ["Device", "open_device"]


class Device(Protocol):
    """What the session needs of a device: reads, writes, and a count of requests."""

    endpoint: Endpoint
    unit_id: int
    requests: int

    async def read(self, read: Read) -> list[int] | list[bool]: ...

    async def write(
        self, function: Function, address: int, values: Sequence[int | bool]
    ) -> None: ...


@asynccontextmanager
async def open_device(
    endpoint: Endpoint, unit_id: int, *, request_timeout: float, retries: int
) -> AsyncIterator[Device]:
    """Connect to *endpoint*; `BusUnavailableError` if it cannot be reached.

    Modbus TCP goes through the trio-native `tcp_client`; a serial line
    through pymodbus's sync client in a worker thread.  *request_timeout*
    bounds each request, tried *retries* more times before the device
    counts as not answering.
    """
    if endpoint.serial is None:
        async with open_tcp_device(
            endpoint, unit_id, request_timeout=request_timeout, retries=retries
        ) as device:
            yield device
        return
    async with open_pymodbus_device(
        endpoint, unit_id, request_timeout=request_timeout, retries=retries
    ) as pymodbus_device:
        yield pymodbus_device
