"""The commands run in-process (CliRunner): options, output and error messages."""

from __future__ import annotations

import getpass
import json
import socket
from pathlib import Path as FsPath
from typing import Any

import pytest
from cli_support import SECOND, T0, Invoker, write_events

from moat_log import defaults
from moat_log.event import Op
from moat_log.ids import EventId
from moat_log.projections import open_journal
from moat_log.timespec import format_time


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def with_tmp(args: list[str], tmp_path: FsPath) -> list[str]:
    return [arg.replace("{tmp}", str(tmp_path)) for arg in args]


def exists(path: FsPath) -> bool:
    return path.exists()


def ids(text: str) -> list[str]:
    return [event["id"] for event in json_lines(text)]


@pytest.fixture
def two_origins(journal_pi1: FsPath) -> FsPath:
    """pi1:1 pi2:1 pi1:2 pi2:2 pi1:3, one second apart, in that (hlc) order."""
    write_events(
        journal_pi1,
        ("pi1", "home.kitchen.light", True, 1),
        ("pi2", "home.kitchen.light", False, 2),
        ("pi1", "home.kitchenette.fan", 3, 3),
        ("pi2", "garden.pump", "on", 4),
        ("pi1", "home.kitchen.temp", 21.5, 5),
    )
    return journal_pi1


# --- init ----------------------------------------------------------------------


async def test_init_creates_then_is_idempotent(invoke: Invoker, data_dir: FsPath) -> None:
    first = await invoke("init", "--node", "pi1")
    assert "'pi1'" in first.stdout and str(data_dir) in first.stdout
    for again in (["init"], ["init", "--node", "pi1"]):
        assert "already initialised" in (await invoke(*again)).stdout
    with invoke.journal() as journal:
        assert journal.node == "pi1"


async def test_init_refuses_another_node_name(invoke: Invoker) -> None:
    await invoke("init", "--node", "pi1")
    error = await invoke.error("init", "--node", "pi2")
    assert "belongs to node 'pi1', not 'pi2'" in error


async def test_init_names_the_node_after_the_host(
    invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "Küche Pi#2.home.lan")
    result = await invoke("--json", "init")
    assert json.loads(result.stdout)["node"] == "K-che-Pi-2"
    with invoke.journal() as journal:
        assert journal.node == "K-che-Pi-2"


@pytest.mark.parametrize(
    ("host", "node"),
    [("pi1", "pi1"), ("pi1.lan", "pi1"), ("-x_y", "x_y"), ("", "node"), ("ü", "node")],
)
def test_host_node_name(host: str, node: str) -> None:
    assert defaults.host_node_name(host) == node


async def test_init_rejects_an_invalid_node_name(invoke: Invoker, data_dir: FsPath) -> None:
    assert "invalid node name" in await invoke.error("init", "--node", "a b")
    assert not exists(data_dir)


# --- set / delete ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "stored"),
    [
        (["true"], True),
        (["21.5"], 21.5),
        (["-5"], -5),
        (['{"a": 1}'], {"a": 1}),
        (["null"], None),
        (['"x"'], "x"),
        (["hello world"], "hello world"),
        (["0042"], "0042"),  # not JSON (leading zero): a string
        (['{"$bytes": "AAE="}'], b"\x00\x01"),
        (["--string", "true"], "true"),
        (["--string", '{"a": 1}'], '{"a": 1}'),
    ],
)
async def test_set_parses_value(
    invoke: Invoker, journal_pi1: FsPath, args: list[str], stored: object
) -> None:
    await invoke("set", "home.x", *args)
    with invoke.journal() as journal:
        event = journal.get(EventId("pi1", 1))
    assert event is not None
    assert type(event.value) is type(stored) and event.value == stored


async def test_set_prints_the_event(invoke: Invoker, journal_pi1: FsPath) -> None:
    result = await invoke("set", "sensor:3.temp", "21.5")
    with invoke.journal() as journal:
        event = journal.get(EventId("pi1", 1))
    assert event is not None
    assert result.stdout.split() == ["pi1:1", format_time(event.hlc), "sensor:3.temp", "=", "21.5"]


