"""The ``[ems.NAME]`` tables of a node's config: one battery schedule each.

Example (docs/ems.md has the reference)::

    [ems.home]
    writers = ["pi1", "pi2"]   # who writes the plan: the first of these that is live
    slot = 900                 # seconds per slot
    horizon = 86400            # seconds planned ahead (at most)

    [ems.home.inputs]
    price_buy = "energy.price.buy"
    price_sell = "energy.price.sell"
    pv = "energy.forecast.pv"
    load = "energy.forecast.load"
    soc = "battery.soc"

    [ems.home.battery]
    capacity_kwh = 10.0
    charge_kw = 5.0

Units are kW for power, kWh for energy and a currency (whatever the prices
are in) per kWh for prices and values.  `read_ems` reads the tables strictly
(`moat_log.records`): an unknown key or a wrong type is refused with the
path of the field.  `override` reads a what-if file: the same keys, every one
optional, laid over a live schedule's settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from moat_log.path import Path
from moat_log.records import FieldError, parse, read

__all__ = [
    "BatterySettings",
    "EmsSettings",
    "GridSettings",
    "InputPaths",
    "override",
    "read_ems",
]

_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")

_Kw = Annotated[float, Meta(ge=0, le=100_000, description="kW 0 .. 100000")]
_Fraction = Annotated[float, Meta(ge=0, le=1, description="a fraction 0 .. 1")]
_Efficiency = Annotated[float, Meta(gt=0, le=1, description="an efficiency > 0 .. 1")]
_Money = Annotated[float, Meta(ge=-1000, le=1000, description="currency per kWh -1000 .. 1000")]


@dataclass(frozen=True, slots=True)
class BatterySettings:
    """The battery: what it holds, how fast and how well it charges."""

    capacity_kwh: float = 10.0
    soc_min: float = 0.1
    soc_max: float = 0.95
    charge_kw: float = 5.0
    discharge_kw: float = 5.0
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    #: What a kWh left in the battery at the end of the horizon is worth;
    #: None: the lowest buy price of the horizon times the discharge efficiency.
    end_value: float | None = None
    #: What a kWh through the battery (charged or discharged) costs in wear.
    wear_cost: float = 0.0


@dataclass(frozen=True, slots=True)
class GridSettings:
    """The grid connection and the inverter between it and PV plus battery."""

    import_kw: float = 30.0
    export_kw: float = 30.0
    #: The hybrid inverter's AC limit, both ways: PV plus battery share it.
    inverter_kw: float = 10.0


@dataclass(frozen=True, slots=True)
class InputPaths:
    """Where the schedule reads its inputs; None: not configured (zero)."""

    price_buy: Path
    soc: Path
    price_sell: Path | None = None
    pv: Path | None = None
    load: Path | None = None

    def by_name(self) -> dict[str, Path]:
        """Each configured input's name and path."""
        named = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: path for name, path in named.items() if path is not None}


@dataclass(frozen=True, slots=True)
class EmsSettings:
    """One ``[ems.NAME]`` table."""

    name: str
    inputs: InputPaths
    #: The plan goes to ``prefix.plan``, the current slot's command to ``prefix.battery_kw``.
    prefix: Path
    battery: BatterySettings = field(default_factory=BatterySettings)
    grid: GridSettings = field(default_factory=GridSettings)
    slot: int = 900
    horizon: int = 86_400
    #: Seconds after an input change before the plan is computed again.
    debounce: float = 5.0
    #: The nodes that may write the plan, in order; empty: the node running it.
    writers: tuple[str, ...] = ()
    enabled: bool = True

    @property
    def plan_path(self) -> Path:
        """The path of the whole plan."""
        return self.prefix / "plan"

    @property
    def command_path(self) -> Path:
        """The path of the current slot's battery power (kW, + charges)."""
        return self.prefix / "battery_kw"

    @property
    def status_path(self) -> Path:
        """The path of the schedule's state: ok, or why there is no new plan."""
        return self.prefix / "status"

    def fingerprint(self) -> dict[str, Any]:
        """What decides a plan besides the inputs (goes into the plan's hash)."""
        return {
            "battery": {f.name: getattr(self.battery, f.name) for f in fields(self.battery)},
            "grid": {f.name: getattr(self.grid, f.name) for f in fields(self.grid)},
            "slot": self.slot,
            "horizon": self.horizon,
        }


# --- the tables as written --------------------------------------------------


