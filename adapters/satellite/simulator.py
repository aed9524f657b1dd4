"""A satellite without a board: the real firmware in real MicroPython on a pty pair.

`open_simulator` starts what a user (``moat-log satellite simulate``), the
end-to-end tests and the benchmark need:

* ``socat`` with a pty pair: one end (`Simulator.host_port`) is the serial
  port for the adapter's ``port``, the other is the firmware's stdin and
  stdout, exactly a serial line (../shared/REAL_PARTS.md);
* the firmware, ``python -m moat_log.firmware.wasi_runner --flash DIR --sim
  SOCKET``: MicroPython 1.27 (WASI) running ``/flash/main.py``;
* the sim channel, a Unix socket: output pins the firmware sets arrive as
  JSON lines (``{"pin": 5, "out": 1}``) and are kept in `Simulator.outputs`;
  `Simulator.set_input` sends ``{"pin": 4, "in": 1}`` and the like.

With ``relay=True`` a second pty pair is put in between and the simulator
copies bytes across it itself, so that a test can cut the line
(`Simulator.cut`), restore it, and put garbage on it (`Simulator.inject`),
while the firmware and the port stay open.

`Simulator.kill_firmware` is a power cut (``kill -9``); `start_firmware`
powers it up again from its flash.  Everything started is killed when the
block ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path as FsPath
from typing import Any, Final

import trio

from moat_log.errors import AdapterError

__all__ = [
    "Simulator",
    "firmware_dir",
    "firmware_files",
    "install_firmware",
    "open_simulator",
    "pin_kinds",
]

#: What the pty pair's socat prints once both ends exist.
_SOCAT_READY: Final = b"starting data transfer loop"
#: Seconds socat may take to create its ptys before something is wrong.
SOCAT_TIMEOUT: Final = 10.0
#: Seconds `Simulator.until` waits before it fails instead of hanging.
WAIT: Final = 30.0
#: The host-side files of the firmware folder, not copied to a satellite.
_HOST_ONLY: Final = frozenset({"__init__.py", "wasi_runner.py"})


def firmware_dir() -> FsPath:
    """The folder of the firmware's MicroPython files (``moat_log.firmware``)."""
    from moat_log import firmware

    return FsPath(firmware.__file__).parent


def firmware_files() -> list[FsPath]:
    """The files a satellite's flash holds: every firmware module except the host's."""
    return sorted(p for p in firmware_dir().glob("*.py") if p.name not in _HOST_ONLY)


def install_firmware(
    flash: FsPath, sat_id: str, *, keepalive_ms: int = 1000, **settings: Any
) -> bool:
    """Copy the firmware into an empty *flash* folder and give it a config; False if not empty.

    The config (``sat.json``) names the satellite *sat_id*, has no parts (the
    host sends them with ``cfg``), selects the simulated hardware and sets
    the satellite's keepalive (a ``cfg`` changes it only at the next start);
    *settings* are further ``sat.json`` keys (``tick_ms=1``).
    """
    flash.mkdir(parents=True, exist_ok=True)
    if any(flash.iterdir()):
        return False
    for source in firmware_files():
        shutil.copyfile(source, flash / source.name)
    config = {"id": sat_id, "hardware": "sim", "keepalive_ms": keepalive_ms, "parts": {}}
    config.update(settings)
    (flash / "sat.json").write_text(json.dumps(config))
    (flash / "sim").write_text("")
    # The boot counter starts at a random number (as the firmware's own first start does),
    # given here: the WASI build of MicroPython has no entropy source (only clock noise).
    (flash / "boot").write_text(str(int.from_bytes(os.urandom(3), "big")))
    return True


def pin_kinds(flash: FsPath) -> dict[int, tuple[str, str]]:
    """Each configured pin's part name and kind, from the flash's ``sat.json``."""
    try:
        config = json.loads((flash / "sat.json").read_text())
    except (OSError, ValueError):
        return {}
    found: dict[int, tuple[str, str]] = {}
    for name, part in (config.get("parts") or {}).items():
        if isinstance(part, dict) and isinstance(part.get("pin"), int):
            found[part["pin"]] = (name, str(part.get("kind")))
    return found


