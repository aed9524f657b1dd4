"""``why``, ``timeline``, ``conflicts --chains`` and ``set --cause`` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path as FsPath

import pytest
from cli_support import Invoker, Script

from moat_log.cli._forensics_cmds import _source_matches
from moat_log.event import Event, Op
from moat_log.path import Path
from moat_log.projections import open_journal


def write_chain(script: Script) -> None:
    """A bus frame, a script reacting to it, a command on its own."""
    script.run("set", "--source", "knx:1/2/3", "sensor.hall.motion", "true")  # pi1:1
    script.run("set", "--source", "cli:bob", "home.hall.light", "false")  # pi1:2
    script.run("set", "--source", "script:hall", "--cause", "pi1:1", "home.hall.light", "true")


def test_why_walks_from_the_value_back_to_the_bus_frame(
    journal_pi1: FsPath, script: Script
) -> None:
    write_chain(script)
    lines = script.run("why", "home.hall.light").splitlines()
    assert lines[0] == "home.hall.light = true"
    assert lines[1].startswith("  pi1:3  ") and lines[1].endswith("  script:hall")
    assert lines[2].startswith("  overwrote pi1:2 (false, ") and lines[2].endswith(", cli:bob)")
    assert lines[3:5] == ["  caused by pi1:1", "sensor.hall.motion = true"]
    assert lines[5].startswith("  pi1:1  ") and lines[5].endswith("  knx:1/2/3")
    assert lines[6:] == ["  origin: written by knx:1/2/3 without a cause"]


def test_why_json_has_the_steps_and_the_end(journal_pi1: FsPath, script: Script) -> None:
    write_chain(script)
    document = json.loads(script.run("--json", "why", "home.hall.light"))
    assert [s["event"]["id"] for s in document["steps"]] == ["pi1:3", "pi1:1"]
    assert document["steps"][0]["overwrote"]["id"] == "pi1:2"
    assert document["steps"][0]["conflict_with"] is None
    assert document["end"] == {
        "kind": "origin",
        "cause": None,
        "message": "origin: written by knx:1/2/3 without a cause",
    }
    assert (document["path"], document["at"], document["at_time"]) == (
        "home.hall.light",
        None,
        None,
    )


def test_why_at_a_moment_explains_the_value_of_then(journal_pi1: FsPath, script: Script) -> None:
    write_chain(script)
    lines = script.run("why", "home.hall.light", "--at", "pi1:2").splitlines()
    assert lines[0] == "home.hall.light = false"
    assert lines[-1] == "  origin: written by cli:bob without a cause"
    short = script.run("why", "home.hall.light", "--depth", "1").splitlines()
    assert short[-1] == "  stopped: the cause pi1:1 is beyond the depth limit (raise --depth)"


def test_why_names_a_cause_this_node_never_held(journal_pi1: FsPath, script: Script) -> None:
    script.run("set", "--cause", "pi2:17", "home.x", "1")
    last = script.run("why", "home.x").splitlines()[-1]
    assert (
        last
        == "  broken: the cause pi2:17 was never held by this node (sync with pi2 may bring it)"
    )


async def test_why_refuses_a_path_without_events(journal_pi1: FsPath, invoke: Invoker) -> None:
    assert (
        await invoke.error("why", "home.nothing")
        == "moat-log: error: home.nothing has no event yet"
    )
    message = await invoke.error("set", "--cause", "pi2", "home.x", "1")
    assert "'pi2' is not an event id of the form NODE:SEQ" in message


def add_conflict(data_dir: FsPath) -> Event:
    """pi2 writes home.hall.light without having seen pi1's writes, later: it wins."""
    with open_journal(data_dir) as journal:
        newest = journal.newest()
        assert newest is not None
        event = Event(
            "pi2", 1, newest[1].hlc + 10**9, {}, Path.parse("home.hall.light"), Op.SET, "dim",
            "mqtt:hall/light",
        )  # fmt: skip
        assert journal.insert(event)
    return event


