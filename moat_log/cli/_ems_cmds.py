"""``moat-log ems``: the energy schedule's plans, and what-if runs over the past."""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Sequence
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

import asyncclick as click

from moat_log.errors import ConfigError, InvalidInputError
from moat_log.path import Path
from moat_log.records import FieldError
from moat_log.timespec import format_time

from ._main import CONFIG_ENV, MoatLogGroup, Settings, cli, config_file_option
from ._node_access import open_access, running_node_status
from ._output import print_fields, print_json, print_table, stdout_is_terminal
from ._values import TIME_HELP, resolve_range, resolve_time

if TYPE_CHECKING:
    from moat_log.projections.ems.settings import EmsSettings
    from moat_log.projections.ems.whatif import WhatIf

NODE_CONFIG_HELP = (
    "The node's config, whose [ems.NAME] tables say what the schedule reads and "
    "writes [default: ask the running node]."
)


@cli.group(cls=MoatLogGroup)
def ems() -> None:
    """The energy schedule: battery plans computed from prices and forecasts.

    A node with an [ems.NAME] table in its config plans the battery whenever
    an input changes and at every slot (docs/ems.md).  These commands show
    the plan and run the schedule over the past with another configuration.

    \b
    Example:
      moat-log ems ls
      moat-log ems plan home --chart plan.svg
      moat-log ems whatif home --since -7d --until now --config bigger.toml
    """


_node_config_option = config_file_option(NODE_CONFIG_HELP, name="--node-config", dest="node_config")


def _schedules_from_config(file: FsPath) -> tuple[EmsSettings, ...]:
    from moat_log.node.config import load_config

    return load_config(file).ems


def _pick(schedules: Sequence[EmsSettings], name: str | None, where: str) -> EmsSettings:
    if name is None:
        if len(schedules) == 1:
            return schedules[0]
        names = ", ".join(s.name for s in schedules) or "none"
        raise InvalidInputError(f"{where} has the schedules {names}: name one")
    for schedule in schedules:
        if schedule.name == name:
            return schedule
    names = ", ".join(s.name for s in schedules) or "none"
    raise InvalidInputError(f"{where} has no schedule {name!r} (it has {names})")


@ems.command("ls")
@_node_config_option
@click.pass_obj
async def ems_ls(settings: Settings, node_config: FsPath | None) -> None:
    """List the schedules: what each reads and writes, and how it is doing.

    Asks the running node (its status), or with --node-config reads the
    config file instead.

    \b
    Example:
      moat-log ems ls
      moat-log ems ls --node-config /etc/moat-log/node.toml --json
    """
    if node_config is not None:
        from moat_log.projections.ems.runner import describe

        result: dict[str, Any] = {
            s.name: {"prefix": str(s.prefix), **describe(s)}
            for s in _schedules_from_config(node_config)
        }
    else:
        status = await running_node_status(settings, "--node-config")
        result = status.get("ems", {})
    if settings.as_json:
        print_json(result)
    elif not result:
        click.echo("no energy schedules configured")
    else:
        rows = [
            (
                name,
                entry.get("prefix", ""),
                str(entry.get("state", "")),
                str(entry.get("writer", ", ".join(entry.get("writers", [])))),
                str(entry.get("error", "")),
            )
            for name, entry in result.items()
        ]
        print_table(("SCHEDULE", "PREFIX", "STATE", "WRITER", "ERROR"), rows)