class Simulator:
    """The running simulated satellite (made by `open_simulator`)."""

    def __init__(self, flash: FsPath, work: FsPath, *, relay: bool) -> None:
        self.flash = flash
        self.work = work
        self.relay = relay
        #: The serial port for the adapter (``port = ...``).
        self.host_port = str(work / "host-tty")
        #: The firmware's end of the line (its stdin and stdout).
        self.firmware_port = str(work / "firmware-tty")
        self._sim_socket = str(work / "sim.sock")
        #: The last value the firmware gave each output pin: ``{5: {"out": 1}}``.
        self.outputs: dict[int, dict[str, Any]] = {}
        #: Every line the firmware sent on the sim channel, in order.
        self.sim_lines: list[dict[str, Any]] = []
        #: Called with each sim line as it comes (the CLI prints them).
        self.on_sim: list[Callable[[dict[str, Any]], object]] = []
        self.firmware: trio.Process | None = None
        self.firmware_starts = 0
        self._changed = trio.Event()
        self._sim_stream: trio.SocketStream | None = None
        self._processes: list[trio.Process] = []
        self._cut = False
        self._to_host: trio.lowlevel.FdStream | None = None
        self._nursery: trio.Nursery | None = None

    # ------------------------------------------------------------- the pins

    async def set_input(self, pin: int, kind: str, value: int | float) -> None:
        """Tell the firmware what a simulated pin sees: kind ``in``, ``adc`` or ``pulses``."""
        await self.send_sim({"pin": pin, kind: value})

    async def send_sim(self, message: dict[str, Any]) -> None:
        while self._sim_stream is None:
            await self._wait_change()
        await self._sim_stream.send_all(json.dumps(message).encode() + b"\n")

    async def until(self, predicate: Callable[[Simulator], bool]) -> None:
        """Wait until *predicate* holds (checked at each sim line); fail after `WAIT` s."""
        with trio.fail_after(WAIT):
            while not predicate(self):
                await self._wait_change()

    async def _wait_change(self) -> None:
        await self._changed.wait()

    def _note_change(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # ------------------------------------------------------------- the line

    def cut(self) -> None:
        """Drop every byte both ways until `restore` (relay only)."""
        assert self.relay, "cut needs open_simulator(relay=True)"
        self._cut = True

    def restore(self) -> None:
        self._cut = False

    async def inject(self, data: bytes) -> None:
        """Put *data* on the line towards the host, as noise or console text (relay only)."""
        assert self._to_host is not None, "inject needs open_simulator(relay=True)"
        await self._to_host.send_all(data)

    # ------------------------------------------------------------ the board

    async def start_firmware(self) -> None:
        """Power the satellite up: run ``/flash/main.py`` on the firmware's end of the line."""
        assert self._nursery is not None
        fd = os.open(self.firmware_port, os.O_RDWR | os.O_NOCTTY)
        try:
            with open(self.work / "firmware.log", "ab") as log_file:  # noqa: ASYNC230 (local, tiny)
                process = await trio.lowlevel.open_process(
                    [
                        sys.executable,
                        "-m",
                        "moat_log.firmware.wasi_runner",
                        "--flash",
                        str(self.flash),
                        "--sim",
                        self._sim_socket,
                    ],
                    stdin=fd,
                    stdout=fd,
                    stderr=log_file,
                )
        finally:
            os.close(fd)
        self.firmware = process
        self.firmware_starts += 1
        self._processes.append(process)

    async def unplug(self) -> None:
        """Pull the USB cable: kill the socat of the host's end; its port goes away (relay only)."""
        assert self.relay, "unplug needs open_simulator(relay=True)"
        process = self._processes[0]
        process.kill()
        await process.wait()

    async def kill_firmware(self) -> None:
        """Cut the satellite's power: ``kill -9``, and wait until it is gone."""
        process = self.firmware
        if process is None:
            return
        process.kill()
        await process.wait()
        self.firmware = None

    async def _serve_sim(self, listener: trio.SocketListener) -> None:
        async with listener:
            while True:
                stream = await listener.accept()
                assert self._nursery is not None
                self._nursery.start_soon(self._read_sim, stream)

    async def _read_sim(self, stream: trio.SocketStream) -> None:
        self._sim_stream = stream  # the newest firmware start's channel
        self._note_change()
        pending = b""
        async with stream:
            while True:
                try:
                    data = await stream.receive_some()
                except trio.BrokenResourceError:
                    data = b""
                if not data:
                    if self._sim_stream is stream:
                        self._sim_stream = None
                    return
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    self._sim_line(line)

    def _sim_line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        self.sim_lines.append(message)
        pin = message.get("pin")
        if isinstance(pin, int):
            self.outputs[pin] = {k: v for k, v in message.items() if k != "pin"}
        for callback in self.on_sim:
            callback(message)
        self._note_change()

    async def _relay(self, source: trio.lowlevel.FdStream, sink: trio.lowlevel.FdStream) -> None:
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):  # unplugged
            while True:
                data = await source.receive_some(8192)
                if not data:
                    return
                if not self._cut:
                    await sink.send_all(data)


