"""A serial port driven from trio: pyserial opens it, its fd is read and written directly.

pyserial knows every platform's way to set a baud rate, parity and a
lock; its blocking reads do not suit trio (a thread per port).  So the port
is opened with pyserial and then used through its file descriptor,
non-blocking, with `trio.lowlevel.wait_readable` / `wait_writable`.

pyserial leaves the tty with ``VMIN = 0``: ``read`` on an empty line then
returns ``b""`` instead of raising `BlockingIOError`, which would make an
end of file of every quiet moment (and a loop around it spin).  With
``VMIN = 1, VTIME = 0`` an empty line raises `BlockingIOError` and a real
``b""`` means the other end is gone (../shared/REAL_PARTS.md).

A port that vanishes (a USB adapter unplugged, the pty's other side
closed) shows as ``EIO`` or an end of file: `SerialPort.read` raises
`BusUnavailableError` naming the port, and the adapter's connection ends.
"""

from __future__ import annotations

import errno
import os
import termios
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from moat_log.errors import BusUnavailableError

__all__ = ["SerialPort", "open_serial_port"]

#: Bytes asked for per read: a frame is at most 4100 bytes.
READ_SIZE = 8192


class SerialPort:
    """An open serial port: `read` what came, `write` all of some bytes."""

    def __init__(self, name: str, serial: Any) -> None:
        self.name = name
        self._serial = serial
        self.fd: int = serial.fileno()
        _set_vmin(self.fd)
        os.set_blocking(self.fd, False)

    async def read(self) -> bytes:
        """The next bytes from the line (at least one); waits for them."""
        while True:
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.fd)
                continue
            except OSError as exc:
                raise self._gone(exc) from exc
            if not data:
                raise BusUnavailableError(f"serial port {self.name}: the line closed (end of file)")
            return data

    async def write(self, data: bytes) -> None:
        """Write all of *data*; waits while the line's buffer is full."""
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.fd)
                continue
            except OSError as exc:
                raise self._gone(exc) from exc
            view = view[written:]

    def close(self) -> None:
        trio.lowlevel.notify_closing(self.fd)
        self._serial.close()

    def _gone(self, exc: OSError) -> BusUnavailableError:
        if exc.errno in (errno.EIO, errno.ENXIO, errno.ENODEV):
            return BusUnavailableError(f"serial port {self.name} went away ({exc.strerror})")
        return BusUnavailableError(f"serial port {self.name}: {exc.strerror or exc}")


def _set_vmin(fd: int) -> None:
    attributes = termios.tcgetattr(fd)
    attributes[6][termios.VMIN] = 1
    attributes[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attributes)


@asynccontextmanager
async def open_serial_port(name: str, baudrate: int) -> AsyncIterator[SerialPort]:
    """Open *name* at *baudrate* (8N1, raw, exclusive); raises `BusUnavailableError`."""
    import serial

    def open_port() -> Any:
        return serial.Serial(name, baudrate, timeout=0, exclusive=True)

    try:
        handle = await trio.to_thread.run_sync(open_port)  # opening may block on a USB port
    except (serial.SerialException, OSError) as exc:
        if getattr(exc, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK):  # the exclusive lock
            raise BusUnavailableError(
                f"serial port {name}: another process has it open (a node's satellite "
                "adapter, or moat-log satellite put); stop that one first"
            ) from None
        raise BusUnavailableError(f"serial port {name}: cannot open it: {exc}") from None
    port = SerialPort(name, handle)
    try:
        yield port
    finally:
        port.close()
