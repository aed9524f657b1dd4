"""Node or journal, in this process: the journal's watch, the options, the help texts."""

from __future__ import annotations

import json
from pathlib import Path as FsPath

import pytest
import trio
from cli_support import T0, Invoker, write_events

from moat_log.cli._node_access import JournalAccess
from moat_log.event import Event, Op
from moat_log.journal.change import Change
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.protocol import LIVE
from moat_log.vclock import VectorClock


def _event(path: str, hlc: int, origin: str = "pi1", seq: int = 1) -> Event:
    return Event(origin, seq, hlc, VectorClock(), Path.parse(path), Op.SET, 1, "test")


async def test_the_journal_s_watch_follows_the_journal(journal_pi1: FsPath) -> None:
    """The node's watch code on a feed of this process's own (it reads in worker threads)."""
    write_events(journal_pi1, ("pi1", "home.a", 1, 1), ("pi1", "home.gone", 2, 2))
    with open_journal(journal_pi1) as journal:
        journal.append(Change.delete(Path.parse("home.gone")))
        async with JournalAccess(journal).watch(Path.parse("home")) as items:
            dumped = []
            async for item in items:
                dumped.append(item)
                if item is LIVE:
                    break
            assert [getattr(e, "path", e) for e in dumped] == [Path.parse("home.a"), LIVE]
            journal.append(Change(Path.parse("garden.x"), 1))  # not below home
            newer = journal.append(Change(Path.parse("home.a"), 3))
            # A foreign event older than the winner is stored, but wins nothing.
            older = Event("pi2", 1, T0, VectorClock(), Path.parse("home.a"), Op.SET, 0, "remote")
            assert journal.insert(older)
            deleted = journal.append(Change.delete(Path.parse("home.a")))
            with trio.fail_after(10):  # the feed looks every FOLLOW_INTERVAL
                assert await anext(items) == newer
                assert await anext(items) == deleted


async def test_json_after_the_command_is_the_global_json(
    journal_pi1: FsPath, invoke: Invoker
) -> None:
    write_events(journal_pi1, ("pi1", "home.a", 1, 1), ("pi1", "home.b.c", "x", 2))
    before = (await invoke("--json", "ls", "home", "--recursive")).stdout
    after = (await invoke("ls", "home", "--recursive", "--json")).stdout
    assert before == after and json.loads(after) == {"home.a": 1, "home.b.c": "x"}
    assert json.loads((await invoke("get", "home.a", "--json")).stdout)["seq"] == 1


async def test_secrets_come_from_the_environment_or_a_file_and_only_one(
    journal_pi1: FsPath, invoke: Invoker, tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    error = await invoke.error("--password-file", str(empty), "ls")
    assert error == f"moat-log: error: --password-file {empty}: the file is empty"
    missing = tmp_path / "missing"
    error = await invoke.error("--password-file", str(missing), "ls")
    assert error == f"moat-log: error: {missing}: No such file or directory"
    monkeypatch.setenv("MOAT_LOG_PASSWORD", "pw")
    monkeypatch.setenv("MOAT_LOG_TOKEN", "token")
    await invoke("ls")  # the local socket asks for no login: the secrets are not used
    error = await invoke.error("--connect", "127.0.0.1:27586", "ls")
    assert error == (
        "moat-log: error: both a password and $MOAT_LOG_TOKEN are set: a login uses one of "
        "them, so unset the one you do not mean"
    )


@pytest.mark.parametrize("address", ["pi1.lan", "pi1.lan:port", ":27586", "h:0", "unix:"])
async def test_a_malformed_connect_address_is_a_usage_error(
    journal_pi1: FsPath, invoke: Invoker, address: str
) -> None:
    result = await invoke("--connect", address, "ls", status=2)
    assert "Invalid value for '--connect'" in result.stderr
    assert "use HOST:PORT (pi1.lan:27586) or unix:PATH" in result.stderr


def _option_help(help_text: str, option: str) -> str:
    """The help of *option* in the Options section, without blanks (click wraps it anywhere)."""
    options = "\n" + help_text.split("\nOptions:\n", 1)[1]
    first, *rest = options.split(f"\n  {option}", 1)[1].splitlines()
    lines = [first]
    for line in rest:
        if line.startswith("  -"):  # the next option (its help lines are indented more)
            break
        lines.append(line)
    return "".join("".join(lines).split())


def _squeezed(text: str) -> str:
    return "".join(text.split())


async def test_every_new_option_has_help_with_an_example(invoke: Invoker) -> None:
    group = (await invoke("--help")).stdout
    for option, example in [
        ("--connect", "Example: --connect pi1.lan:27586"),
        ("--user", "Example: MOAT_LOG_PASSWORD=... moat-log --connect pi1.lan:27586 --user alice"),
        ("--password-file", "Example: --password-file ~/.config/moat-log/password"),
    ]:
        assert _squeezed(example) in _option_help(group, option), option
    assert _squeezed("env var: MOAT_LOG_CONNECT") in _option_help(group, "--connect")
    assert "--password " not in group  # a password on the command line would show in ps
    watch = (await invoke("watch", "--help")).stdout
    assert _squeezed("Example: moat-log watch home.door --changes 1") in _option_help(
        watch, "--changes"
    )
    for command in ("set", "delete", "get", "ls", "watch", "status", "log"):
        text = (await invoke(command, "--help")).stdout
        assert _squeezed(f"Example: moat-log {command} --json") in _option_help(text, "--json")
        assert "Example:" in text.split("Options:")[0], command
