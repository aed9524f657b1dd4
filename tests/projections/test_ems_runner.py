"""The energy schedule in a node: inputs as events in, plans as events out."""

from __future__ import annotations

import time
from pathlib import Path as FsPath
from typing import Any

import trio

from moat_log.event import Event
from moat_log.journal.change import Change
from moat_log.node._node import Node
from moat_log.path import Path
from moat_log.projections.ems.runner import ScheduleRun
from moat_log.testing import in_process_config, running_node

CONFIG = """
node = "pi1"
[ems.home]
debounce = 0
{extra}
[ems.home.inputs]
price_buy = "energy.price.buy"
price_sell = "energy.price.sell"
soc = "battery.soc"
load = "energy.forecast.load"
[ems.home.battery]
capacity_kwh = 10
"""

WAIT = 30.0


def price_series(values: list[float]) -> dict[str, Any]:
    start = int(time.time() // 3600) * 3600
    return {"start": start, "step": 3600, "values": values}


async def write(node: Node, path: str, value: Any) -> Event:
    return await node.write(Change(Path.parse(path), value, source="cli:test"))


async def plan_after(run: ScheduleRun, event: Event) -> None:
    """Wait until the schedule handled a plan that follows from *event*."""
    with trio.fail_after(WAIT):
        while True:
            handled = run.plan_handled
            if run.handled_cause == event.id:
                return
            await handled.wait()


async def feed_inputs(node: Node, run: ScheduleRun, buy: list[float]) -> Event:
    await write(node, "energy.price.sell", 0.05)
    await write(node, "energy.forecast.load", 1.0)
    await write(node, "battery.soc", 0.5)
    last = await write(node, "energy.price.buy", price_series(buy))
    await plan_after(run, last)
    return last


async def test_a_price_change_writes_a_plan_caused_by_it(tmp_path: FsPath) -> None:
    config = in_process_config(CONFIG.format(extra=""), tmp_path)
    async with running_node(config) as node:
        run = node.schedules["home"]
        price = await feed_inputs(node, run, [0.1] * 6 + [0.5] * 6 + [0.3] * 12)
        plan = node.kv.get(Path.parse("ems.home.plan"))
        assert plan is not None
        assert plan.source == "ems:home"
        assert plan.cause == price.id
        assert plan.value["slot"] == 900
        # from the current slot to the end of the 24 hourly prices
        series_end = price.value["start"] + 24 * 3600
        assert len(plan.value["battery_kw"]) == (series_end - plan.value["start"]) // 900
        assert plan.value["start"] % 900 == 0 and plan.value["start"] >= price.value["start"]
        command = node.kv.get(Path.parse("ems.home.battery_kw"))
        assert command is not None and command.value == plan.value["battery_kw"][0]
        assert node.status(None)["ems"]["home"]["state"] == "ok"

        dearer = await write(node, "energy.price.buy", price_series([0.6] * 24))
        await plan_after(run, dearer)
        again = node.kv.get(Path.parse("ems.home.plan"))
        assert again is not None and again.cause == dearer.id


async def test_bad_input_keeps_the_last_good_plan_and_says_why(tmp_path: FsPath) -> None:
    config = in_process_config(CONFIG.format(extra=""), tmp_path)
    async with running_node(config) as node:
        run = node.schedules["home"]
        await feed_inputs(node, run, [0.2] * 24)
        good = node.kv.get(Path.parse("ems.home.plan"))
        await plan_after(run, await write(node, "battery.soc", 57))  # a percentage
        status = node.status(None)["ems"]["home"]
        assert status["state"] == "error"
        assert "fraction 0 .. 1" in status["error"]
        assert node.kv.get(Path.parse("ems.home.plan")) == good
        said = node.kv.get(Path.parse("ems.home.status"))
        assert said is not None and said.value.startswith("error: soc (battery.soc)")


async def test_a_node_that_is_not_the_writer_computes_but_does_not_write(tmp_path: FsPath) -> None:
    config = in_process_config(CONFIG.format(extra='writers = ["pi9", "pi1x"]'), tmp_path)
    async with running_node(config) as node:
        run = node.schedules["home"]
        await feed_inputs(node, run, [0.2] * 24)
        assert run.scheduler.last_plan is not None
        assert node.kv.get(Path.parse("ems.home.plan")) is None
        status = node.status(None)["ems"]["home"]
        assert status["writing"] is False and status["writer"] == ""


async def test_an_unchanged_plan_is_not_written_again(tmp_path: FsPath) -> None:
    config = in_process_config(CONFIG.format(extra=""), tmp_path)
    async with running_node(config) as node:
        run = node.schedules["home"]
        await feed_inputs(node, run, [0.2] * 24)
        writes = run.writes
        await plan_after(run, await write(node, "energy.forecast.load", 1.0))  # the same again
        assert run.writes == writes


async def test_an_infeasible_load_keeps_the_last_plan_and_names_the_slot(tmp_path: FsPath) -> None:
    extra = "[ems.home.grid]\nimport_kw = 2\ninverter_kw = 1"
    config = in_process_config(CONFIG.format(extra="") + extra, tmp_path)
    async with running_node(config) as node:
        run = node.schedules["home"]
        await feed_inputs(node, run, [0.2] * 24)
        good = node.kv.get(Path.parse("ems.home.plan"))
        assert good is not None
        await plan_after(run, await write(node, "energy.forecast.load", 5.0))
        status = node.status(None)["ems"]["home"]
        assert status["state"] == "error"
        assert (
            "a load of 5 kW is more than the grid (2 kW) and the inverter (1 kW)" in status["error"]
        )
        assert node.kv.get(Path.parse("ems.home.plan")) == good
