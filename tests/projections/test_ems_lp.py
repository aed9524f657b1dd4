"""The battery LP: hand-worked cases, and properties every plan has."""

from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from moat_log.projections.ems.lp import Plan, Problem, ScheduleError, build, run_highs, solve
from moat_log.projections.ems.settings import BatterySettings, GridSettings

TOL = 1e-6


def problem(
    buy: list[float],
    *,
    sell: list[float] | float = 0.0,
    pv: list[float] | float = 0.0,
    load: list[float] | float = 0.0,
    soc: float = 0.5,
    slot: int = 3600,
    battery: BatterySettings | None = None,
    grid: GridSettings | None = None,
) -> Problem:
    n = len(buy)

    def each(value: list[float] | float) -> tuple[float, ...]:
        return tuple(value) if isinstance(value, list) else (value,) * n

    return Problem(
        start=0,
        slot=slot,
        price_buy=tuple(buy),
        price_sell=each(sell),
        pv=each(pv),
        load=each(load),
        soc=soc,
        battery=battery or BatterySettings(),
        grid=grid or GridSettings(),
    )


def test_flat_price_does_nothing() -> None:
    plan = solve(problem([0.3] * 24, sell=0.1, load=1.0))
    assert max(abs(v) for v in plan.battery_kw) < TOL
    assert plan.grid_kw == pytest.approx([1.0] * 24)
    assert plan.soc == pytest.approx([0.5] * 24)


def test_cheap_night_and_dear_evening_charge_at_night_discharge_in_the_evening() -> None:
    battery = BatterySettings(
        capacity_kwh=10, soc_min=0.1, soc_max=0.9, charge_kw=3, discharge_kw=2
    )
    buy = [0.1] * 6 + [0.3] * 12 + [0.5] * 6  # hours 0-5 cheap, 18-23 dear
    plan = solve(problem(buy, sell=0.05, load=2.0, soc=0.1, battery=battery))
    night, evening = plan.battery_kw[:6], plan.battery_kw[18:]
    assert all(v >= -TOL for v in night) and sum(night) > 0
    assert max(night) <= 3 + TOL  # the charge limit
    assert all(v <= TOL for v in evening) and min(evening) == pytest.approx(-2.0)
    assert max(plan.soc) == pytest.approx(0.9)  # charged to the top, never above
    assert min(plan.soc) >= 0.1 - TOL
    assert all(abs(v) < TOL for v in plan.battery_kw[6:18])  # mid-price day: nothing to gain


def test_export_price_above_import_discharges_to_the_grid() -> None:
    grid = GridSettings(import_kw=10, export_kw=4, inverter_kw=10)
    battery = BatterySettings(capacity_kwh=10, soc_min=0.1, soc_max=0.9, discharge_kw=5)
    buy = [0.2, 0.2, 0.2]
    sell = [0.05, 0.3, 0.05]  # selling at 0.3 beats buying at 0.2
    plan = solve(problem(buy, sell=sell, load=1.0, soc=0.9, battery=battery, grid=grid))
    assert plan.grid_kw[1] == pytest.approx(-4.0)  # export at its limit
    assert plan.battery_kw[1] == pytest.approx(-5.0)  # 4 kW out plus the 1 kW load
    assert plan.grid_import[1] < TOL  # never import and export at once


def test_negative_spread_never_imports_and_exports_at_once() -> None:
    plan = solve(problem([0.1] * 4, sell=0.2, load=0.5, soc=0.5))
    for gi, ge in zip(plan.grid_import, plan.grid_export, strict=True):
        assert min(gi, ge) < TOL


def test_negative_buy_price_never_charges_and_discharges_at_once() -> None:
    plan = solve(problem([-0.1, 0.3, 0.3], sell=0.0, load=1.0, soc=0.5))
    for c, d in zip(plan.charge, plan.discharge, strict=True):
        assert min(c, d) < TOL
    assert plan.battery_kw[0] > 0  # paid to take power: it charges


def test_a_start_outside_the_window_comes_back_as_fast_as_allowed() -> None:
    battery = BatterySettings(capacity_kwh=10, soc_min=0.3, soc_max=0.9, charge_kw=1)
    plan = solve(problem([0.3] * 4, soc=0.0, battery=battery))
    assert plan.battery_kw == pytest.approx([1.0] * 3 + [plan.battery_kw[3]])
    assert plan.soc[2] == pytest.approx(3 * 0.95 / 10)


def test_a_load_beyond_grid_and_inverter_is_refused_with_the_slot() -> None:
    grid = GridSettings(import_kw=3, inverter_kw=2)
    with pytest.raises(ScheduleError, match=r"slot 1 .*load of 6 kW"):
        solve(problem([0.3, 0.3], load=[1.0, 6.0], grid=grid))


def test_the_same_problem_gives_the_same_bytes() -> None:
    p = problem([0.1, 0.4, 0.2, 0.5, 0.1, 0.3], sell=0.05, pv=[0, 2, 4, 3, 0, 0], load=1.2)
    first = msgpack.packb(solve(p).to_value())
    assert msgpack.packb(solve(p).to_value()) == first


# --- properties -------------------------------------------------------------