def test_timeline_groups_by_hour_names_sources_causes_and_conflicts(
    journal_pi1: FsPath, script: Script
) -> None:
    write_chain(script)
    add_conflict(journal_pi1)
    lines = script.run("timeline", "--since", "-1h").splitlines()
    assert lines[0].startswith("── ") and lines[0].endswith(" ──")
    body = [line for line in lines[1:] if line and not line.startswith("── ")]
    assert [line.split()[1] for line in body[:4]] == [
        "knx:1/2/3",
        "cli:bob",
        "script:hall",
        "mqtt:hall/light",
    ]
    assert body[2].endswith("pi1:3 <- pi1:1")
    assert body[3].endswith("pi2:1  ! conflict: won over pi1:3 (concurrent, unseen by pi2)")
    assert lines[-1] == "4 events, 1 conflict"
    only = script.run("timeline", "--since", "-1h", "--source", "script").splitlines()
    assert next(line for line in only if "home.hall" in line).split()[1] == "script:hall"
    assert only[-1] == "1 event, 0 conflicts"
    assert script.run("timeline", "--since", "-1h", "--path", "sensor").splitlines()[-1] == (
        "1 event, 0 conflicts"
    )
    glob = script.run("timeline", "--since", "-1h", "--source", "*:hall*").splitlines()[-1]
    assert glob == "2 events, 1 conflict"
    # The loser's source is filtered out; the winner still shows the conflict.
    mqtt = script.run("timeline", "--since", "-1h", "--source", "mqtt").splitlines()
    assert mqtt[1].endswith("! conflict: won over pi1:3 (concurrent, unseen by pi2)")
    assert mqtt[-1] == "1 event, 1 conflict"
    address = script.run("timeline", "--since", "-1h", "--source", "knx:1/2").splitlines()
    assert address == ["no events in this window"]  # knx:1/2 is another group than knx:1/2/3


@pytest.mark.parametrize(
    ("pattern", "source", "matches"),
    [
        ("knx", "knx:1/2/3 from 1.1.7", True),
        ("knx:1/2/3", "knx:1/2/3 from 1.1.7", True),
        ("knx:1/2", "knx:1/2/3 from 1.1.7", False),
        ("kn", "knx:1/2/3", False),
        ("cli:alice", "cli:alice", True),
        ("cli:alice", "cli:alicia", False),
        ("script:*", "script:hall", True),
        ("*:hall*", "mqtt:hall/light", True),
        ("*:hall", "mqtt:hall/light", False),
    ],
)
def test_a_source_pattern_is_a_class_an_address_or_a_glob(
    pattern: str, source: str, matches: bool
) -> None:
    assert _source_matches(source, pattern) is matches


def test_timeline_json_lines_carry_the_conflict(journal_pi1: FsPath, script: Script) -> None:
    write_chain(script)
    add_conflict(journal_pi1)
    documents = [json.loads(line) for line in script.run("--json", "timeline").splitlines()]
    assert [d["id"] for d in documents] == ["pi1:1", "pi1:2", "pi1:3", "pi2:1"]
    assert [d["conflict_with"] for d in documents] == [None, None, None, "pi1:3"]


async def test_timeline_of_an_empty_window_says_so(journal_pi1: FsPath, invoke: Invoker) -> None:
    result = await invoke("timeline", "--since", "-1m")
    assert result.stdout.splitlines() == ["no events in this window"]


def test_conflicts_with_chains_shows_both_sides(journal_pi1: FsPath, script: Script) -> None:
    write_chain(script)
    add_conflict(journal_pi1)
    plain = script.run("conflicts").splitlines()
    assert len(plain) == 2 and "pi2:1" in plain[1] and "pi1:3" in plain[1]
    lines = script.run("conflicts", "--chains").splitlines()
    assert lines[:2] == plain
    assert lines[2:5] == ["", "home.hall.light: pi2:1 won over pi1:3", "  the winner:"]
    assert "      origin: written by mqtt:hall/light without a cause" in lines
    lost = lines.index("  the write that lost:")
    assert lines[lost + 1] == "    home.hall.light = true"
    assert lines[-1] == "      origin: written by knx:1/2/3 without a cause"
    (document,) = json.loads(script.run("--json", "conflicts", "--chains"))
    assert [s["event"]["id"] for s in document["loser_chain"]["steps"]] == ["pi1:3", "pi1:1"]
    assert document["winner_chain"]["steps"][0]["conflict_with"]["id"] == "pi1:3"
    (without,) = json.loads(script.run("--json", "conflicts"))
    assert "winner_chain" not in without


@pytest.mark.parametrize("command", ["why", "timeline"])
async def test_new_commands_have_help_with_examples(invoke: Invoker, command: str) -> None:
    text = (await invoke(command, "--help")).stdout
    assert "Example:" in text and f"moat-log {command}" in text.split("Example:")[1]
