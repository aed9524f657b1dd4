"""The journal's public read API for views: transactions, database handles, scans."""

from __future__ import annotations

from pathlib import Path as FsPath

from moat_log.idset import IdSet
from moat_log.journal import keys
from moat_log.journal.change import Change
from moat_log.path import Path
from moat_log.projections import open_journal


def test_views_read_through_public_methods(tmp_path: FsPath) -> None:
    with open_journal(tmp_path, create_node="pi1") as journal:
        first = journal.append(Change(Path.parse("a"), 1))
        journal.append(Change(Path.parse("b"), 2))
        with journal.read_transaction() as txn:
            stored = txn.get(keys.pack_u64(1), db=journal.database("events"))
        assert stored is not None and bytes(stored) == first.pack()
        scanned = list(journal.scan_database("events", keys.pack_u64(1), keys.pack_u64(2)))
        assert scanned == [(keys.pack_u64(1), first.pack())]  # hi is exclusive
        newest_first = list(journal.scan_database("events", b"", None, reverse=True))
        assert [key for key, _ in newest_first] == [keys.pack_u64(2), keys.pack_u64(1)]


def test_summary_at_is_the_summary_with_its_position(tmp_path: FsPath) -> None:
    with open_journal(tmp_path, create_node="pi1") as journal:
        assert journal.summary_at() == (IdSet(), 0)
        journal.append(Change(Path.parse("a"), 1))
        summary, position = journal.summary_at()
        assert (summary, position) == (journal.summary(), 1)