async def test_set_json_is_the_event_without_deps(invoke: Invoker, journal_pi1: FsPath) -> None:
    result = await invoke(
        "--json", "set", "--source", "script:heat", "sensor:3.raw", '{"$bytes": "/w=="}'
    )
    event = json.loads(result.stdout)
    assert event["id"] == "pi1:1" and event["origin"] == "pi1" and event["seq"] == 1
    assert event["path"] == "sensor:3.raw" and event["segments"] == ["sensor", 3, "raw"]
    assert event["value"] == {"$bytes": "/w=="}
    assert event["op"] == "set" and event["source"] == "script:heat" and event["cause"] is None
    assert event["time"] == format_time(event["hlc"])
    assert "deps" not in event  # a node's reply to a write does not carry them


async def test_default_source_is_the_user(
    invoke: Invoker, journal_pi1: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "alice")
    assert json.loads((await invoke("--json", "set", "a", "1")).stdout)["source"] == "cli:alice"

    def no_user() -> str:
        raise OSError("no user")

    monkeypatch.setattr(getpass, "getuser", no_user)
    assert json.loads((await invoke("--json", "delete", "a")).stdout)["source"] == "cli"


async def test_delete_appends_a_tombstone(invoke: Invoker, journal_pi1: FsPath) -> None:
    await invoke("set", "home.x", "1")
    result = await invoke("delete", "home.x")
    assert "pi1:2" in result.stdout and "deleted home.x" in result.stdout
    with invoke.journal() as journal:
        event = journal.get(EventId("pi1", 2))
    assert event is not None and event.op is Op.DELETE and event.value is None


# --- log -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["pi1:1", "pi2:1", "pi1:2", "pi2:2", "pi1:3"]),
        (["--limit", "2"], ["pi2:2", "pi1:3"]),
        (["-n", "9"], ["pi1:1", "pi2:1", "pi1:2", "pi2:2", "pi1:3"]),
        (["--origin", "pi2"], ["pi2:1", "pi2:2"]),
        (["--origin", "pi2", "--limit", "1"], ["pi2:2"]),
        (["--origin", "pi3"], []),
        (["--path", "home.kitchen"], ["pi1:1", "pi2:1", "pi1:3"]),  # not kitchenette
        (["--path", "home"], ["pi1:1", "pi2:1", "pi1:2", "pi1:3"]),
        (["--since", "pi2:1", "--until", "pi2:2"], ["pi2:1", "pi1:2", "pi2:2"]),
        (["--since", "pi1:2"], ["pi1:2", "pi2:2", "pi1:3"]),
        (["--since", "2026-01-01T00:00:03Z"], ["pi1:2", "pi2:2", "pi1:3"]),
        (["--until", "2026-01-01T01:00:02+01:00"], ["pi1:1", "pi2:1"]),
        (["--since", "now"], []),
        (["--since", "-1h"], []),
        (["--until", "now", "--limit", "1", "--path", "garden"], ["pi2:2"]),
    ],
)
async def test_log_selects(
    invoke: Invoker, two_origins: FsPath, args: list[str], expected: list[str]
) -> None:
    assert ids((await invoke("--json", "log", *args)).stdout) == expected


async def test_log_json_lines_are_events(invoke: Invoker, two_origins: FsPath) -> None:
    events = json_lines((await invoke("--json", "log", "--origin", "pi2")).stdout)
    assert events[0] == {
        "id": "pi2:1", "origin": "pi2", "seq": 1, "hlc": T0 + 2 * SECOND,
        "time": format_time(T0 + 2 * SECOND), "deps": {}, "path": "home.kitchen.light",
        "segments": ["home", "kitchen", "light"], "op": "set", "value": False,
        "source": "remote", "cause": None,
    }  # fmt: skip