prices = st.floats(-0.2, 0.8, allow_nan=False).map(lambda v: round(v, 4))
powers = st.floats(0, 6, allow_nan=False).map(lambda v: round(v, 3))


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    n = draw(st.integers(1, 12))
    battery = BatterySettings(
        capacity_kwh=draw(st.sampled_from([1.0, 5.0, 13.5])),
        soc_min=draw(st.sampled_from([0.0, 0.1, 0.2])),
        soc_max=draw(st.sampled_from([0.8, 0.95, 1.0])),
        charge_kw=draw(st.sampled_from([0.0, 2.0, 5.0])),
        discharge_kw=draw(st.sampled_from([0.0, 2.0, 5.0])),
        charge_efficiency=draw(st.sampled_from([0.9, 0.97, 1.0])),
        discharge_efficiency=draw(st.sampled_from([0.9, 0.97, 1.0])),
        end_value=draw(st.one_of(st.none(), prices)),
        wear_cost=draw(st.sampled_from([0.0, 0.02])),
    )
    grid = GridSettings(
        import_kw=draw(st.sampled_from([4.0, 20.0])),
        export_kw=draw(st.sampled_from([0.0, 3.0, 20.0])),
        inverter_kw=draw(st.sampled_from([3.0, 10.0])),
    )
    load = [min(v, grid.import_kw) for v in draw(st.lists(powers, min_size=n, max_size=n))]
    return Problem(
        start=0,
        slot=draw(st.sampled_from([300, 900, 3600])),
        price_buy=tuple(draw(st.lists(prices, min_size=n, max_size=n))),
        price_sell=tuple(draw(st.lists(prices, min_size=n, max_size=n))),
        pv=tuple(draw(st.lists(powers, min_size=n, max_size=n))),
        load=tuple(load),
        soc=draw(st.sampled_from([0.0, 0.05, 0.5, 0.97, 1.0])),
        battery=battery,
        grid=grid,
    )


def check_limits(plan: Plan) -> None:
    p, b, g = plan.problem, plan.problem.battery, plan.problem.grid
    tol = 1e-5
    for i in range(p.slots):
        c, d = plan.charge[i], plan.discharge[i]
        gi, ge, pu = plan.grid_import[i], plan.grid_export[i], plan.pv_used[i]
        assert -tol <= c <= b.charge_kw + tol and -tol <= d <= b.discharge_kw + tol
        assert -tol <= gi <= g.import_kw + tol and -tol <= ge <= g.export_kw + tol
        assert -tol <= pu <= p.pv[i] + tol
        assert abs(pu + d - c) <= g.inverter_kw + tol
        assert pu + d - c + gi - ge == pytest.approx(p.load[i], abs=tol)
        assert -tol <= plan.energy[i] <= b.capacity_kwh + tol
        if p.price_sell[i] >= p.price_buy[i]:
            assert min(gi, ge) <= tol
        if p.price_buy[i] < 0:
            assert min(c, d) <= tol


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_every_plan_respects_every_limit(p: Problem) -> None:
    check_limits(solve(p))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_the_state_of_charge_follows_from_the_powers(p: Problem) -> None:
    plan = solve(p)
    b, h = p.battery, p.hours
    before = p.energy_now
    for i, after in enumerate(plan.energy):
        moved = h * (
            b.charge_efficiency * plan.charge[i] - plan.discharge[i] / b.discharge_efficiency
        )
        assert after == pytest.approx(before + moved, abs=1e-5)
        before = after


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_a_start_inside_the_window_stays_inside(p: Problem) -> None:
    b = p.battery
    if not b.soc_min <= p.soc <= b.soc_max:
        return
    for soc in solve(p).soc:
        assert b.soc_min - 1e-5 <= soc <= b.soc_max + 1e-5


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
@example(
    Problem(
        start=0,
        slot=3600,
        price_buy=(0.0,),
        price_sell=(0.0,),
        pv=(1.0,),
        load=(1.0,),
        soc=0.97,
        battery=BatterySettings(
            capacity_kwh=1.0,
            soc_min=0.0,
            soc_max=0.95,
            charge_kw=2.0,
            discharge_kw=2.0,
            charge_efficiency=0.9,
            discharge_efficiency=0.9,
            wear_cost=0.02,
        ),
        grid=GridSettings(import_kw=4.0, export_kw=3.0, inverter_kw=3.0),
    )
)  # the end just above soc_max within the solver's tolerance (found by Hypothesis)
def test_the_cost_never_beats_the_bound(p: Problem) -> None:
    """The plan's own objective is the solver's, and never below the LP relaxation's."""
    plan = solve(p)
    lp = build(p)
    relaxed = run_highs(lp, relax=True)[1]
    assert plan.objective >= relaxed - 1e-6 * (1 + abs(relaxed))
    assert plan.bound <= plan.objective + 1e-6 * (1 + abs(plan.objective))
    x = [*_columns(plan)]
    recomputed = math.fsum(cost * value for cost, value in zip(lp.cost, x, strict=False))
    # the solver's feasibility tolerance (1e-7 kWh) lets the energy pass a window bound
    # without slack, which the window's penalty turns into a visible cost here
    penalty = max(lp.cost)
    assert recomputed == pytest.approx(plan.objective, abs=1e-4 + 1e-6 * penalty * p.slots)


def _columns(plan: Plan) -> list[float]:
    """The plan's continuous columns in the LP's order (penalty slacks recomputed)."""
    p, b = plan.problem, plan.problem.battery
    out: list[float] = []
    for i in range(p.slots):
        e = plan.energy[i]
        lo = max(b.soc_min * b.capacity_kwh - e, 0.0)
        hi = max(e - b.soc_max * b.capacity_kwh, 0.0)
        out += [
            plan.charge[i],
            plan.discharge[i],
            plan.grid_import[i],
            plan.grid_export[i],
            plan.pv_used[i],
            e,
            lo,
            hi,
        ]
    return out