class _Battery(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    capacity_kwh: Annotated[float, Meta(gt=0, le=100_000, description="kWh > 0")] | None = None
    soc_min: _Fraction | None = None
    soc_max: _Fraction | None = None
    charge_kw: _Kw | None = None
    discharge_kw: _Kw | None = None
    charge_efficiency: _Efficiency | None = None
    discharge_efficiency: _Efficiency | None = None
    end_value: _Money | None = None
    wear_cost: (
        Annotated[float, Meta(ge=0, le=1000, description="currency per kWh 0 .. 1000")] | None
    ) = None


class _Grid(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    import_kw: _Kw | None = None
    export_kw: _Kw | None = None
    inverter_kw: _Kw | None = None


class _Inputs(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    price_buy: str | None = None
    soc: str | None = None
    price_sell: str | None = None
    pv: str | None = None
    load: str | None = None


class _Table(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    inputs: _Inputs | None = None
    battery: _Battery = _Battery()
    grid: _Grid = _Grid()
    prefix: str | None = None
    slot: Annotated[int, Meta(ge=60, le=86_400, description="seconds 60 .. 86400")] | None = None
    horizon: (
        Annotated[int, Meta(ge=60, le=7 * 86_400, description="seconds 60 .. 604800")] | None
    ) = None
    debounce: Annotated[float, Meta(ge=0, le=3600, description="seconds 0 .. 3600")] | None = None
    writers: list[str] | None = None
    enabled: bool | None = None


def read_ems(table: object, *, where: str = "ems") -> tuple[EmsSettings, ...]:
    """Every schedule of the ``[ems]`` table, in the file's order; raises `FieldError`."""
    if not isinstance(table, dict):
        raise FieldError(where, "must be a table of [ems.NAME] tables")
    schedules = tuple(_schedule(name, body, f"{where}.{name}") for name, body in table.items())
    outputs: dict[Path, str] = {}
    for settings in schedules:
        other = outputs.setdefault(settings.prefix, settings.name)
        if other != settings.name:
            raise FieldError(
                f"{where}.{settings.name}.prefix",
                f"{settings.prefix} is also the prefix of [ems.{other}]; "
                "each schedule writes its own",
            )
    return schedules


def _schedule(name: str, body: object, where: str) -> EmsSettings:
    if not _NAME.fullmatch(name):
        raise FieldError(where, "a schedule's name is 1 to 64 letters, digits, '-' or '_'")
    table = read(_Table, body, where=where)
    if table.inputs is None:
        raise FieldError(f"{where}.inputs", "is missing: price_buy and soc at least")
    inputs = _input_paths(table.inputs, f"{where}.inputs")
    prefix = Path(("ems", name)) if table.prefix is None else _path(table.prefix, f"{where}.prefix")
    settings = _apply(EmsSettings(name, inputs, prefix), table, where)
    for path in inputs.by_name().values():
        if settings.prefix.is_prefix_of(path):
            raise FieldError(
                f"{where}.inputs",
                f"{path} is below the schedule's own prefix {settings.prefix}, which it writes",
            )
    return settings


def override(settings: EmsSettings, document: Mapping[str, Any], *, where: str) -> EmsSettings:
    """*settings* with the keys of a what-if file laid over them; raises `FieldError`.

    The file has the keys of an ``[ems.NAME]`` table at its top level, or
    the whole ``[ems.NAME]`` table; inputs, prefix and writers are the live
    schedule's (a what-if reads the same journal and writes nowhere).
    """
    body: Any = document
    ems = document.get("ems")
    if isinstance(ems, dict) and settings.name in ems and len(document) == 1:
        body, where = ems[settings.name], f"{where}: ems.{settings.name}"
    table = read(_Table, body, where=where)
    for key in ("inputs", "prefix", "writers"):
        if getattr(table, key) is not None:
            raise FieldError(
                f"{where}.{key}" if where else key, "a what-if keeps the live schedule's"
            )
    return _apply(settings, table, where)


def _apply(settings: EmsSettings, table: _Table, where: str) -> EmsSettings:
    battery = replace(settings.battery, **_given(table.battery))
    grid = replace(settings.grid, **_given(table.grid))
    top = {
        key: getattr(table, key)
        for key in ("slot", "horizon", "debounce", "enabled")
        if getattr(table, key) is not None
    }
    if table.writers is not None:
        top["writers"] = tuple(table.writers)
    result = replace(settings, battery=battery, grid=grid, **top)
    _check(result, where)
    return result


def _check(settings: EmsSettings, where: str) -> None:
    at = (lambda key: f"{where}.{key}") if where else (lambda key: key)
    battery = settings.battery
    if battery.soc_min > battery.soc_max:
        raise FieldError(at("battery.soc_min"), f"must not be above soc_max ({battery.soc_max})")
    if 86_400 % settings.slot:
        raise FieldError(
            at("slot"), f"{settings.slot} s does not divide a day; use 300, 900, 3600 ..."
        )
    if settings.horizon < settings.slot:
        raise FieldError(at("horizon"), f"must be at least one slot ({settings.slot} s)")


def _given(table: msgspec.Struct) -> dict[str, Any]:
    return {
        key: value for key in table.__struct_fields__ if (value := getattr(table, key)) is not None
    }


def _input_paths(table: _Inputs, where: str) -> InputPaths:
    for required in ("price_buy", "soc"):
        if getattr(table, required) is None:
            raise FieldError(f"{where}.{required}", "is missing")
    paths = {key: _path(text, f"{where}.{key}") for key, text in _given(table).items()}
    return InputPaths(**paths)


def _path(text: str, where: str) -> Path:
    return parse(Path.parse, text, where)