async def test_log_table(invoke: Invoker, two_origins: FsPath) -> None:
    lines = (await invoke("log", "--limit", "2")).stdout.splitlines()
    assert lines[0].split() == ["TIME", "ID", "OP", "PATH", "VALUE", "SOURCE"]
    assert lines[1].split() == [
        format_time(T0 + 4 * SECOND),
        "pi2:2",
        "set",
        "garden.pump",
        '"on"',
        "remote",
    ]
    assert lines[2].split()[1:] == ["pi1:3", "set", "home.kitchen.temp", "21.5", "test"]
    # aligned: every column starts at the same offset in every line
    assert lines[0].index("PATH") == lines[1].index("garden") == lines[2].index("home")


async def test_log_of_an_empty_journal_prints_nothing(invoke: Invoker, journal_pi1: FsPath) -> None:
    assert (await invoke("log")).stdout == ""


# --- history ---------------------------------------------------------------------


async def test_history_of_one_path(invoke: Invoker, two_origins: FsPath) -> None:
    write_events(two_origins, ("pi1", "home.kitchen.light", None, 6))
    out = (await invoke("--json", "history", "home.kitchen.light")).stdout
    assert ids(out) == ["pi1:1", "pi2:1", "pi1:4"]
    out = (await invoke("--json", "history", "home.kitchen.light", "--limit", "2")).stdout
    assert ids(out) == ["pi2:1", "pi1:4"]


async def test_history_recursive_groups_by_path(invoke: Invoker, two_origins: FsPath) -> None:
    write_events(two_origins, ("pi1", "home.kitchen.temp", 22, 6), ("pi1", "home.kitchen", 0, 7))
    out = (await invoke("--json", "history", "-r", "home.kitchen")).stdout
    assert ids(out) == ["pi1:5", "pi1:1", "pi2:1", "pi1:3", "pi1:4"]
    out = (await invoke("--json", "history", "-r", "-n", "1", "home")).stdout
    assert ids(out) == ["pi1:5", "pi2:1", "pi1:4", "pi1:2"]
    table = (await invoke("history", "--recursive", "home.kitchen")).stdout.split("\n\n")
    assert len(table) == 3  # three paths, separated by blank lines
    assert "pi1:4" in table[2] and "pi1:1" not in table[2]


async def test_history_of_an_unknown_path_says_so(invoke: Invoker, two_origins: FsPath) -> None:
    result = await invoke("history", "nowhere")
    assert result.stdout == "" and "no events at nowhere" in result.stderr


# --- stats ------------------------------------------------------------------------


async def test_stats(invoke: Invoker, two_origins: FsPath) -> None:
    stats = json.loads((await invoke("--json", "stats")).stdout)
    assert stats["node"] == "pi1" and stats["events"] == 5 and stats["last_position"] == 5
    assert stats["clock"] == T0 + 5 * SECOND
    assert stats["clock_time"] == format_time(T0 + 5 * SECOND)
    assert stats["origins"] == {
        "pi1": {"ranges": "1-3", "count": 3},
        "pi2": {"ranges": "1-2", "count": 2},
    }
    assert set(stats["databases"]) == {"events", "ids", "paths", "times", "meta"}
    assert stats["databases"]["paths"]["entries"] == 5
    assert stats["file_bytes"] == (two_origins / "journal" / "data.mdb").stat().st_size
    text = (await invoke("stats")).stdout
    assert "node:" in text and "clock:" in text and "data file:" in text
    assert ["pi2", "2", "1-2"] in [line.split() for line in text.splitlines()]
    assert any(line.split()[:2] == ["times", "5"] for line in text.splitlines())


