"""The battery schedule as a linear program, solved by HiGHS.

Theory of operation
-------------------
A `Problem` is everything one plan depends on: the slots (start, length,
count), per slot the prices, the PV and load forecasts (all already
averaged over the slot), the state of charge now, and the battery and grid
settings.  `build` turns it into an LP (or a small MILP, below) as plain
Python lists, without a solver; `solve` hands those to HiGHS and turns the
answer into a `Plan`.

Per slot *i* (``h`` hours long) the columns are, in kW averaged over the slot
unless said otherwise::

    c   charge power into the battery          0 .. battery.charge_kw
    d   discharge power out of the battery     0 .. battery.discharge_kw
    gi  import from the grid                   0 .. grid.import_kw
    ge  export to the grid                     0 .. grid.export_kw
    pu  PV power used (the rest is curtailed)  0 .. pv[i]
    e   energy in the battery at the slot's end, kWh   0 .. capacity
    lo  kWh below soc_min*capacity (penalised) >= 0
    hi  kWh above soc_max*capacity (penalised) >= 0

and the rows::

    e[i] - e[i-1] - h*eta_c*c + h*d/eta_d = 0      (e[-1]: the energy now)
    -inverter_kw <= pu + d - c <= inverter_kw      (PV and battery share the inverter)
    pu + d - c + gi - ge = load[i]                 (the house's AC balance)
    e + lo >= soc_min*capacity,  e - hi <= soc_max*capacity

The objective, minimised, is the money paid to the grid, plus the battery's
wear, minus what the energy left at the end is worth, plus a large penalty
per kWh outside [soc_min, soc_max] (so a battery that starts outside its
window is brought back as fast as its limits allow, never "infeasible").

Two things an LP alone gets wrong are made binary, only in the slots where
they matter, so that most plans stay pure LPs:

* where selling pays at least as much as buying (``price_sell >= price_buy``)
  an LP would import and export at once; a binary per such slot allows one
  direction only (a grid meter is one flow);
* where buying is paid for (``price_buy < 0``) an LP would charge and
  discharge at once to burn energy; a binary per such slot allows one.

**Determinism.** The same problem gives the same plan on every node: HiGHS
runs with one thread, a fixed seed, no time limit and a MIP gap of 0, and
ties between equally good plans are broken by a tiny cost of battery use
that rises along the horizon (`TIE_BREAK`, 0.0001 per kWh at the start, twice
that at the end: the battery moves only for a gain, and earlier rather than
later) and a tinier reward for PV used rather than curtailed.  The plan's
value (`Plan.to_value`) rounds to 1 W, 0.01 % of charge and 1e-6 of money,
so that the last bits of floating point do not decide equality.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

import msgpack

from moat_log.errors import MoatLogError

from .settings import BatterySettings, GridSettings

__all__ = ["LinearProgram", "Plan", "Problem", "ScheduleError", "build", "solve", "solver_name"]

#: Cost per kWh of battery throughput that breaks ties (doubled at the horizon's end).
TIE_BREAK: Final = 1e-4
#: Reward per kWh of PV used rather than curtailed, when nothing else decides.
PV_TIE_BREAK: Final = 1e-5
#: Columns per slot, in the order of the module's docstring.
COLUMNS: Final = ("c", "d", "gi", "ge", "pu", "e", "lo", "hi")
_C, _D, _GI, _GE, _PU, _E, _LO, _HI = range(len(COLUMNS))
_K: Final = len(COLUMNS)
INF: Final = math.inf


class ScheduleError(MoatLogError):
    """No plan: the inputs are incomplete or contradictory, or the solver failed."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Everything one plan depends on, already on the schedule's slots."""

    start: int
    slot: int
    price_buy: tuple[float, ...]
    price_sell: tuple[float, ...]
    pv: tuple[float, ...]
    load: tuple[float, ...]
    soc: float
    battery: BatterySettings = field(default_factory=BatterySettings)
    grid: GridSettings = field(default_factory=GridSettings)

    def __post_init__(self) -> None:
        count = len(self.price_buy)
        if count == 0:
            raise ScheduleError("a plan needs at least one slot")
        for name in ("price_sell", "pv", "load"):
            if len(getattr(self, name)) != count:
                raise ScheduleError(
                    f"{name} has {len(getattr(self, name))} slots, price_buy {count}"
                )
        if any(v < 0 for v in self.pv) or any(v < 0 for v in self.load):
            raise ScheduleError("PV and load forecasts are never negative")

    @property
    def slots(self) -> int:
        return len(self.price_buy)

    @property
    def hours(self) -> float:
        """The length of one slot in hours."""
        return self.slot / 3600.0

    @property
    def energy_now(self) -> float:
        """kWh in the battery now (the state of charge, clipped to 0 .. 1)."""
        return min(max(self.soc, 0.0), 1.0) * self.battery.capacity_kwh

    @property
    def value_at_end(self) -> float:
        """What a kWh left in the battery at the end is worth.

        `BatterySettings.end_value`, or by default what it saves when it
        covers load later: the mean buy price times the discharge efficiency.
        """
        if self.battery.end_value is not None:
            return self.battery.end_value
        mean = math.fsum(self.price_buy) / len(self.price_buy)
        return max(mean, 0.0) * self.battery.discharge_efficiency

    def digest(self) -> str:
        """A hash of everything the plan depends on: equal problems, equal digests."""
        battery = self.battery
        grid = self.grid
        packed = msgpack.packb(
            [
                self.start,
                self.slot,
                list(self.price_buy),
                list(self.price_sell),
                list(self.pv),
                list(self.load),
                self.soc,
                [getattr(battery, name) for name in battery.__slots__],
                [getattr(grid, name) for name in grid.__slots__],
                self.value_at_end,
            ]
        )
        return hashlib.sha256(packed).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class LinearProgram:
    """``min cost·x`` s.t. ``row_lower <= A x <= row_upper``, ``lower <= x <= upper``.

    *rows* is the matrix row by row: ``[(column, coefficient), ...]``;
    *integer* names the binary columns.  *offset* is the objective's constant.
    """

    cost: list[float]
    lower: list[float]
    upper: list[float]
    rows: list[list[tuple[int, float]]]
    row_lower: list[float]
    row_upper: list[float]
    integer: list[int]
    offset: float = 0.0

    @property
    def columns(self) -> int:
        return len(self.cost)

    def add_row(self, entries: list[tuple[int, float]], lower: float, upper: float) -> None:
        self.rows.append(entries)
        self.row_lower.append(lower)
        self.row_upper.append(upper)

    def add_binary(self) -> int:
        """A new 0/1 column; returns its index."""
        self.cost.append(0.0)
        self.lower.append(0.0)
        self.upper.append(1.0)
        self.integer.append(len(self.cost) - 1)
        return len(self.cost) - 1


