"""Tables fit the terminal: long cells are cut with a marker there, never in a pipe or JSON."""

from __future__ import annotations

import json
import os
import pty
import subprocess

from cli_support import TIMEOUT, Script, script_env
from hypothesis import given
from hypothesis import strategies as st

from moat_log.cli._output import fit_widths

widths = st.lists(st.integers(1, 300), min_size=1, max_size=10)


@given(widths, st.integers(20, 300))
def test_fitted_widths_fit_when_they_can_and_change_nothing_that_fits(
    natural: list[int], columns: int
) -> None:
    fitted = fit_widths(natural, columns)
    gaps = 2 * (len(natural) - 1)
    assert all(min(4, n) <= f <= n for f, n in zip(fitted, natural, strict=True))
    if sum(natural) + gaps <= columns:
        assert fitted == natural
    elif sum(min(4, n) for n in natural) + gaps <= columns:
        assert sum(fitted) + gaps == columns  # as wide as the terminal, no narrower
    else:
        assert fitted == [min(4, n) for n in natural]


def test_narrow_columns_stay_whole_while_a_wide_one_gives_way() -> None:
    assert fit_widths([25, 8, 100_000], 80) == [25, 8, 80 - 25 - 8 - 4]


def on_a_terminal(script: Script, *args: str, columns: int = 80) -> list[str]:
    """The lines *args* print to a pseudo-terminal *columns* wide."""
    controller, terminal = pty.openpty()
    env = {**script_env(), "COLUMNS": str(columns)}
    with subprocess.Popen(
        script.argv(*args), stdout=terminal, stderr=subprocess.DEVNULL, env=env
    ) as process:
        os.close(terminal)
        output = b""
        while chunk := _read(controller):
            output += chunk
        assert process.wait(timeout=TIMEOUT) == 0
    os.close(controller)
    return output.decode().splitlines()


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the child closed the terminal
        return b""


def test_a_100kb_value_is_cut_on_a_terminal_and_whole_in_json(script: Script) -> None:
    big = "x" * 100_000
    script.run("init", "--node", "pi1")
    script.run("set", "home.big", big, "--string")
    script.run("set", "home.small", "1")
    for command in (("ls", "home", "--recursive"), ("log",), ("history", "home.big")):
        lines = on_a_terminal(script, *command)
        assert lines, command
        assert max(len(line) for line in lines) <= 80, command
        assert any("…" in line for line in lines), command
    piped = script.run("ls", "home", "--recursive")
    assert big in piped
    listed = json.loads(script.run("--json", "ls", "home", "--recursive"))
    assert listed["home.big"] == big
