"""When to plan, from what, and what to write: the schedule without I/O.

Theory of operation
-------------------
An `EmsScheduler` holds the newest value of each input path and is told
the time by its caller; it never reads a clock or the journal itself, so
that the live node (`moat_log.projections.ems.runner`) and a what-if over
the past (`moat_log.projections.ems.whatif`) run the very same rules:

* `observe` takes an input event (any event of an input path that won it);
  a plan is then due `EmsSettings.debounce` seconds later, so a burst of
  forecast updates costs one solve;
* a plan is also due at every slot boundary, because the plan starts with
  the current slot and the state of charge has moved;
* `problem` builds the LP's inputs as of a time: the slots from the current
  slot's start to the horizon or to the end of the shortest input series,
  the series averaged over each slot (`Series.over_slots`);
* after a solve, `planned` or `failed`; a failure keeps the last good plan
  and says why in `status`.

The writes it asks for (`Output`) carry the newest input event as their
cause: "why did the battery charge at 3 a.m." leads to the price or forecast
that made the plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from moat_log.ids import EventId
from moat_log.path import Path

from .lp import Problem, ScheduleError
from .series import Series, SeriesError
from .settings import EmsSettings

__all__ = ["EmsScheduler", "InputState", "Output"]

#: Inputs whose absence means a zero (no PV, no feed-in tariff, no load forecast).
OPTIONAL: Final = frozenset({"price_sell", "pv", "load"})


@dataclass(frozen=True, slots=True)
class InputState:
    """The newest value of one input path, as the scheduler read it."""

    series: Series | None
    error: str | None
    cause: EventId | None
    hlc: int


@dataclass(frozen=True, slots=True)
class Output:
    """A value the schedule writes: to *path*, caused by *cause*."""

    path: Path
    value: Any
    cause: EventId | None


class EmsScheduler:
    """The schedule's state between solves (sans-io); times in seconds since the epoch."""

    def __init__(self, settings: EmsSettings) -> None:
        self.settings: Final = settings
        self.inputs: dict[str, InputState] = {}
        self._by_path: Final = {path: name for name, path in settings.inputs.by_name().items()}
        #: When an input changed and no plan has used it yet: a plan is due then.
        self.dirty_at: float | None = None
        #: The start of the slot the last plan (good or not) was computed for.
        self.planned_slot: int | None = None
        self.last_plan: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.solves = 0
        self.failures = 0

    # --- inputs ---------------------------------------------------------------

    def input_name(self, path: Path) -> str | None:
        """Which input *path* is, if any."""
        return self._by_path.get(path)

    def observe(self, path: Path, value: Any, cause: EventId | None, hlc: int, now: float) -> bool:
        """Take the new winner of an input path (None: deleted); True if it is an input."""
        name = self._by_path.get(path)
        if name is None:
            return False
        series, error = None, None
        if value is not None:
            try:
                series = self._series(name, value)
            except SeriesError as exc:
                error = str(exc)
        self.inputs[name] = InputState(series, error, cause, hlc)
        if self.dirty_at is None:
            self.dirty_at = now
        return True

    def assume(self, name: str, series: Series, cause: EventId | None, hlc: int) -> None:
        """Set input *name* without making a plan due (a what-if's simulated state of charge)."""
        self.inputs[name] = InputState(series, None, cause, hlc)

    def _series(self, name: str, value: Any) -> Series:
        if name != "soc":
            return Series.parse(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise SeriesError(f"the state of charge is a number 0 .. 1, not {value!r}")
        if not 0 <= value <= 1:
            raise SeriesError(
                f"the state of charge is a fraction 0 .. 1, not {value!r} "
                "(a percentage? divide it by 100 where it is written)"
            )
        return Series.constant(float(value))

    # --- timing ---------------------------------------------------------------

    def slot_start(self, now: float) -> int:
        slot = self.settings.slot
        return int(now // slot) * slot

    def next_wakeup(self) -> float | None:
        """When a plan is due next (None: not before an input changes)."""
        due: list[float] = []
        if self.dirty_at is not None:
            due.append(self.dirty_at + self.settings.debounce)
        if self.planned_slot is not None:
            due.append(float(self.planned_slot + self.settings.slot))
        return min(due) if due else None

    def is_due(self, now: float) -> bool:
        wakeup = self.next_wakeup()
        return wakeup is not None and now >= wakeup

    # --- planning -------------------------------------------------------------

    def cause(self) -> EventId | None:
        """The newest input event: what the next plan follows from."""
        newest = max(self.inputs.values(), key=lambda state: state.hlc, default=None)
        return None if newest is None else newest.cause

    def problem(self, now: float) -> Problem:
        """The LP's inputs as of *now*; raises `ScheduleError` saying what is missing."""
        settings = self.settings
        start = self.slot_start(now)
        count = settings.horizon // settings.slot
        self.planned_slot = start
        self.dirty_at = None
        columns: dict[str, list[float]] = {}
        for name in settings.inputs.by_name():
            state = self.inputs.get(name)
            if state is None:
                raise ScheduleError(f"waiting for {name} ({settings.inputs.by_name()[name]})")
            if state.series is None:
                what = state.error or "deleted"
                raise ScheduleError(f"{name} ({settings.inputs.by_name()[name]}): {what}")
            if name != "soc":
                columns[name] = state.series.over_slots(start, settings.slot, count)
                if not columns[name]:
                    raise ScheduleError(
                        f"{name} ({settings.inputs.by_name()[name]}) has no value "
                        f"for the slot starting at {start}"
                    )
        n = min(len(values) for values in columns.values())
        soc_state = self.inputs["soc"]
        assert soc_state.series is not None  # checked above
        zeros = (0.0,) * n
        return Problem(
            start=start,
            slot=settings.slot,
            price_buy=tuple(columns["price_buy"][:n]),
            price_sell=tuple(columns["price_sell"][:n]) if "price_sell" in columns else zeros,
            pv=tuple(max(v, 0.0) for v in columns["pv"][:n]) if "pv" in columns else zeros,
            load=tuple(max(v, 0.0) for v in columns["load"][:n]) if "load" in columns else zeros,
            soc=soc_state.series.values[0],
            battery=settings.battery,
            grid=settings.grid,
        )

    def planned(self, plan: dict[str, Any]) -> list[Output]:
        """A plan was computed: what to write (the plan, the command, the status)."""
        self.solves += 1
        self.last_plan = plan
        cause = self.cause()
        outputs = [
            Output(self.settings.plan_path, plan, cause),
            Output(self.settings.command_path, plan["battery_kw"][0], cause),
        ]
        if self.last_error is not None or self.solves == 1:
            outputs.append(Output(self.settings.status_path, "ok", cause))
        self.last_error = None
        return outputs

    def failed(self, reason: str) -> list[Output]:
        """No plan this time: the last good one stays; the status says why (once)."""
        self.failures += 1
        changed = reason != self.last_error
        self.last_error = reason
        if not changed:
            return []
        return [Output(self.settings.status_path, f"error: {reason}", self.cause())]

    def status(self) -> dict[str, Any]:
        """The schedule's part of ``moat-log status``."""
        plan = self.last_plan
        return {
            "state": "error" if self.last_error else "waiting" if plan is None else "ok",
            "error": self.last_error or "",
            "plan_start": None if plan is None else plan["start"],
            "slots": 0 if plan is None else len(plan["battery_kw"]),
            "cost": None if plan is None else plan["cost"],
            "solves": self.solves,
            "failures": self.failures,
            "inputs": {
                name: "missing"
                if (state := self.inputs.get(name)) is None
                else ("ok" if state.series is not None else state.error or "deleted")
                for name in self.settings.inputs.by_name()
            },
        }
