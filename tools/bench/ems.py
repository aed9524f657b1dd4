"""Energy schedule benchmark: solve time against bare HiGHS, and a 30-day what-if.

    python tools/bench/ems.py [--days N] [--rounds N] [--json]

(a) One plan, as the node computes it (`lp.solve`: build the LP from the
    problem, solve, read the plan back, round it into the plan's value),
    against HiGHS called bare on the same, already built LP in the same run
    (the model handed over and solved, nothing else), for a 24 h horizon at
    15-minute slots and a 48 h horizon at 5-minute slots.  Target: the
    schedule takes at most 1.5 times the bare solver.
(b) ``whatif`` over 30 days (``--days``) of inputs at 15-minute slots, two
    configurations (the live one and a battery twice the size), from a
    journal with the inputs a real house writes: day-ahead prices each day
    at 13:00 (the rest of today and tomorrow, hourly), a PV and a load
    forecast every 6 hours (15-minute values for 36 hours), and the state of
    charge every 15 minutes.  Target: at most 30 s here.

Prices and forecasts follow a fixed pseudo-random pattern (seeded): the
same run every time.  Compare the ratio of (a), not the absolute times: the
machines are noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from journal import scratch_dir, verdict
from moat_log.journal.change import Change
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.projections.ems.lp import SOLVER_OPTIONS, Problem, build, solve
from moat_log.projections.ems.settings import BatterySettings, EmsSettings, InputPaths
from moat_log.projections.ems.whatif import whatif

DAY = 86_400
T0 = 1_767_571_200  # 2026-01-05 00:00 UTC


def price(t: float, rng: random.Random) -> float:
    hour = (t % DAY) / 3600
    base = 0.22 + 0.12 * math.sin((hour - 12) / 24 * 2 * math.pi) + 0.1 * (17 <= hour < 21)
    return round(base + rng.uniform(-0.03, 0.03), 4)


def pv(t: float) -> float:
    hour = (t % DAY) / 3600
    return round(max(0.0, 5 * math.sin((hour - 6) / 12 * math.pi)), 3) if 6 < hour < 18 else 0.0


def load(t: float, rng: random.Random) -> float:
    hour = (t % DAY) / 3600
    return round(0.4 + 0.8 * (7 <= hour < 9 or 18 <= hour < 22) + rng.uniform(0, 0.2), 3)


def problem(slot: int, hours: int) -> Problem:
    rng = random.Random(1)
    n = hours * 3600 // slot
    times = [T0 + i * slot for i in range(n)]
    return Problem(
        start=T0,
        slot=slot,
        price_buy=tuple(price(t, rng) for t in times),
        price_sell=(0.05,) * n,
        pv=tuple(pv(t) for t in times),
        load=tuple(load(t, rng) for t in times),
        soc=0.5,
        battery=BatterySettings(capacity_kwh=10, charge_kw=4, discharge_kw=4),
    )


def bare_highs(lp: Any) -> float:
    """Seconds for HiGHS alone: the built LP handed over, solved, the solution read."""
    import highspy
    import numpy as np

    start = time.perf_counter()
    solver = highspy._core._Highs()
    for option, setting in (*SOLVER_OPTIONS, ("presolve", "off")):
        solver.setOptionValue(option, setting)
    solver.passModel(
        lp.columns, lp.rows, len(lp.index), 2, 1, 0.0, lp.cost, lp.lower, lp.upper,
        lp.row_lower, lp.row_upper, lp.starts[:-1], lp.index, lp.value,
        np.zeros(lp.columns, dtype=np.int32),
    )  # fmt: skip
    solver.run()
    assert solver.getModelStatus() == highspy.HighsModelStatus.kOptimal
    list(solver.getSolution().col_value)
    return time.perf_counter() - start


def bench_solve(slot: int, hours: int, rounds: int) -> dict[str, Any]:
    p = problem(slot, hours)
    lp = build(p)
    assert not lp.integer, "the benchmark's problem is a pure LP"
    solve(p)  # warm: imports, caches
    ours, bare = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        solve(p).to_value()
        ours.append(time.perf_counter() - start)
        bare.append(bare_highs(lp))
    ours_s, bare_s = statistics.median(ours), statistics.median(bare)
    return {
        "slots": p.slots,
        "columns": lp.columns,
        "rows": lp.rows,
        "schedule_ms": round(ours_s * 1e3, 3),
        "bare_highs_ms": round(bare_s * 1e3, 3),
        "ratio": round(ours_s / bare_s, 3),
    }


def build_journal(journal: Any, days: int) -> int:
    rng = random.Random(2)
    changes = []

    def put(path: str, value: Any, at: float) -> None:
        changes.append((at, Change(Path.parse(path), value, source="bench", at=int(at * 1e9))))

    put("battery.soc", 0.5, T0 - 60)
    first_day = [price(T0 + h * 3600, rng) for h in range(24)]
    put("price.buy", {"start": T0, "step": 3600, "values": first_day}, T0 - 50)
    for d in range(days):
        day = T0 + d * DAY
        published = day + 13 * 3600
        values = [price(day + h * 3600, rng) for h in range(48)]
        put("price.buy", {"start": day, "step": 3600, "values": values}, published)
        for q in range(4):
            made = day + q * 6 * 3600
            quarter = [made + i * 900 for i in range(36 * 4)]
            put("forecast.pv", {"start": made, "step": 900, "values": [pv(t) for t in quarter]},
                made + 1)  # fmt: skip
            put("forecast.load", {"start": made, "step": 900,
                                  "values": [load(t, rng) for t in quarter]}, made + 2)  # fmt: skip
        for q in range(96):
            put("battery.soc", round(0.3 + 0.4 * rng.random(), 3), day + q * 900 + 7)
    changes.sort(key=lambda item: item[0])
    for i in range(0, len(changes), 1000):
        journal.commit([change for _, change in changes[i : i + 1000]])
    return len(changes)


def bench_whatif(days: int) -> dict[str, Any]:
    live = EmsSettings(
        "home",
        InputPaths(
            price_buy=Path.parse("price.buy"),
            soc=Path.parse("battery.soc"),
            pv=Path.parse("forecast.pv"),
            load=Path.parse("forecast.load"),
        ),
        prefix=Path.parse("ems.home"),
        battery=BatterySettings(capacity_kwh=10, charge_kw=4, discharge_kw=4),
        horizon=2 * DAY,
        debounce=5,
    )
    bigger = dataclasses.replace(live, battery=dataclasses.replace(live.battery, capacity_kwh=20))
    with scratch_dir() as directory, open_journal(directory, create_node="bench") as journal:
        events = build_journal(journal, days)
        start = time.perf_counter()
        result = whatif(journal, live, bigger, T0, T0 + days * DAY)
        seconds = time.perf_counter() - start
    plans = result.live.plans + result.other.plans
    return {
        "days": days,
        "input_events": events,
        "plans": plans,
        "seconds": round(seconds, 2),
        "ms_per_plan": round(seconds / plans * 1e3, 3),
        "live_cost": round(result.live.cost, 2),
        "bigger_cost": round(result.other.cost, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30, help="days of the what-if (b)")
    parser.add_argument("--rounds", type=int, default=30, help="solves per horizon in (a)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = {
        "day_at_15_min": bench_solve(900, 24, args.rounds),
        "two_days_at_5_min": bench_solve(300, 48, max(args.rounds // 3, 3)),
        "whatif": bench_whatif(args.days),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    for name in ("day_at_15_min", "two_days_at_5_min"):
        f = figures[name]
        print(
            f"(a) {name}: {f['slots']} slots, {f['columns']} columns, {f['rows']} rows: "
            f"schedule {f['schedule_ms']} ms, bare HiGHS {f['bare_highs_ms']} ms, "
            f"ratio {f['ratio']} (target <= 1.5: {verdict(f['ratio'] <= 1.5)})"
        )
    w = figures["whatif"]
    print(
        f"(b) what-if over {w['days']} days ({w['input_events']} input events), two "
        f"configurations: {w['plans']} plans in {w['seconds']} s, {w['ms_per_plan']} ms a plan "
        f"(target <= 30 s: {verdict(w['seconds'] <= 30)}); cost {w['live_cost']} (10 kWh) "
        f"vs {w['bigger_cost']} (20 kWh)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