# --- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set", "a..b", "1"], "path 'a..b', position 2: empty segment"),
        (["delete", "x:"], "dangling ':'"),
        (["history", ":q"], "unknown escape"),
        (["log", "--path", "."], "empty segment"),
        (["log", "--since", "yesterday"], "--since: 'yesterday' is not a time"),
        (["log", "--until", "2026-13-01"], "--until: '2026-13-01' is not a valid ISO 8601 time"),
        (["log", "--since", "1700000000"], "bare number"),
        (["log", "--since", "pi1:99"], "--since pi1:99: there is no event pi1:99"),
        (["log", "--origin", "no such"], "invalid node name 'no such'"),
        (["export", "-o", "{tmp}/x", "--until", "pi9:1"], "there is no event pi9:1"),
        (["export", "-o", "{tmp}/nowhere/x"], "there is no directory {tmp}/nowhere"),
        (["set", "a", "99999999999999999999999"], "does not fit in 64 bits"),
        (["set", "a", '{"$bytes": "%%"}'], "invalid base64"),
        (["import", "{tmp}/missing.mlx"], "missing.mlx: No such file or directory"),
        (["import", "{tmp}/garbage"], "not a moat-log export"),
        (["ingest", "{tmp}/missing.jsonl"], "missing.jsonl: No such file or directory"),
    ],
)
async def test_errors_are_one_line_and_change_nothing(
    invoke: Invoker, two_origins: FsPath, tmp_path: FsPath, args: list[str], message: str
) -> None:
    (tmp_path / "garbage").write_bytes(b"this is not an export\n" * 10)
    before = _snapshot(two_origins)
    error = await invoke.error(*with_tmp(args, tmp_path))
    assert message.replace("{tmp}", str(tmp_path)) in error
    assert _snapshot(two_origins) == before
    assert not exists(tmp_path / "x")


def _snapshot(data_dir: FsPath) -> tuple[object, ...]:
    with open_journal(data_dir) as journal:
        return journal.last_position, journal.clock, journal.summary()


@pytest.mark.parametrize(
    "args",
    [["log"], ["log", "-f"], ["set", "a", "1"], ["delete", "a"], ["history", "a"], ["stats"],
     ["verify"], ["export", "-o", "{tmp}/out.mlx"], ["ingest", "-"]],
)  # fmt: skip
async def test_missing_journal(
    invoke: Invoker, data_dir: FsPath, tmp_path: FsPath, args: list[str]
) -> None:
    error = await invoke.error(*with_tmp(args, tmp_path), stdin="")
    assert error == (
        f"moat-log: error: no journal in {str(data_dir)!r}: create one with 'moat-log init' "
        "or pass --data-dir"
    )
    assert not exists(data_dir) and not exists(tmp_path / "out.mlx")


@pytest.mark.parametrize(
    "args",
    [["log", "--limit", "0"], ["log", "--bogus"], ["nonsense"], ["set", "a"], ["history"],
     ["export"], ["ingest", "a", "b"]],
)  # fmt: skip
async def test_usage_errors_keep_clicks_behaviour(
    invoke: Invoker, journal_pi1: FsPath, args: list[str]
) -> None:
    result = await invoke(*args, status=2)
    assert "Usage: " in result.stderr and "moat-log: error" not in result.stderr


async def test_help_on_every_command(invoke: Invoker) -> None:
    group = await invoke("--help")
    commands = ["init", "set", "delete", "ingest", "log", "history", "export", "import",
                "verify", "stats"]  # fmt: skip
    for name in commands:
        assert f"  {name} " in group.stdout
        text = (await invoke(name, "--help")).stdout
        assert "Example:" in text and "moat-log " in text.split("Example:")[1]


async def test_version(invoke: Invoker) -> None:
    assert "moat-log, version " in (await invoke("--version")).stdout


# --- data directory ------------------------------------------------------------------


async def test_data_dir_from_environment_and_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: FsPath
) -> None:
    from asyncclick.testing import CliRunner

    from moat_log.cli import cli

    runner = CliRunner(catch_exceptions=False)
    env_dir = tmp_path / "from-env"
    result = await runner.invoke(
        cli, ["init", "--node", "a"], env={"MOAT_LOG_DATA_DIR": str(env_dir)}
    )
    assert result.exit_code == 0 and exists(env_dir / "journal" / "data.mdb")
    monkeypatch.delenv("MOAT_LOG_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    result = await runner.invoke(cli, ["init", "--node", "b"])
    assert result.exit_code == 0 and exists(tmp_path / "xdg" / "moat-log" / "journal")
    assert "--data-dir DIR" in (await runner.invoke(cli, ["--help"])).stdout
