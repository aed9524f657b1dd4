"""The satellite adapter in a node against a satproto.SatelliteEnd in memory, on a real pty.

Fast: no MicroPython.  The firmware itself is tested end to end in
test_sat_firmware_e2e.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path as FsPath

import trio
from memory_satellite import MemorySatellite
from sat_support import BOILER_PARTS

from moat_log.journal.change import Change
from moat_log.node._node import Node
from moat_log.node.config import NodeConfig
from moat_log.path import Path
from moat_log.testing import in_process_config, running_node
from moat_log.testing import until_adapter_status as until_status

PARTS = BOILER_PARTS


def config(data_dir: FsPath, port: str, extra: str = "") -> NodeConfig:
    return in_process_config(
        f"""
node = "n1"
[adapters.boiler]
type = "satellite"
port = "{port}"
prefix = "home.boiler"
keepalive = 0.2
reconnect_first = 0.01
reconnect_max = 0.05
{extra}
{PARTS}
""",
        data_dir,
    )


@asynccontextmanager
async def satellite(sat_id: str = "boiler") -> AsyncIterator[MemorySatellite]:
    sat = MemorySatellite(sat_id)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sat.run)
            yield sat
            nursery.cancel_scope.cancel()
    finally:
        sat.close()


def stored(node: Node, text: str) -> tuple[object, str] | None:
    event = node.kv.get(Path.parse(text))
    return None if event is None else (event.value, event.source)


def door_sources(node: Node) -> list[str]:
    return [e.source for e in node.journal.history(Path.parse("home.boiler.door"))]


async def connected(node: Node) -> None:
    await until_status(node.adapters["boiler"], lambda s: s.state == "connected")


async def test_reports_become_events_with_their_source_and_the_cfg_is_sent(
    tmp_path: FsPath,
) -> None:
    async with satellite() as sat, running_node(config(tmp_path, sat.port)) as node:
        status = node.adapters["boiler"]
        await connected(node)
        assert sat.configs[0]["parts"]["door"] == {"kind": "input", "pin": 4}
        assert sat.configs[0]["id"] == "boiler"
        sat.report("door", True)
        sat.report("door", False)
        await until_status(status, lambda s: s.details.get("reports_stored") == 2)
        assert door_sources(node) == ["sat:boiler/door@0000002a.1", "sat:boiler/door@0000002a.2"]
        assert stored(node, "home.boiler.door") == (False, "sat:boiler/door@0000002a.2")
        report = node.status(None)["adapters"]["boiler"]
        assert (report["satellite"], report["firmware"], report["boot"]) == (
            "boiler",
            "memory-1",
            "0000002a",
        )
        assert report["written"] == 2


async def test_a_set_reaches_the_output_and_a_refusal_is_bad_data_with_the_reason(
    tmp_path: FsPath,
) -> None:
    async with satellite() as sat, running_node(config(tmp_path, sat.port)) as node:
        status = node.adapters["boiler"]
        await connected(node)
        await node.write(Change(Path.parse("home.boiler.pump"), True))
        await sat.until(lambda: sat.outputs.get("pump") is True)
        await until_status(status, lambda s: s.counts["sent"] == 1)
        sat.refuse["w fan"] = "pwm duty 0.5 not allowed today"
        await node.write(Change(Path.parse("home.boiler.fan"), 0.5))
        await until_status(status, lambda s: s.details.get("commands_refused") == 1)
        assert status.last_bad == "boiler/fan: refused: pwm duty 0.5 not allowed today"
        writes = [args for _cseq, verb, args in sat.commands if verb == "w"]
        assert writes == [["pump", True], ["fan", 0.5]]  # the refused one is not sent again
        assert status.state == "connected"


async def test_a_restart_repairs_the_outputs_and_its_reports_number_anew(tmp_path: FsPath) -> None:
    async with satellite() as sat, running_node(config(tmp_path, sat.port)) as node:
        status = node.adapters["boiler"]
        await connected(node)
        await node.write(Change(Path.parse("home.boiler.pump"), True))
        await sat.until(lambda: sat.outputs.get("pump") is True)
        sat.report("door", True)
        await until_status(status, lambda s: s.details.get("reports_stored") == 1)
        sat.outputs.clear()
        sat.restart(boot=0x2B)
        await sat.until(lambda: sat.outputs.get("pump") is True)  # the repair
        sat.report("door", False)
        await until_status(status, lambda s: s.details.get("reports_stored") == 2)
        assert door_sources(node) == ["sat:boiler/door@0000002a.1", "sat:boiler/door@0000002b.1"]
        assert status.details["boot"] == "0000002b"


async def test_reports_made_while_the_host_is_away_arrive_once(tmp_path: FsPath) -> None:
    async with satellite() as sat:
        async with running_node(config(tmp_path, sat.port)) as node:
            await connected(node)
            sat.report("door", True)
            await until_status(
                node.adapters["boiler"], lambda s: s.details.get("reports_stored") == 1
            )
        for value in (False, True, False):
            sat.report("door", value)
        async with running_node(config(tmp_path, sat.port)) as node:
            status = node.adapters["boiler"]
            await until_status(status, lambda s: s.details.get("reports_stored") == 3)
            assert door_sources(node) == [f"sat:boiler/door@0000002a.{n}" for n in (1, 2, 3, 4)]


async def test_a_silent_line_is_dead_and_comes_back_without_loss(tmp_path: FsPath) -> None:
    async with satellite() as sat, running_node(config(tmp_path, sat.port)) as node:
        status = node.adapters["boiler"]
        await connected(node)
        sat.silent = True
        sat.report("door", True)  # made while the line is down
        await until_status(status, lambda s: s.state == "backing-off")
        assert "no valid frame" in (status.last_error or "")
        sat.silent = False
        await until_status(status, lambda s: s.details.get("reports_stored") == 1)
        assert door_sources(node) == ["sat:boiler/door@0000002a.1"]
        assert status.connections >= 2


async def test_the_wrong_satellite_is_not_served(tmp_path: FsPath) -> None:
    async with satellite("other") as sat, running_node(config(tmp_path, sat.port)) as node:
        status = node.adapters["boiler"]
        await until_status(status, lambda s: s.last_error is not None)
        assert "is 'other', not 'boiler'" in (status.last_error or "")
        assert sat.configs == []


async def test_a_port_that_does_not_exist_is_a_clear_error(tmp_path: FsPath) -> None:
    async with running_node(config(tmp_path, str(tmp_path / "no-such-tty"))) as node:
        status = node.adapters["boiler"]
        await until_status(status, lambda s: s.last_error is not None)
        assert f"serial port {tmp_path / 'no-such-tty'}: cannot open it" in (
            status.last_error or ""
        )
