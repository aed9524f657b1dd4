"""firmware/parts.py and hw.py: the cases of fw_parts_cases.py on CPython and in MicroPython."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fw_support import fill_flash, firmware_on_path, runner

CASES_FILE = Path(__file__).with_name("fw_parts_cases.py")
CASE_NAMES = re.findall(r"^def (case_\w+)\(", CASES_FILE.read_text(), re.MULTILINE)

pytest.register_assert_rewrite("fw_parts_cases")


@pytest.fixture
def cases() -> Iterator[ModuleType]:
    with firmware_on_path():
        import fw_parts_cases

        yield fw_parts_cases


@pytest.mark.parametrize("name", CASE_NAMES)
def test_case_on_cpython(cases: ModuleType, name: str) -> None:
    getattr(cases, name)()


def test_the_case_list_is_what_the_module_defines(cases: ModuleType) -> None:
    assert cases.cases() == sorted(CASE_NAMES)


@pytest.mark.slow
def test_every_case_passes_in_micropython(tmp_path: Path) -> None:
    flash = fill_flash(tmp_path / "flash", CASES_FILE)
    (flash / "main.py").write_text("import fw_parts_cases\nfw_parts_cases.run_all()\n")
    done = subprocess.run(
        runner(flash), check=False, capture_output=True, timeout=120, stdin=subprocess.DEVNULL
    )
    lines = done.stdout.decode().splitlines()
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert lines[-1] == "done", lines
    failed = [line for line in lines if line.startswith("FAIL")]
    assert failed == [], done.stdout.decode()
    assert sorted(line.split()[1] for line in lines if line.startswith("ok ")) == sorted(CASE_NAMES)
