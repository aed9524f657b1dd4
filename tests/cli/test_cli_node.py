"""set, delete, get, ls, watch and status against a real ``moat-log serve`` process.

Each test starts the node on a journal in a short directory under /tmp and
waits for its ``ready`` line.  The twin journals are byte copies whose clock
lies far in the future, so that every new event gets the hlc "clock + 1" and
the same commands print the same bytes through the node and on the journal.
"""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import pytest
import trio
from cli_support import TIMEOUT, Lines, Script, find_script, script_env, write_events
from node_process import (
    ServedNode,
    port_without_listener,
    serving,
    write_config,
)

from moat_log import open_client
from moat_log.event import Event, Op
from moat_log.journal.change import Change
from moat_log.journal.verify import verify_journal
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.protocol import LIVE, make_token_verifier, make_verifier
from moat_log.testing import short_temp_dir

pytestmark = pytest.mark.slow

#: Seconds after T0 of the twin journals' last event: no wall clock gets there.
FAR_FUTURE = 100 * 365 * 86400
ALICE_PASSWORD = "alice's long password"
SCRIPT_TOKEN = "a-long-random-token-for-the-heating-script"


@dataclass
class Twins:
    """Two identical journals: one served by a node, one left to the CLI alone."""

    node: ServedNode
    through_node: Script
    on_journal: Script


@pytest.fixture
def twins() -> Iterator[Twins]:
    with short_temp_dir() as base:
        template = base / "template"
        open_journal(template, create_node="pi1").close()
        write_events(
            template,
            ("pi1", "home.kitchen.temp", 21.5, 1),
            ("pi2", "home.hall.light", True, 2),
            ("pi1", "home.gone", 1, 3),
            ("pi1", "garden.rain", 0.4, 4),
            ("pi1", "home.hall.note", "clock far ahead", FAR_FUTURE),
        )
        with open_journal(template) as journal:
            journal.append(Change.delete(Path.parse("home.gone"), source="test"))
        shutil.copytree(template, base / "a")
        shutil.copytree(template, base / "b")
        config = write_config(base / "node.toml", base / "a", listen='["unix"]')
        with serving(config) as node:
            script = Script(find_script(), base / "a")
            yield Twins(node, script, script.with_dir(base / "b"))


def scanned(data_dir: FsPath) -> list[Event]:
    with open_journal(data_dir) as journal:
        return [event for _, event in journal.scan()]


COMMANDS: list[tuple[int, tuple[str, ...]]] = [
    (0, ("set", "home.kitchen.temp", "22.5")),
    (0, ("--json", "set", "home.note", "door open")),
    (0, ("set", "sensor:3.id", "0042", "--string", "--json")),
    (0, ("delete", "home.kitchen.temp")),
    (0, ("delete", "home.note", "--json")),
    (0, ("get", "home.hall.light")),
    (0, ("get", "home.hall.light", "--json")),
    (1, ("get", "home.kitchen.temp")),  # deleted by the CLI above
    (1, ("get", "home.gone")),  # deleted in the journal before the node started
    (1, ("get", "home.never")),
    (0, ("ls",)),
    (0, ("ls", "home", "--json")),
    (0, ("ls", "home", "--recursive")),
    (0, ("--json", "ls", "--recursive")),
    (0, ("ls", "home", "-r", "--json")),
]


def test_commands_go_through_the_node_and_print_what_they_print_on_the_journal(
    twins: Twins,
) -> None:
    for status, args in COMMANDS:
        accepted = twins.node.connections_accepted()
        through_node = twins.through_node.run(*args, status=status)
        node_stderr = twins.through_node.stderr
        assert twins.node.connections_accepted() == accepted + 1, args  # it asked the node
        on_journal = twins.on_journal.run(*args, status=status)
        assert (through_node, node_stderr) == (on_journal, twins.on_journal.stderr), args
    assert json.loads(twins.through_node.run("--json", "status"))["running"] is True
    assert json.loads(twins.on_journal.run("--json", "status"))["running"] is False
    twins.node.stop()
    # Not only the output: the journals hold the same events, to the last byte of each.
    assert [e.pack() for e in scanned(twins.node.data_dir)] == [
        e.pack() for e in scanned(twins.on_journal.data_dir)
    ]


async def test_a_client_watching_the_node_hears_the_cli_writes(twins: Twins) -> None:
    # The node tells watchers only about writes it made itself: hearing the
    # CLI's set and delete proves they went through the node.
    async def cli(*args: str) -> None:
        await trio.run_process(
            twins.through_node.argv(*args), env=script_env(), capture_stdout=True
        )

    with trio.fail_after(TIMEOUT):
        async with (
            open_client(data_dir=twins.node.data_dir) as client,
            client.watch("home.kitchen") as items,
        ):
            async for item in items:
                if item is LIVE:
                    break
            await cli("set", "home.kitchen.temp", "23", "--source", "test:cli")
            changed = await anext(items)
            await cli("delete", "home.kitchen.temp")
            deleted = await anext(items)
    assert isinstance(changed, Event) and isinstance(deleted, Event)
    assert (changed.path, changed.value, changed.source) == (
        Path.parse("home.kitchen.temp"), 23, "test:cli"
    )  # fmt: skip
    assert (deleted.path, deleted.op, deleted.seq) == (changed.path, Op.DELETE, changed.seq + 1)