@ems.command("plan")
@click.argument("name", required=False)
@_node_config_option
@click.option("--at", "at", metavar="T", help=f"The plan as it stood at T. {TIME_HELP}")
@click.option(
    "--chart",
    "chart",
    type=click.Path(dir_okay=False, path_type=FsPath),
    metavar="FILE",
    help="Also draw the plan (price, PV, load, battery, state of charge) to FILE.svg or .png.",
)
@click.pass_obj
async def ems_plan(
    settings: Settings,
    *,
    name: str | None,
    node_config: FsPath | None,
    at: str | None,
    chart: FsPath | None,
) -> None:
    """Show a schedule's plan: per slot the prices, forecasts and what the battery does.

    NAME is the schedule ([ems.NAME]); it may be left out when there is one.
    Without --node-config the running node says where the plan is; with
    neither, the plan is read from ems.NAME.plan.

    \b
    Example:
      moat-log ems plan
      moat-log ems plan home --chart /tmp/plan.svg
      moat-log ems plan home --at -1d --json
    """
    prefix = await _prefix(settings, name, node_config)
    path = prefix / "plan"
    if at is not None:
        event = _plan_at(settings, path, at)
    else:
        async with open_access(settings) as access:
            event = await access.current(path)
    if event is None or not isinstance(event.value, dict):
        raise InvalidInputError(f"there is no plan at {path}{'' if at is None else f' at {at}'}")
    plan = event.value
    _check_plan(plan, path)
    if chart is not None:
        _chart(plan, chart, str(path))
    if settings.as_json:
        print_json({"path": str(path), "id": str(event.id), "source": event.source,
                    "cause": None if event.cause is None else str(event.cause),
                    "time": format_time(event.hlc), "plan": plan})  # fmt: skip
        return
    print_fields(
        {
            "plan": str(path),
            "computed": f"{format_time(event.hlc)} by {event.source} ({event.id})",
            "because of": "no cause recorded" if event.cause is None else str(event.cause),
            "solver": str(plan.get("solver", "")),
            "cost": f"{plan['cost']:.4f} over {len(plan['battery_kw'])} slots",
        }
    )
    click.echo()
    print_table(
        ("SLOT", "BUY", "SELL", "PV kW", "LOAD kW", "BATTERY kW", "GRID kW", "SOC %", "COST"),
        _plan_rows(plan),
    )
    if chart is not None and not settings.as_json:
        click.echo(f"\nchart written to {chart}", err=True)


def _check_plan(plan: dict[str, Any], path: Path) -> None:
    keys = ("start", "slot", "battery_kw", "grid_kw", "soc", "pv_kw", "load_kw",
            "price_buy", "price_sell", "slot_cost", "cost")  # fmt: skip
    missing = [key for key in keys if key not in plan]
    if missing:
        raise InvalidInputError(f"{path} does not hold a plan (no {missing[0]!r})")


def _plan_at(settings: Settings, path: Path, at: str) -> Any:
    from moat_log.projections.replay import replay

    with settings.journal() as journal:
        moment = resolve_time(journal, at, "--at")
        return replay(journal, moment, prefix=path).get(path)


async def _prefix(settings: Settings, name: str | None, node_config: FsPath | None) -> Path:
    if node_config is not None:
        return _pick(_schedules_from_config(node_config), name, str(node_config)).prefix
    async with open_access(settings) as access:
        status = await access.status()
    running = status.get("ems", {}) if status.get("running") else {}
    if running:
        names = list(running)
        if name is None and len(names) == 1:
            name = names[0]
        if name in running:
            return Path.parse(running[name]["prefix"])
    if name is None:
        raise InvalidInputError("name the schedule (ems.NAME), or give --node-config FILE")
    return Path(("ems", name))


def _slot_label(start: int, index: int, slot: int, previous_day: list[str]) -> str:
    moment = dt.datetime.fromtimestamp(start + index * slot).astimezone()
    day = moment.strftime("%Y-%m-%d")
    if previous_day and previous_day[0] == day:
        return moment.strftime("%H:%M")
    previous_day[:] = [day]
    return moment.strftime("%Y-%m-%d %H:%M")


def _plan_rows(plan: dict[str, Any]) -> list[tuple[str, ...]]:
    day: list[str] = []
    rows: list[tuple[str, ...]] = []
    for i, battery in enumerate(plan["battery_kw"]):
        rows.append(
            (
                _slot_label(plan["start"], i, plan["slot"], day),
                f"{plan['price_buy'][i]:.4f}",
                f"{plan['price_sell'][i]:.4f}",
                f"{plan['pv_kw'][i]:.2f}",
                f"{plan['load_kw'][i]:.2f}",
                f"{battery:+.2f}",
                f"{plan['grid_kw'][i]:+.2f}",
                f"{plan['soc'][i] * 100:.1f}",
                f"{plan['slot_cost'][i]:+.4f}",
            )
        )
    return rows


