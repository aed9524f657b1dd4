"""A Ctrl-C while the command line loads ends it quietly, with status 130."""

from __future__ import annotations

import builtins
from typing import Any

import pytest

from moat_log._entry import main


def test_an_interrupt_during_the_imports_is_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def interrupted(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "moat_log.cli":
            raise KeyboardInterrupt  # as if Ctrl-C came while asyncclick loads
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 130
    assert capsys.readouterr().err == "moat-log: interrupted\n"
