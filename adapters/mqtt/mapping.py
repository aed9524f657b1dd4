"""The MQTT mapping: which paths go to which topics, with which codec, both ways.

Theory of operation
-------------------
An adapter's ``[[adapters.NAME.map]]`` tables become one `MappingRule`
each, kept in order in a `Mapping`; the first rule that matches wins.  The
runtime asks the mapping three things, all pure:

* `Mapping.outgoing`: a path changed (a value, or `DELETE`); what to
  publish.  A delete publishes an empty retained payload, which clears the
  retained topic.  Rules of direction ``in`` are not asked.
* `Mapping.incoming`: a message arrived; which path gets which value.  An
  empty payload is a delete.  Rules of direction ``out`` are not asked; a
  rule listens on its ``command_topic`` if it has one, else on its state
  ``topic``.
* `Mapping.subscriptions`: the MQTT filters (and QoS) to subscribe to.

moat-log represents a delete as an event op (`moat_log.event.Op.DELETE`),
not as a value, so this module has a marker of its own for "the path has no
value": `DELETE`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from moat_log.errors import BusDataError
from moat_log.event import Value
from moat_log.path import Path
from moat_log.records import FieldError, read

from ..codec import JsonCodec, PayloadCodec, codec_from_config
from ..direction import Direction
from .discovery import (
    DiscoveryMessage,
    DiscoverySettings,
    Entity,
    check_codec,
    discovery_message,
    entity_from_config,
)
from .topics import TopicRoute, topic_matches

__all__ = [
    "DELETE",
    "Deleted",
    "Direction",
    "IncomingChange",
    "Mapping",
    "MappingRule",
    "OutgoingMessage",
    "mapping_from_config",
]


class Deleted(enum.Enum):
    """The type of `DELETE`."""

    DELETE = "delete"

    def __repr__(self) -> str:
        return "DELETE"


#: "The path has no value": what a delete event maps to, and an empty payload maps from.
DELETE: Final = Deleted.DELETE


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One MQTT message to publish."""

    topic: str
    payload: bytes
    retain: bool
    qos: int


@dataclass(frozen=True, slots=True)
class IncomingChange:
    """What an MQTT message means: *path* gets *value* (or `DELETE`), by *rule*."""

    path: Path
    value: Value | Deleted
    rule: MappingRule

    def changes(self, current: Value | Deleted) -> bool:
        """True if this should become an event when the path holds *current*.

        With the rule's *changes_only* (the default), a value equal to the
        current one (same type too: ``1`` is not ``1.0`` nor ``True``) is no
        change; a delete of a path that has no value neither.
        """
        if not self.rule.changes_only:
            return True
        return not _same(self.value, current)


