"""Projections: deterministic folds over the journal.

The KV view (`moat_log.projections.kv`) is kept inside the journal's write
transactions.  Every process that writes a journal must load the same views,
so open journals through `open_journal` here rather than `Journal.open`.

Side-effect projections act outside the journal (MQTT, a bus, a file):
their contract is `moat_log.projections.side_effect`, and the node runs them
behind the journal with `moat_log.projections.runner`.
"""

from __future__ import annotations

import os
from typing import Any

from moat_log.journal.store import Journal

from .kv import KVView


def default_views() -> list[Any]:
    """A fresh instance of every view a node maintains."""
    return [KVView()]


def open_journal(
    data_dir: str | os.PathLike[str], *, create_node: str | None = None, **kwargs: Any
) -> Journal:
    """Open (with *create_node*: create if needed) a journal with the node's views."""
    kwargs.setdefault("projections", default_views())
    if create_node is not None:
        return Journal.create(data_dir, create_node, **kwargs)
    return Journal.open(data_dir, **kwargs)


def kv_view(journal: Journal) -> KVView:
    """The KV view of a journal opened through `open_journal`."""
    view = journal.projections.get("kv")
    if not isinstance(view, KVView):
        raise TypeError("this journal was opened without the KV view")
    return view
