"""The MQTT adapter in a node, against a real mosquitto.

Each test runs nodes in its own trio run (in-process, each with its data
directory and its config read from TOML text, as ``moat-log serve`` reads
it) and watches the broker with a client of its own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path as FsPath
from typing import Any

import trio
import trio.testing
from mosquitto_broker import Mosquitto

from moat_log.adapters.mqtt.client import Message, MqttClient, MqttOptions, open_mqtt
from moat_log.journal.change import Change
from moat_log.node._node import Node
from moat_log.node.config import NodeConfig
from moat_log.path import Path
from moat_log.testing import in_process_config, running_node
from moat_log.testing import until_adapter_status as until_status

LIGHTS = """
[[adapters.mqtt.map]]
path = "home.+room.light"
topic = "home/{room}/light/state"
command_topic = "home/{room}/light/set"
codec = "bool"
entity = { component = "light", name = "Light" }

[[adapters.mqtt.map]]
path = "home.+room.temperature"
topic = "home/{room}/temperature"
direction = "in"
codec = { type = "number", unit = "°C" }

[[adapters.mqtt.map]]
path = "home.+room.mode"
topic = "home/{room}/mode"
codec = "string"
"""


def node_config(
    data_dir: FsPath, broker: Mosquitto, name: str, mapping: str = LIGHTS
) -> NodeConfig:
    text = f"""
node = "{name}"
[adapters.mqtt]
type = "mqtt"
broker = "127.0.0.1:{broker.port}"
reconnect_first = 0.01
reconnect_max = 0.05
lease = 3
{mapping}
"""
    return in_process_config(text, data_dir)


class Watcher:
    """A client that records every message under its filters."""

    def __init__(self, client: MqttClient) -> None:
        self.client = client
        self.messages: list[Message] = []
        self._changed = trio.Event()

    async def run(self) -> None:
        async for message in self.client.messages:
            self.messages.append(message)
            self._changed.set()
            self._changed = trio.Event()

    async def until(self, predicate: Callable[[list[Message]], bool]) -> None:
        with trio.fail_after(20):
            while not predicate(self.messages):
                await self._changed.wait()

    def on(self, topic: str) -> list[Message]:
        return [m for m in self.messages if m.topic == topic]


@asynccontextmanager
async def watching(broker: Mosquitto, *filters: str) -> AsyncIterator[Watcher]:
    options = MqttOptions("127.0.0.1", port=broker.port, client_id=f"watcher-{id(filters)}")
    async with open_mqtt(options) as client, trio.open_nursery() as nursery:
        watcher = Watcher(client)
        await client.subscribe([(f, 1) for f in filters], no_local=False)
        nursery.start_soon(watcher.run)
        yield watcher
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def bus_client(broker: Mosquitto) -> AsyncIterator[MqttClient]:
    options = MqttOptions("127.0.0.1", port=broker.port, client_id="a-device")
    async with open_mqtt(options) as client:
        yield client


async def until_active(node: Node) -> None:
    """Until the node's adapter is connected and publishing for its group."""
    await until_status(
        node.adapters["mqtt"],
        lambda s: s.state == "connected" and s.details.get("active") == node.name,
    )


async def set_value(node: Node, path: str, value: Any) -> None:
    await node.write(Change(Path.parse(path), value))


async def test_a_set_is_published_retained_with_the_codec(
    tmp_path: FsPath, mosquitto: Mosquitto
) -> None:
    async with running_node(node_config(tmp_path, mosquitto, "n1")) as node:
        await until_active(node)
        async with watching(mosquitto, "home/#") as watcher:
            await set_value(node, "home.kitchen.light", True)
            await watcher.until(lambda ms: any(m.topic == "home/kitchen/light/state" for m in ms))
        (message,) = watcher.on("home/kitchen/light/state")
        assert message.payload == b"ON"
        assert ("moat-log", "n1") in message.user_properties
    async with watching(mosquitto, "home/#") as later:
        await later.until(lambda ms: bool(later.on("home/kitchen/light/state")))
    assert later.on("home/kitchen/light/state")[0].retain


async def test_a_command_on_the_bus_becomes_an_event_with_its_source(
    tmp_path: FsPath, mosquitto: Mosquitto
) -> None:
    async with running_node(node_config(tmp_path, mosquitto, "n1")) as node:
        await until_active(node)
        status = node.adapters["mqtt"]
        async with bus_client(mosquitto) as device, watching(mosquitto, "home/#") as watcher:
            await device.publish("home/hall/light/set", b"on", qos=1)
            await until_status(status, lambda s: s.counts["written"] == 1)
            event = node.kv.get(Path.parse("home.hall.light"))
            assert event is not None
            assert (event.value, event.source) == (True, "mqtt:home/hall/light/set")
            # the new state goes out on the state topic, and is not read back as news
            await watcher.until(lambda ms: bool(watcher.on("home/hall/light/state")))
            assert watcher.on("home/hall/light/state")[-1].payload == b"ON"
            await device.publish("home/hall/temperature", b"21.5", qos=1)
            await until_status(status, lambda s: s.counts["written"] == 2)
        assert node.kv.value(Path.parse("home.hall.temperature")) == 21.5
        assert status.counts["written"] == 2


