"""The side-effect projections as the commands show them: ``status``, ``projection list``."""

from __future__ import annotations

from typing import Any

import asyncclick as click

from ._main import Settings
from ._output import print_table


def stored_side_effects(settings: Settings) -> dict[str, dict[str, Any]]:
    """The side-effect projections of the journal when no node runs them: their checkpoints."""
    from moat_log.projections.runner import side_effect_status  # the journal's side only

    with settings.journal() as journal:
        return side_effect_status({}, journal.checkpoints(), journal.last_position)


def print_side_effects(side_effects: dict[str, dict[str, Any]], last_position: int) -> None:
    """A table of the side-effect projections (nothing when there are none)."""
    if not side_effects:
        return
    click.echo()
    print_table(
        ("SIDE EFFECT", "STATE", "CHECKPOINT", "APPLIED", "JOURNAL", "LAG", "LAST ERROR"),
        [
            (
                name,
                entry["state"],
                str(entry["checkpoint"]),
                str(entry["applied"]),
                str(last_position),
                str(entry["lag"]),
                entry["last_error"] or "-",
            )
            for name, entry in side_effects.items()
        ],
    )
