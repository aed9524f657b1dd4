"""Helpers for the firmware tests: firmware/ on sys.path, a flash folder, the WASI runner."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
HOST_ONLY = {"__init__.py", "wasi_runner.py"}


def firmware_files() -> list[Path]:
    """The files that go onto a satellite's flash."""
    return sorted(p for p in FIRMWARE.glob("*.py") if p.name not in HOST_ONLY)


@contextmanager
def firmware_on_path() -> Iterator[None]:
    """Import firmware modules by their flat names (``import parts``), as on the board."""
    sys.path.insert(0, str(FIRMWARE))
    try:
        yield
    finally:
        sys.path.remove(str(FIRMWARE))


def fill_flash(flash: Path, *extra: Path) -> Path:
    """Copy the firmware (and *extra* files) into the folder *flash*."""
    flash.mkdir(parents=True, exist_ok=True)
    for source in (*firmware_files(), *extra):
        shutil.copy(source, flash / source.name)
    return flash


def runner(flash: Path, *args: str) -> list[str]:
    """The command that runs /flash/main.py of *flash* in MicroPython."""
    return [sys.executable, "-m", "moat_log.firmware.wasi_runner", "--flash", str(flash), *args]
