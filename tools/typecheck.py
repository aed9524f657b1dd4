"""Run mypy on moat-log laid out as it installs.

setuptools maps the top-level folders journal/, projections/, adapters/ and
firmware/ into the moat_log package (package-dir), which mypy cannot follow.
This script builds that layout as symlinks in .typecheck/ and checks it, plus
the tests and tools against it.
"""

from __future__ import annotations

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


def main() -> int:
    package = build_view()
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        str(package),
    ]
    return subprocess.run(command, cwd=VIEW, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
