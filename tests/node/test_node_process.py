"""A real ``moat-log serve`` process: clients, bad connections, SIGTERM."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path as FsPath

import pytest
import trio
from node_support import RawConnection, environment, open_raw

from moat_log import open_client
from moat_log.client import NodeConnectionError
from moat_log.errors import NodeError
from moat_log.journal.verify import verify_journal
from moat_log.path import Path
from moat_log.projections import kv_view, open_journal
from moat_log.testing import moat_log_script, read_until_ready, short_temp_dir

STARTUP_TIMEOUT = 30.0


@dataclass
class Served:
    """A running ``moat-log serve``: its process, data directory and addresses."""

    process: subprocess.Popen[bytes]
    data_dir: FsPath
    unix: str
    tcp: str
    log: FsPath

    signalled: bool = False

    def terminate(self) -> None:
        """Send SIGTERM (once: a second one would kill a node that is stopping)."""
        if not self.signalled:
            self.signalled = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        """SIGTERM, then wait; the exit status."""
        self.terminate()
        return self.process.wait(timeout=STARTUP_TIMEOUT)

    def stderr(self) -> str:
        return self.log.read_text()


@pytest.fixture
def served() -> Iterator[Served]:
    with short_temp_dir() as base:
        data_dir = base / "data"
        config = base / "node.toml"
        config.write_text(
            'node = "pi7"\n'
            'data_dir = "data"\n'
            "[client]\n"
            'listen = ["unix", "127.0.0.1:0"]\n'
            "handshake_timeout = 0.5\n"
            "max_connections = 20\n"
        )
        log = base / "stderr.txt"
        with open(log, "wb") as stderr:
            process = subprocess.Popen(
                [moat_log_script(), "serve", "--config", str(config)],
                stdout=subprocess.PIPE, stderr=stderr, env=environment(),
            )  # fmt: skip
        try:
            lines = read_until_ready(process)
            listening = [
                line.removeprefix("listening on ") for line in lines if "listening" in line
            ]
            unix = next(a for a in listening if a.startswith("unix:"))
            tcp = next(a for a in listening if not a.startswith("unix:"))
            assert lines[0] == f"node pi7: data directory {data_dir}"
            yield Served(process, data_dir, unix, tcp, log)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


async def test_a_real_node_serves_clients_and_closes_bad_connections(served: Served) -> None:
    async with (
        open_client(connect=served.tcp) as tcp_client,
        open_client(data_dir=served.data_dir) as unix_client,
    ):
        written = await tcp_client.set("home.kitchen.temp", 21.5)
        assert written.id.origin == "pi7"
        assert await unix_client.value("home.kitchen.temp") == 21.5

        garbage = b"\x00\x00\x00\x04\xc1\xc1\xc1\xc1"  # 0xc1 is never valid msgpack
        oversized = (64 << 20).to_bytes(4, "big")  # announces 64 MiB
        for address in (served.tcp, served.unix):
            for data, why in ((garbage, "not one valid msgpack value"), (oversized, "67108864")):
                raw = RawConnection(await open_raw(address))
                await raw.receive()
                await raw.stream.send_all(data)
                with trio.fail_after(10):
                    [goodbye] = await raw.until_closed()
                assert goodbye["id"] is None
                assert goodbye["error"]["type"] == "protocol"
                assert why in goodbye["error"]["message"]
                await tcp_client.set("still.serving", address)
            assert await unix_client.value("still.serving") == address
        # Connects over TCP and sends nothing at all: closed after the handshake
        # timeout.  (A local script on the Unix socket may idle.)
        raw = RawConnection(await open_raw(served.tcp))
        with trio.fail_after(10):
            messages = await raw.until_closed()
        assert "no request within 0.5 s" in messages[-1]["error"]["message"]

        status = await unix_client.status()
        assert status["node"] == "pi7"
        assert status["connections"] == 2
    assert served.stop() == 0
    log = served.stderr()
    assert "broke the protocol" in log
    assert "handshake timeout" in log
    assert "Traceback" not in log


#: Connections opened at once by the flood test ("thousands of connections").
FLOOD = 2000


def _allow_open_files(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count:
        if hard != resource.RLIM_INFINITY and hard < count:
            pytest.skip(f"the flood test needs {count} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))


async def test_a_flood_of_connections_is_turned_away_while_clients_are_served(
    served: Served,
) -> None:
    _allow_open_files(FLOOD + 200)
    async with open_client(connect=served.tcp) as client:
        goodbyes: list[str] = []

        async def connect_and_wait() -> None:
            raw = RawConnection(await open_raw(served.tcp))
            messages = await raw.until_closed()
            assert "moat-log" in messages[0]  # greeted, then told goodbye
            goodbyes.append(messages[-1]["error"]["type"])

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for _ in range(FLOOD):
                    nursery.start_soon(connect_and_wait)
                for index in range(20):
                    await client.set(f"during.flood.{index}", index)
        assert len(goodbyes) == FLOOD
        # Refused at once (busy), or accepted and closed for sending nothing.
        assert set(goodbyes) == {"busy", "protocol"}
        assert sorted([e.value async for e in client.subtree("during.flood")]) == list(range(20))
    assert served.stop() == 0


async def test_sigterm_keeps_every_acknowledged_write(served: Served) -> None:
    acknowledged: dict[str, int] = {}
    refused = 0
    enough = trio.Event()

    async def write_until_refused(client_number: int) -> None:
        nonlocal refused
        async with open_client(data_dir=served.data_dir) as client:
            for index in range(10_000):
                path = f"load.c{client_number}.i{index:05}"
                try:
                    await client.set(path, index)
                except (NodeConnectionError, NodeError):
                    refused += 1
                    return
                acknowledged[path] = index
                if len(acknowledged) >= 300:
                    enough.set()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for number in range(8):
                nursery.start_soon(write_until_refused, number)
            await enough.wait()
            served.terminate()  # while writes are in flight
        status = await trio.to_thread.run_sync(served.stop)
    assert status == 0, served.stderr()
    assert refused == 8  # every writer saw the node go
    assert "received SIGTERM" in served.stderr()
    assert not (served.data_dir / "moat-log.sock").exists()
    with open_journal(served.data_dir) as journal:
        report = verify_journal(journal)
        assert report.ok, report.problems
        kv = kv_view(journal)
        for path, value in acknowledged.items():
            assert kv.value(Path.parse(path)) == value


def test_moat_log_status_asks_the_node_or_reads_the_journal(served: Served) -> None:
    def status() -> dict[str, object]:
        done = subprocess.run(
            [moat_log_script(), "--data-dir", str(served.data_dir), "--json", "status"],
            capture_output=True, text=True, env=environment(), timeout=60, check=True,
        )  # fmt: skip
        result: dict[str, object] = json.loads(done.stdout)
        return result

    running = status()
    assert running["running"] is True
    assert running["node"] == "pi7"
    assert running["listen"] == [served.unix, served.tcp]
    assert served.stop() == 0
    stopped = status()
    assert stopped["running"] is False
    assert stopped["node"] == "pi7"
    assert stopped["views"] == {"kv": {"version": 2, "checkpoint": 0}}