def _chart(plan: dict[str, Any], file: FsPath, title: str) -> None:
    from moat_log.charts import Panel, Series, write_chart

    times = [plan["start"] + i * plan["slot"] for i in range(len(plan["battery_kw"]) + 1)]

    def steps(values: list[float], scale: float = 1.0) -> list[tuple[float, float | None]]:
        points: list[tuple[float, float | None]] = [
            (t, v * scale) for t, v in zip(times, values, strict=False)
        ]
        return [*points, (times[-1], values[-1] * scale)] if values else points

    soc = [(times[i + 1], v * 100) for i, v in enumerate(plan["soc"])]
    panels = [
        Panel("price", "per kWh", [Series("buy", steps(plan["price_buy"]), step=True),
                                   Series("sell", steps(plan["price_sell"]), step=True)]),
        Panel("power", "kW", [Series("PV", steps(plan["pv_kw"]), step=True),
                              Series("load", steps(plan["load_kw"]), step=True),
                              Series("battery", steps(plan["battery_kw"]), step=True),
                              Series("grid", steps(plan["grid_kw"]), step=True)]),
        Panel("state of charge", "%", [Series("SoC", soc)]),
    ]  # fmt: skip
    write_chart(panels, file, title=title)


# --- what-if -----------------------------------------------------------------


@ems.command("whatif")
@click.argument("name", required=False)
@_node_config_option
@click.option("--since", required=True, metavar="T1", help=f"Start of the range. {TIME_HELP}")
@click.option("--until", default="now", show_default=True, metavar="T2", help="End of the range.")
@click.option(
    "--config",
    "other",
    type=click.Path(dir_okay=False, exists=True, path_type=FsPath),
    metavar="FILE",
    help="TOML with the keys of an [ems.NAME] table to change, e.g. [battery] capacity_kwh = 20. "
    "Without it the live configuration is run against itself (and the stored plans).",
)
@click.option(
    "--soc",
    type=click.Choice(["simulated", "recorded"]),
    default="simulated",
    show_default=True,
    help="Start each plan from the battery the plans would have left (simulated), or from "
    "the state of charge recorded in the journal.",
)
@click.option("--slots", is_flag=True, help="Show every slot, not one line per day.")
@click.pass_obj
def ems_whatif(
    settings: Settings,
    *,
    name: str | None,
    node_config: FsPath | None,
    since: str,
    until: str,
    other: FsPath | None,
    soc: str,
    slots: bool,
) -> None:
    """Run the schedule over a past range with another configuration, and compare.

    The schedule plans as the live node would have (after each input change
    and at every slot), from the inputs as the journal held them, once with
    the live configuration and once with --config laid over it, and
    executes each plan's first slot.  Shown side by side, per day or per
    slot: the cost of each, the plans the live node stored, and the state
    of charge recorded.  The journal is read, never written.

    \b
    Example:
      moat-log ems whatif --since -30d --config bigger-battery.toml
      moat-log ems whatif home --since 2026-11-01 --until 2026-12-01 --slots --json
    """
    from moat_log.projections.ems.settings import override
    from moat_log.projections.ems.whatif import whatif

    if node_config is None:
        raise click.UsageError(
            f"give --node-config FILE (or ${CONFIG_ENV}): the what-if needs the live schedule's "
            "inputs and settings"
        )
    live = _pick(_schedules_from_config(node_config), name, str(node_config))
    changed = live if other is None else _override(live, other, override)
    with settings.journal() as journal:
        start, end = resolve_range(journal, since, until)
        assert start is not None and end is not None
        if end <= start:
            raise InvalidInputError("--until must be after --since")
        label = "planning"
        from ._output import progress_bar

        span = int((end - start) / 1e9)
        with progress_bar(2 * span, label) as progress:
            done = [0.0, start / 1e9]

            def report(now: float) -> None:
                if now < done[1]:
                    done[0] += span  # the second run started
                done[1] = now
                if progress is not None:
                    progress(int(done[0] + now - start / 1e9))

            result = whatif(journal, live, changed, start / 1e9, end / 1e9, soc=soc,  # type: ignore[arg-type]
                            progress=report)  # fmt: skip
    if settings.as_json:
        print_json(_whatif_json(result, slots=slots))
        return
    _print_whatif(result, slots=slots)


