"""get, ls, conflicts and projection: the KV view from the command line."""

from __future__ import annotations

import json
from pathlib import Path as FsPath

from cli_support import Invoker, Script, write_events

from moat_log.journal import keys
from moat_log.projections import open_journal


async def test_get_shows_the_value_and_who_set_it(journal_pi1: FsPath, invoke: Invoker) -> None:
    write_events(journal_pi1, ("pi1", "home.temp", 21.5, 1), ("pi2", "home.temp", 22, 2))
    result = await invoke("get", "home.temp")
    assert result.stdout == "22\n"
    assert "pi2:1" in result.stderr
    event = json.loads((await invoke("--json", "get", "home.temp")).stdout)
    assert (event["id"], event["value"], event["source"]) == ("pi2:1", 22, "remote")


async def test_get_of_a_missing_or_deleted_path_fails(journal_pi1: FsPath, invoke: Invoker) -> None:
    assert "never set" in await invoke.error("get", "home.nothing")
    await invoke("set", "home.x", "1")
    await invoke("delete", "home.x")
    assert "deleted by pi1:2" in await invoke.error("get", "home.x")
    assert "unknown escape" in await invoke.error("get", "a:q")


async def test_ls_lists_children_and_the_subtree(journal_pi1: FsPath, invoke: Invoker) -> None:
    for path, value in [
        ("home.kitchen.light", "true"),
        ("home.kitchen.temp", "21.5"),
        ("home.hall:2", '"x"'),
        ("other", "1"),
        ("home.gone", "1"),
    ]:
        await invoke("set", path, value)
    await invoke("delete", "home.gone")
    assert (await invoke("ls", "home")).stdout.split() == ["home.hall", "home.kitchen"]
    assert json.loads((await invoke("--json", "ls")).stdout) == ["home", "other"]
    subtree = json.loads((await invoke("--json", "ls", "home", "--recursive")).stdout)
    assert subtree == {"home.hall:2": "x", "home.kitchen.light": True, "home.kitchen.temp": 21.5}
    assert list(subtree) == sorted(subtree, key=lambda k: k.replace(":", "\x00"))
    table = (await invoke("ls", "-r")).stdout
    assert "home.kitchen.temp" in table and "other" in table and "home.gone" not in table


async def test_conflicts_lists_writes_lost_unseen(journal_pi1: FsPath, invoke: Invoker) -> None:
    write_events(journal_pi1, ("pi1", "home.door", "open", 1), ("pi2", "home.door", "closed", 2))
    found = json.loads((await invoke("--json", "conflicts")).stdout)
    assert found == [
        {
            "path": "home.door",
            "winner": "pi2:1",
            "winner_value": "closed",
            "loser": "pi1:1",
            "loser_value": "open",
        }
    ]
    head, row = (await invoke("conflicts")).stdout.splitlines()
    assert head.split() == ["PATH", "WINNER", "VALUE", "LOST", "LOST", "VALUE"]
    assert row.split() == ["home.door", "pi2:1", '"closed"', "pi1:1", '"open"']
    assert "no conflicts under home.hall" in (await invoke("conflicts", "home.hall")).stdout


async def test_projection_list_and_rebuild(journal_pi1: FsPath, invoke: Invoker) -> None:
    await invoke("set", "a", "1")
    await invoke("set", "b", "2")
    views = json.loads((await invoke("--json", "projection", "list")).stdout)
    assert views == {
        "journal": 2,
        "views": {"kv": {"version": 2, "checkpoint": 2, "lag": 0}},
        "side_effects": {},
    }
    assert "from 2 events" in (await invoke("projection", "rebuild", "kv")).stdout
    assert "no view named 'nope'" in await invoke.error("projection", "rebuild", "nope")
    assert (await invoke("get", "b")).stdout == "2\n"


def test_ls_recursive_json_is_identical_on_two_nodes_with_the_same_events(
    script: Script, tmp_path: FsPath
) -> None:
    """The convergence check of issue 4, done by hand with export and import."""
    script.run("init", "--node", "pi1")
    for i in range(5):
        script.run("set", f"home.room{i}", str(i))
    script.run("delete", "home.room3")
    script.run("export", "-o", str(tmp_path / "x.mlog"))
    other = script.with_dir(tmp_path / "pi2")
    other.run("init", "--node", "pi2")
    other.run("import", str(tmp_path / "x.mlog"))
    assert other.run("--json", "ls", "--recursive") == script.run("--json", "ls", "--recursive")


async def test_projection_rebuild_reports_a_corrupt_record_with_its_position(
    journal_pi1: FsPath, invoke: Invoker
) -> None:
    await invoke("set", "a", "1")
    await invoke("set", "b", "2")
    with open_journal(journal_pi1) as journal, journal._env.begin(write=True) as txn:
        txn.put(keys.pack_u64(2), b"\xc1garbage", db=journal._dbs["events"])
    message = await invoke.error("projection", "rebuild", "kv")
    assert "the event at position 2 does not unpack" in message
    assert "moat-log verify" in message
