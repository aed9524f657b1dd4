"""A real ``moat-log serve`` with an MQTT adapter, killed with SIGKILL and started again.

What the output projection and the session's repair promise together: a
change that is in the journal reaches the broker after any crash, and
none is published twice.  The node is a real process on its own data
directory; the broker a real mosquitto (no persistence); a watcher client
in the test counts every message on ``cmd/#`` from the moment it
subscribed, live and retained alike.

Readiness is read, never waited out: the node's ``ready`` line on stdout,
and on stderr (``--log-level info``) the session's line saying the broker
holds the journal's state, logged once its repair is acknowledged.
"""

from __future__ import annotations

import signal
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path as FsPath
from typing import Any

import pytest
import trio
from mosquitto_broker import Mosquitto

from moat_log import Client, open_client
from moat_log.adapters.mqtt.client import Message, MqttClient, MqttOptions, open_mqtt
from moat_log.errors import MoatLogError
from moat_log.testing import node_processes, short_temp_dir

pytestmark = pytest.mark.slow

#: Generous: only reached when something is broken.
TIMEOUT = 30
#: What the session logs once the broker holds the journal's state (adapters/mqtt/session.py).
REPAIRED = "adapter mqtt: the broker holds the journal's state as of position"
TOKEN_TOPIC = "watcher/token"


def write_config(folder: FsPath, broker: Mosquitto) -> FsPath:
    config = folder / "node.toml"
    config.write_text(
        f"""
node = "pi1"
data_dir = "{folder / "data"}"
[client]
listen = ["unix"]

[adapters.mqtt]
type = "mqtt"
broker = "127.0.0.1:{broker.port}"
reconnect_first = 0.01
reconnect_max = 0.05
lease = 3
discovery = false

[[adapters.mqtt.map]]
path = "cmd.+n"
topic = "cmd/{{n}}"
direction = "out"
retain = true
"""
    )
    return config


class Watcher:
    """Every message on ``cmd/#`` since it subscribed, by topic."""

    def __init__(self, client: MqttClient) -> None:
        self.client = client
        self.payloads: dict[str, list[bytes]] = defaultdict(list)
        self._tokens: list[bytes] = []
        self._changed = trio.Event()
        #: Called with each cmd message's topic as it arrives.
        self.on_message: Callable[[str], None] = lambda _topic: None

    async def run(self) -> None:
        async for message in self.client.messages:
            self._note(message)
            self._changed.set()
            self._changed = trio.Event()

    def _note(self, message: Message) -> None:
        if message.topic == TOKEN_TOPIC:
            self._tokens.append(message.payload)
            return
        self.payloads[message.topic].append(message.payload)
        self.on_message(message.topic)

    async def until(self, predicate: Callable[[], bool]) -> None:
        with trio.fail_after(TIMEOUT):
            while not predicate():
                await self._changed.wait()

    async def settle(self) -> None:
        """Until everything the broker took before now has reached this watcher.

        The broker sends a subscriber its messages in the order it took them,
        so once our own token comes back, so has every earlier message.
        """
        token = b"%d" % len(self._tokens)
        await self.client.publish(TOKEN_TOPIC, token, qos=1)
        await self.until(lambda: token in self._tokens)


@asynccontextmanager
async def watching(broker: Mosquitto, name: str) -> AsyncIterator[Watcher]:
    options = MqttOptions("127.0.0.1", port=broker.port, client_id=name)
    async with open_mqtt(options, buffer=10_000) as client, trio.open_nursery() as nursery:
        watcher = Watcher(client)
        await client.subscribe([("cmd/#", 1), (TOKEN_TOPIC, 1)], no_local=False)
        nursery.start_soon(watcher.run)
        yield watcher
        nursery.cancel_scope.cancel()


async def adapter_status(data_dir: FsPath) -> dict[str, Any]:
    async with open_client(data_dir=data_dir) as client:
        status = await client.status()
    report: dict[str, Any] = status["adapters"]["mqtt"]
    return report


