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


def print_adapters(adapters: dict[str, dict[str, Any]]) -> None:
    """A table of the bus adapters (nothing when there are none)."""
    if not adapters:
        return
    click.echo()
    print_table(
        ("ADAPTER", "TYPE", "STATE", "IN", "OUT", "BAD", "LAG", "LAST ERROR"),
        [
            (
                name,
                entry["type"],
                _adapter_state(entry),
                str(entry["written"]),
                str(entry["sent"]),
                str(entry["bad"]),
                "-" if entry["lag"] is None else str(entry["lag"]),
                entry["last_error"] or "-",
            )
            for name, entry in adapters.items()
        ],
    )
    for name, entry in adapters.items():
        if entry.get("last_bad"):
            click.echo(f"adapter {name}: last bad data: {entry['last_bad']}")


def _adapter_state(entry: dict[str, Any]) -> str:
    state = str(entry["state"])
    role = entry.get("role")
    if state == "connected" and role == "standby":
        return f"{state} (standby; {entry.get('active')} publishes)"
    if state == "connected" and role:
        return f"{state} ({role})"
    return state


def print_schedules(schedules: dict[str, dict[str, Any]]) -> None:
    """A table of the energy schedules (nothing when there are none)."""
    if not schedules:
        return
    click.echo()
    print_table(
        ("SCHEDULE", "STATE", "WRITER", "SLOTS", "COST", "SOLVES", "FAILED", "ERROR"),
        [
            (
                name,
                str(entry["state"]),
                (entry["writer"] or "none live") + (" (this node)" if entry["writing"] else ""),
                str(entry["slots"]),
                "-" if entry["cost"] is None else f"{entry['cost']:+.4f}",
                str(entry["solves"]),
                str(entry["failures"]),
                entry["error"] or "-",
            )
            for name, entry in schedules.items()
        ],
    )