def test_offline_writes_are_served_and_continued_by_a_node_started_later(
    script: Script,
) -> None:
    with short_temp_dir() as base:
        script = script.with_dir(base / "data")
        script.run("init", "--node", "pi1")
        script.run("set", "home.a", "1")
        script.run("set", "home.b", "2")
        script.run("delete", "home.a")
        future = '{"path": "home.future", "value": 3, "time": "2100-01-01T00:00:00+00:00"}\n'
        script.run("ingest", "-", stdin=future)
        offline = [json.loads(line) for line in script.run("--json", "log").splitlines()]
        assert [event["seq"] for event in offline] == [1, 2, 3, 4]

        config = write_config(base / "node.toml", base / "data", listen='["unix"]')
        with serving(config) as node:
            accepted = node.connections_accepted()
            assert script.run("get", "home.future") == "3\n"
            assert json.loads(script.run("ls", "home", "-r", "--json")) == {
                "home.b": 2, "home.future": 3
            }  # fmt: skip
            written = json.loads(script.run("--json", "set", "home.c", "4"))
            assert node.connections_accepted() == accepted + 3
            node.stop()
        # The next seq, and an hlc past the journal's clock (year 2100), not the wall clock.
        assert (written["id"], written["seq"]) == ("pi1:5", 5)
        assert written["hlc"] == offline[-1]["hlc"] + 1
        # And offline again after the node: the numbering goes on.
        again = json.loads(script.run("--json", "set", "home.d", "5"))
        assert (again["seq"], again["hlc"]) == (6, written["hlc"] + 1)
        with open_journal(base / "data") as journal:
            assert verify_journal(journal).ok
            assert sorted(event.seq for _, event in journal.scan()) == [1, 2, 3, 4, 5, 6]


# --- watch ------------------------------------------------------------------------


@dataclass
class Watched:
    dump: list[dict[str, Any]]
    changes: list[dict[str, Any]]
    stderr: str


def watch_two_changes(script: Script) -> Watched:
    """``watch home --changes 2 --json``, with three writes once it is live (one elsewhere)."""
    process = script.popen("watch", "home", "--changes", "2", "--json")
    try:
        assert process.stdout is not None and process.stderr is not None
        lines = Lines(process.stdout)
        dump = []
        while (item := lines.next_event()) != {"state": "live"}:
            dump.append(item)
        script.run("set", "home.kitchen.temp", "23")
        script.run("set", "garden.rain", "1")  # not under home: not a change of the watch
        script.run("delete", "home.hall.light")
        assert process.wait(TIMEOUT) == 0
        return Watched(dump, [json.loads(line) for line in lines.rest()], process.stderr.read())
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_watch_prints_the_subtree_then_exactly_n_changes(twins: Twins) -> None:
    through_node = watch_two_changes(twins.through_node)
    on_journal = watch_two_changes(twins.on_journal)

    assert [(e["path"], e["value"]) for e in through_node.dump] == [
        ("home.hall.light", True),
        ("home.hall.note", "clock far ahead"),
        ("home.kitchen.temp", 21.5),
    ]
    assert [(e["id"], e["path"], e["op"], e["value"]) for e in through_node.changes] == [
        ("pi1:6", "home.kitchen.temp", "set", 23),
        ("pi1:8", "home.hall.light", "delete", None),
    ]
    assert through_node.stderr == ""
    assert (on_journal.dump, on_journal.changes) == (through_node.dump, through_node.changes)
    assert on_journal.stderr.splitlines() == [
        f"moat-log: no node serves {twins.on_journal.data_dir}; watching the journal "
        "directly (polled every 0.2 s)"
    ]


@pytest.mark.parametrize("way", ["through_node", "on_journal"])
def test_watch_as_text_until_ctrl_c(twins: Twins, way: str) -> None:
    script: Script = getattr(twins, way)
    process = script.popen("watch", "home.kitchen")
    try:
        assert process.stdout is not None and process.stderr is not None
        lines = Lines(process.stdout)
        assert lines.next_line().split() == ["PATH", "VALUE", "TIME", "ID"]
        assert lines.next_line().split()[:2] == ["home.kitchen.temp", "21.5"]
        assert lines.next_line() == "-- live --"
        written = json.loads(script.run("--json", "set", "home.kitchen.temp", "23"))
        assert lines.next_line().split() == [
            "home.kitchen.temp", "23", written["time"], written["id"]
        ]  # fmt: skip
        script.run("delete", "home.kitchen.temp")
        assert lines.next_line().split()[:2] == ["home.kitchen.temp", "(deleted)"]
        process.send_signal(signal.SIGINT)
        assert process.wait(TIMEOUT) == 0
        assert lines.rest() == []
        stderr = process.stderr.read().splitlines()
        if way == "through_node":
            assert stderr == []
        else:
            assert len(stderr) == 1 and "watching the journal directly" in stderr[0]
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


