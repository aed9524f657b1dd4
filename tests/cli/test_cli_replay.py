"""``moat-log replay``, ``replay --restore`` and ``diff`` through the command line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path as FsPath
from typing import Any

import pytest
from cli_support import SECOND, T0, Invoker, Script, write_events

from moat_log.cli import _replay_cmds
from moat_log.event import Op
from moat_log.ids import EventId
from moat_log.journal.change import Change
from moat_log.journal.store import Journal
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.timespec import format_time


def at(seconds: int) -> str:
    """The moment *seconds* after T0 as the CLI reads it (ISO 8601, UTC)."""
    return format_time(T0 + seconds * SECOND)


@pytest.fixture
def history(journal_pi1: FsPath, tmp_path: FsPath, invoke: Invoker) -> FsPath:
    """A kitchen's morning, with exact times (seconds after T0) from ingest.

    pi2's bath reading at 5 s arrives last, after everything else.
    """
    lines = [
        {"path": "home.kitchen.temp", "value": 21.5, "time": T0 + 1 * SECOND},
        {"path": "home.kitchen.light", "value": True, "time": T0 + 2 * SECOND},
        {"path": "home.bath.temp", "value": 19, "time": T0 + 3 * SECOND},
        {"path": "home.kitchen.temp", "value": 22.0, "time": T0 + 10 * SECOND},
        {"path": "home.kitchen.light", "op": "delete", "time": T0 + 11 * SECOND},
        {"path": "home.kitchen.scene", "value": {"dim": 40}, "time": T0 + 12 * SECOND},
        {"path": "garden.pump", "value": "on", "time": T0 + 13 * SECOND},
    ]
    source = tmp_path / "morning.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return journal_pi1


@pytest.fixture
async def morning(history: FsPath, invoke: Invoker, tmp_path: FsPath) -> FsPath:
    await invoke("ingest", str(tmp_path / "morning.jsonl"))
    write_events(history, ("pi2", "home.bath.temp", 20, 5))  # arrives late
    return history


async def values_at(invoke: Invoker, until: str, *args: str) -> dict[str, Any]:
    """``replay --until`` as ``{path: value}``, from its JSON document."""
    document = json.loads((await invoke("replay", "--until", until, "--json", *args)).stdout)
    return {path: event["value"] for path, event in document["paths"].items()}


def last_position(data_dir: FsPath) -> int:
    with Journal.open(data_dir) as journal:
        return journal.last_position


# --- replay ----------------------------------------------------------------------------


async def test_replay_gives_the_values_at_each_moment(morning: FsPath, invoke: Invoker) -> None:
    assert await values_at(invoke, at(0)) == {}
    assert await values_at(invoke, at(1)) == {"home.kitchen.temp": 21.5}
    assert await values_at(invoke, at(4)) == {
        "home.bath.temp": 19,
        "home.kitchen.light": True,
        "home.kitchen.temp": 21.5,
    }
    # pi2's reading arrived last, but it is what we now know the bath had at 5 s.
    assert (await values_at(invoke, at(5)))["home.bath.temp"] == 20
    assert await values_at(invoke, at(12)) == {
        "home.bath.temp": 20,
        "home.kitchen.scene": {"dim": 40},
        "home.kitchen.temp": 22.0,
    }
    assert list(await values_at(invoke, "now")) == [  # in path order
        "garden.pump", "home.bath.temp", "home.kitchen.scene", "home.kitchen.temp",
    ]  # fmt: skip
    assert await values_at(invoke, "pi1:2") == await values_at(invoke, at(2))


async def test_replay_json_document(morning: FsPath, invoke: Invoker) -> None:
    local = (await invoke("replay", "--until", at(2), "--json")).stdout
    assert (await invoke("--json", "replay", "--until", at(2))).stdout == local
    document = json.loads(local)
    assert document["until"] == T0 + 2 * SECOND
    assert document["until_time"] == at(2)
    assert document["prefix"] == ":"
    light = document["paths"]["home.kitchen.light"]
    assert light["value"] is True
    assert (light["id"], light["time"], light["source"]) == ("pi1:2", at(2), "ingest:morning.jsonl")
    assert light["op"] == "set" and light["hlc"] == T0 + 2 * SECOND


async def test_replay_table(morning: FsPath, invoke: Invoker) -> None:
    lines = (await invoke("replay", "--until", at(11))).stdout.splitlines()
    assert lines[0].split() == ["PATH", "VALUE", "TIME", "ID", "SOURCE"]
    assert [line.split() for line in lines[1:]] == [
        ["home.bath.temp", "20", at(5), "pi2:1", "remote"],
        ["home.kitchen.temp", "22.0", at(10), "pi1:4", "ingest:morning.jsonl"],
    ]


async def test_replay_of_a_subtree(morning: FsPath, invoke: Invoker) -> None:
    assert await values_at(invoke, at(4), "--path", "home.kitchen") == {
        "home.kitchen.light": True,
        "home.kitchen.temp": 21.5,
    }
    assert await values_at(invoke, "now", "--path", "home.kitchen.temp") == {
        "home.kitchen.temp": 22.0
    }
    result = await invoke("replay", "--until", at(4), "--path", "garden")
    assert result.stdout == ""
    assert result.stderr == f"no values at or below garden as of {at(4)}\n"


async def test_replay_never_writes(morning: FsPath, invoke: Invoker) -> None:
    before = last_position(morning)
    await invoke("replay", "--until", at(4))
    assert last_position(morning) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "--until", "yesterday"], "--until: 'yesterday' is not a time"),
        (["replay", "--until", "pi1:99"], "--until pi1:99: there is no event pi1:99"),
        (["replay", "--until", "now", "--path", "a..b"], "empty segment"),
        (["diff", "now", "2026-13-01"], "T2: '2026-13-01' is not a valid ISO 8601 time"),
        (["diff", "10:30", "now"], "T1: '10:30' is a time of day without a date"),
    ],
)
async def test_bad_arguments_are_one_line_errors(
    morning: FsPath, invoke: Invoker, args: list[str], message: str
) -> None:
    assert message in await invoke.error(*args)


async def test_usage_errors(morning: FsPath, invoke: Invoker) -> None:
    assert "Missing option '--until'" in (await invoke("replay", status=2)).stderr
    result = await invoke("replay", "--until", "now", "--yes", status=2)
    assert "--yes and --source only go with --restore" in result.stderr
    assert "Missing argument 'T2'" in (await invoke("diff", "now", status=2)).stderr


# --- diff -------------------------------------------------------------------------------


async def test_diff_lists_the_paths_that_differ(morning: FsPath, invoke: Invoker) -> None:
    document = json.loads((await invoke("diff", at(4), at(12), "--json")).stdout)
    assert (document["t1"], document["t2"]) == (T0 + 4 * SECOND, T0 + 12 * SECOND)
    assert (document["t1_time"], document["t2_time"], document["prefix"]) == (at(4), at(12), ":")
    changed = [
        (d["path"], _value(d["before"]), _value(d["after"])) for d in document["differences"]
    ]
    assert changed == [
        ("home.bath.temp", 19, 20),
        ("home.kitchen.light", True, "<deleted>"),
        ("home.kitchen.scene", "<none>", {"dim": 40}),
        ("home.kitchen.temp", 21.5, 22.0),
    ]
    lines = (await invoke("diff", at(4), at(12), "--path", "home.kitchen")).stdout.splitlines()
    assert lines[0].split() == ["PATH", "AT", at(4), "AT", at(12)]
    assert [line.split() for line in lines[1:]] == [
        ["home.kitchen.light", "true", "deleted"],
        ["home.kitchen.scene", "-", '{"dim":40}'],
        ["home.kitchen.temp", "21.5", "22.0"],
    ]


def _value(event: dict[str, Any] | None) -> Any:
    if event is None:
        return "<none>"
    return "<deleted>" if event["op"] == "delete" else event["value"]


async def test_diff_of_equal_states_and_relative_times(morning: FsPath, invoke: Invoker) -> None:
    result = await invoke("diff", at(13), "now")
    assert result.stdout == ""
    assert result.stderr.startswith(f"no differences between {at(13)} and ")
    # Relative times are arguments, not options (also those with an 'h').
    assert "no differences" in (await invoke("diff", "-1h", "now")).stderr
    assert "no differences" in (await invoke("diff", "-1h30m", "-10m")).stderr
    reversed_diff = json.loads((await invoke("--json", "diff", at(12), at(4))).stdout)
    assert reversed_diff["differences"][0]["path"] == "home.bath.temp"


async def test_one_and_true_are_different_values(journal_pi1: FsPath, invoke: Invoker) -> None:
    with open_journal(journal_pi1) as journal:
        for seconds, value in ((1, 1), (2, True), (3, True)):
            journal.append(Change(Path(["x"]), value, at=T0 + seconds * SECOND))
    document = json.loads((await invoke("--json", "diff", at(1), at(3))).stdout)
    assert [(d["before"]["value"], d["after"]["value"]) for d in document["differences"]] == [
        (1, True)
    ]
    assert json.loads((await invoke("--json", "diff", at(2), at(3))).stdout)["differences"] == []


# --- replay --restore ---------------------------------------------------------------------


async def test_restore_brings_back_the_state_of_then(
    morning: FsPath, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = count_batches(monkeypatch)
    then = await values_at(invoke, at(4))
    result = await invoke("replay", "--until", at(4), "--restore", "--yes")
    lines = result.stdout.splitlines()
    assert [line.split() for line in lines[:6]] == [
        ["PATH", "NOW", "THEN"],
        ["garden.pump", '"on"', "-"],
        ["home.bath.temp", "20", "19"],
        ["home.kitchen.light", "deleted", "true"],
        ["home.kitchen.scene", '{"dim":40}', "-"],
        ["home.kitchen.temp", "22.0", "21.5"],
    ]
    assert lines[-1] == f"restored 5 paths to their state as of {at(4)}"
    assert [line.split()[0] for line in lines[6:-1]] == [f"pi1:{seq}" for seq in range(8, 13)]
    assert lines[6].endswith("  deleted garden.pump")
    assert lines[7].endswith("  home.bath.temp = 19")
    assert batches == [5]  # one transaction

    assert await values_at(invoke, "now") == then  # garden.pump, set after 4 s, is deleted
    with Journal.open(morning) as journal:
        written = [journal.get(EventId("pi1", seq)) for seq in range(8, 14)]
    assert written[-1] is None
    assert [(e.op, e.source, e.cause) for e in written if e is not None] == [
        (Op.DELETE, f"restore:{at(4)}", None),
        (Op.SET, f"restore:{at(4)}", EventId("pi1", 3)),
        (Op.SET, f"restore:{at(4)}", EventId("pi1", 2)),
        (Op.DELETE, f"restore:{at(4)}", None),
        (Op.SET, f"restore:{at(4)}", EventId("pi1", 1)),
    ]
    # History stays: the past is still there to replay.
    assert (await values_at(invoke, at(12)))["home.kitchen.temp"] == 22.0

    again = await invoke("replay", "--until", at(4), "--restore", "--yes")
    assert again.stdout == f"nothing to restore: the paths are as of {at(4)}\n"
    assert batches == [5]


async def test_restore_of_a_subtree_with_a_source(morning: FsPath, invoke: Invoker) -> None:
    result = await invoke(
        "--json", "replay", "--until", at(4), "--restore", "-y",
        "--path", "home.kitchen", "--source", "script:undo",
    )  # fmt: skip
    document = json.loads(result.stdout)
    assert document["prefix"] == "home.kitchen" and document["source"] == "script:undo"
    assert [c["path"] for c in document["changes"]] == [
        "home.kitchen.light", "home.kitchen.scene", "home.kitchen.temp",
    ]  # fmt: skip
    assert document["changes"][1]["then"] is None
    assert document["changes"][1]["now"]["value"] == {"dim": 40}
    assert [(e["id"], e["op"], e["source"]) for e in document["written"]] == [
        ("pi1:8", "set", "script:undo"),
        ("pi1:9", "delete", "script:undo"),
        ("pi1:10", "set", "script:undo"),
    ]
    now = await values_at(invoke, "now")
    assert now["home.kitchen.temp"] == 21.5
    assert now["home.bath.temp"] == 20 and now["garden.pump"] == "on"  # outside: left alone


async def test_restore_without_a_terminal_needs_yes(morning: FsPath, invoke: Invoker) -> None:
    before = last_position(morning)
    error = await invoke.error("replay", "--until", at(4), "--restore")
    assert "stdin is not a terminal" in error and "--yes" in error
    assert last_position(morning) == before


async def test_restore_asks_on_a_terminal(
    morning: FsPath, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_replay_cmds, "_interactive", lambda: True)
    before = last_position(morning)
    refused = await invoke("replay", "--until", at(4), "--restore", stdin="n\n", status=1)
    assert f"restore 5 paths to their state as of {at(4)}? [y/N]" in refused.stderr
    assert "home.kitchen.temp" in refused.stdout  # the changes were shown first
    assert last_position(morning) == before
    accepted = await invoke("replay", "--until", at(4), "--restore", "--path", "home", stdin="y\n")
    assert "restored 4 paths at or below home" in accepted.stdout
    assert last_position(morning) == before + 4


async def test_restore_to_before_everything_deletes_everything(
    morning: FsPath, invoke: Invoker
) -> None:
    await invoke("replay", "--until", at(0), "--restore", "--yes")
    assert await values_at(invoke, "now") == {}
    assert len(await values_at(invoke, at(13))) == 4


def count_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every `Journal.write_batch` call."""
    sizes: list[int] = []
    original = Journal.write_batch

    def counting(self: Journal, items: Sequence[Any]) -> Any:
        sizes.append(len(items))
        return original(self, items)

    monkeypatch.setattr(Journal, "write_batch", counting)
    return sizes


# --- the real script --------------------------------------------------------------------------


async def test_the_script_restores_and_refuses_without_a_terminal(
    morning: FsPath, script: Script
) -> None:
    script.run("replay", "--until", at(4), "--restore", status=1, stdin="y\n")
    assert script.stderr.startswith("moat-log: error: replay --restore asks before it writes")
    assert len(script.stderr.splitlines()) == 1
    assert "restored 5 paths" in script.run("replay", "--until", at(4), "--restore", "--yes")
    assert script.run("diff", at(4), "now") == ""
    assert script.stderr.startswith(f"no differences between {at(4)} and ")
    assert json.loads(script.run("diff", "-1h", "-30m", "--json"))["differences"] == []
