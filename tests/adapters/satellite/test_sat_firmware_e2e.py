"""End to end: the real firmware in real MicroPython (WASI) on a socat pty, a node with the adapter.

The simulator (`moat_log.adapters.satellite.simulator`) runs the firmware
from a flash folder with simulated pins, behind a relay that the tests cut,
restore and fill with garbage.  The last test runs a real ``moat-log serve``
and kills it with SIGKILL in the middle of a stream of reports.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path as FsPath
from typing import Any

import pytest
import trio
from sat_support import BOILER_PARTS

from moat_log.adapters.satellite.simulator import Simulator, install_firmware, open_simulator
from moat_log.client import open_client
from moat_log.journal.change import Change
from moat_log.node._node import Node
from moat_log.path import Path
from moat_log.testing import (
    ServeProcess,
    in_process_config,
    running_node,
    short_temp_dir,
)
from moat_log.testing import until_adapter_status as until_status

pytestmark = pytest.mark.slow

KEEPALIVE_MS = 500
SOURCE = re.compile(r"sat:boiler/(\w+)@([0-9a-f]{8})\.(\d+)")
DOOR, PUMP, FAN, METER = (Path.parse(f"home.boiler.{p}") for p in ("door", "pump", "fan", "meter"))

ADAPTER = f"""
[adapters.boiler]
type = "satellite"
port = "{{port}}"
prefix = "home.boiler"
keepalive = {KEEPALIVE_MS / 1000}
reconnect_first = 0.05
reconnect_max = 0.2
{BOILER_PARTS}
[adapters.boiler.parts.meter]
kind = "counter"
pin = 8
interval_ms = 20
"""


@asynccontextmanager
async def simulated() -> AsyncIterator[Simulator]:
    with short_temp_dir() as folder:
        flash = folder / "flash"
        install_firmware(flash, "boiler", keepalive_ms=KEEPALIVE_MS)
        async with open_simulator(flash, folder / "run", relay=True) as sim:
            yield sim


def node_config(data_dir: FsPath, sim: Simulator) -> Any:
    return in_process_config('node = "n1"\n' + ADAPTER.format(port=sim.host_port), data_dir)


def sources(node: Node, path: Path) -> list[tuple[str, int, int]]:
    """(part, boot, seq) of every event of *path* stored from a report, oldest first."""
    found = []
    for event in node.journal.history(path):
        match = SOURCE.fullmatch(event.source)
        assert match, event.source
        found.append((match[1], int(match[2], 16), int(match[3])))
    return found


def report_numbers(node: Node) -> list[int]:
    """The numbers of every report stored, of every part, in order: 1, 2, 3 ... without gaps."""
    return sorted(seq for path in (DOOR, METER) for _part, _boot, seq in sources(node, path))


def value(node: Node, path: Path) -> object:
    return node.kv.value(path)


async def started(node: Node) -> None:
    """Until the adapter is connected and the door's first report (at the parts' start) is in."""
    await until_status(
        node.adapters["boiler"], lambda s: s.state == "connected" and value(node, DOOR) is not None
    )


async def test_reports_and_sets_go_through_the_real_firmware_with_garbage_on_the_line(
    tmp_path: FsPath,
) -> None:
    async with simulated() as sim, running_node(node_config(tmp_path, sim)) as node:
        status = node.adapters["boiler"]
        await started(node)
        assert value(node, DOOR) is False
        ((part, boot, _seq),) = sources(node, DOOR)
        assert part == "door"
        assert status.details["boot"] == f"{boot:08x}"
        assert status.details["firmware"].startswith("moat-sat")
        await sim.set_input(4, "in", 1)
        await until_status(status, lambda s: value(node, DOOR) is True)
        await node.write(Change(PUMP, True))
        await sim.until(lambda s: s.outputs.get(5) == {"out": 1})
        await node.write(Change(FAN, 0.25))
        await sim.until(lambda s: s.outputs.get(6) == {"duty": 0.25})
        await until_status(status, lambda s: s.counts["sent"] == 2)
        console = status.details.get("console", 0)
        noise = b"boot banner: hello\r\n" + b"\xfa\x05abc" + b"\xfa\x02hi\x12\x34" + b"more text\n"
        await sim.inject(noise)
        await until_status(status, lambda s: s.details.get("console", 0) >= console + 20)
        await sim.set_input(4, "in", 0)
        await until_status(status, lambda s: value(node, DOOR) is False)
        assert [v for v in (e.value for e in node.journal.history(DOOR))] == [False, True, False]
        numbers = report_numbers(node)
        assert numbers == list(range(1, len(numbers) + 1))
        assert status.state == "connected"


async def test_a_refused_command_shows_its_reason_in_status(tmp_path: FsPath) -> None:
    async with simulated() as sim, running_node(node_config(tmp_path, sim)) as node:
        status = node.adapters["boiler"]
        await started(node)
        await node.write(Change(FAN, 1.5))
        await until_status(status, lambda s: s.details.get("commands_refused") == 1)
        assert status.last_bad == "boiler/fan: refused: pwm duty 1.5 not in 0..1"
        report = node.status(None)["adapters"]["boiler"]
        assert report["last_bad"] == status.last_bad
        assert report["bad"] == 1
        assert 6 not in sim.outputs or sim.outputs[6] == {"duty": 0.0}


async def test_a_cut_line_is_noticed_and_nothing_is_lost_or_doubled(tmp_path: FsPath) -> None:
    async with simulated() as sim, running_node(node_config(tmp_path, sim)) as node:
        status = node.adapters["boiler"]
        await started(node)
        sim.cut()
        await sim.set_input(4, "in", 1)  # reported into the ring while the line is cut
        await until_status(status, lambda s: s.state == "backing-off")
        assert "no valid frame" in (status.last_error or "")
        await sim.set_input(4, "in", 0)
        sim.restore()
        await until_status(status, lambda s: len(sources(node, DOOR)) == 3)
        assert [e.value for e in node.journal.history(DOOR)] == [False, True, False]
        numbers = report_numbers(node)
        assert numbers == list(range(1, len(numbers) + 1)), "a report lost or stored twice"
        await until_status(status, lambda s: s.state == "connected")


async def test_a_satellite_power_cut_is_a_new_boot_and_the_outputs_are_repaired(
    tmp_path: FsPath,
) -> None:
    async with simulated() as sim, running_node(node_config(tmp_path, sim)) as node:
        status = node.adapters["boiler"]
        await started(node)
        first_boot = status.details["boot"]
        await node.write(Change(PUMP, True))
        await sim.until(lambda s: s.outputs.get(5) == {"out": 1})
        await sim.kill_firmware()
        sim.outputs.clear()
        await sim.start_firmware()
        await sim.until(lambda s: s.outputs.get(5) == {"out": 1})  # init false, then the repair
        await until_status(status, lambda s: len(sources(node, DOOR)) == 2)
        boots = [boot for _p, boot, _s in sources(node, DOOR)]
        assert boots[0] != boots[1]
        assert status.details["boot"] == f"{boots[1]:08x}" != first_boot


async def test_a_port_that_vanishes_ends_the_connection_with_a_clear_error(
    tmp_path: FsPath,
) -> None:
    async with simulated() as sim, running_node(node_config(tmp_path, sim)) as node:
        status = node.adapters["boiler"]
        await started(node)
        await sim.unplug()
        await until_status(status, lambda s: s.state == "backing-off")
        assert f"serial port {sim.host_port}" in (status.last_error or "")


# --- a real moat-log serve, killed with SIGKILL --------------------------------------


@contextmanager
def serving(config: FsPath) -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


async def stored_reports(data_dir: FsPath, path: Path, until: Callable[[Any], bool]) -> list[Any]:
    """Watch *path* until its value passes *until*; then every event of the reporting paths."""
    async with open_client(data_dir=data_dir) as client:
        with trio.fail_after(60):
            async with client.watch(path) as stream:
                async for item in stream:
                    if getattr(item, "path", None) == path and until(item.value):
                        break
        events = []
        for reporting in (DOOR, METER):
            async with client.history(reporting) as history:
                events += [event async for event in history]
    return events


async def test_a_host_killed_mid_stream_fetches_the_missed_reports_once(tmp_path: FsPath) -> None:
    async with simulated() as sim:
        folder = sim.work.parent
        data_dir = folder / "data"
        config = folder / "node.toml"
        config.write_text(
            f'node = "pi1"\ndata_dir = "{data_dir}"\n[client]\nlisten = ["unix"]\n'
            + ADAPTER.format(port=sim.host_port)
        )
        pulses = 0
        generating = trio.Event()
        stop = trio.Event()

        async def generate() -> None:
            nonlocal pulses
            while not stop.is_set():
                await sim.set_input(8, "pulses", 1)
                pulses += 1
                if pulses == 30:
                    generating.set()
                await trio.sleep(0.01)  # pacing the load, not waiting for anything

        with serving(config) as started:
            started.append(await trio.to_thread.run_sync(ServeProcess, config))
            await stored_reports(data_dir, DOOR, lambda v: v is False)  # the first report
            async with trio.open_nursery() as nursery:
                nursery.start_soon(generate)
                await generating.wait()
                await stored_reports(data_dir, METER, lambda v: v >= 10)
                await trio.to_thread.run_sync(started[0].kill)  # in the middle of the stream
                stop.set()
            started.append(await trio.to_thread.run_sync(ServeProcess, config))
            events = await stored_reports(data_dir, METER, lambda v: v >= pulses)
        seqs = sorted(int(SOURCE.fullmatch(e.source)[3]) for e in events)  # type: ignore[index]
        assert seqs == list(range(1, len(seqs) + 1)), "a report lost or stored twice"
        assert max(e.value for e in events if e.path == METER) == pulses
