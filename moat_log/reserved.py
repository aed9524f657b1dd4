"""The reserved prefix ``:.moat``: what moat-log itself keeps in the journal.

The first segment is the string ``.moat`` (text form ``:.moat``, the
escaped dot of docs/paths.md), a name no ordinary path is likely to have,
as MoaT-KV kept its own data under ``:.moat.kv``.  Below it:

* ``:.moat.type.PATTERN...``: a type bound to a path pattern (docs/types.md);
* ``:.moat.script.NAME``: a script, its code and its run entry (docs/scripting.md);
* ``:.moat.error.script.NAME.NODE``: the error record of a script on a node;
* ``:.moat.rollup.INTERVAL.PATH...``: the roll-ups retention keeps of a path's
  readings, and ``:.moat.peer.NAME.retired``: a retired peer
  (`moat_log.journal.compaction`, docs/operator-guide.md, "Retention").

Everything there is an ordinary event: it replicates, has history and shows
in ``moat-log log``.  Writes below ``:.moat`` are checked by
`moat_log.write_check`; typed paths' types never apply there.
"""

from __future__ import annotations

from typing import Final

from .path import Path

__all__ = [
    "ERRORS",
    "RESERVED",
    "SCRIPTS",
    "SCRIPT_ERRORS",
    "TYPES",
    "is_moat_logs_own",
    "is_reserved",
]

#: Everything moat-log keeps for itself.
RESERVED: Final = Path([".moat"])
#: Types: ``:.moat.type`` followed by the segments of the path pattern.
TYPES: Final = RESERVED / "type"
#: Scripts: ``:.moat.script.NAME``.
SCRIPTS: Final = RESERVED / "script"
#: Error records, by what failed.
ERRORS: Final = RESERVED / "error"
#: A script's error records: ``:.moat.error.script.NAME.NODE``.
SCRIPT_ERRORS: Final = ERRORS / "script"

_RESERVED_SEGMENT: Final = ".moat"


def is_reserved(path: Path) -> bool:
    """True for ``:.moat`` and every path below it."""
    return bool(path) and path[0] == _RESERVED_SEGMENT


def is_moat_logs_own(path: Path) -> bool:
    """True below ``:.moat``, the types' own paths included: no type applies."""
    return is_reserved(path)
