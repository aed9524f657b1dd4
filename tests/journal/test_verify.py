"""verify_journal finds every kind of inconsistency and passes a healthy journal."""

from collections.abc import Iterator
from pathlib import Path as FsPath

import msgpack
import pytest

from moat_log.event import Event, Op
from moat_log.journal import keys
from moat_log.journal.change import Change
from moat_log.journal.store import Journal
from moat_log.journal.verify import verify_journal
from moat_log.path import Path


@pytest.fixture
def journal(tmp_path: FsPath) -> Iterator[Journal]:
    journal = Journal.create(tmp_path, "pi1")
    journal.write_batch([Change(Path(("room", i % 7, "temp")), i) for i in range(3000)])
    journal.write_batch(
        [Event("pi2", seq, 10 + seq, {}, Path(("x",)), Op.SET, seq) for seq in (1, 2, 5)]
    )
    yield journal
    journal.close()


def _corrupt(journal: Journal, db: str, key: bytes, value: bytes | None) -> None:
    with journal._env.begin(write=True) as txn:
        if value is None:
            assert txn.delete(key, db=journal._dbs[db])
        else:
            txn.put(key, value, db=journal._dbs[db])


def test_a_healthy_journal_passes_and_gaps_of_foreign_origins_are_warnings(
    journal: Journal,
) -> None:
    seen: list[int] = []
    report = verify_journal(journal, progress=seen.append)
    assert report.ok, report.problems
    assert report.events == 3003
    assert seen[-1] == 3003
    assert report.warnings == ["origin pi2: seqs 3-4 not received yet"]


def test_missing_index_entries_are_found(journal: Journal) -> None:
    _corrupt(journal, "ids", keys.id_key("pi1", 17), None)
    _corrupt(journal, "times", keys.time_key(_hlc(journal, "pi1", 18), "pi1"), None)
    report = verify_journal(journal)
    assert not report.ok
    text = "\n".join(report.problems)
    assert "pi1:17" in text and "ids entry is missing" in text
    assert "pi1:18" in text and "times entry is missing" in text
    assert "ids index has 3002 entries for 3003 events" in text


def test_an_index_entry_pointing_elsewhere_is_found(journal: Journal) -> None:
    _corrupt(journal, "ids", keys.id_key("pi1", 5), keys.pack_u64(6))
    report = verify_journal(journal)
    assert any("pi1:5" in p and "at position 6" in p for p in report.problems)


def test_an_extra_index_entry_is_found(journal: Journal) -> None:
    _corrupt(
        journal,
        "paths",
        Path(("ghost",)).key + b"\x00" + keys.pack_u64(1) + b"pi1",
        keys.pack_u64(1),
    )
    report = verify_journal(journal)
    assert "the paths index has 3004 entries for 3003 events" in report.problems


def test_a_record_that_does_not_unpack_is_found(journal: Journal) -> None:
    _corrupt(journal, "events", keys.pack_u64(10), b"\xc1garbage")
    report = verify_journal(journal)
    assert any("position 10" in p and "does not unpack" in p for p in report.problems)


def test_meta_ranges_disagreeing_with_the_events_are_found(journal: Journal) -> None:
    _corrupt(journal, "meta", keys.MetaKey.RANGES + b"pi2", msgpack.packb([1, 9]))
    report = verify_journal(journal)
    assert any("origin pi2" in p and "1-9" in p for p in report.problems)


def test_a_gap_in_the_nodes_own_seqs_is_a_problem(tmp_path: FsPath) -> None:
    with Journal.create(tmp_path, "pi1") as journal:
        journal.write_batch(
            [Event("pi1", seq, seq, {}, Path(("x",)), Op.SET, seq) for seq in (1, 2, 4)]
        )
        report = verify_journal(journal)
    assert any("own seqs have gaps" in p for p in report.problems)


def test_hlc_not_rising_with_seq_is_found(tmp_path: FsPath) -> None:
    with Journal.create(tmp_path, "pi1") as journal:
        journal.write_batch(
            [
                Event("pi2", 1, 50, {}, Path(("x",)), Op.SET),
                Event("pi2", 2, 40, {}, Path(("x",)), Op.SET),
            ]
        )
        report = verify_journal(journal)
    assert any("pi2:2 has hlc 40" in p for p in report.problems)


def test_a_clock_behind_the_events_is_found(journal: Journal) -> None:
    _corrupt(journal, "meta", keys.MetaKey.HLC, keys.pack_u64(5))
    report = verify_journal(journal)
    assert any("clock 5 is behind" in p for p in report.problems)


def _hlc(journal: Journal, origin: str, seq: int) -> int:
    from moat_log.ids import EventId

    event = journal.get(EventId(origin, seq))
    assert event is not None
    return event.hlc


def test_deps_that_decrease_are_reported_with_both_event_ids(tmp_path: FsPath) -> None:
    """Written by an older moat-log: held as written, reported, the journal still consistent."""
    with Journal.create(tmp_path, "n2") as journal:
        journal.write_batch(
            [
                Event("n1", 8814, 10, {"n2": 5000}, Path(("x",)), Op.SET),
                Event("n1", 8815, 20, {"n2": 5450, "n3": 5633}, Path(("x",)), Op.SET),
                Event("n1", 8816, 30, {"n2": 5451, "n3": 70}, Path(("x",)), Op.SET),
                Event("n1", 8818, 40, {"n2": 5451, "n3": 70}, Path(("x",)), Op.SET),
                Event("n3", 1, 50, {"n1": 9}, Path(("x",)), Op.SET),
                Event("n3", 2, 60, {}, Path(("x",)), Op.SET),
            ]
        )
        report = verify_journal(journal)
    assert report.ok, report.problems
    decreasing = [w for w in report.warnings if "deps decrease" in w]
    assert decreasing == [
        "origin n1: deps decrease from n1:8815 to n1:8816 (n3 5633 -> 70); "
        "'moat-log conflicts' may list writes that n1:8816 had seen",
        "origin n3: deps decrease from n3:1 to n3:2 (n1 9 -> 0); "
        "'moat-log conflicts' may list writes that n3:2 had seen",
    ]
