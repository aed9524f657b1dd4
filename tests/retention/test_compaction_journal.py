"""Compaction of one journal: roll-ups, what is kept, what the summary still says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path as FsPath

import pytest

from moat_log.event import Event, Op
from moat_log.ids import EventId
from moat_log.idset import IdSet
from moat_log.journal.change import Change
from moat_log.journal.compaction import PathPattern, RetentionRule, rollup_path
from moat_log.journal.store import Journal
from moat_log.journal.verify import verify_journal
from moat_log.path import Path
from moat_log.projections import kv_view, open_journal
from moat_log.projections.compactor import compact_journal, retirement_path

HOUR = 3600 * 10**9
T0 = 1_800_000_000 * 10**9 // HOUR * HOUR  # an hour boundary
TEMP = Path.parse("home.kitchen.temp")
LIGHT = Path.parse("home.kitchen.light")
RULE = RetentionRule("temps", (PathPattern.parse("home.+.temp"),), raw_for=2 * HOUR, rollup=HOUR)


@pytest.fixture
def journal(tmp_path: FsPath) -> Iterator[Journal]:
    with open_journal(tmp_path, create_node="pi1") as journal:
        yield journal


def write_readings(journal: Journal, hours: int, per_hour: int = 6) -> list[Event]:
    """*per_hour* temperatures (0, 1, 2, ...) per hour from T0, and a light command per hour."""
    changes = []
    for hour in range(hours):
        for n in range(per_hour):
            at = T0 + hour * HOUR + n * (HOUR // per_hour) + 1
            changes.append(Change(TEMP, float(n), source="knx:1/2/3", at=at))
        changes.append(Change(LIGHT, True, source="cli:alice", at=T0 + hour * HOUR + HOUR - 1))
    results = journal.write_batch(changes)
    assert all(isinstance(r, Event) for r in results)
    return [r for r in results if isinstance(r, Event)]


def test_old_readings_become_hourly_rollups_and_the_rest_stays(journal: Journal) -> None:
    events = write_readings(journal, hours=5)
    summary = journal.summary()
    now = T0 + 5 * HOUR
    report = compact_journal(journal, kv_view(journal), [RULE], now=now)
    # hours 0, 1, 2 end before the cutoff (now - 2 h): rolled up, their readings removed
    assert report.rollups == 3
    assert report.removed == 3 * 6
    temps = [e for e in journal.history(TEMP)]
    assert all(e.hlc >= T0 + 3 * HOUR for e in temps)
    assert len(list(journal.history(LIGHT))) == 5, "commands are kept for ever"
    rollups = list(journal.history(rollup_path(HOUR, TEMP)))
    assert [r.value["from"] for r in rollups] == [T0, T0 + HOUR, T0 + 2 * HOUR]
    assert rollups[0].value == {
        "from": T0,
        "until": T0 + HOUR,
        "count": 6,
        "min": 0.0,
        "max": 5.0,
        "mean": 2.5,
        "last": 5.0,
    }
    assert rollups[0].source == "rollup:temps"
    assert journal.summary() - summary == IdSetOf(rollups), "removed ids stay in the summary"
    removed = {e.id for e in events if e.path == TEMP and e.hlc < T0 + 3 * HOUR}
    assert set(journal.gone()) == removed
    assert all(journal.get(i) is None for i in removed)
    assert verify_journal(journal).ok


def IdSetOf(events: list[Event]) -> IdSet:
    return IdSet.of_events(events)


def test_a_second_run_removes_nothing_more_and_writes_no_second_rollup(journal: Journal) -> None:
    write_readings(journal, hours=5)
    compact_journal(journal, kv_view(journal), [RULE], now=T0 + 5 * HOUR)
    again = compact_journal(journal, kv_view(journal), [RULE], now=T0 + 5 * HOUR)
    assert (again.removed, again.rollups) == (0, 0)


def test_the_winner_and_the_tips_are_never_removed(journal: Journal) -> None:
    events = write_readings(journal, hours=3, per_hour=2)
    view = kv_view(journal)
    winner = view.get(TEMP)
    assert winner is not None
    compact_journal(journal, view, [RULE], now=T0 + 100 * HOUR)
    assert journal.get(winner.id) == winner
    assert view.get(TEMP) == winner
    assert journal.get(events[-1].id) is not None
    assert verify_journal(journal).ok


def test_the_kv_view_of_what_remains_is_the_view_before(journal: Journal) -> None:
    write_readings(journal, hours=5)
    view = kv_view(journal)
    before = {str(e.path): e for e in view.walk(deleted=True)}
    compact_journal(journal, view, [RULE], now=T0 + 50 * HOUR)
    journal.rebuild_view("kv")
    after = {str(e.path): e for e in view.walk(deleted=True) if e.path[0] != "moat-log"}
    assert after == before
    assert not view.check()


def test_an_event_of_a_removed_id_arriving_again_is_dropped(journal: Journal) -> None:
    events = write_readings(journal, hours=5)
    compact_journal(journal, kv_view(journal), [RULE], now=T0 + 5 * HOUR)
    assert journal.get(events[0].id) is None
    assert journal.insert(events[0]) is False
    assert journal.get(events[0].id) is None


def test_a_peer_that_has_not_stated_holding_an_event_keeps_it(journal: Journal) -> None:
    events = write_readings(journal, hours=5)
    first_two_hours = {e.id for e in events if e.hlc < T0 + 2 * HOUR}
    journal.record_peer("pi2", IdSet.of_events(e for e in events if e.id in first_two_hours), T0)
    report = compact_journal(journal, kv_view(journal), [RULE], now=T0 + 5 * HOUR)
    assert report.removed == 12
    assert report.kept_unconfirmed == 6
    assert set(journal.gone()) <= first_two_hours


def test_a_peer_retired_after_it_was_last_seen_no_longer_holds_compaction_back(
    journal: Journal,
) -> None:
    write_readings(journal, hours=5)
    journal.record_peer("pi2", IdSet(), T0)
    assert compact_journal(journal, kv_view(journal), [RULE], now=T0 + 5 * HOUR).removed == 0
    journal.append(Change(retirement_path("pi2"), {"by": "pi1"}, source="cli:retire"))
    report = compact_journal(journal, kv_view(journal), [RULE], now=T0 + 5 * HOUR)
    assert report.removed == 18
    assert "pi2" in report.frontier.retired  # type: ignore[union-attr]


def test_a_configured_peer_whose_name_is_unknown_holds_everything_back(journal: Journal) -> None:
    write_readings(journal, hours=5)
    report = compact_journal(journal, kv_view(journal), [RULE], now=T0 + 5 * HOUR, unanswered=1)
    assert report.removed == 0 and report.rollups == 3, "roll-ups are written all the same"


def test_readings_of_another_origin_wait_for_that_origins_rollup(journal: Journal) -> None:
    other = [
        Event("pi2", n + 1, T0 + n * HOUR // 6 + 1, {}, TEMP, Op.SET, float(n), "knx:1/2/4")
        for n in range(6)
    ]
    for event in other:
        journal.insert(event)
    journal.append(Change(TEMP, 99.0, source="knx:1/2/3"))
    report = compact_journal(journal, kv_view(journal), [RULE], now=T0 + 5 * HOUR)
    assert report.removed == 0, "pi2 has not rolled its hour up"
    journal.insert(
        Event(
            "pi2",
            7,
            T0 + 3 * HOUR,
            {},
            rollup_path(HOUR, TEMP),
            Op.SET,
            {
                "from": T0,
                "until": T0 + HOUR,
                "count": 6,
                "min": 0.0,
                "max": 5.0,
                "mean": 2.5,
                "last": 5.0,
            },
            "rollup:temps",
        )
    )
    report = compact_journal(journal, kv_view(journal), [RULE], now=T0 + 5 * HOUR)
    assert report.removed == 5, "all but pi2's head on the path"
    assert journal.get(EventId("pi2", 6)) is not None


def test_a_second_compaction_while_one_runs_is_refused(journal: Journal) -> None:
    from moat_log.errors import CompactionRunningError
    from moat_log.projections import compactor

    write_readings(journal, hours=5)
    with compactor._compacting(journal), pytest.raises(CompactionRunningError):
        compact_journal(journal, kv_view(journal), [RULE], now=T0 + 5 * HOUR)
    assert compact_journal(journal, kv_view(journal), [RULE], now=T0 + 5 * HOUR).removed == 18