def _override(live: EmsSettings, file: FsPath, override: Any) -> EmsSettings:
    try:
        with open(file, "rb") as stream:
            document = tomllib.load(stream)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    try:
        result: EmsSettings = override(live, document, where="")
    except FieldError as exc:
        raise ConfigError(f"{file}: {exc}") from None
    return result


def _whatif_json(result: WhatIf, *, slots: bool) -> dict[str, Any]:
    def run(entry: Any) -> dict[str, Any]:
        out: dict[str, Any] = entry.summary()
        if slots:
            out["slots"] = [
                {"start": s.start, "battery_kw": s.battery_kw, "grid_kw": s.grid_kw,
                 "soc": s.soc, "cost": s.cost, "price_buy": s.price_buy,
                 "price_sell": s.price_sell, "pv_kw": s.pv_kw, "load_kw": s.load_kw}
                for s in sorted(entry.slots.values(), key=lambda s: s.start)
            ]  # fmt: skip
        return out

    return {
        "since": format_time(int(result.since * 1e9)),
        "until": format_time(int(result.until * 1e9)),
        "live": run(result.live),
        "whatif": run(result.other),
        "stored": run(result.stored),
        "recorded_soc": {str(k): v for k, v in sorted(result.recorded_soc.items())},
    }


def _print_whatif(result: WhatIf, *, slots: bool) -> None:
    live, other, stored = result.live, result.other, result.stored
    print_fields(
        {
            "range": f"{_time(result.since)} .. {_time(result.until)}",
            "live": _run_line(live),
            "what-if": _run_line(other),
            "stored plans": (
                f"{stored.plans} plans, {len(stored.slots)} slots, cost {stored.cost:+.4f}"
                if stored.plans
                else "none in this range"
            ),
            "difference": f"{other.cost - live.cost:+.4f} (what-if minus live)",
        }
    )
    for run_name, run in (("live", live), ("what-if", other)):
        for message, count in run.errors.items():
            click.echo(f"{run_name}: {count}x no plan: {message}", err=True)
    click.echo()
    if slots:
        header = ("SLOT", "BUY", "LIVE kW", "LIVE SOC", "WHAT-IF kW", "WHAT-IF SOC",
                  "STORED kW", "RECORDED SOC")  # fmt: skip
        rows: list[tuple[str, ...]] = []
        for start in result.slot_starts():
            a, b, c = live.slots.get(start), other.slots.get(start), stored.slots.get(start)
            first = a or b or c
            assert first is not None
            recorded = result.recorded_soc.get(start)
            rows.append(
                (
                    format_time(start * 10**9),
                    f"{first.price_buy:.4f}",
                    "" if a is None else f"{a.battery_kw:+.2f}",
                    "" if a is None else f"{a.soc * 100:.1f}",
                    "" if b is None else f"{b.battery_kw:+.2f}",
                    "" if b is None else f"{b.soc * 100:.1f}",
                    "" if c is None else f"{c.battery_kw:+.2f}",
                    "" if recorded is None else f"{recorded * 100:.1f}",
                )
            )
        print_table(header, rows)
        return
    days: dict[str, list[float]] = {}
    for run_index, run in enumerate((live, other, stored)):
        for slot in run.slots.values():
            day = dt.datetime.fromtimestamp(slot.start).astimezone().strftime("%Y-%m-%d")
            days.setdefault(day, [0.0, 0.0, 0.0])[run_index] += slot.cost
    rows = [
        (day, f"{a:+.4f}", f"{b:+.4f}", f"{b - a:+.4f}", f"{c:+.4f}" if stored.plans else "")
        for day, (a, b, c) in sorted(days.items())
    ]
    print_table(("DAY", "LIVE COST", "WHAT-IF COST", "DIFFERENCE", "STORED PLANS COST"), rows)
    if stdout_is_terminal() and not slots:
        click.echo("\n(--slots shows every slot)", err=True)


def _time(seconds: float) -> str:
    return format_time(int(seconds * 1e9))


def _run_line(run: Any) -> str:
    end = "" if run.end_soc is None else f", ends at {run.end_soc * 100:.1f} %"
    battery = run.settings.battery
    return (
        f"cost {run.cost:+.4f} over {len(run.slots)} slots, {run.plans} plans "
        f"({battery.capacity_kwh:g} kWh, {battery.charge_kw:g}/{battery.discharge_kw:g} kW{end})"
    )
