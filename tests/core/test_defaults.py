"""The shared defaults: every program finds the same data directory."""

from pathlib import Path as FsPath

import pytest

from moat_log import defaults


def test_the_environment_variable_overrides_the_default_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: FsPath
) -> None:
    monkeypatch.delenv(defaults.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert defaults.default_data_dir() == tmp_path / "xdg" / "moat-log"
    monkeypatch.setenv(defaults.DATA_DIR_ENV, str(tmp_path / "mine"))
    assert defaults.default_data_dir() == tmp_path / "mine"
    assert defaults.xdg_data_dir() == tmp_path / "xdg" / "moat-log"


def test_a_relative_xdg_data_home_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(defaults.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", "relative/path")
    assert defaults.default_data_dir() == FsPath.home() / ".local" / "share" / "moat-log"