async def test_our_own_publication_is_not_read_back_and_unchanged_values_make_no_event(
    tmp_path: FsPath, mosquitto: Mosquitto
) -> None:
    async with running_node(node_config(tmp_path, mosquitto, "n1")) as node:
        await until_active(node)
        status = node.adapters["mqtt"]
        async with watching(mosquitto, "home/#") as watcher, bus_client(mosquitto) as device:
            await set_value(node, "home.den.mode", "eco")  # both ways on one topic
            await watcher.until(lambda ms: bool(watcher.on("home/den/mode")))
            last = node.journal.last_position
            await device.publish("home/den/mode", b"eco", qos=1)  # the same value, from outside
            await device.publish("home/den/mode", b"away", qos=1)
            await until_status(status, lambda s: s.counts["written"] == 1)
        assert node.journal.last_position == last + 1
        assert node.kv.value(Path.parse("home.den.mode")) == "away"
        assert status.counts["suppressed"] >= 2  # our echo, and the unchanged "eco"


async def test_a_malformed_payload_is_counted_and_never_stored(
    tmp_path: FsPath, mosquitto: Mosquitto
) -> None:
    async with running_node(node_config(tmp_path, mosquitto, "n1")) as node:
        await until_active(node)
        status = node.adapters["mqtt"]
        async with bus_client(mosquitto) as device:
            await device.publish("home/hall/temperature", b"warm", qos=1)
            await device.publish("home/hall/light/set", b"maybe", qos=1)
            await device.publish("home/hall/temperature", b"19", qos=1)
            await until_status(status, lambda s: s.counts["written"] == 1)
        assert status.counts["bad"] == 2
        assert node.kv.get(Path.parse("home.hall.light")) is None
        assert node.kv.value(Path.parse("home.hall.temperature")) == 19.0
        report = node.status(None)["adapters"]["mqtt"]
        assert report["state"] == "connected"
        assert "home/hall/light/set" in report["last_bad"]


async def test_a_restarted_broker_gets_every_mapped_state_back(
    tmp_path: FsPath, mosquitto: Mosquitto
) -> None:
    async with running_node(node_config(tmp_path, mosquitto, "n1")) as node:
        await until_active(node)
        status = node.adapters["mqtt"]
        await set_value(node, "home.kitchen.light", True)
        await set_value(node, "home.den.mode", "eco")
        await until_status(status, lambda s: s.counts["sent"] >= 2)
        await trio.to_thread.run_sync(mosquitto.kill)  # no persistence: retained state is gone
        await until_status(status, lambda s: s.state == "backing-off")
        await set_value(node, "home.den.mode", "away")  # while the broker is away
        await trio.to_thread.run_sync(mosquitto.restart)
        async with bus_client(mosquitto) as device:  # a device reports while the node is away
            await device.publish("home/den/temperature", b"17.5", qos=1, retain=True)
        await until_status(status, lambda s: s.connections >= 2 and s.state == "connected")
        await until_status(status, lambda s: s.counts["written"] == 1)  # read on reconnecting
        assert node.kv.value(Path.parse("home.den.temperature")) == 17.5
        async with watching(mosquitto, "home/#") as watcher:
            await watcher.until(
                lambda ms: {m.topic for m in ms} >= {"home/kitchen/light/state", "home/den/mode"}
            )
            assert watcher.on("home/kitchen/light/state")[0].payload == b"ON"
            assert watcher.on("home/den/mode")[-1].payload == b"away"


async def test_home_assistant_discovery_and_its_birth_message(
    tmp_path: FsPath, mosquitto: Mosquitto
) -> None:
    async with running_node(node_config(tmp_path, mosquitto, "n1")) as node:
        await until_active(node)
        await set_value(node, "home.kitchen.light", False)
        async with watching(mosquitto, "homeassistant/#") as watcher:
            await watcher.until(lambda ms: any(m.topic.endswith("/config") for m in ms))
            (config,) = [m for m in watcher.messages if m.topic.endswith("/config")]
            assert config.retain
            assert config.topic.startswith("homeassistant/light/moat-log/")
            fields = json.loads(config.payload)
            assert fields["state_topic"] == "home/kitchen/light/state"
            assert fields["command_topic"] == "home/kitchen/light/set"
            assert (fields["payload_on"], fields["payload_off"]) == ("ON", "OFF")
            assert fields["availability"][0]["topic"] == "moat-log/node/n1/status"
            async with bus_client(mosquitto) as home_assistant:
                await home_assistant.publish("homeassistant/status", b"online", qos=1)
                await watcher.until(lambda ms: len([m for m in ms if m.topic == config.topic]) == 2)


