"""A Modbus device through pymodbus's sync client in a worker thread (serial lines, RTU).

pymodbus's async clients need a running asyncio loop, which a trio node
does not have (BUSES.md 3.1).  Its sync clients (`ModbusSerialClient`,
`ModbusTcpClient`) work from `trio.to_thread.run_sync`; a
`trio.CapacityLimiter` of one per device keeps exactly one request in
flight (a serial line can carry only one), so a slow device holds one
worker thread and never stalls the node or another adapter.  The adapter
uses it for serial lines; Modbus TCP has a transport of its own
(`tcp_client`), and the TCP client here serves the tests, which check this
wrapper against the real pymodbus server.

Errors are translated here, once:

* no connection, no answer within the timeout, a garbled frame:
  `BusUnavailableError` (the device is away; the supervisor reconnects);
* a Modbus exception response (illegal address, illegal value, device
  failure): `ModbusExceptionResponse`, a `BusDataError`: that value is
  bad, the device is there.  Gateway exceptions 10 and 11 (the gateway
  cannot reach the device behind it) are `BusUnavailableError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import trio

from moat_log.address import join_host_port
from moat_log.errors import AdapterError, BusDataError, BusUnavailableError

from .pdu import EXCEPTION_NAMES
from .plan import Function, Read

__all__ = [
    "Endpoint",
    "ModbusDevice",
    "ModbusExceptionResponse",
    "exception_error",
    "open_pymodbus_device",
]

#: Exception codes that say the device cannot be reached (through a gateway).
_UNREACHABLE: Final = frozenset({10, 11})


class ModbusExceptionResponse(BusDataError):
    """The device answered a request with a Modbus exception (*code*)."""

    def __init__(self, code: int, request: str) -> None:
        name = EXCEPTION_NAMES.get(code, "unknown exception")
        super().__init__(f"{request}: exception {code} ({name})")
        self.code = code


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a device is: a TCP host and port, or a serial port with its line settings."""

    host: str | None = None
    port: int = 502
    serial: str | None = None
    baudrate: int = 19200
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8

    def __str__(self) -> str:
        if self.serial is not None:
            return f"{self.serial} ({self.baudrate} {self.bytesize}{self.parity}{self.stopbits})"
        assert self.host is not None
        return join_host_port(self.host, self.port)

    def client(self, timeout: float, retries: int) -> Any:
        """A pymodbus sync client for this endpoint (not connected)."""
        if self.serial is None:
            from pymodbus.client import ModbusTcpClient

            return ModbusTcpClient(
                self.host or "", port=self.port, timeout=timeout, retries=retries
            )
        try:
            from pymodbus.client import ModbusSerialClient

            return ModbusSerialClient(
                self.serial,
                baudrate=self.baudrate,
                parity=self.parity,
                stopbits=self.stopbits,
                bytesize=self.bytesize,
                timeout=timeout,
                retries=retries,
            )
        except RuntimeError as exc:  # pymodbus without pyserial
            raise BusUnavailableError(f"modbus {self}: {exc} (install pyserial)") from None


class ModbusDevice:
    """One device (an endpoint and a unit id) on a connected client."""

    def __init__(self, client: Any, endpoint: Endpoint, unit_id: int) -> None:
        self._client = client
        self.endpoint = endpoint
        self.unit_id = unit_id
        self._limiter = trio.CapacityLimiter(1)
        #: Requests sent so far (reads and writes).
        self.requests = 0

    async def read(self, read: Read) -> list[int] | list[bool]:
        """The registers (or bits) *read* asks for."""
        client = self._client
        call: dict[Function, Callable[..., Any]] = {
            "coil": client.read_coils,
            "discrete_input": client.read_discrete_inputs,
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
        }
        what = f"read {read.function} {read.address}+{read.count}"
        response = await self._request(what, call[read.function], read.address, count=read.count)
        if read.function in ("coil", "discrete_input"):
            bits = [bool(b) for b in response.bits[: read.count]]
            if len(bits) != read.count:
                raise BusDataError(f"{what}: the device sent {len(bits)} bits")
            return bits
        registers = [int(r) for r in response.registers]
        if len(registers) != read.count:
            raise BusDataError(f"{what}: the device sent {len(registers)} registers")
        return registers

    async def write(self, function: Function, address: int, values: Sequence[int | bool]) -> None:
        """Write *values* to the coils or holding registers from *address*.

        One register or coil goes with the single-write function (5, 6),
        which every device has; more with the multiple-write one (15, 16).
        """
        client = self._client
        what = f"write {function} {address}+{len(values)}"
        if function == "coil":
            if len(values) == 1:
                await self._request(what, client.write_coil, address, bool(values[0]))
            else:
                await self._request(what, client.write_coils, address, [bool(v) for v in values])
        elif function == "holding":
            if len(values) == 1:
                await self._request(what, client.write_register, address, int(values[0]))
            else:
                await self._request(what, client.write_registers, address, [int(v) for v in values])
        else:
            raise ValueError(f"{function} cannot be written")

    async def _request(self, what: str, call: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        from pymodbus.exceptions import ModbusException

        def request() -> Any:
            return call(*args, device_id=self.unit_id, **kw)

        self.requests += 1
        try:
            response = await trio.to_thread.run_sync(request, limiter=self._limiter)
        except ModbusException as exc:
            raise BusUnavailableError(f"modbus {self.endpoint}: {what}: {exc}") from None
        except OSError as exc:
            raise BusUnavailableError(f"modbus {self.endpoint}: {what}: {exc}") from None
        if response.isError():
            code = getattr(response, "exception_code", None)
            if not isinstance(code, int):
                raise BusUnavailableError(f"modbus {self.endpoint}: {what}: {response}")
            raise exception_error(code, self.endpoint, self.unit_id, what)
        return response


def exception_error(code: int, endpoint: Endpoint, unit_id: int, what: str) -> AdapterError:
    """The error for a device's exception response *code* to request *what*.

    `ModbusExceptionResponse` (that value is bad, the device is there), or
    `BusUnavailableError` for the gateway exceptions 10 and 11.
    """
    if code in _UNREACHABLE:
        return BusUnavailableError(
            f"modbus {endpoint} unit {unit_id}: {what}: exception {code} ({EXCEPTION_NAMES[code]})"
        )
    return ModbusExceptionResponse(code, what)


@asynccontextmanager
async def open_pymodbus_device(
    endpoint: Endpoint, unit_id: int, *, request_timeout: float, retries: int
) -> AsyncIterator[ModbusDevice]:
    """*endpoint* through pymodbus's sync client (in a worker thread per request).

    For serial lines (Modbus RTU); *request_timeout* is pymodbus's own timeout.
    """
    client = endpoint.client(request_timeout, retries)
    try:
        connected = await trio.to_thread.run_sync(client.connect)
        if not connected:
            raise BusUnavailableError(f"modbus {endpoint}: cannot connect")
        yield ModbusDevice(client, endpoint, unit_id)
    finally:
        client.close()