# --- --connect ----------------------------------------------------------------------


@pytest.fixture
def node_with_users() -> Iterator[ServedNode]:
    """A node on TCP that asks for a login: alice may do everything, the token only home."""
    users = (
        f'[client.users.alice]\nverifier = "{make_verifier(ALICE_PASSWORD)}"\n'
        'read = [":"]\nwrite = [":"]\n'
        f'[client.users.heating]\nverifier = "{make_token_verifier(SCRIPT_TOKEN)}"\n'
        'read = ["home"]\nwrite = ["home"]\n'
    )
    with short_temp_dir() as base:
        config = write_config(
            base / "node.toml", base / "data", listen='["unix", "127.0.0.1:0"]', users=users
        )
        with serving(config) as node:
            yield node


@pytest.fixture
def elsewhere(script: Script, tmp_path: FsPath) -> Script:
    """The CLI on a data directory without a journal: only the node can answer."""
    return script.with_dir(tmp_path / "no-journal-here")


def test_connect_with_a_wrong_or_missing_password_fails_in_one_line(
    node_with_users: ServedNode, elsewhere: Script
) -> None:
    connect = ("--connect", node_with_users.tcp, "--user", "alice")
    wrong = elsewhere.error(*connect, "ls", env={"MOAT_LOG_PASSWORD": "not it"})
    assert wrong == (
        "moat-log: error: auth-failed: authentication failed: unknown user or wrong password "
        "or token"
    )
    missing = elsewhere.error(*connect, "ls")
    assert "node pi1 requires a login" in missing
    assert "--user NAME with $MOAT_LOG_PASSWORD, --password-file FILE or $MOAT_LOG_TOKEN" in missing


def test_connect_with_the_right_credentials_works(
    node_with_users: ServedNode, elsewhere: Script, tmp_path: FsPath
) -> None:
    env = {
        "MOAT_LOG_CONNECT": node_with_users.tcp,
        "MOAT_LOG_USER": "alice",
        "MOAT_LOG_PASSWORD": ALICE_PASSWORD,
    }
    accepted = node_with_users.connections_accepted()
    elsewhere.run("set", "home.temp", "21", env=env)
    assert elsewhere.run("get", "home.temp", env=env) == "21\n"
    assert json.loads(elsewhere.run("--json", "status", env=env))["user"] == "alice"
    password_file = tmp_path / "password"
    password_file.write_text(ALICE_PASSWORD + "\n")
    by_file = ("--connect", node_with_users.tcp, "--user", "alice", "--password-file")
    assert elsewhere.run(*by_file, str(password_file), "ls") == "home\n"
    assert node_with_users.connections_accepted() == accepted + 4

    token = {"MOAT_LOG_CONNECT": node_with_users.tcp, "MOAT_LOG_USER": "heating"}
    token["MOAT_LOG_TOKEN"] = SCRIPT_TOKEN
    elsewhere.run("set", "home.temp", "22", env=token)
    assert elsewhere.run("get", "home.temp", env=token) == "22\n"
    denied = elsewhere.error("set", "garden.rain", "1", env=token)
    assert denied.startswith("moat-log: error: permission-denied: ")
    # Nothing of this was written to a local journal.
    assert not elsewhere.data_dir.exists()


def test_connect_never_falls_back_to_the_journal(
    node_with_users: ServedNode, script: Script
) -> None:
    on_the_node_dir = script.with_dir(node_with_users.data_dir)
    with port_without_listener() as address:
        error = on_the_node_dir.error("--connect", address, "ls")
    assert error.startswith(f"moat-log: error: no node answers at {address}: ")
    error = on_the_node_dir.error("--connect", "unix:/nonexistent/moat-log.sock", "get", "x")
    assert error.startswith("moat-log: error: no node answers on /nonexistent/moat-log.sock")
    # The commands that only read the journal refuse --connect rather than ignore it.
    error = on_the_node_dir.error("--connect", node_with_users.tcp, "log")
    assert error == (
        f"moat-log: error: --connect {node_with_users.tcp}: 'log' works on the local journal "
        "only; leave out --connect (and unset $MOAT_LOG_CONNECT)"
    )


def test_the_node_s_unix_socket_needs_no_login(node_with_users: ServedNode, script: Script) -> None:
    local = script.with_dir(node_with_users.data_dir)
    accepted = node_with_users.connections_accepted()
    local.run("set", "garden.rain", "2")
    assert local.run("get", "garden.rain") == "2\n"
    assert json.loads(local.run("--json", "status"))["user"] is None
    assert node_with_users.connections_accepted() == accepted + 3
