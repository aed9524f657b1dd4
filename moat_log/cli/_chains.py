"""How ``why`` and ``conflicts --chains`` print a chain of causes.

For people, each step is the path and its value, then the event's id, time
and source, then what it displaced ("overwrote", "conflict with"), then the
link to the next step ("caused by ID"); the last line says where the chain
ends and why.  For programs, `chain_json` is the same as one JSON object.
"""

from __future__ import annotations

from typing import Any

import asyncclick as click

from moat_log.event import Event, Op
from moat_log.projections.why import Chain, Step
from moat_log.timespec import format_time

from ._main import printable
from ._output import event_json, value_text


def event_summary(event: Event) -> str:
    """``home.light = true`` or ``home.light deleted``."""
    path = printable(str(event.path))
    if event.op is Op.DELETE:
        return f"{path} deleted"
    return f"{path} = {printable(value_text(event.value))}"


def _source(event: Event) -> str:
    return printable(event.source) if event.source else "(no source)"


def _other(event: Event) -> str:
    shown = "deleted" if event.op is Op.DELETE else printable(value_text(event.value))
    return f"{event.id} ({shown}, {format_time(event.hlc)}, {_source(event)})"


def step_lines(step: Step) -> list[str]:
    """The lines of one step, the first unindented."""
    event = step.event
    lines = [event_summary(event), f"  {event.id}  {format_time(event.hlc)}  {_source(event)}"]
    if step.conflict_with is not None:
        lines.append(
            f"  conflict with {_other(step.conflict_with)}: concurrent, unseen by {event.origin}"
        )
    if step.overwrote is not None:
        lines.append(f"  overwrote {_other(step.overwrote)}")
    return lines


def chain_lines(chain: Chain, *, indent: str = "") -> list[str]:
    """The whole chain for a terminal."""
    lines: list[str] = []
    for number, step in enumerate(chain.steps):
        if number:
            lines.append(f"  caused by {step.event.id}")
        lines.extend(step_lines(step))
    lines.append(f"  {chain.end.describe()}")
    return [indent + line for line in lines]


def print_chain(chain: Chain, *, indent: str = "") -> None:
    click.echo("\n".join(chain_lines(chain, indent=indent)))


def chain_json(chain: Chain) -> dict[str, Any]:
    """The chain as JSON: its steps (each event and what it displaced) and its end."""

    def step_json(step: Step) -> dict[str, Any]:
        return {
            "event": event_json(step.event),
            "overwrote": None if step.overwrote is None else event_json(step.overwrote),
            "conflict_with": (
                None if step.conflict_with is None else event_json(step.conflict_with)
            ),
        }

    return {
        "steps": [step_json(step) for step in chain.steps],
        "end": {
            "kind": chain.end.kind.value,
            "cause": None if chain.end.cause is None else str(chain.end.cause),
            "message": chain.end.describe(),
        },
    }
