"""When the schedule plans, from what, and what it asks to write (no I/O)."""

from __future__ import annotations

import pytest

from moat_log.ids import EventId
from moat_log.path import Path
from moat_log.projections.ems.lp import ScheduleError, solve
from moat_log.projections.ems.scheduler import EmsScheduler
from moat_log.projections.ems.settings import EmsSettings, InputPaths

BUY, SOC, PV = Path.parse("p.buy"), Path.parse("b.soc"), Path.parse("f.pv")
T = 1_767_571_200.0  # a slot boundary


def scheduler(**settings: object) -> EmsScheduler:
    inputs = InputPaths(price_buy=BUY, soc=SOC, pv=PV)
    return EmsScheduler(EmsSettings("home", inputs, Path.parse("ems.home"), **settings))  # type: ignore[arg-type]


def feed(s: EmsScheduler, now: float) -> None:
    s.observe(BUY, {"start": T, "step": 3600, "values": [0.2] * 24}, EventId("pi1", 1), 1, now)
    s.observe(SOC, 0.5, EventId("pi1", 2), 2, now)
    s.observe(PV, 0.0, EventId("pi1", 3), 3, now)


def test_a_change_is_planned_after_the_debounce_from_the_first_change() -> None:
    s = scheduler(debounce=5.0)
    assert s.next_wakeup() is None
    s.observe(BUY, 0.2, EventId("pi1", 1), 1, T + 10)
    s.observe(SOC, 0.5, EventId("pi1", 2), 2, T + 12)  # within the window: no later
    assert s.next_wakeup() == T + 15
    assert not s.is_due(T + 14.9) and s.is_due(T + 15)


def test_after_a_plan_the_next_one_is_due_at_the_slot_boundary() -> None:
    s = scheduler(slot=900, debounce=0.0)
    feed(s, T + 100)
    problem = s.problem(T + 100)
    assert problem.start == T and problem.slots == 96
    s.planned(solve(problem).to_value())
    assert s.next_wakeup() == T + 900


def test_the_plan_follows_from_the_newest_input_event() -> None:
    s = scheduler(debounce=0.0)
    feed(s, T)
    outputs = s.planned(solve(s.problem(T)).to_value())
    assert {str(o.path) for o in outputs} == {
        "ems.home.plan",
        "ems.home.battery_kw",
        "ems.home.status",
    }
    assert {o.cause for o in outputs} == {EventId("pi1", 3)}


def test_the_horizon_ends_with_the_shortest_series() -> None:
    s = scheduler(slot=900, debounce=0.0)
    feed(s, T)
    s.observe(PV, {"start": T, "step": 900, "values": [1.0] * 10}, EventId("pi1", 4), 4, T)
    assert s.problem(T + 60).slots == 10


def test_missing_and_bad_inputs_say_which() -> None:
    s = scheduler(debounce=0.0)
    s.observe(BUY, 0.2, EventId("pi1", 1), 1, T)
    with pytest.raises(ScheduleError, match=r"waiting for soc \(b.soc\)"):
        s.problem(T)
    s.observe(SOC, "full", EventId("pi1", 2), 2, T)
    s.observe(PV, 0.0, EventId("pi1", 3), 3, T)
    with pytest.raises(ScheduleError, match=r"soc \(b.soc\): the state of charge is a number"):
        s.problem(T)
    s.observe(BUY, {"start": T + 7200, "step": 3600, "values": [0.2]}, EventId("pi1", 4), 4, T)
    s.observe(SOC, 0.5, EventId("pi1", 5), 5, T)
    with pytest.raises(ScheduleError, match=r"price_buy \(p.buy\) has no value for the slot"):
        s.problem(T)


def test_a_failure_is_said_once_and_the_recovery_too() -> None:
    s = scheduler(debounce=0.0)
    assert [o.value for o in s.failed("no prices")] == ["error: no prices"]
    assert s.failed("no prices") == []  # the same reason: not written again
    feed(s, T)
    outputs = s.planned(solve(s.problem(T)).to_value())
    assert outputs[-1].value == "ok"
    assert s.status()["state"] == "ok" and s.status()["failures"] == 2
    assert [str(o.path) for o in s.planned(solve(s.problem(T)).to_value())] == [
        "ems.home.plan",
        "ems.home.battery_kw",
    ]