def build(problem: Problem) -> LinearProgram:
    """The LP (MILP where the module's docstring says) of *problem*."""
    _check_load(problem)
    lp = LinearProgram([], [], [], [], [], [], [])
    for i in range(problem.slots):
        _add_slot(lp, problem, i)
    lp.cost[(problem.slots - 1) * _K + _E] -= problem.value_at_end
    for i in range(problem.slots):
        _add_exclusions(lp, problem, i)
    return lp


def _check_load(problem: Problem) -> None:
    grid = problem.grid
    for i, load in enumerate(problem.load):
        if load > grid.import_kw + grid.inverter_kw + 1e-9:
            raise ScheduleError(
                f"slot {i} (at {problem.start + i * problem.slot}): a load of {load:g} kW is more "
                f"than the grid ({grid.import_kw:g} kW) and the inverter ({grid.inverter_kw:g} kW) "
                "can supply"
            )


def _penalty(problem: Problem) -> float:
    """The cost of a kWh outside the window: more than any price could gain."""
    prices = [*problem.price_buy, *problem.price_sell, problem.value_at_end]
    return 1000.0 + 100.0 * max(abs(p) for p in [*prices, problem.battery.wear_cost])


def _add_slot(lp: LinearProgram, problem: Problem, i: int) -> None:
    battery, grid = problem.battery, problem.grid
    n, h = problem.slots, problem.hours
    capacity = battery.capacity_kwh
    base = i * _K
    tie = TIE_BREAK * (1.0 + i / n) * h
    wear = battery.wear_cost * h + tie
    penalty = _penalty(problem) if i == 0 else lp.cost[_LO]
    lp.cost.extend(
        [
            wear,
            wear,
            problem.price_buy[i] * h,
            -problem.price_sell[i] * h,
            -PV_TIE_BREAK * h,
            0.0,
            penalty,
            penalty,
        ]
    )
    lp.lower.extend([0.0] * _K)
    lp.upper.extend(
        [
            battery.charge_kw,
            battery.discharge_kw,
            grid.import_kw,
            grid.export_kw,
            problem.pv[i],
            capacity,
            capacity,
            capacity,
        ]
    )
    eta_c, eta_d = battery.charge_efficiency, battery.discharge_efficiency
    energy = [(base + _E, 1.0), (base + _C, -h * eta_c), (base + _D, h / eta_d)]
    if i == 0:
        lp.add_row(energy, problem.energy_now, problem.energy_now)
    else:
        lp.add_row([*energy, ((i - 1) * _K + _E, -1.0)], 0.0, 0.0)
    flow = [(base + _PU, 1.0), (base + _D, 1.0), (base + _C, -1.0)]
    lp.add_row(flow, -grid.inverter_kw, grid.inverter_kw)
    load = problem.load[i]
    lp.add_row([*flow, (base + _GI, 1.0), (base + _GE, -1.0)], load, load)
    lp.add_row([(base + _E, 1.0), (base + _LO, 1.0)], battery.soc_min * capacity, INF)
    lp.add_row([(base + _E, 1.0), (base + _HI, -1.0)], -INF, battery.soc_max * capacity)