async def _socat_pair(nursery: trio.Nursery, one: str, other: str) -> trio.Process:
    """Start socat with a raw pty pair linked at *one* and *other*; return once both exist."""
    socat = shutil.which("socat")
    if socat is None:
        raise AdapterError("socat is not installed (apt-get install socat)")
    process = await trio.lowlevel.open_process(
        [socat, "-d", "-d", f"pty,raw,echo=0,link={one}", f"pty,raw,echo=0,link={other}"],
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    said = b""
    with trio.move_on_after(SOCAT_TIMEOUT):
        while _SOCAT_READY not in said:
            data = await process.stderr.receive_some()
            if not data:
                break
            said += data
    if _SOCAT_READY not in said:
        process.kill()
        raise AdapterError(f"socat did not set up its ptys: {said.decode(errors='replace')}")
    nursery.start_soon(_drain, process.stderr)
    return process


async def _drain(stream: trio.abc.ReceiveStream) -> None:
    with suppress(trio.ClosedResourceError, trio.BrokenResourceError):
        while await stream.receive_some():
            pass


def _open_pty(path: str) -> trio.lowlevel.FdStream:
    return trio.lowlevel.FdStream(os.open(path, os.O_RDWR | os.O_NOCTTY))


@asynccontextmanager
async def open_simulator(
    flash: FsPath, work: FsPath, *, relay: bool = False, start: bool = True
) -> AsyncIterator[Simulator]:
    """Run a simulated satellite on *flash* (firmware installed there) with files in *work*.

    *work* must be short (a Unix socket path lives there).  With *start*
    False the firmware is not powered up (call `Simulator.start_firmware`).
    """
    work.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (local, once)
    simulator = Simulator(flash, work, relay=relay)
    with suppress(FileNotFoundError):
        os.unlink(simulator._sim_socket)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(simulator._sim_socket)
    sock.listen(4)
    listener = trio.SocketListener(sock)
    try:
        async with trio.open_nursery() as nursery:
            simulator._nursery = nursery
            nursery.start_soon(simulator._serve_sim, listener)
            if relay:
                near, far = str(work / "relay-host"), str(work / "relay-firmware")
                simulator._processes.append(await _socat_pair(nursery, simulator.host_port, near))
                simulator._processes.append(
                    await _socat_pair(nursery, far, simulator.firmware_port)
                )
                to_host, to_firmware = _open_pty(near), _open_pty(far)
                simulator._to_host = to_host
                nursery.start_soon(simulator._relay, to_host, to_firmware)
                nursery.start_soon(simulator._relay, to_firmware, to_host)
            else:
                simulator._processes.append(
                    await _socat_pair(nursery, simulator.host_port, simulator.firmware_port)
                )
            if start:
                await simulator.start_firmware()
            try:
                yield simulator
            finally:
                nursery.cancel_scope.cancel()
    finally:
        for process in simulator._processes:
            with suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
        with trio.CancelScope(shield=True):
            for process in simulator._processes:
                await process.wait()
        with suppress(FileNotFoundError):
            os.unlink(simulator._sim_socket)
