"""``moat-log status``'s peers table: live links, peers gone since, unreachable addresses."""

from __future__ import annotations

import pytest

from moat_log.cli._node_cmds import _print_sync
from moat_log.timespec import format_time

LIVE_SINCE = 1_795_000_000 * 10**9
GONE_AT = LIVE_SINCE + 3_600 * 10**9


def peer(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "connected": True, "dialled": True, "since": LIVE_SINCE, "until": None,
        "holds": 120, "missing_here": 0, "missing_there": 0, "events_in": 120,
        "events_out": 30, "bytes_in": 9000, "bytes_out": 2000, "last_error": "",
    }  # fmt: skip
    fields.update(overrides)
    return fields


def dial(name: str | None, error: str) -> dict[str, object]:
    return {"peer": name, "connected": False, "attempts": 4, "last_error": error}


def table(capsys: pytest.CaptureFixture[str], sync: dict[str, object]) -> list[list[str]]:
    _print_sync(sync)
    lines = capsys.readouterr().out.splitlines()
    return [line.split("  ") for line in lines[2:]]  # after the blank and "listening" lines


def cells(row: list[str]) -> list[str]:
    return [cell.strip() for cell in row if cell.strip()]


def test_a_gone_peer_shows_since_when_what_it_held_and_how_far_behind_it_is(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sync: dict[str, object] = {
        "listen": ["0.0.0.0:27600"],
        "peers": {
            "pi2": peer(),
            "pi3": peer(
                connected=False,
                until=GONE_AT,
                holds=100,
                missing_there=25,
                last_error="cannot connect: Connection refused",
            ),
        },
        "dialling": {
            "pi3.lan:27600": dial("pi3", "cannot connect: Connection refused"),
            "pi4.lan:27600": dial(None, "cannot connect: No route to host"),
        },
    }
    head, *rows = table(capsys, sync)
    assert cells(head)[-1] == "LAST ERROR"
    by_peer = {cells(row)[0]: cells(row) for row in rows}
    assert by_peer["pi2"][1:3] == ["dialled", format_time(LIVE_SINCE)]
    assert by_peer["pi3"][1:7] == ["down", format_time(GONE_AT), "100", "0", "25", "120 / 30"]
    assert by_peer["pi3"][-1] == "cannot connect: Connection refused"
    assert by_peer["pi4.lan:27600"][1] == "not connected"
    assert "pi3.lan:27600" not in by_peer  # shown as pi3, with what it held


def test_without_errors_there_is_no_error_column(capsys: pytest.CaptureFixture[str]) -> None:
    head, *rows = table(capsys, {"listen": [], "peers": {"pi2": peer()}, "dialling": {}})
    assert cells(head)[-1] == "EVENTS IN / OUT"
    assert cells(rows[0])[-1] == "120 / 30"
