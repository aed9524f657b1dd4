"""The MQTT adapter: its ``[adapters.NAME]`` settings and its connection.

A table with ``type = "mqtt"`` (docs/adapters.md has every key)::

    [adapters.mqtt]
    type = "mqtt"
    broker = "127.0.0.1:1883"

    [[adapters.mqtt.map]]
    path = "home.+room.light"
    topic = "home/{room}/light/state"
    command_topic = "home/{room}/light/set"
    codec = "bool"
    entity = { component = "light" }

One connection (`MqttAdapter.run`) subscribes to what the mapping listens
on, to the state topics it publishes (their retained copies tell what the
broker holds), to the group's status topics (`election`) and to Home
Assistant's birth topic; then the `MqttSession` serves it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import msgspec
import trio
from msgspec import Meta

from moat_log.address import host_and_port
from moat_log.path import Path
from moat_log.records import FieldError, parse, read

from ..contract import AdapterLink, BusSession
from .client import MqttOptions, Will, open_mqtt
from .election import OFFLINE, status_topic
from .mapping import Mapping, mapping_from_config
from .session import MqttSession, SessionSettings

__all__ = ["MqttAdapter", "MqttSettings", "read_settings"]

DEFAULT_PORT: Final = 1883
_GROUP: Final = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")


class _Table(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    broker: Annotated[str, Meta(description='"HOST:PORT" of the MQTT broker')]
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    password_file: str | None = None
    keepalive: Annotated[int, Meta(ge=5, le=3600, description="seconds 5 .. 3600")] = 30
    protocol: Literal[4, 5] = 5
    group: Annotated[str, Meta(description="a topic prefix of letters, digits, - and _")] = (
        "moat-log"
    )
    lease: Annotated[float, Meta(ge=3, le=3600, description="seconds 3 .. 3600")] = 30.0
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    device_name: str | None = None
    buffer: Annotated[int, Meta(ge=1, le=1_000_000)] = 1000
    map: list[Any] = []


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """One MQTT adapter's settings, as read from its table."""

    name: str
    host: str
    port: int
    mapping: Mapping
    session: SessionSettings
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    keepalive: int = 30
    protocol: Literal[4, 5] = 5
    buffer: int = 1000

    def create(self) -> MqttAdapter:
        return MqttAdapter(self)

    def describe(self) -> list[dict[str, object]]:
        """One row per mapping rule (``moat-log adapters``)."""
        rows: list[dict[str, object]] = []
        for rule in self.mapping.rules:
            rows.append(
                {
                    "path": rule.state.pattern,
                    "address": rule.state.template,
                    "command": None if rule.command is None else rule.command.template,
                    "direction": rule.direction.value,
                    "type": rule.codec.name,
                    "retain": rule.retain,
                    "qos": rule.qos,
                    "entity": None if rule.entity is None else rule.entity.component,
                }
            )
        return rows


def read_settings(name: str, table: object, where: str) -> MqttSettings:
    """The settings of ``[adapters.NAME]`` (type mqtt); raises `FieldError`."""
    body = read(_Table, table, where=where)
    host, port = parse(
        lambda text: host_and_port(text, DEFAULT_PORT), body.broker, f"{where}.broker"
    )
    if not _GROUP.fullmatch(body.group):
        raise FieldError(f"{where}.group", f"{body.group!r} is no topic prefix of [A-Za-z0-9_-]")
    if body.password is not None and body.password_file is not None:
        raise FieldError(f"{where}.password_file", "give password or password_file, not both")
    password = body.password
    if body.password_file is not None:
        password = _read_password(body.password_file, f"{where}.password_file")
    if password is not None and body.username is None:
        raise FieldError(f"{where}.username", "a password needs a username")
    mapping = mapping_from_config(body.map, f"{where}.map")
    session = SessionSettings(
        group=body.group,
        lease=body.lease,
        discovery=body.discovery,
        discovery_prefix=body.discovery_prefix,
        device_name=body.device_name,
    )
    return MqttSettings(
        name,
        host,
        port,
        mapping,
        session,
        client_id=body.client_id,
        username=body.username,
        password=password,
        keepalive=body.keepalive,
        protocol=body.protocol,
        buffer=body.buffer,
    )


def _read_password(file: str, where: str) -> str:
    try:
        with open(os.path.expanduser(file), encoding="utf-8") as stream:
            return stream.read().strip()
    except OSError as exc:
        raise FieldError(where, f"cannot read {file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise FieldError(where, f"{file} is not UTF-8 text") from None


class MqttAdapter:
    """Maps paths to an MQTT broker both ways (one instance per run of the node)."""

    type: Final = "mqtt"

    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        self.name = settings.name
        prefixes: list[Path] = []
        for rule in settings.mapping.rules:
            if rule.direction.outgoing:
                prefixes.append(rule.state.path_prefix)
        self._prefixes = tuple(prefixes)

    def owns(self, path: Path) -> bool:
        return self.settings.mapping.rule_for(path) is not None

    async def run(self, link: AdapterLink, *, task_status: trio.TaskStatus[BusSession]) -> None:
        settings = self.settings
        node = link.node_name
        options = MqttOptions(
            settings.host,
            port=settings.port,
            client_id=settings.client_id or f"moat-log-{node}-{settings.name}",
            username=settings.username,
            password=settings.password,
            keepalive=settings.keepalive,
            will=Will(status_topic(settings.session.group, node), OFFLINE, qos=1, retain=True),
            protocol=settings.protocol,
        )
        link.detail("broker", options.address)
        async with open_mqtt(options, buffer=settings.buffer) as client:
            session = MqttSession(settings.session, settings.mapping, link, client)
            try:
                await session.start()
                task_status.started(session)
                await session.serve()
            finally:
                await session.say_offline()  # a clean stop: the group's next node takes over