def _add_exclusions(lp: LinearProgram, problem: Problem, i: int) -> None:
    battery, grid = problem.battery, problem.grid
    base = i * _K
    if problem.price_sell[i] >= problem.price_buy[i] and grid.import_kw and grid.export_kw:
        y = lp.add_binary()  # 1: import allowed, 0: export allowed
        lp.add_row([(base + _GI, 1.0), (y, -grid.import_kw)], -INF, 0.0)
        lp.add_row([(base + _GE, 1.0), (y, grid.export_kw)], -INF, grid.export_kw)
    if problem.price_buy[i] < 0 and battery.charge_kw and battery.discharge_kw:
        z = lp.add_binary()  # 1: charging allowed, 0: discharging allowed
        lp.add_row([(base + _C, 1.0), (z, -battery.charge_kw)], -INF, 0.0)
        lp.add_row([(base + _D, 1.0), (z, battery.discharge_kw)], -INF, battery.discharge_kw)


@dataclass(frozen=True, slots=True)
class Plan:
    """A solved schedule: per slot what the battery and the grid do."""

    problem: Problem
    charge: tuple[float, ...]
    discharge: tuple[float, ...]
    grid_import: tuple[float, ...]
    grid_export: tuple[float, ...]
    pv_used: tuple[float, ...]
    energy: tuple[float, ...]
    #: The solver's objective (money, wear, end value, penalties, ties).
    objective: float
    #: The solver's proven lower bound on the objective (= objective for an LP).
    bound: float
    solver: str

    @property
    def battery_kw(self) -> list[float]:
        """Per slot: + charges, - discharges (kW at the battery)."""
        return [c - d for c, d in zip(self.charge, self.discharge, strict=True)]

    @property
    def grid_kw(self) -> list[float]:
        """Per slot: + imports, - exports (kW)."""
        return [i - e for i, e in zip(self.grid_import, self.grid_export, strict=True)]

    @property
    def soc(self) -> list[float]:
        """Per slot: the state of charge at its end, 0 .. 1."""
        capacity = self.problem.battery.capacity_kwh
        return [e / capacity for e in self.energy]

    @property
    def slot_cost(self) -> list[float]:
        """Per slot: money paid to the grid (negative: earned)."""
        p, h = self.problem, self.problem.hours
        return [
            h * (buy * gi - sell * ge)
            for buy, sell, gi, ge in zip(
                p.price_buy, p.price_sell, self.grid_import, self.grid_export, strict=True
            )
        ]

    @property
    def cost(self) -> float:
        """Money paid to the grid over the horizon (negative: earned)."""
        return math.fsum(self.slot_cost)

    def to_value(self) -> dict[str, Any]:
        """The plan as the value of the schedule's ``plan`` path (docs/ems.md)."""
        p = self.problem
        return {
            "v": 1,
            "start": p.start,
            "slot": p.slot,
            "solver": self.solver,
            "inputs": p.digest(),
            "cost": _round(self.cost, 6),
            "battery_kw": [_round(v, 3) for v in self.battery_kw],
            "grid_kw": [_round(v, 3) for v in self.grid_kw],
            "soc": [_round(v, 4) for v in self.soc],
            "pv_kw": [_round(v, 3) for v in self.pv_used],
            "load_kw": [_round(v, 3) for v in p.load],
            "price_buy": [_round(v, 6) for v in p.price_buy],
            "price_sell": [_round(v, 6) for v in p.price_sell],
            "slot_cost": [_round(v, 6) for v in self.slot_cost],
        }


