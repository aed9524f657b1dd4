"""Reading what a person types: values, node names, sources, times."""

from __future__ import annotations

import base64
import binascii
import getpass
import json
import time
from typing import Any

import asyncclick as click

from moat_log.errors import InvalidInputError, TimeSyntaxError
from moat_log.event import Value
from moat_log.ids import EventId
from moat_log.journal.store import Journal
from moat_log.timespec import parse_time

from ._output import BYTES_KEY


def parse_value(text: str, *, force_string: bool = False) -> Value:
    """VALUE of ``moat-log set``: JSON when it parses, else the text itself.

    ``{"$bytes": "<base64>"}`` is read as bytes, the form the CLI prints.
    Text that starts like JSON (``{``, ``[``, ``"``) but does not parse is
    stored as a string with a warning on stderr: it is most likely a typo.
    """
    if force_string:
        return text
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        if text.lstrip()[:1] in ("{", "[", '"'):
            click.echo(
                f"moat-log: warning: the value looks like JSON but is not ({exc}); "
                "storing it as a string (--string says so and silences this)",
                err=True,
            )
        return text
    return from_json_value(parsed)


def from_json_value(value: Any) -> Value:
    """Undo `_output.json_value`: ``{"$bytes": base64}`` becomes bytes again."""
    if isinstance(value, list):
        return [from_json_value(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1 and BYTES_KEY in value:
            return _decode_bytes(value[BYTES_KEY])
        return {key: from_json_value(item) for key, item in value.items()}
    return value


def _decode_bytes(text: object) -> bytes:
    if not isinstance(text, str):
        raise InvalidInputError(f'"{BYTES_KEY}" must be a base64 string, not {text!r}')
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(f'"{BYTES_KEY}" holds invalid base64: {exc}') from exc


def default_source() -> str:
    """``cli:$USER``, or ``cli`` when the user cannot be found out."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # getpass raises OSError or KeyError without a user entry
        return "cli"


def resolve_time(journal: Journal, text: str | None, option: str) -> int | None:
    """A time option as ns since the epoch; ``NODE:SEQ`` is that event's hlc."""
    if text is None:
        return None
    try:
        spec = parse_time(text, now_ns=time.time_ns())
    except TimeSyntaxError as exc:
        raise TimeSyntaxError(f"{option}: {exc}") from exc
    if isinstance(spec, EventId):
        event = journal.get(spec)
        if event is None:
            raise InvalidInputError(f"{option} {text}: there is no event {spec} in this journal")
        return event.hlc
    return spec


def resolve_range(
    journal: Journal, since: str | None, until: str | None
) -> tuple[int | None, int | None]:
    """``--since`` and ``--until`` as ns; an inverted range is an error, not an empty answer."""
    start = resolve_time(journal, since, "--since")
    end = resolve_time(journal, until, "--until")
    if start is not None and end is not None and start > end:
        raise InvalidInputError(
            f"--since {since} is after --until {until}, so no event can match; "
            "swap them (--since is the earlier time)"
        )
    return start, end