def _same(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    return a == b


_JSON: Final = JsonCodec()


@dataclass(frozen=True, slots=True)
class MappingRule:
    """One ``map`` table: a path pattern, its state topic (and command topic), a codec.

    *state* maps paths to the state topic (published to, and listened on
    when there is no *command*); *command*, if given, is the route of the
    topic listened on.  *entity* describes the path to Home Assistant.
    """

    state: TopicRoute
    command: TopicRoute | None = None
    direction: Direction = Direction.BOTH
    codec: PayloadCodec = _JSON
    retain: bool = True
    qos: int = 1
    changes_only: bool = True
    entity: Entity | None = None

    @property
    def listens_on(self) -> TopicRoute | None:
        """The route of the topics this rule takes values from, or None for direction out."""
        if not self.direction.incoming:
            return None
        return self.command if self.command is not None else self.state

    def discovery(self, path: Path, settings: DiscoverySettings) -> DiscoveryMessage | None:
        """The HA config message of *path*, or None if the rule has no entity or no match."""
        if self.entity is None:
            return None
        state_topic = self.state.topic_for(path)
        if state_topic is None:
            return None
        command_topic = None if self.command is None else self.command.topic_for(path)
        return discovery_message(
            self.entity,
            path=path,
            state_topic=state_topic,
            command_topic=command_topic,
            codec=self.codec,
            settings=settings,
            qos=self.qos,
        )


@dataclass(frozen=True, slots=True)
class Mapping:
    """The ordered rules of one adapter; the first rule that matches wins."""

    rules: tuple[MappingRule, ...] = ()

    def rule_for(self, path: Path) -> MappingRule | None:
        """The first rule that publishes *path*, or None."""
        for rule in self.rules:
            if rule.direction.outgoing and rule.state.bindings(path) is not None:
                return rule
        return None

    def outgoing(self, path: Path, value: Value | Deleted) -> OutgoingMessage | None:
        """What to publish now that *path* holds *value* (or was deleted); None if unmapped.

        Raises `BusDataError` if the rule's codec cannot write *value*.
        """
        rule = self.rule_for(path)
        if rule is None:
            return None
        topic = rule.state.topic_for(path)
        assert topic is not None  # rule_for matched the path
        if value is DELETE:
            return OutgoingMessage(topic, b"", retain=True, qos=rule.qos)
        return OutgoingMessage(topic, rule.codec.encode(value), rule.retain, rule.qos)

    def incoming(self, topic: str, payload: bytes) -> IncomingChange | None:
        """What a message on *topic* means; None if no rule listens there.

        An empty payload is a delete.  Raises `BusDataError` if the payload
        does not decode, or the topic is not one a path is written as.
        """
        for rule in self.rules:
            route = rule.listens_on
            if route is None:
                continue
            path = route.path_for(topic)
            if path is None:
                continue
            value = DELETE if not payload else rule.codec.decode(payload)
            return IncomingChange(path, value, rule)
        return None

    def incoming_rule(self, topic: str) -> MappingRule | None:
        """The first rule that listens on *topic*, or None."""
        for rule in self.rules:
            route = rule.listens_on
            if route is not None and topic_matches(route.subscription_filter, topic):
                return rule
        return None

    def published_path(self, topic: str) -> Path | None:
        """The path whose state is published on *topic*, or None if no path's is."""
        for rule in self.rules:
            if not rule.direction.outgoing:
                continue
            try:
                path = rule.state.path_for(topic)
            except BusDataError:
                continue
            if path is not None and self.rule_for(path) is rule:
                return path
        return None

    def subscriptions(self) -> list[tuple[str, int]]:
        """The ``(filter, qos)`` pairs to subscribe to, each filter once (its highest QoS)."""
        wanted: dict[str, int] = {}
        for rule in self.rules:
            route = rule.listens_on
            if route is not None:
                topic_filter = route.subscription_filter
                wanted[topic_filter] = max(rule.qos, wanted.get(topic_filter, 0))
        return list(wanted.items())


# --- config ------------------------------------------------------------------


class _RuleTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    path: str
    topic: str
    command_topic: str | None = None
    direction: str = "both"
    codec: str | dict[str, Any] = "json"
    retain: bool = True
    qos: int = 1
    changes_only: bool = True
    entity: dict[str, Any] | None = None


def rule_from_config(table: object, where: str) -> MappingRule:
    """The `MappingRule` of one ``map`` table at *where* (``adapters.mqtt.map[0]``)."""
    fields = read(_RuleTable, table, where=where)
    state = TopicRoute.compile(fields.path, fields.topic, where=where)
    if fields.direction not in ("out", "in", "both"):
        raise FieldError(
            f"{where}.direction", f'expected "out", "in" or "both", got {fields.direction!r}'
        )
    if fields.qos not in (0, 1, 2):
        raise FieldError(f"{where}.qos", f"expected 0, 1 or 2, got {fields.qos!r}")
    direction = Direction(fields.direction)
    command = None
    if fields.command_topic is not None:
        if direction is Direction.OUT:
            raise FieldError(
                f"{where}.command_topic",
                'is only listened on for direction "in" or "both"; this rule is "out"',
            )
        command = TopicRoute.compile(
            fields.path, fields.command_topic, where=where, template_key="command_topic"
        )
    codec = codec_from_config(fields.codec, f"{where}.codec")
    entity = None
    if fields.entity is not None:
        entity = entity_from_config(fields.entity, f"{where}.entity")
        check_codec(entity, codec, f"{where}.codec")
        if entity.sends_commands and command is None:
            raise FieldError(
                f"{where}.entity.component",
                f"a {entity.component} takes commands from Home Assistant: give the rule a "
                'command_topic (and direction "both")',
            )
    return MappingRule(
        state,
        command,
        direction,
        codec,
        fields.retain,
        fields.qos,
        fields.changes_only,
        entity,
    )


def mapping_from_config(tables: object, where: str) -> Mapping:
    """The `Mapping` of a list of ``map`` tables at *where*; refusals name the field."""
    if not isinstance(tables, list):
        raise FieldError(where, f"expected a list of tables ([[{where}]]), got {tables!r}")
    return Mapping(
        tuple(rule_from_config(table, f"{where}[{index}]") for index, table in enumerate(tables))
    )
