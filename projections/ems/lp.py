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
import threading
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

        `BatterySettings.end_value`, or by default what it saves at least
        when it covers load later: the lowest buy price of the horizon times
        the discharge efficiency.  Not more, or the plan would buy energy at
        the horizon's end only to hold it; not zero, or it would empty the
        battery into the grid at the end for any price.
        """
        if self.battery.end_value is not None:
            return self.battery.end_value
        return max(min(self.price_buy), 0.0) * self.battery.discharge_efficiency

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

    Numpy arrays, as HiGHS takes them.  The matrix ``A`` is kept row by row
    (compressed sparse rows): row *r*'s entries are
    ``index[starts[r]:starts[r+1]]`` (columns) and ``value[...]``
    (coefficients).  *integer* names the binary columns.
    """

    cost: Any
    lower: Any
    upper: Any
    starts: Any
    index: Any
    value: Any
    row_lower: Any
    row_upper: Any
    integer: Any

    @property
    def columns(self) -> int:
        return len(self.cost)

    @property
    def rows(self) -> int:
        return len(self.row_lower)


def build(problem: Problem) -> LinearProgram:
    """The LP (MILP where the module's docstring says) of *problem*.

    Built with numpy one kind of row at a time, for all slots at once: a
    day at quarter hours is 768 columns and 288 rows, built in well under a
    millisecond (a Python loop over the rows took longer than the solve).
    """
    import numpy as np

    _check_load(problem)
    n = problem.slots
    cost, lower, upper, soft = _columns(problem)
    rows, columns, values, row_lower, row_upper = _slot_rows(problem, soft)
    per_slot = len(row_lower) // n
    extra: list[tuple[int, float, float]] = []  # (column, binary's coefficient, upper)
    integer: list[int] = []
    for i in _exclusion_slots(problem):
        for pairs in _exclusions(problem, i):
            integer.append(n * _K + len(integer))
            extra.extend((i * _K + kind, coefficient, top) for kind, coefficient, top in pairs)
    for number, (column, coefficient, _) in enumerate(extra):
        rows.append(np.full(2, n * per_slot + number))
        columns.append(np.array([column, integer[number // 2]]))
        values.append(np.array([1.0, coefficient]))
    binaries = len(integer)
    if binaries:
        cost = np.concatenate([cost, np.zeros(binaries)])
        lower = np.concatenate([lower, np.zeros(binaries)])
        upper = np.concatenate([upper, np.ones(binaries)])
    all_rows = np.concatenate(rows)
    order = np.argsort(all_rows, kind="stable")
    count = n * per_slot + len(extra)
    starts = np.zeros(count + 1, dtype=np.int32)
    np.cumsum(np.bincount(all_rows, minlength=count), out=starts[1:])
    return LinearProgram(
        cost=cost,
        lower=lower,
        upper=upper,
        starts=starts,
        index=np.concatenate(columns)[order].astype(np.int32),
        value=np.concatenate(values)[order],
        row_lower=np.concatenate([row_lower, np.full(len(extra), -INF)]),
        row_upper=np.concatenate([row_upper, [top for _, _, top in extra]]),
        integer=integer,
    )


def _columns(problem: Problem) -> tuple[Any, Any, Any, bool]:
    """Costs and bounds of the slots' columns; and whether the window is soft (slacks)."""
    import numpy as np

    battery, grid = problem.battery, problem.grid
    n, h = problem.slots, problem.hours
    capacity = battery.capacity_kwh
    cost = np.zeros((n, _K))
    cost[:, _C] = cost[:, _D] = battery.wear_cost * h + TIE_BREAK * (1.0 + np.arange(n) / n) * h
    cost[:, _GI] = np.array(problem.price_buy) * h
    cost[:, _GE] = -np.array(problem.price_sell) * h
    cost[:, _PU] = -PV_TIE_BREAK * h
    cost[:, _LO] = cost[:, _HI] = _penalty(problem)
    cost[n - 1, _E] -= problem.value_at_end
    upper = np.empty((n, _K))
    upper[:, _C] = battery.charge_kw
    upper[:, _D] = battery.discharge_kw
    upper[:, _GI] = grid.import_kw
    upper[:, _GE] = grid.export_kw
    upper[:, _PU] = problem.pv
    upper[:, _E] = upper[:, _LO] = upper[:, _HI] = capacity
    lower = np.zeros((n, _K))
    low, high = battery.soc_min * capacity, battery.soc_max * capacity
    soft = not low <= problem.energy_now <= high
    if not soft:
        # it starts inside its window, so it can stay there: hard bounds, no slacks
        lower[:, _E], upper[:, _E] = low, high
        upper[:, _LO] = upper[:, _HI] = 0.0
    return cost.ravel(), lower.ravel(), upper.ravel(), soft


def _slot_rows(problem: Problem, soft: bool) -> tuple[list[Any], list[Any], list[Any], Any, Any]:
    """The rows of every slot, as (row, column, value) pieces and the rows' bounds."""
    import numpy as np

    battery, grid = problem.battery, problem.grid
    n, h = problem.slots, problem.hours
    capacity = battery.capacity_kwh
    eta_c, eta_d = battery.charge_efficiency, battery.discharge_efficiency
    flow = [(_PU, 1.0), (_D, 1.0), (_C, -1.0)]
    load = np.array(problem.load)
    # per kind of row: its entries (column kind, coefficient), lower and upper bound
    kinds: list[tuple[list[tuple[int, float]], Any, Any]] = [
        ([(_E, 1.0), (_C, -h * eta_c), (_D, h / eta_d)], 0.0, 0.0),
        (flow, -grid.inverter_kw, grid.inverter_kw),
        ([*flow, (_GI, 1.0), (_GE, -1.0)], load, load),
    ]
    if soft:
        kinds.append(([(_E, 1.0), (_LO, 1.0)], battery.soc_min * capacity, INF))
        kinds.append(([(_E, 1.0), (_HI, -1.0)], -INF, battery.soc_max * capacity))
    slots = np.arange(n)
    per_slot = len(kinds)
    rows: list[Any] = []
    columns: list[Any] = []
    values: list[Any] = []
    row_lower = np.empty((n, per_slot))
    row_upper = np.empty((n, per_slot))
    for r, (entries, lo, hi) in enumerate(kinds):
        for kind, coefficient in entries:
            rows.append(slots * per_slot + r)
            columns.append(slots * _K + kind)
            values.append(np.full(n, coefficient))
        row_lower[:, r], row_upper[:, r] = lo, hi
    # the energy row links each slot to the one before; the first to the energy now
    rows.append(slots[1:] * per_slot)
    columns.append(slots[:-1] * _K + _E)
    values.append(np.full(n - 1, -1.0))
    row_lower[0, 0] = row_upper[0, 0] = problem.energy_now
    return rows, columns, values, row_lower.ravel(), row_upper.ravel()


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


def _exclusion_slots(problem: Problem) -> list[int]:
    """The slots that may need a binary (`_exclusions` says which)."""
    import numpy as np

    buy, sell = np.array(problem.price_buy), np.array(problem.price_sell)
    return [int(i) for i in np.flatnonzero((sell >= buy) | (buy < 0))]


def _exclusions(problem: Problem, i: int) -> list[list[tuple[int, float, float]]]:
    """Slot *i*'s binaries: per binary ``[(column kind, coefficient of the binary, upper)]``.

    ``x_kind + coefficient * y <= upper`` for each entry.
    """
    battery, grid = problem.battery, problem.grid
    found = []
    if problem.price_sell[i] >= problem.price_buy[i] and grid.import_kw and grid.export_kw:
        # y = 1: import allowed, y = 0: export allowed
        found.append([(_GI, -grid.import_kw, 0.0), (_GE, grid.export_kw, grid.export_kw)])
    if problem.price_buy[i] < 0 and battery.charge_kw and battery.discharge_kw:
        # z = 1: charging allowed, z = 0: discharging allowed
        found.append(
            [(_C, -battery.charge_kw, 0.0), (_D, battery.discharge_kw, battery.discharge_kw)]
        )
    return found


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
            "cost": _rounded([self.cost], 6)[0],
            "battery_kw": _rounded(self.battery_kw, 3),
            "grid_kw": _rounded(self.grid_kw, 3),
            "soc": _rounded(self.soc, 4),
            "pv_kw": _rounded(self.pv_used, 3),
            "load_kw": _rounded(p.load, 3),
            "price_buy": _rounded(p.price_buy, 6),
            "price_sell": _rounded(p.price_sell, 6),
            "slot_cost": _rounded(self.slot_cost, 6),
        }


def _rounded(values: Sequence[float], digits: int) -> list[float]:
    import numpy as np

    # + 0.0: never -0.0, which packs differently
    return list((np.round(np.asarray(values, dtype=np.float64), digits) + 0.0).tolist())


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
    import numpy as np

    lp = build(problem)
    x, objective, bound = run_highs(lp)
    n = problem.slots
    table = np.clip(np.asarray(x[: n * _K]), lp.lower[: n * _K], lp.upper[: n * _K]).reshape(n, _K)

    def column(index: int) -> tuple[float, ...]:
        return tuple(table[:, index].tolist())

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


#: The solver's options besides presolve: the same plan for the same LP, every time.
SOLVER_OPTIONS: Final = (
    ("output_flag", False),
    ("threads", 1),
    ("random_seed", 0),
    ("mip_rel_gap", 0.0),
    ("mip_abs_gap", 0.0),
)
_solvers = threading.local()


def _solver() -> Any:
    """This thread's HiGHS instance, emptied (creating one costs more than a small solve).

    Every solve passes a whole new model after `clearSolver` and `clearModel`,
    so nothing of an earlier solve (basis, solution) carries over: a plan
    depends on its problem only (tests/projections/test_ems_lp.py checks it).
    """
    solver = getattr(_solvers, "highs", None)
    if solver is None:
        solver = _highs()._core._Highs()  # the public Highs() prints a banner on stdout
        for option, setting in SOLVER_OPTIONS:
            solver.setOptionValue(option, setting)
        _solvers.highs = solver
    else:
        solver.clearModel()
        solver.clearSolver()
    return solver


def run_highs(lp: LinearProgram, *, relax: bool = False) -> tuple[Sequence[float], float, float]:
    """Solve *lp* with HiGHS: (column values, objective, lower bound); *relax*: no binaries."""
    import numpy as np

    highspy = _highs()
    mip = bool(lp.integer) and not relax
    integrality = np.zeros(lp.columns, dtype=np.int32)  # 0: continuous
    if mip:
        integrality[lp.integer] = 1  # kInteger
    solver = _solver()
    solver.setOptionValue("presolve", "on" if mip else "off")
    # the arrays handed over as they are: a HighsLp built field by field costs more
    status = solver.passModel(
        lp.columns,
        lp.rows,
        len(lp.index),
        2,  # the matrix is row-wise (MatrixFormat.kRowwise)
        1,  # minimise (ObjSense.kMinimize)
        0.0,  # no objective offset
        lp.cost,
        lp.lower,
        lp.upper,
        lp.row_lower,  # -inf and inf are kHighsInf's
        lp.row_upper,
        lp.starts[:-1],  # the C API's starts: one per row, without the end
        lp.index,
        lp.value,
        integrality,
    )
    if status != highspy.HighsStatus.kOk:
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
