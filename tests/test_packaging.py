"""Packaging: every sub-package folder is listed and lands inside moat_log in the wheel.

setuptools silently leaves out a folder with an __init__.py that is missing
from `packages`, while the editable install still imports it; these tests
catch that before a user's `pip install` does.
"""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def package_folders() -> dict[str, Path]:
    """Every package the source tree defines, by installed name."""
    found = {}
    for name, folder in CONFIG["package-dir"].items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            relative = init.parent.relative_to(base).parts
            if "__pycache__" in relative:
                continue
            found[".".join((name, *relative))] = init.parent
    return found


def test_every_folder_with_an_init_is_listed_in_packages() -> None:
    missing = sorted(set(package_folders()) - set(CONFIG["packages"]))
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_every_listed_package_exists() -> None:
    assert set(CONFIG["packages"]) <= set(package_folders())


def test_the_required_top_level_folders_are_sub_packages_of_moat_log() -> None:
    for folder in ("journal", "projections", "adapters", "firmware"):
        assert CONFIG["package-dir"][f"moat_log.{folder}"] == folder


@pytest.mark.slow
def test_the_wheel_holds_every_module_under_moat_log(tmp_path: Path) -> None:
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("moat_log-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package, folder in package_folders().items():
        for module in folder.glob("*.py"):
            expected = "/".join((*package.split("."), module.name))
            assert expected in names, f"{expected} is missing from the wheel"
    top_levels = {name.split("/", 1)[0] for name in names}
    assert not {"journal", "projections", "adapters", "firmware"} & top_levels
    assert any(name.endswith("entry_points.txt") for name in names)
