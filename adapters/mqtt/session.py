"""One connection of the MQTT adapter to its broker, as the node's bus session.

Theory of operation
-------------------
`MqttSession.start` subscribes, in one SUBSCRIBE, to everything the
session reads: the mapping's listening topics, the state topics it
publishes (their retained copies say what the broker holds), the group's
status topics, Home Assistant's birth topic and the discovery topics of
the group's entities.  It then publishes a token to a topic of its own and
reads until the token comes back: the broker sends the retained messages
of a subscription before anything published after it, so by then it has
seen the broker's whole retained state, without waiting out a quiet time.
Then it says ``online`` for its node (`election`).

Every message this adapter publishes carries the MQTT 5 user property
``moat-log`` (the publishing node): it is a projection of a journal event
and never news.  A message with it is not read back as an event by any
node of the group, which is how our own publications (and those of the
other nodes) are not read back; a message without it on a listened topic
is a change from the bus.  With MQTT 3.1.1 (no properties) the mapping's
``changes_only`` stops an echo: its value is the one the journal holds.

Only the group's **active** node publishes and writes events.  On becoming
active (at start or when the active node goes), the session **repairs**
the broker: it reads the owned paths' state as of one journal position
(`AdapterLink.snapshot`), publishes every state topic whose retained copy
differs (a restarted broker gets everything back), clears retained state
topics of ours whose path holds no value, announces the Home Assistant
entities and removes those no longer configured.  The output then skips
the changes at or before that position (`start_position`) and sends the
later ones (`send`), each published only if the broker does not already
hold that payload there: after a crash, the changes since the output's
checkpoint come again, and none is published twice.  A retained topic
whose copy on the broker came from the bus (no ``moat-log`` property) and
that the mapping also listens on is left alone by the repair: the device
said it, and it becomes an event like any other message.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Final

import trio

from moat_log.errors import BusDataError, MoatLogError
from moat_log.event import Event, Op
from moat_log.journal.change import Change
from moat_log.journal.item import FeedItem
from moat_log.path import Path

from ..contract import AdapterLink
from .client import Message, MqttClient
from .discovery import DiscoveryMessage, DiscoverySettings
from .election import OFFLINE, ONLINE, Group, node_of_status_topic, status_filter, status_topic
from .mapping import DELETE, Mapping, OutgoingMessage
from .topics import topic_matches

__all__ = ["PROPERTY", "MqttSession", "SessionSettings"]

log = logging.getLogger("moat_log.adapters.mqtt")

#: The user property that marks a message as published by moat-log.
PROPERTY: Final = "moat-log"
#: How long the start waits for its token to come back before giving up on the broker.
BARRIER_TIMEOUT: Final = 10.0
#: How long a stopping session tries to say it is offline.
OFFLINE_TIMEOUT: Final = 2.0
#: Bus messages kept at most while the session is not yet listening.
EARLY_MESSAGES: Final = 10_000
#: Messages read from the client at once: their changes cost one journal read and one write.
READ_BATCH: Final = 512


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """The adapter's group and Home Assistant settings."""

    group: str = "moat-log"
    lease: float = 30.0
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    device_name: str | None = None

    @property
    def node_id(self) -> str:
        """The group as Home Assistant's node_id (``[a-zA-Z0-9_-]``)."""
        return self.group.replace("/", "_")


