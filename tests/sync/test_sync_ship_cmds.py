"""``moat-log pull`` and ``ship`` against a real ``moat-log serve`` with ``[sync]``.

Pull into an empty data directory gives the node's state; ship gives the
node a local journal's events; running either again moves nothing.  A wrong
secret and an unreachable port are one-line errors with exit status 1.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path as FsPath

import pytest
from process_support import SECRET, NodeProcess, environment

from moat_log import open_client
from moat_log.testing import moat_log_script as script

BULK = 3000  # several batches of a catch-up


@pytest.fixture
def node(base: FsPath) -> Iterator[NodeProcess]:
    running = NodeProcess("na", base)
    running.cli("init", "--node", "na")
    lines = (json.dumps({"path": f"bulk.k{i}", "value": i}) for i in range(BULK))
    (base / "bulk.jsonl").write_text("\n".join(lines) + "\n")
    running.cli("ingest", str(base / "bulk.jsonl"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


def secret_file(base: FsPath, secret: str = SECRET) -> FsPath:
    path = base / "cluster.key"
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return path


def moat_log(data_dir: FsPath, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script(), "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=60, env=environment(), check=False,
    )  # fmt: skip


def transfer(data_dir: FsPath, *args: str) -> int:
    """Run pull or ship with --json; the events it moved."""
    done = moat_log(data_dir, "--json", *args)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["peer"] == "na"
    events: int = result["events"]
    return events


@pytest.mark.slow
async def test_pull_into_an_empty_data_dir_then_again_fetches_nothing(
    base: FsPath, node: NodeProcess
) -> None:
    async with open_client(data_dir=node.data_dir) as client:
        await client.set("live.value", "written while serving")
    key = str(secret_file(base))
    backup = base / "backup"
    pull = ("pull", "--from", node.sync_address, "--secret-file", key)
    assert transfer(backup, *pull, "--node", "backup") == BULK + 1
    listing = ("ls", "--recursive", "--json")
    assert moat_log(backup, *listing).stdout == node.cli(*listing)
    assert transfer(backup, *pull) == 0
    assert moat_log(backup, "verify").returncode == 0


@pytest.mark.slow
async def test_ship_gives_the_node_what_it_lacks_then_nothing(
    base: FsPath, node: NodeProcess
) -> None:
    key = str(secret_file(base))
    box = base / "box"
    assert moat_log(box, "init", "--node", "box").returncode == 0
    for i in range(5):
        assert moat_log(box, "set", f"shipped.k{i}", str(i)).returncode == 0
    ship = ("ship", "--to", node.sync_address, "--secret-file", key)
    assert transfer(box, *ship) == 5
    async with open_client(data_dir=node.data_dir) as client:
        for i in range(5):
            event = await client.get(f"shipped.k{i}")
            assert event is not None and event.value == i and event.origin == "box"
    assert transfer(box, *ship) == 0
    assert moat_log(box, "log", "--origin", "na").stdout == "", "ship fetches nothing"


@pytest.mark.slow
def test_a_wrong_secret_is_one_line_and_exit_status_1(base: FsPath, node: NodeProcess) -> None:
    key = str(secret_file(base, "not the secret of this cluster"))
    pull = ("pull", "--from", node.sync_address, "--node", "backup")
    for command in (pull, ("ship", "--to", node.sync_address)):
        done = moat_log(base / "backup", *command, "--secret-file", key)
        assert done.returncode == 1
        assert done.stderr.startswith("moat-log: error: "), done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert "auth-failed" in done.stderr
    assert "auth-failed" in node.stderr()


@pytest.mark.slow
async def test_a_journal_holding_a_fork_of_a_nodes_history_is_refused_both_ways(
    base: FsPath, node: NodeProcess
) -> None:
    """Events written under the node's name elsewhere (its data was lost) are refused.

    A journal ``na`` started afresh wrote ``na:1``, another event than the
    node's ``na:1``; the box ``nb`` imported it.  Neither a pull nor a ship
    between ``nb`` and the node moves anything, both say why, and the node
    keeps serving.
    """
    fork, box = base / "fork", base / "box"
    assert moat_log(fork, "init", "--node", "na").returncode == 0
    assert moat_log(fork, "set", "heating.setpoint", "17").returncode == 0
    assert moat_log(fork, "export", "-o", str(base / "fork.export")).returncode == 0
    assert moat_log(box, "init", "--node", "nb").returncode == 0
    assert moat_log(box, "import", str(base / "fork.export")).returncode == 0
    async with open_client(data_dir=node.data_dir) as client:
        before = (await client.status())["journal"]
    key = str(secret_file(base))
    pull = ("pull", "--from", node.sync_address)
    for command in (pull, ("ship", "--to", node.sync_address)):
        done = moat_log(box, *command, "--secret-file", key)
        assert done.returncode == 1
        assert done.stderr.startswith("moat-log: error: "), done.stderr
        assert "conflict" in done.stderr and "na:1 is two different events" in done.stderr
    assert "lost its data" in node.stderr()
    async with open_client(data_dir=node.data_dir) as client:
        assert (await client.status())["journal"] == before
        assert await client.get("heating.setpoint") is None
    assert moat_log(box, "log", "--json").stdout.count("\n") == 1  # the imported event only
    assert moat_log(box, "verify").returncode == 0


def test_an_unreachable_port_is_a_clear_error(base: FsPath) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the test dials it
    key = str(secret_file(base))
    done = moat_log(
        base / "backup", "pull", "--from", f"127.0.0.1:{port}", "--secret-file", key,
        "--node", "backup",
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"moat-log: error: cannot connect to the sync port 127.0.0.1:{port}"
    )
    assert "refused" in done.stderr


@pytest.mark.slow
def test_a_data_dir_a_node_serves_is_refused(base: FsPath, node: NodeProcess) -> None:
    key = str(secret_file(base))
    done = moat_log(node.data_dir, "pull", "--from", node.sync_address, "--secret-file", key)
    assert done.returncode == 1
    assert "a node runs on" in done.stderr and "[sync]" in done.stderr


def test_the_secret_is_never_an_argument(base: FsPath) -> None:
    done = moat_log(base, "pull", "--from", "127.0.0.1:1", "--node", "backup")
    assert done.returncode == 1
    assert "--secret-file FILE or --config FILE" in done.stderr