async def test_two_nodes_on_one_broker_publish_once_and_hand_over(
    tmp_path: FsPath, mosquitto: Mosquitto
) -> None:
    a_config = node_config(tmp_path / "a", mosquitto, "a")
    b_config = node_config(tmp_path / "b", mosquitto, "b")
    async with watching(mosquitto, "home/#") as watcher, running_node(b_config) as b:
        b_status = b.adapters["mqtt"]
        async with running_node(a_config) as a:
            await until_active(a)  # the least name publishes
            await until_status(b_status, lambda s: s.details.get("active") == "a")
            assert b_status.details["role"] == "standby"
            await set_value(a, "home.kitchen.light", True)
            await set_value(b, "home.den.mode", "eco")  # b stands by: not published
            await watcher.until(lambda ms: bool(watcher.on("home/kitchen/light/state")))
            async with bus_client(mosquitto) as device:
                await device.publish("home/hall/light/set", b"on", qos=1)
                await until_status(a.adapters["mqtt"], lambda s: s.counts["written"] == 1)
                await until_status(b_status, lambda s: s.counts["received"] == 1)
                await watcher.until(lambda ms: bool(watcher.on("home/hall/light/state")))
            assert b_status.counts["written"] == 0  # only the publishing node writes
            assert b.kv.get(Path.parse("home.hall.light")) is None
            assert b_status.counts["sent"] == 0
        # a stopped (and said so): b takes over and repairs the broker from its journal
        await until_status(b_status, lambda s: s.details.get("active") == "b")
        await watcher.until(lambda ms: bool(watcher.on("home/den/mode")))
        await watcher.until(lambda ms: len(watcher.on("home/hall/light/state")) == 2)
        (mode,) = watcher.on("home/den/mode")
        assert (mode.payload, ("moat-log", "b") in mode.user_properties) == (b"eco", True)
    publishers = {
        value for m in watcher.messages for key, value in m.user_properties if key == "moat-log"
    }
    assert publishers == {"a", "b"}
    # a published the hall light once; b, whose journal lacks it (no sync here), cleared it
    hall = watcher.on("home/hall/light/state")
    assert [(m.payload, dict(m.user_properties)["moat-log"]) for m in hall] == [
        (b"ON", "a"),
        (b"", "b"),
    ]


async def test_an_entity_no_longer_configured_is_removed_from_home_assistant(
    tmp_path: FsPath, mosquitto: Mosquitto
) -> None:
    async with running_node(node_config(tmp_path, mosquitto, "n1")) as node:
        await until_active(node)
        await set_value(node, "home.kitchen.light", True)
        async with watching(mosquitto, "homeassistant/#") as watcher:
            await watcher.until(lambda ms: any(m.payload for m in ms))
    (config,) = [m for m in watcher.messages if m.payload]
    fields = json.loads(config.payload)
    assert fields["unique_id"] and fields["device"]["identifiers"]
    without_entity = LIGHTS.replace('entity = { component = "light", name = "Light" }', "")
    async with watching(mosquitto, "homeassistant/#") as watcher:
        await watcher.until(lambda ms: bool(watcher.on(config.topic)))
        assert watcher.on(config.topic)[0].payload == config.payload  # retained
        async with running_node(node_config(tmp_path, mosquitto, "n1", without_entity)) as node:
            await until_active(node)
            await watcher.until(lambda ms: len(watcher.on(config.topic)) == 2)
    assert watcher.on(config.topic)[1].payload == b""


async def test_a_burst_of_commands_is_written_in_order_with_repeats_suppressed(
    tmp_path: FsPath, mosquitto: Mosquitto
) -> None:
    async with running_node(node_config(tmp_path, mosquitto, "n1")) as node:
        await until_active(node)
        status = node.adapters["mqtt"]
        path = Path.parse("home.den.mode")
        first = node.journal.last_position
        async with bus_client(mosquitto) as device:
            # one pipelined burst: the session reads it in one go, as one batch
            await device.publish_many(
                [("home/den/mode", payload, 1, False) for payload in (b"a", b"a", b"b", b"a")]
                + [(f"home/r{i}/mode", b"x", 1, False) for i in range(20)]
            )
            await until_status(status, lambda s: s.counts["written"] == 23)
        assert node.journal.last_position == first + 23
        history = [e.value for e in node.journal.history(path)]
        assert history == ["a", "b", "a"]  # the repeated "a" is no change
        assert status.counts["suppressed"] >= 1
        assert all(node.kv.value(Path.parse(f"home.r{i}.mode")) == "x" for i in range(20))
