"""No input to the command line or in a config file gives a traceback: only a clear error."""

from __future__ import annotations

import tempfile
from pathlib import Path as FsPath

import pytest
from asyncclick.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from moat_log.cli import cli
from moat_log.errors import ConfigError
from moat_log.node.config import load_config

#: What a shell can pass: any text but NUL (surrogates stand for undecodable bytes).
argument = st.text(st.characters(exclude_characters="\x00"), max_size=40) | st.sampled_from(
    ["", "-", "--", ":", "::", ".", "a..b", "-1h", "now", "x:0", "pi1:-1", "9" * 30, "\x1b[2J"]
)

COMMANDS = [
    ("get", 1),
    ("ls", 1),
    ("history", 1),
    ("set", 2),
    ("delete", 1),
    ("log", "--since"),
    ("log", "--until"),
    ("log", "--limit"),
    ("log", "--origin"),
    ("replay", "--until"),
    ("diff", 2),
    ("conflicts", 1),
    ("export", "--since"),
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(COMMANDS), st.lists(argument, min_size=2, max_size=2))
@example(("log", "--limit"), ["9" * 30, ""])  # beyond sys.maxsize: islice refused it
async def test_any_argument_is_an_answer_or_a_one_line_error(
    command: tuple[str, int | str], values: list[str]
) -> None:
    name, shape = command
    args = [name, *values[: int(shape)]] if isinstance(shape, int) else [name, shape, values[0]]
    with tempfile.TemporaryDirectory() as data_dir:
        runner = CliRunner(catch_exceptions=False)
        await runner.invoke(cli, ["--data-dir", data_dir, "init", "--node", "pi1"])
        result = await runner.invoke(cli, ["--data-dir", data_dir, *args, *(
            ["-o", str(FsPath(data_dir) / "out.mlog")] if name == "export" else []
        )])  # fmt: skip
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.stderr)
    if result.exit_code == 1:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("moat-log: error: "), (args, lines)


config_text = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.sampled_from(
        [
            b"node = 1",
            b"[client]\nlisten = [1, 2]",
            b"[client.users.x]\nverifier = 'nope'",
            b"[sync]\nsecret = ''",
            b"[journal]\ndurability = 'fast'",
            b"data_dir = ''",
            b"[client]\nmax_connections = 1e999",
            b"[sync]\npeers = ['\\u0000:1']",
            'node = "p\u00e9"'.encode(),
        ]
    ),
)


@settings(max_examples=200, deadline=None)
@given(config_text)
def test_any_config_file_loads_or_is_a_config_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as base:
        path = FsPath(base) / "node.toml"
        path.write_bytes(content)
        try:
            load_config(path)
        except ConfigError as exc:
            assert str(exc).startswith(f"{path}: "), str(exc)
            assert "\n" not in str(exc).rstrip() or "TOML" in str(exc)


def test_a_config_file_that_is_not_utf8_is_named_as_such(tmp_path: FsPath) -> None:
    path = tmp_path / "b.toml"
    path.write_bytes(b"\x00\xff\xfe")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert str(refused.value) == (
        f"{path}: not UTF-8 text (byte 0xff at offset 1); a TOML file is UTF-8"
    )