def _round(value: float, digits: int) -> float:
    return round(value, digits) + 0.0  # + 0.0: never -0.0, which packs differently


@cache
def solver_name() -> str:
    """``highs X.Y.Z``; raises `ScheduleError` when HiGHS is not installed."""
    return f"highs {_highs()._core._Highs().version()}"


def _highs() -> Any:
    try:
        import highspy
    except ImportError:  # pragma: no cover - the test extra installs it
        raise ScheduleError(
            "the energy schedule needs the HiGHS solver: pip install 'moat-log[ems]'"
        ) from None
    return highspy


def solve(problem: Problem) -> Plan:
    """The cheapest plan for *problem*; raises `ScheduleError` when there is none."""
    lp = build(problem)
    x, objective, bound = run_highs(lp)
    n = problem.slots

    def column(index: int) -> tuple[float, ...]:
        return tuple(_clip(x[i * _K + index], 0.0, lp.upper[i * _K + index]) for i in range(n))

    return Plan(
        problem,
        charge=column(_C),
        discharge=column(_D),
        grid_import=column(_GI),
        grid_export=column(_GE),
        pv_used=column(_PU),
        energy=column(_E),
        objective=objective,
        bound=bound,
        solver=solver_name(),
    )


def _clip(value: float, lo: float, hi: float) -> float:
    return min(max(value, lo), hi)


def run_highs(lp: LinearProgram, *, relax: bool = False) -> tuple[Sequence[float], float, float]:
    """Solve *lp* with HiGHS: (column values, objective, lower bound); *relax*: no binaries."""
    highspy = _highs()
    import numpy as np

    model = highspy.HighsLp()
    model.num_col_ = lp.columns
    model.num_row_ = len(lp.rows)
    model.offset_ = lp.offset
    model.col_cost_ = np.array(lp.cost, dtype=np.float64)
    model.col_lower_ = np.array(lp.lower, dtype=np.float64)
    model.col_upper_ = np.array(lp.upper, dtype=np.float64)
    model.row_lower_ = np.array([max(v, -highspy.kHighsInf) for v in lp.row_lower])
    model.row_upper_ = np.array([min(v, highspy.kHighsInf) for v in lp.row_upper])
    starts = [0]
    index: list[int] = []
    value: list[float] = []
    for entries in lp.rows:
        for column, coefficient in entries:
            index.append(column)
            value.append(coefficient)
        starts.append(len(index))
    matrix = model.a_matrix_
    matrix.format_ = highspy.MatrixFormat.kRowwise
    matrix.start_ = np.array(starts, dtype=np.int32)
    matrix.index_ = np.array(index, dtype=np.int32)
    matrix.value_ = np.array(value, dtype=np.float64)
    mip = bool(lp.integer) and not relax
    if mip:
        kinds = [highspy.HighsVarType.kContinuous] * lp.columns
        for column in lp.integer:
            kinds[column] = highspy.HighsVarType.kInteger
        model.integrality_ = kinds
    solver = highspy._core._Highs()  # the public Highs() prints a banner on stdout
    for option, setting in (
        ("output_flag", False),
        ("threads", 1),
        ("random_seed", 0),
        ("mip_rel_gap", 0.0),
        ("mip_abs_gap", 0.0),
    ):
        solver.setOptionValue(option, setting)
    if solver.passModel(model) != highspy.HighsStatus.kOk:
        raise ScheduleError("HiGHS refused the model (a bug: please report it)")
    solver.run()
    status = solver.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        text = solver.modelStatusToString(status)
        if status == highspy.HighsModelStatus.kInfeasible:
            raise ScheduleError(
                "no plan meets every limit (infeasible): the load cannot be supplied "
                "within the grid, inverter and battery limits"
            )
        raise ScheduleError(f"the solver found no plan: {text}")
    info = solver.getInfo()
    objective = float(info.objective_function_value)
    bound = float(info.mip_dual_bound) if mip else objective
    return list(solver.getSolution().col_value), objective, bound
