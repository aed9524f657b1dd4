"""What-if: the schedule run over a past range, with another configuration.

Theory of operation
-------------------
`EmsPast` is the schedule as a `PastProjection` (`moat_log.projections.past`):
the live node's `EmsScheduler` with the solver called in line.  Run over
the journal from *since* to *until*, it plans whenever the live node would
have planned (after each input change, debounced, and at every slot
boundary), from the inputs as they were then.

It also **executes** its plans, the way a battery following them would
have: the first plan computed in a slot decides that slot (its first
slot's battery and grid power, and its cost), and the state of charge at
the end of that slot is the plan's.  With ``soc="simulated"`` (the
default) the next plans start from that simulated state of charge, not
from the one recorded in the journal: a bigger battery charges further
than the real one did.  With ``soc="recorded"`` every plan starts from the
recorded value, as the live node's did.

`whatif` runs the live settings and the other settings over the same
range, reads the plans the live node actually stored there and the
recorded state of charge, and returns them slot by slot.  Nothing is
written to the journal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from moat_log.event import Event, Op
from moat_log.journal.store import Journal
from moat_log.path import Path

from ..past import Progress, ScratchView, ScratchWrite, events_between, run_over_past
from .lp import ScheduleError, solve
from .scheduler import EmsScheduler
from .series import Series
from .settings import EmsSettings

__all__ = ["EmsPast", "ExecutedSlot", "WhatIf", "WhatIfRun", "whatif"]

SocMode = Literal["simulated", "recorded"]


@dataclass(frozen=True, slots=True)
class ExecutedSlot:
    """One slot as a battery following the plans would have run it."""

    start: int
    price_buy: float
    price_sell: float
    pv_kw: float
    load_kw: float
    battery_kw: float
    grid_kw: float
    #: The state of charge at the slot's end.
    soc: float
    cost: float


def executed_from_plan(plan: dict[str, Any]) -> ExecutedSlot:
    """The first slot of a plan value (as `Plan.to_value` writes it)."""
    return ExecutedSlot(
        start=plan["start"],
        price_buy=plan["price_buy"][0],
        price_sell=plan["price_sell"][0],
        pv_kw=plan["pv_kw"][0],
        load_kw=plan["load_kw"][0],
        battery_kw=plan["battery_kw"][0],
        grid_kw=plan["grid_kw"][0],
        soc=plan["soc"][0],
        cost=plan["slot_cost"][0],
    )


class EmsPast:
    """The energy schedule as a `PastProjection`, executing what it plans."""

    def __init__(self, settings: EmsSettings, *, soc: SocMode = "simulated") -> None:
        self.settings = settings
        self.scheduler = EmsScheduler(settings)
        self.soc_mode: SocMode = soc
        self.executed: dict[int, ExecutedSlot] = {}
        self.errors: dict[str, int] = {}
        self.plans = 0
        self._simulated: float | None = None

    def __repr__(self) -> str:
        return f"EmsPast({self.settings.name!r})"

    def paths(self) -> Sequence[Path]:
        return list(self.settings.inputs.by_name().values())

    def observe(self, event: Event, now: float) -> None:
        value = None if event.op is Op.DELETE else event.value
        simulating = self.soc_mode == "simulated" and self._simulated is not None
        if simulating and event.path == self.settings.inputs.soc:
            return  # the simulated battery is not the recorded one
        self.scheduler.observe(event.path, value, event.id, event.hlc, now)

    def next_wakeup(self) -> float | None:
        return self.scheduler.next_wakeup()

    def step(self, now: float) -> Sequence[ScratchWrite]:
        scheduler = self.scheduler
        if self._simulated is not None:
            soc = scheduler.inputs.get("soc")
            cause, hlc = (None, 0) if soc is None else (soc.cause, soc.hlc)
            scheduler.assume("soc", Series.constant(self._simulated), cause, hlc)
        try:
            plan = solve(scheduler.problem(now)).to_value()
        except ScheduleError as exc:
            self.errors[str(exc)] = self.errors.get(str(exc), 0) + 1
            outputs = scheduler.failed(str(exc))
        else:
            self.plans += 1
            outputs = scheduler.planned(plan)
            if plan["start"] not in self.executed:
                slot = executed_from_plan(plan)
                self.executed[slot.start] = slot
                if self.soc_mode == "simulated":
                    self._simulated = slot.soc
        return [ScratchWrite(now, out.path, out.value, out.cause) for out in outputs]


@dataclass(slots=True)
class WhatIfRun:
    """One configuration's run over the range."""

    settings: EmsSettings
    slots: dict[int, ExecutedSlot]
    plans: int
    errors: dict[str, int]
    scratch: ScratchView | None = None

    @property
    def cost(self) -> float:
        """Money paid to the grid in the executed slots (negative: earned)."""
        return math.fsum(slot.cost for slot in self.slots.values())

    @property
    def end_soc(self) -> float | None:
        """The state of charge after the last executed slot."""
        return self.slots[max(self.slots)].soc if self.slots else None

    def summary(self) -> dict[str, Any]:
        return {
            "cost": round(self.cost, 6),
            "slots": len(self.slots),
            "plans": self.plans,
            "end_soc": self.end_soc,
            "capacity_kwh": self.settings.battery.capacity_kwh,
            "errors": dict(self.errors),
        }


