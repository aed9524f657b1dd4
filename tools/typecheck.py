"""Run mypy on moat-log laid out as it installs.

setuptools maps the top-level folders journal/, projections/, adapters/ and
firmware/ into the moat_log package (package-dir), which mypy cannot follow.
This script builds that layout as symlinks in .typecheck/ and checks it, plus
the tests and tools against it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIEW = ROOT / ".typecheck"


def build_view() -> Path:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping: dict[str, str] = config["package-dir"]
    package = VIEW / "moat_log"
    if VIEW.exists():
        subprocess.run(["rm", "-rf", str(VIEW)], check=True)
    package.mkdir(parents=True)
    for item in (ROOT / "moat_log").iterdir():
        (package / item.name).symlink_to(item)
    for name, folder in mapping.items():
        if name != "moat_log":
            (package / name.split(".", 1)[1]).symlink_to(ROOT / folder)
    return package


def mypy(*targets: Path, search: Path | None = None) -> int:
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    if search is not None:
        # A test folder: its modules import their support modules by bare name.
        command += ["--explicit-package-bases"]
    env = dict(os.environ)
    if search is not None:
        # As pytest's sys.path: the folder and the test folders above it
        # (tests/adapters/knx/netns imports knxd.py from tests/adapters/knx).
        above = [search, *(p for p in search.parents if (ROOT / "tests") in (p, *p.parents))]
        env["MYPYPATH"] = os.pathsep.join(str(folder) for folder in above)
    command += [str(target) for target in targets]
    return subprocess.run(command, cwd=VIEW, env=env, check=False).returncode


def main() -> int:
    package = build_view()
    status = mypy(package, ROOT / "tools")
    # Each test folder alone: they have modules of the same name (conftest).
    # Nested ones too (tests/adapters/mqtt).
    folders = (p for p in (ROOT / "tests").rglob("*") if p.is_dir() and p.name != "__pycache__")
    for folder in sorted(folders):
        modules = sorted(folder.glob("*.py"))  # its own only: a subfolder has its own path
        if modules:
            status |= mypy(*modules, search=folder)
    status |= mypy(*sorted((ROOT / "tests").glob("*.py")), search=ROOT / "tests")
    return status


if __name__ == "__main__":
    sys.exit(main())
