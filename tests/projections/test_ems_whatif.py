"""Projections over the past, and the schedule's what-if."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path as FsPath
from typing import Any

import pytest

from moat_log.event import Event
from moat_log.journal.change import Change
from moat_log.journal.store import Journal
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.projections.ems.settings import BatterySettings, EmsSettings, InputPaths
from moat_log.projections.ems.whatif import whatif
from moat_log.projections.past import ScratchWrite, run_over_past

DAY = 86_400
#: 2026-01-05 00:00 UTC: far in the past, so the test's own writes come after it.
T0 = 1_767_571_200
NS = 1_000_000_000


@pytest.fixture
def journal(tmp_path: FsPath) -> Iterator[Journal]:
    with open_journal(tmp_path, create_node="pi1") as journal:
        yield journal


def put(journal: Journal, path: str, value: Any, at: float) -> Event:
    return journal.append(Change(Path.parse(path), value, source="cli:test", at=int(at * NS)))


class Recorder:
    """Remembers what it observed and wakes every 100 s."""

    def __init__(self, paths: list[str]) -> None:
        self._paths = [Path.parse(p) for p in paths]
        self.seen: list[tuple[float, Any]] = []
        self.steps: list[float] = []
        self._next: float | None = None

    def paths(self) -> Sequence[Path]:
        return self._paths

    def observe(self, event: Event, now: float) -> None:
        self.seen.append((now, event.value))
        if self._next is None:
            self._next = now + 100

    def next_wakeup(self) -> float | None:
        return self._next

    def step(self, now: float) -> Sequence[ScratchWrite]:
        self.steps.append(now)
        self._next = now + 100
        return [ScratchWrite(now, Path.parse("out"), len(self.seen))]


def test_a_past_run_sees_the_state_at_since_then_each_event_in_time_order(
    journal: Journal,
) -> None:
    put(journal, "a", 1, T0)
    put(journal, "b", "x", T0 + 10)
    put(journal, "a", 2, T0 + 1000)
    put(journal, "c", "not read", T0 + 1100)
    put(journal, "b", "y", T0 + 1200)
    put(journal, "a", 3, T0 + 5000)  # after until
    recorder = Recorder(["a", "b"])
    scratch = run_over_past(journal, recorder, T0 + 500, T0 + 1500)
    assert recorder.seen == [(T0 + 500, 1), (T0 + 500, "x"), (T0 + 1000, 2), (T0 + 1200, "y")]
    assert recorder.steps == [T0 + 600 + 100 * i for i in range(10)]
    assert scratch.value_at(Path.parse("out"), T0 + 1150) == 3
    assert scratch.observed == 4


def settings(**battery: Any) -> EmsSettings:
    return EmsSettings(
        "home",
        InputPaths(
            price_buy=Path.parse("price.buy"),
            soc=Path.parse("battery.soc"),
            load=Path.parse("load"),
        ),
        prefix=Path.parse("ems.home"),
        battery=dataclasses.replace(BatterySettings(capacity_kwh=5, charge_kw=2), **battery),
        horizon=DAY,
        debounce=0,
    )


def two_days_of_prices(journal: Journal) -> None:
    """Each day at 13:00 the next day's hourly prices: cheap at night, dear at 18-21."""
    put(journal, "battery.soc", 0.5, T0 - 10)
    put(journal, "load", 1.0, T0 - 9)
    day = [0.1] * 6 + [0.3] * 12 + [0.6] * 4 + [0.3] * 2
    put(journal, "price.buy", {"start": T0, "step": 3600, "values": day}, T0 - 5)
    for n in range(1, 3):
        values = day * 2  # today's rest and tomorrow
        put(
            journal,
            "price.buy",
            {"start": T0 + (n - 1) * DAY, "step": 3600, "values": values},
            T0 + (n - 1) * DAY + 13 * 3600,
        )


def test_whatif_compares_a_bigger_battery_and_never_writes(journal: Journal) -> None:
    two_days_of_prices(journal)
    before = journal.last_position
    live = settings()
    bigger = dataclasses.replace(live, battery=dataclasses.replace(live.battery, capacity_kwh=10))
    result = whatif(journal, live, bigger, T0, T0 + 2 * DAY)
    assert journal.last_position == before
    slots = 2 * DAY // 900
    assert len(result.live.slots) == slots and len(result.other.slots) == slots
    assert result.other.cost < result.live.cost  # more to shift from night to evening
    for run in (result.live, result.other):
        b = run.settings.battery
        for slot in run.slots.values():
            assert b.soc_min - 1e-4 <= slot.soc <= b.soc_max + 1e-4
            assert -b.discharge_kw - 1e-3 <= slot.battery_kw <= b.charge_kw + 1e-3
    evening = [result.live.slots[T0 + 18 * 3600 + 900 * i].battery_kw for i in range(16)]
    assert min(evening) < 0  # it discharges when the price is high
    assert result.stored.slots == {}  # no live node wrote plans in this journal


def test_whatif_is_deterministic(journal: Journal) -> None:
    two_days_of_prices(journal)
    live = settings()
    first = whatif(journal, live, live, T0, T0 + DAY)
    second = whatif(journal, live, live, T0, T0 + DAY)
    assert first.live.slots == second.live.slots == first.other.slots