@dataclass(slots=True)
class WhatIf:
    """The live configuration, the other one, the stored plans and the recorded SoC."""

    since: float
    until: float
    live: WhatIfRun
    other: WhatIfRun
    stored: WhatIfRun
    recorded_soc: dict[int, float] = field(default_factory=dict)

    def slot_starts(self) -> list[int]:
        return sorted(self.live.slots.keys() | self.other.slots.keys() | self.stored.slots.keys())


def whatif(
    journal: Journal,
    live: EmsSettings,
    other: EmsSettings,
    since: float,
    until: float,
    *,
    soc: SocMode = "simulated",
    progress: Progress | None = None,
) -> WhatIf:
    """Run *live* and *other* over the journal from *since* to *until* (s since the epoch)."""
    runs = []
    for settings in (live, other):
        projection = EmsPast(settings, soc=soc)
        scratch = run_over_past(journal, projection, since, until, progress=progress)
        slots = {start: slot for start, slot in projection.executed.items() if start < until}
        runs.append(WhatIfRun(settings, slots, projection.plans, projection.errors, scratch))
    return WhatIf(
        since,
        until,
        runs[0],
        runs[1],
        _stored(journal, live, since, until),
        _recorded_soc(journal, live, since, until),
    )


def _stored(journal: Journal, live: EmsSettings, since: float, until: float) -> WhatIfRun:
    """The plans the live node stored in the range, executed the same way."""
    slots: dict[int, ExecutedSlot] = {}
    plans = 0
    errors: dict[str, int] = {}
    for event in events_between(journal, [live.plan_path], int(since * 1e9), int(until * 1e9)):
        if event.op is not Op.SET:
            continue
        plans += 1
        try:
            slot = executed_from_plan(event.value)
        except (KeyError, IndexError, TypeError) as exc:
            errors[f"a stored plan that is not a plan: {exc!r}"] = 1
            continue
        if slot.start < until:
            slots.setdefault(slot.start, slot)
    return WhatIfRun(live, slots, plans, errors)


def _recorded_soc(
    journal: Journal, live: EmsSettings, since: float, until: float
) -> dict[int, float]:
    """The recorded state of charge at each slot's end, where the journal has one."""
    slot = live.slot
    values: dict[int, float] = {}
    first = int((since - slot) * 1e9)
    for event in events_between(journal, [live.inputs.soc], first, int(until * 1e9)):
        if event.op is not Op.SET:
            continue
        value = event.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        # the value holds from its time on: it is the SoC at the end of the slot it falls in
        values[int(event.hlc / 1e9 // slot) * slot] = float(value)
    return values
