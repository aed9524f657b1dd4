"""``moat-log demo``: the real command, three real nodes, run as a newcomer would run it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path as FsPath
from typing import Any

from cli_support import Lines, find_script, script_env

from moat_log.cli._demo_cmd import WRITE_DURING_CUT, WRITE_OFFLINE
from moat_log.testing import short_temp_dir

#: The demo bounds each of its own waits; this only catches a hang.
DEMO_TIMEOUT = 60


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [find_script(), "demo", *args], capture_output=True, text=True,
        env=script_env(), timeout=DEMO_TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done


def demo_summary(*args: str) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(run_demo("--json", *args).stdout)
    return summary


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_converges_after_the_cut_and_leaves_nothing_behind() -> None:
    summary = demo_summary()

    final = summary["final"]
    assert final["pi1"] == final["pi2"] == final["pi3"]
    assert final["pi1"][WRITE_OFFLINE.path] == WRITE_OFFLINE.value
    assert final["pi1"][WRITE_DURING_CUT.path] == WRITE_DURING_CUT.value
    diverged = summary["diverged"]
    assert WRITE_DURING_CUT.path not in diverged["pi3"]
    assert diverged["pi3"][WRITE_OFFLINE.path] == WRITE_OFFLINE.value
    assert diverged["pi1"][WRITE_OFFLINE.path] != WRITE_OFFLINE.value

    links = summary["exchange"]
    assert sum(row["events_in"] for row in links if row["node"] == "pi3") >= 1
    assert sum(row["events_out"] for row in links if row["peer"] == "pi3") >= 1
    assert sum(row["events_out"] for row in links if row["node"] == "pi3") >= 1

    assert summary["exit_codes"] == {"pi1": 0, "pi2": 0, "pi3": 0}
    pids = [pid for node_pids in summary["pids"].values() for pid in node_pids]
    assert len(pids) == 4  # pi3 twice: before the cut and after the heal
    assert not [pid for pid in pids if is_running(pid)]
    assert summary["kept"] is False
    assert not FsPath(summary["data_dir"]).exists()


def test_demo_shows_the_tables_as_text() -> None:
    lines = [line.strip() for line in run_demo().stdout.splitlines()]

    assert lines[0].startswith("moat-log demo: three nodes")
    assert [line[:5] for line in lines if line.startswith("[")] == [
        "[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"
    ]  # fmt: skip
    for title in (
        "Every node holds the same:",
        "The two sides differ (pi3 read from its journal, offline):",
        "Converged again:",
    ):
        assert lines[lines.index(title) + 1].split() == ["PATH", "pi1", "pi2", "pi3"]
    assert 'home.garage.door       "closed"  "closed"  "open"' in lines  # diverged
    assert 'home.garage.door       "open"  "open"  "open"' in lines
    assert "home.heating.setpoint  20.0      20.0      -" in lines
    assert any(line.split()[:2] == ["NODE", "PEER"] for line in lines)
    assert any(line.startswith("Healed ") for line in lines)
    assert "exit codes: pi1 0, pi2 0, pi3 0" in lines
    assert any("docs/node.md" in line for line in lines)


def test_demo_keeps_its_files_with_keep() -> None:
    with short_temp_dir() as base:
        kept = base / "demo"
        summary = demo_summary("--keep", str(kept))

        assert summary["kept"] is True
        assert FsPath(summary["data_dir"]) == kept.resolve()
        for name in ("pi1", "pi2", "pi3"):
            assert (kept / name).is_dir()
            assert (kept / f"{name}.toml").is_file()
        assert (kept / "cluster.key").stat().st_mode & 0o077 == 0


def test_demo_refuses_a_keep_directory_that_is_not_empty(tmp_path: FsPath) -> None:
    (tmp_path / "something").write_text("")
    done = subprocess.run(
        [find_script(), "demo", "--keep", str(tmp_path)], capture_output=True, text=True,
        env=script_env(), timeout=DEMO_TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("moat-log: error: --keep ")
    assert "not empty" in done.stderr


def test_demo_help_says_what_it_does() -> None:
    done = run_demo("--help")
    assert "Three nodes on this machine: replicate, cut one off, heal." in done.stdout
    assert "--keep DIR" in done.stdout


def test_ctrl_c_stops_the_demo_and_its_nodes() -> None:
    process = subprocess.Popen(
        [find_script(), "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=script_env(),
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = Lines(process.stdout)
        base = FsPath(lines.next_line().rsplit(" in ", 1)[1])
        pids = []
        while not (line := lines.next_line()).startswith("[2/5]"):
            if ": pid " in line:
                pids.append(int(line.split(": pid ")[1].split(",")[0]))
        process.send_signal(signal.SIGINT)
        assert process.wait(DEMO_TIMEOUT) == 1  # click's "Aborted!"
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert len(pids) == 3
    assert not [pid for pid in pids if is_running(pid)]
    assert not base.exists()