async def in_thread(function: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(function)


async def test_changes_queued_while_the_broker_is_down_survive_a_kill_and_go_out_once(
    make_mosquitto: Callable[..., Mosquitto],
) -> None:
    broker = make_mosquitto()
    with short_temp_dir() as folder, node_processes(write_config(folder, broker), TIMEOUT) as start:
        data_dir = folder / "data"
        node = await in_thread(start)
        await in_thread(lambda: node.wait_for_line(REPAIRED))  # connected and publishing
        await in_thread(broker.kill)
        async with open_client(data_dir=data_dir) as client:
            for i in range(50):
                await client.set(f"cmd.{i}", i)  # durable once it returns
            queued = (await client.status())["adapters"]["mqtt"]
        assert queued["sent"] == 0
        assert queued["lag"] >= 50  # the output waits for a broker
        await in_thread(node.kill)
        await in_thread(broker.restart)  # the same port; nothing retained
        async with watching(broker, "crash-watcher") as watcher:
            node = await in_thread(start)
            await in_thread(lambda: node.wait_for_line(REPAIRED))
            await watcher.settle()
            status = await adapter_status(data_dir)
        topics = {f"cmd/{i}" for i in range(50)}
        assert set(watcher.payloads) == topics
        for i in range(50):
            assert watcher.payloads[f"cmd/{i}"] == [b"%d" % i]  # exactly once, the right value
        assert status["state"] == "connected"
        assert status["sent"] == 50


async def test_a_node_killed_in_a_burst_publishes_every_value_once_after_its_restart(
    make_mosquitto: Callable[..., Mosquitto],
) -> None:
    broker = make_mosquitto()
    count, kill_after = 500, 100
    with short_temp_dir() as folder, node_processes(write_config(folder, broker), TIMEOUT) as start:
        data_dir = folder / "data"
        node = await in_thread(start)
        await in_thread(lambda: node.wait_for_line(REPAIRED))
        acknowledged: list[int] = []
        async with watching(broker, "burst-watcher") as watcher:
            killed = trio.Event()
            published_before_kill = 0

            def kill_at_the_hundredth(_topic: str) -> None:
                nonlocal published_before_kill
                if len(watcher.payloads) == kill_after and not killed.is_set():
                    # at once, inside the watcher: the burst is still going
                    node.process.send_signal(signal.SIGKILL)
                    published_before_kill = len(watcher.payloads)
                    killed.set()

            async def set_one(client: Client, i: int) -> None:
                try:
                    await client.set(f"cmd.{i}", f"v{i}")
                except MoatLogError:
                    return  # the node died under the client
                acknowledged.append(i)

            watcher.on_message = kill_at_the_hundredth
            with trio.fail_after(TIMEOUT):
                try:
                    async with open_client(data_dir=data_dir) as client:
                        async with trio.open_nursery() as burst:  # half of them at once
                            for i in range(count // 2):
                                burst.start_soon(set_one, client, i)
                        for i in range(count // 2, count):  # the rest while they go out
                            if killed.is_set():
                                break
                            await set_one(client, i)
                except* (MoatLogError, OSError, trio.BrokenResourceError):
                    pass  # the connection's own end, after the node died
                await killed.wait()  # the sets may be in, the publishing goes on
            await in_thread(lambda: node.process.wait(TIMEOUT))
            watcher.on_message = lambda _topic: None
            node = await in_thread(start)
            await in_thread(lambda: node.wait_for_line(REPAIRED))
            await watcher.settle()
            async with open_client(data_dir=data_dir) as client:
                names = await client.list("cmd")
                stored = {int(str(name)): await client.value(f"cmd.{name}") for name in names}
        assert len(stored) > published_before_kill  # the restart had some left to publish
        # every acknowledged set is stored, and the broker got each stored value exactly once
        assert set(acknowledged) <= set(stored)
        assert len(stored) >= kill_after
        assert {f"cmd/{i}" for i in stored} == set(watcher.payloads)
        for i, value in stored.items():
            assert value == f"v{i}"
            assert watcher.payloads[f"cmd/{i}"] == [b'"v%d"' % i], i
        # and the broker holds every one of them, retained
        async with watching(broker, "late-watcher") as late:
            await late.settle()
        assert {topic: p[-1] for topic, p in late.payloads.items()} == {
            f"cmd/{i}": b'"v%d"' % i for i in stored
        }
