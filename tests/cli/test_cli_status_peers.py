"""``moat-log status``'s peers table: live links, peers gone since, unreachable addresses."""

from __future__ import annotations

import pytest

from moat_log.cli import _output
from moat_log.cli._node_cmds import _print_sync
from moat_log.timespec import short_time

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
    assert by_peer["pi2"][1:3] == ["dialled", short_time(LIVE_SINCE)]
    assert by_peer["pi3"][1:7] == ["down", short_time(GONE_AT), "100", "0", "25", "120/30"]
    assert by_peer["pi3"][-1] == "cannot connect: Connection refused"
    assert by_peer["pi4.lan:27600"][1] == "not connected"
    assert "pi3.lan:27600" not in by_peer  # shown as pi3, with what it held


def test_without_errors_there_is_no_error_column(capsys: pytest.CaptureFixture[str]) -> None:
    head, *rows = table(capsys, {"listen": [], "peers": {"pi2": peer()}, "dialling": {}})
    assert cells(head)[-1] == "IN/OUT"
    assert cells(rows[0])[-1] == "120/30"


def test_on_an_80_column_terminal_every_line_fits(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_output, "stdout_is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "80")
    error = "cannot connect to pi3.lan:27600: [Errno 113] No route to host (after 4 attempts)"
    sync = {
        "listen": ["0.0.0.0:27600"],
        "peers": {
            "pi2": peer(holds=123_456_789),
            "pi3": peer(connected=False, until=GONE_AT, last_error=error),
        },
        "dialling": {},
    }
    _print_sync(sync)
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[2].startswith("PEER")
    assert lines[-1].endswith("…")  # the error, cut to fit
    assert "123456789" in lines[3]  # the narrow columns are whole