class MqttSession:
    """Serves one broker connection: repair, publish, listen, take part in the group."""

    def __init__(
        self, settings: SessionSettings, mapping: Mapping, link: AdapterLink, client: MqttClient
    ) -> None:
        self.settings = settings
        self.mapping = mapping
        self.link = link
        self.client = client
        self.me = link.node_name
        self.group = Group(self.me, settings.lease)
        self._status_topic = status_topic(settings.group, self.me)
        self._token_topic = f"{settings.group}/node/{self.me}/token"
        self._ha_status = f"{settings.discovery_prefix}/status"
        self._discovery_filter = f"{settings.discovery_prefix}/+/{settings.node_id}/+/config"
        self._properties = ((PROPERTY, self.me),) if client.protocol == 5 else ()
        #: Topic -> the payload the broker holds there (what we or others published).
        self.broker: dict[str, bytes] = {}
        #: Retained topics whose copy came from the bus (no moat-log property).
        self._from_bus: set[str] = set()
        #: Messages of the bus read before the session became active.
        self._early: list[Message] = []
        self._announced: set[str] = set()
        self._start = 0
        #: Publishing (and repaired): the group's active node.
        self.active = False
        #: Bus changes become events as they come (else they wait in `_early`).
        self._listening = False
        self._lock = trio.Lock()
        self._group_changed = trio.Event()
        self._lease_changed = trio.Event()
        self._force = False

    # ---------------------------------------------------------------- contract

    @property
    def start_position(self) -> int:
        return self._start

    async def send(self, items: Sequence[FeedItem]) -> None:
        async with self._lock:
            if not self.active:
                return  # standing by: the active node publishes; a take-over repairs
            messages: list[OutgoingMessage] = []
            for item in items:
                if item.position <= self._start:
                    continue
                message = self._outgoing(item.event)
                if message is not None:
                    await self._announce(item.event.path)
                    messages.append(message)
            await self._publish_states(messages)

    # ------------------------------------------------------------------- start

    async def start(self) -> None:
        """Subscribe, read the broker's retained state, say ``online``."""
        settings = self.settings
        filters: dict[str, int] = dict(self.mapping.subscriptions())
        quiet: set[str] = set()
        for rule in self.mapping.rules:
            if rule.direction.outgoing:
                state_filter = rule.state.subscription_filter
                if state_filter not in filters and self.client.protocol == 5:
                    quiet.add(state_filter)
                else:
                    filters[state_filter] = max(filters.get(state_filter, 0), 1)
        if quiet:
            # No Local: the broker sends the retained copies (ours of an earlier
            # connection too: mosquitto sends those, test_mqtt_crash.py relies
            # on it) and what others publish, but not our own publications
            # back.  The session knows what it publishes; reading each back
            # cost the node about as much CPU again (tools/bench/mqtt_adapter.py).
            await self.client.subscribe([(f, 1) for f in sorted(quiet)], no_local=True)
        filters[status_filter(settings.group)] = 1
        filters[self._token_topic] = 1
        if settings.discovery:
            filters[self._ha_status] = 1
            filters[self._discovery_filter] = 1
        await self.client.subscribe(list(filters.items()), no_local=False)
        token = secrets.token_hex(8).encode()
        await self.client.publish(self._token_topic, token, qos=1)
        with trio.fail_after(BARRIER_TIMEOUT):
            while True:
                message = await self.client.receive()
                if message.topic == self._token_topic and message.payload == token:
                    break
                self._take(message)  # not listening yet: no change to write
        self.link.detail("retained_topics", len(self.broker))
        await self._say_online()
        self._follow_group()

    async def serve(self) -> None:
        """Read messages, keep our status fresh, follow the group; until the broker goes."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._heartbeat)
            nursery.start_soon(self._expire_leases)
            nursery.start_soon(self._lead)
            while True:
                messages = await self.client.receive_many(READ_BATCH)
                changes = [m for m in messages if self._take(m)]
                await self._bus_changes(changes)

    # --------------------------------------------------------------- messages

    def _take(self, message: Message) -> bool:
        """Note what *message* says; True if it is a bus change to write now.

        The changes of a burst are written together (`_bus_changes`), after
        the burst's other messages (group, broker state) are noted.
        """
        topic = message.topic
        node = node_of_status_topic(self.settings.group, topic)
        if node is not None:
            if self.group.status(node, message.payload, trio.current_time()):
                self._follow_group()
            self._lease_changed.set()
        elif topic == self._ha_status:
            if message.payload == b"online" and self.active:
                log.info("adapter %s: Home Assistant is back: announcing", self.link.status.name)
                self._force = True
                self._follow_group()
        elif topic_matches(self._discovery_filter, topic):
            self.broker[topic] = message.payload
        elif topic != self._token_topic:
            return self._take_mapped(message)
        return False

    def _take_mapped(self, message: Message) -> bool:
        """A message on a mapped topic: the broker's copy of a state, or a change."""
        topic = message.topic
        ours = any(key == PROPERTY for key, _ in message.user_properties)
        if self._is_state_topic(topic):
            self.broker[topic] = message.payload
            if ours:
                self._from_bus.discard(topic)
            else:
                self._from_bus.add(topic)
        if self.mapping.incoming_rule(topic) is None:
            return False
        status = self.link.status
        if ours:
            status.count("suppressed")
            return False
        status.count("received")
        if self._listening:
            return True
        if message.retain or self.group.active in (None, self.me):
            # becoming active: all, in order; standing by: only retained state matters later
            self._early.append(message)
            del self._early[:-EARLY_MESSAGES]
        return False

    async def _bus_changes(self, messages: Sequence[Message]) -> None:
        """Write the changes *messages* make, in order: one journal read, one write.

        A message whose value equals its path's current value makes no event
        (``changes_only``); "current" includes the earlier messages of the
        same burst, as if they had been written one by one.
        """
        link = self.link
        decoded = []
        for message in messages:
            try:
                change = self.mapping.incoming(message.topic, message.payload)
            except BusDataError as exc:
                link.bad_data(message.topic, str(exc))
                continue
            if change is not None:
                decoded.append((message.topic, change))
        if not decoded:
            return
        paths = list(dict.fromkeys(change.path for _, change in decoded))
        current: dict[Path, object] = {}
        for path, event in zip(paths, await link.current(paths), strict=True):
            current[path] = event.value if event is not None and event.op is Op.SET else DELETE
        writes: list[Change] = []
        for topic, change in decoded:
            if not change.changes(current[change.path]):
                link.status.count("suppressed")
                continue
            current[change.path] = change.value
            source = link.source(topic)
            if change.value is DELETE:
                writes.append(Change.delete(change.path, source=source))
            else:
                writes.append(Change(change.path, change.value, source=source))
        if writes:
            await link.write(writes)

    # ------------------------------------------------------------------ group

    async def _say_online(self) -> None:
        await self.client.publish(
            self._status_topic, ONLINE, qos=1, retain=True, user_properties=self._properties
        )
        if self.group.status(self.me, ONLINE, trio.current_time()):
            self._follow_group()

    async def say_offline(self) -> None:
        """Tell the group this node leaves (its will says so when it vanishes instead)."""
        # qos 0: the client's reader may be cancelled already (the node stops), and
        # the DISCONNECT that follows goes after it on the same connection
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(OFFLINE_TIMEOUT),
            suppress(MoatLogError),  # the broker is gone: our will says the same
        ):
            await self.client.publish(
                self._status_topic,
                OFFLINE,
                qos=0,
                retain=True,
                user_properties=self._properties,
            )

    async def _heartbeat(self) -> None:
        while True:
            await trio.sleep(self.settings.lease / 3)
            await self._say_online()

    async def _expire_leases(self) -> None:
        while True:
            self._lease_changed = trio.Event()
            with trio.move_on_at(self.group.next_expiry()):
                await self._lease_changed.wait()
                continue
            if self.group.expire(trio.current_time()):
                self._follow_group()

    def _follow_group(self) -> None:
        """The group changed (or Home Assistant came back): `_lead` acts on it."""
        self._group_changed.set()

    async def _lead(self) -> None:
        """Become active or stand by, as the group's state says; repair when becoming active.

        A task of its own: repairing waits for the broker's acknowledgements,
        which must not wait for the messages the session has not read yet.
        """
        while True:
            await self._group_changed.wait()
            self._group_changed = trio.Event()
            force, self._force = self._force, False
            active = self.group.is_active
            self.link.detail("active", self.group.active)
            self.link.detail("role", "publishing" if active else "standby")
            if active == self.active and not (active and force):
                continue
            name = self.link.status.name
            async with self._lock:
                if not active:
                    self.active = self._listening = False
                    log.info("adapter %s: %s publishes; standing by", name, self.group.active)
                    continue
                if not self.active:
                    log.info("adapter %s: this node publishes for its group", name)
                self.active = True
                await self._repair(force=force)
                log.info(
                    "adapter %s: the broker holds the journal's state as of position %d",
                    name,
                    self._start,
                )
            while self._early:
                early, self._early = self._early, []
                await self._bus_changes(early)
            self._listening = True

    # ----------------------------------------------------------------- repair

    async def _repair(self, *, force: bool = False) -> None:
        """Make the broker hold the journal's state of every owned path (lock held)."""
        prefixes = [r.state.path_prefix for r in self.mapping.rules if r.direction.outgoing]
        position, events = await self.link.snapshot(prefixes)
        self._announced.clear()
        wanted: set[str] = set()
        messages: list[OutgoingMessage] = []
        for event in events:
            message = self._outgoing(event)
            if message is None:
                continue
            wanted.add(message.topic)
            if message.topic in self._from_bus and self.mapping.incoming_rule(message.topic):
                continue  # the device's own report stands; it is read as a change
            await self._announce(event.path, force=force)
            messages.append(message)
        for rule in self.mapping.rules:
            if rule.direction.outgoing and not rule.state.variables:
                await self._announce(rule.state.path_prefix, force=force)
        for topic, payload in list(self.broker.items()):
            stale = payload and topic not in wanted and topic not in self._from_bus
            if stale and self._is_state_topic(topic):  # ours, but its path holds nothing now
                messages.append(OutgoingMessage(topic, b"", retain=True, qos=1))
        await self._publish_states(messages, force=force)
        await self._remove_stale_entities()
        self._start = position

    async def _announce(self, path: Path, *, force: bool = False) -> None:
        if not self.settings.discovery:
            return
        rule = self.mapping.rule_for(path)
        if rule is None or rule.entity is None:
            return
        message = rule.discovery(path, self._discovery_settings())
        if message is None or message.topic in self._announced:
            return
        self._announced.add(message.topic)
        await self._publish_discovery(message, force=force)

    async def _remove_stale_entities(self) -> None:
        for topic, payload in list(self.broker.items()):
            if (
                payload
                and topic not in self._announced
                and topic_matches(self._discovery_filter, topic)
            ):
                await self._publish_discovery(DiscoveryMessage(topic, b""))

    async def _publish_discovery(self, message: DiscoveryMessage, *, force: bool = False) -> None:
        if not force and self.broker.get(message.topic, b"") == message.payload:
            return
        await self.client.publish(
            message.topic,
            message.payload,
            qos=1,
            retain=True,
            user_properties=self._properties,
        )
        self.broker[message.topic] = message.payload

    def _discovery_settings(self) -> DiscoverySettings:
        return DiscoverySettings(
            node_id=self.settings.node_id,
            availability_topic=self._status_topic,
            discovery_prefix=self.settings.discovery_prefix,
            device_name=self.settings.device_name,
        )

    # ------------------------------------------------------------- publishing

    def _outgoing(self, event: Event) -> OutgoingMessage | None:
        value: object = DELETE if event.op is Op.DELETE else event.value
        try:
            return self.mapping.outgoing(event.path, value)
        except BusDataError as exc:
            self.link.bad_data(str(event.path), f"cannot be published: {exc}")
            return None

    async def _publish_states(
        self, messages: Sequence[OutgoingMessage], *, force: bool = False
    ) -> None:
        """Publish *messages* in order, each unless the broker holds it already."""
        todo = [
            m
            for m in messages
            if force or not m.retain or self.broker.get(m.topic, b"") != m.payload
        ]
        if not todo:
            return
        await self.client.publish_many(
            [(m.topic, m.payload, m.qos, m.retain) for m in todo],
            user_properties=self._properties,
        )
        for message in todo:
            if message.retain:
                self.broker[message.topic] = message.payload
                self._from_bus.discard(message.topic)  # ours now (its echo may not come)
        self.link.status.count("sent", len(todo))

    def _is_state_topic(self, topic: str) -> bool:
        """Whether *topic* is a state topic some out rule publishes."""
        return self.mapping.published_path(topic) is not None
