"""``moat-log compact``, ``peer ls``, ``peer retire``, and replay's note on thinned paths."""

from __future__ import annotations

import json
import time
from pathlib import Path as FsPath

from cli_support import Invoker

from moat_log.idset import IdSet
from moat_log.journal.change import Change
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.timespec import format_time

HOUR = 3600 * 10**9
TEMP = Path.parse("home.kitchen.temp")


def old_readings(data_dir: FsPath) -> int:
    """Two hours of readings, two hours ago, every 10 minutes; the time of the first."""
    start = (time.time_ns() - 4 * HOUR) // HOUR * HOUR
    with open_journal(data_dir, create_node="pi1") as journal:
        journal.write_batch(
            [
                Change(TEMP, float(n), source="knx:1/2/3", at=start + n * HOUR // 6 + 1)
                for n in range(12)
            ]
        )
    return start


def config(tmp_path: FsPath, data_dir: FsPath) -> str:
    file = tmp_path / "node.toml"
    file.write_text(
        f'data_dir = "{data_dir}"\n[retention]\n[[retention.rules]]\nname = "temps"\n'
        'paths = ["home.+.temp"]\nkeep_raw = "1h"\nrollup = "1h"\n'
    )
    return str(file)


async def test_compact_rolls_old_readings_up_and_says_what_it_did(
    invoke: Invoker, data_dir: FsPath, tmp_path: FsPath
) -> None:
    old_readings(data_dir)
    file = config(tmp_path, data_dir)
    dry = json.loads((await invoke("--json", "compact", "--config", file, "--dry-run")).stdout)
    assert (dry["removed"], dry["rollups"]) == (11, 2)
    done = json.loads((await invoke("--json", "compact", "--config", file)).stdout)
    assert (done["removed"], done["rollups"]) == (11, 2)
    history = (await invoke("--json", "history", "moat-log.rollup.1h.home.kitchen.temp")).stdout
    assert [json.loads(line)["value"]["count"] for line in history.splitlines()] == [6, 6]
    assert "OK" in (await invoke("verify")).stdout


async def test_a_peer_that_lacks_the_readings_holds_them_back_until_it_is_retired(
    invoke: Invoker, data_dir: FsPath, tmp_path: FsPath
) -> None:
    old_readings(data_dir)
    with open_journal(data_dir) as journal:
        journal.record_peer("pi2", IdSet(), time.time_ns())
    file = config(tmp_path, data_dir)
    held_back = json.loads((await invoke("--json", "compact", "--config", file)).stdout)
    assert held_back["removed"] == 0 and held_back["kept_unconfirmed"] == 11
    (peer,) = json.loads((await invoke("--json", "peer", "ls")).stdout)["peers"]
    assert (peer["peer"], peer["lacks"], peer["retired"]) == ("pi2", 14, None)
    assert "no known peer 'pi9'" in await invoke.error("peer", "retire", "pi9")
    assert "retired pi2" in (await invoke("peer", "retire", "pi2")).stdout
    done = json.loads((await invoke("--json", "compact", "--config", file)).stdout)
    assert done["removed"] == 11 and done["peers_retired"] == ["pi2"]


async def test_replay_before_the_raw_window_says_the_roll_ups_hold_the_rest(
    invoke: Invoker, data_dir: FsPath, tmp_path: FsPath
) -> None:
    start = old_readings(data_dir)
    await invoke("compact", "--config", config(tmp_path, data_dir))
    result = await invoke("replay", "--until", format_time(start + HOUR // 2))
    assert "note: the journal holds raw events of home.kitchen.temp only since" in result.stderr
    assert "1h roll-ups" in result.stderr
    assert "note:" not in (await invoke("replay", "--until", "now")).stderr


async def test_stats_usage_names_path_classes_days_and_what_compaction_would_free(
    invoke: Invoker, data_dir: FsPath, tmp_path: FsPath
) -> None:
    old_readings(data_dir)
    file = config(tmp_path, data_dir)
    usage = json.loads((await invoke("--json", "stats", "--usage", "--config", file)).stdout)[
        "usage"
    ]
    assert usage["classes"]["home"]["events"] == 12
    assert usage["classes"]["home"]["bytes"] > 12 * 40
    assert sum(day["events"] for day in usage["days"].values()) == 12
    assert usage["next_compaction"]["events"] == 11
    text = (await invoke("stats", "--usage", "--config", file)).stdout
    assert "PATH CLASS" in text and "BYTES STORED" in text and "next compaction" in text
