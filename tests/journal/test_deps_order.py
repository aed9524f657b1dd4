"""An origin's deps never decrease: the vector clock operations and the journal's guard."""

from __future__ import annotations

from pathlib import Path as FsPath

import pytest

from moat_log.errors import CausalityError
from moat_log.event import Event, Op
from moat_log.idset import IdSet
from moat_log.journal.batch import WriteBatch
from moat_log.journal.change import Change
from moat_log.journal.store import Journal
from moat_log.path import Path
from moat_log.vclock import VectorClock


def test_join_is_the_element_wise_maximum() -> None:
    a, b = VectorClock({"n2": 5, "n3": 70}), VectorClock({"n3": 5633, "n4": 1})
    assert a.join(b) == VectorClock({"n2": 5, "n3": 5633, "n4": 1})
    assert list(a.join(b)) == ["n2", "n3", "n4"], "sorted: the packed form stays canonical"
    assert a.join(VectorClock({"n2": 1})) is a, "nothing new: the same clock"


def test_first_decrease_names_an_origin_the_later_clock_claims_less_of() -> None:
    before = VectorClock({"n2": 5450, "n3": 5633})
    assert before.first_decrease(VectorClock({"n2": 5451, "n3": 70})) == "n3"
    assert before.first_decrease(VectorClock({"n2": 5451})) == "n3", "absent means 0"
    assert before.first_decrease(VectorClock({"n2": 5450, "n3": 5633, "n4": 1})) is None


def test_the_journal_refuses_a_local_event_whose_deps_would_decrease(
    tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backstop: were the deps ever computed without the join, nothing would be stored."""
    with Journal.create(tmp_path, "n1") as journal:
        journal.insert(Event("n2", 1, 100, {}, Path(("x",)), Op.SET, 1))
        journal.insert(Event("n1", 1, 200, {"n2": 30001}, Path(("p",)), Op.SET, 1))
        before = journal.summary()
        # What the deps were before the join: the contiguous holdings alone.
        monkeypatch.setattr(WriteBatch, "_seen", lambda self, previous: VectorClock({"n2": 1}))
        item = Event("n3", 1, 300, {}, Path(("y",)), Op.SET, 1)
        refused, stored = journal.write_batch([Change(Path(("p",)), 2), item])
        assert isinstance(refused, CausalityError)
        assert str(refused) == (
            "a new event of n1 would claim n2:1 while its event n1:1 had seen n2:30001; "
            "refused (deps never decrease); run 'moat-log verify'"
        )
        assert stored is True, "the refusal concerns that item alone"
        assert journal.summary() == before | IdSet.parse("n3:1")
