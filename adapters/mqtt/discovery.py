"""Home Assistant MQTT discovery: the retained config message that makes a path an entity.

Theory of operation
-------------------
Home Assistant (HA) creates an entity for every JSON config it finds at
``<prefix>/<component>/<node_id>/<object_id>/config`` (BUSES.md 5.5) and
removes it when that topic is cleared with an empty retained message.

* *object_id* is the path, escaped into HA's alphabet ``[a-zA-Z0-9_-]``
  (`object_id`): letters and digits stand for themselves, every other
  byte of a string is ``_`` and two hex digits, an int is ``_i`` and its
  digits (``_in`` for a minus), the empty string is ``_``, and segments are
  joined by ``-``.  Distinct paths never share an object id.
* *unique_id* is ``<node_id>/<object_id>``: it follows the path, not the
  name, so renaming an entity keeps its history in HA.
* One HA device stands for the moat-log node; every entity names it, the
  *origin* block names moat-log, and the *availability* list names the
  node's availability topic (its will says ``offline``).

HA does not retain its birth message (``homeassistant/status``, ``online``):
a publisher re-publishes its configs and states each time it sees one.
"""

from __future__ import annotations

import json
import re
import typing
from dataclasses import dataclass, field
from importlib import metadata
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from moat_log.errors import BusDataError
from moat_log.path import Path
from moat_log.records import FieldError, read

from ..codec import NumberCodec, PayloadCodec

__all__ = [
    "COMMAND_COMPONENTS",
    "COMPONENTS",
    "DEFAULT_DISCOVERY_PREFIX",
    "HA_STATUS_OFFLINE",
    "HA_STATUS_ONLINE",
    "HA_STATUS_TOPIC",
    "DiscoveryMessage",
    "DiscoverySettings",
    "Entity",
    "check_codec",
    "discovery_message",
    "discovery_topic",
    "entity_from_config",
    "object_id",
    "removal_message",
]

#: HA's default discovery prefix (``homeassistant/const.py``: DEFAULT_PREFIX).
DEFAULT_DISCOVERY_PREFIX: Final = "homeassistant"
#: Where HA announces itself (birth ``online``, will ``offline``; not retained).
HA_STATUS_TOPIC: Final = "homeassistant/status"
HA_STATUS_ONLINE: Final = "online"
HA_STATUS_OFFLINE: Final = "offline"
#: HA's defaults for an availability topic's payloads.
DEFAULT_PAYLOAD_AVAILABLE: Final = "online"
DEFAULT_PAYLOAD_NOT_AVAILABLE: Final = "offline"

Component = Literal["switch", "light", "sensor", "binary_sensor", "number", "climate"]
#: The entity kinds this module describes.
COMPONENTS: Final[tuple[str, ...]] = typing.get_args(Component)
#: The kinds that send commands (they need a command topic).
COMMAND_COMPONENTS: Final = frozenset({"switch", "light", "number", "climate"})
#: The kinds whose state is on/off (payload_on / payload_off from the codec).
_ON_OFF: Final = frozenset({"switch", "light", "binary_sensor"})
_HAS_DEVICE_CLASS: Final = frozenset({"switch", "sensor", "binary_sensor", "number"})
_HAS_UNIT: Final = frozenset({"sensor", "number"})
_HAS_RANGE: Final = frozenset({"number", "climate"})
_ID_CHARS = re.compile(r"[a-zA-Z0-9_-]+")
_PLAIN = re.compile(r"[a-zA-Z0-9]")

# Every key `discovery_message` may write, per component: `extra` may not
# repeat one (it would silently win or lose).
_COMMON_KEYS: Final = frozenset(
    {"name", "unique_id", "device", "origin", "availability", "qos", "icon", "entity_category"}
)
_KEYS: Final = {
    "switch": {"state_topic", "command_topic", "payload_on", "payload_off", "device_class"},
    "light": {"state_topic", "command_topic", "payload_on", "payload_off"},
    "binary_sensor": {"state_topic", "payload_on", "payload_off", "device_class"},
    "sensor": {"state_topic", "device_class", "unit_of_measurement", "state_class"},
    "number": {"state_topic", "command_topic", "device_class", "unit_of_measurement"}
    | {"min", "max", "step", "mode"},
    "climate": {"temperature_state_topic", "temperature_command_topic", "temperature_unit"}
    | {"min_temp", "max_temp", "temp_step"},
}


def _default_version() -> str:
    try:
        return metadata.version("moat-log")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare tree
        return "0"


@dataclass(frozen=True, slots=True)
class DiscoverySettings:
    """Where discovery goes and what names the device; one per adapter.

    *node_id* names this moat-log node in topics and ids (``[a-zA-Z0-9_-]``);
    *availability_topic* is where the adapter publishes
    *payload_available* when it runs and where its will publishes
    *payload_not_available*.
    """

    node_id: str
    availability_topic: str
    discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX
    payload_available: str = DEFAULT_PAYLOAD_AVAILABLE
    payload_not_available: str = DEFAULT_PAYLOAD_NOT_AVAILABLE
    device_name: str | None = None
    sw_version: str = field(default_factory=_default_version)

    def __post_init__(self) -> None:
        if _ID_CHARS.fullmatch(self.node_id) is None:
            raise ValueError(
                f"node_id {self.node_id!r}: Home Assistant accepts only letters, digits, '_', '-'"
            )
        levels = self.discovery_prefix.split("/")
        if self.discovery_prefix.startswith("$") or any(
            not level or "+" in level or "#" in level for level in levels
        ):
            raise ValueError(f"discovery_prefix {self.discovery_prefix!r} is not a topic prefix")


@dataclass(frozen=True, slots=True)
class Entity:
    """What a mapping rule's ``entity`` table says about its HA entity (`entity_from_config`)."""

    component: str
    name: str | None = None
    device_class: str | None = None
    unit_of_measurement: str | None = None
    state_class: str | None = None
    icon: str | None = None
    entity_category: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    mode: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sends_commands(self) -> bool:
        """True for kinds HA controls (switch, light, number, climate)."""
        return self.component in COMMAND_COMPONENTS


@dataclass(frozen=True, slots=True)
class DiscoveryMessage:
    """One retained MQTT message for HA: a config, or (empty *payload*) a removal."""

    topic: str
    payload: bytes
    retain: bool = True

    def removal(self) -> DiscoveryMessage:
        """The message that removes this entity: the same topic, empty and retained."""
        return DiscoveryMessage(self.topic, b"", retain=True)


def object_id(path: Path) -> str:
    """*path* written in HA's id alphabet ``[a-zA-Z0-9_-]``, one to one (see above)."""
    parts: list[str] = []
    for segment in path:
        if isinstance(segment, int):
            parts.append(f"_in{-segment}" if segment < 0 else f"_i{segment}")
        elif not segment:
            parts.append("_")
        else:
            parts.append(
                "".join(
                    char if _PLAIN.fullmatch(char) else "".join(f"_{b:02x}" for b in char.encode())
                    for char in segment
                )
            )
    return "-".join(parts) if parts else "_r"  # the root path has no segment to write


def discovery_topic(component: str, path: Path, settings: DiscoverySettings) -> str:
    """``<prefix>/<component>/<node_id>/<object_id>/config`` for the entity of *path*."""
    return f"{settings.discovery_prefix}/{component}/{settings.node_id}/{object_id(path)}/config"


def removal_message(component: str, path: Path, settings: DiscoverySettings) -> DiscoveryMessage:
    """The empty retained message that removes the entity of *path* from HA."""
    return DiscoveryMessage(discovery_topic(component, path, settings), b"", retain=True)


def discovery_message(
    entity: Entity,
    *,
    path: Path,
    state_topic: str,
    command_topic: str | None,
    codec: PayloadCodec,
    settings: DiscoverySettings,
    qos: int = 1,
) -> DiscoveryMessage:
    """The retained config message that describes *path* to HA as *entity*.

    *state_topic* carries the value (published by moat-log); *command_topic*,
    for the kinds that send commands, is where HA writes.  The codec gives
    ``payload_on``/``payload_off`` (what it writes for True and False) and a
    number codec's unit and range are the defaults of the entity's.  Raises
    `BusDataError` if the codec cannot write a bool for an on/off kind.
    """
    kind = entity.component
    config: dict[str, Any] = {
        "name": entity.name if entity.name is not None else str(path),
        "unique_id": f"{settings.node_id}/{object_id(path)}",
        "device": {
            "identifiers": [f"moat-log/{settings.node_id}"],
            "name": settings.device_name or settings.node_id,
            "manufacturer": "MoaT",
            "model": "moat-log",
            "sw_version": settings.sw_version,
        },
        "origin": {"name": "moat-log", "sw_version": settings.sw_version},
        "availability": [
            {
                "topic": settings.availability_topic,
                "payload_available": settings.payload_available,
                "payload_not_available": settings.payload_not_available,
            }
        ],
        "qos": qos,
    }
    if kind == "climate":
        config["temperature_state_topic"] = state_topic
        config["temperature_command_topic"] = command_topic
    else:
        config["state_topic"] = state_topic
        if kind in COMMAND_COMPONENTS:
            config["command_topic"] = command_topic
    if kind in _ON_OFF:
        config["payload_on"] = codec.encode(True).decode()
        config["payload_off"] = codec.encode(False).decode()
    config.update(_described(entity, codec))
    config.update(entity.extra)
    payload = json.dumps(config, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return DiscoveryMessage(discovery_topic(kind, path, settings), payload.encode())


def _described(entity: Entity, codec: PayloadCodec) -> dict[str, Any]:
    """The optional keys: what the entity table says, else what the codec knows."""
    number = codec if isinstance(codec, NumberCodec) else None
    unit = entity.unit_of_measurement or (number.unit if number else None)
    low = entity.minimum if entity.minimum is not None else (number.minimum if number else None)
    high = entity.maximum if entity.maximum is not None else (number.maximum if number else None)
    out: dict[str, Any] = {
        "device_class": entity.device_class,
        "state_class": entity.state_class,
        "icon": entity.icon,
        "entity_category": entity.entity_category,
    }
    if entity.component == "climate":
        out |= {"min_temp": low, "max_temp": high, "temp_step": entity.step}
        out["temperature_unit"] = {"°C": "C", "C": "C", "°F": "F", "F": "F"}.get(unit or "")
    elif entity.component == "number":
        out |= {"min": low, "max": high, "step": entity.step, "mode": entity.mode}
        out["unit_of_measurement"] = unit
    elif entity.component == "sensor":
        out["unit_of_measurement"] = unit
    return {key: value for key, value in out.items() if value is not None}


# --- config ------------------------------------------------------------------

_Text = Annotated[str, Meta(min_length=1, description="a non-empty string")]


class _EntityTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    component: str
    name: _Text | None = None
    device_class: _Text | None = None
    unit_of_measurement: str | None = None
    state_class: str | None = None
    icon: _Text | None = None
    entity_category: str | None = None
    min: float | None = None
    max: float | None = None
    step: Annotated[float, Meta(gt=0, description="a number > 0")] | None = None
    mode: str | None = None
    extra: dict[str, Any] = {}


_CHOICES: Final = {
    "state_class": ("measurement", "total", "total_increasing"),
    "entity_category": ("config", "diagnostic"),
    "mode": ("auto", "box", "slider"),
}


def entity_from_config(table: object, where: str) -> Entity:
    """The `Entity` of an ``entity`` table; strict, refusals name the field.

    A key that does not apply to the component (``state_class`` on a
    switch, ``min`` on a sensor) is refused, and so is an ``extra`` key that
    this module writes itself.
    """
    fields = read(_EntityTable, table, where=where)
    kind = fields.component
    if kind not in COMPONENTS:
        raise FieldError(
            f"{where}.component", f"expected one of {', '.join(COMPONENTS)}, got {kind!r}"
        )
    for key, choices in _CHOICES.items():
        chosen = getattr(fields, key)
        if chosen is not None and chosen not in choices:
            raise FieldError(
                f"{where}.{key}", f"expected one of {', '.join(choices)}, got {chosen!r}"
            )
    misplaced = {
        "device_class": _HAS_DEVICE_CLASS,
        "unit_of_measurement": _HAS_UNIT,
        "state_class": {"sensor"},
        "min": _HAS_RANGE,
        "max": _HAS_RANGE,
        "step": _HAS_RANGE,
        "mode": {"number"},
    }
    for key, kinds in misplaced.items():
        if getattr(fields, key) is not None and kind not in kinds:
            raise FieldError(
                f"{where}.{key}",
                f"does not apply to a {kind} (only to {', '.join(sorted(kinds))})",
            )
    if fields.min is not None and fields.max is not None and fields.min >= fields.max:
        raise FieldError(f"{where}.max", f"must be greater than min ({fields.min})")
    taken = sorted((_COMMON_KEYS | _KEYS[kind]) & set(fields.extra))
    if taken:
        raise FieldError(
            f"{where}.extra.{taken[0]}", "is written by moat-log itself; set it outside extra"
        )
    try:
        json.dumps(fields.extra, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise FieldError(f"{where}.extra", f"is not JSON: {exc}") from None
    return Entity(
        kind,
        fields.name,
        fields.device_class,
        fields.unit_of_measurement,
        fields.state_class,
        fields.icon,
        fields.entity_category,
        fields.min,
        fields.max,
        fields.step,
        fields.mode,
        dict(fields.extra),
    )


def check_codec(entity: Entity, codec: PayloadCodec, where: str) -> None:
    """Raise `FieldError` at *where* unless *codec* can carry *entity*'s state."""
    if entity.component in _ON_OFF:
        try:
            codec.encode(True)
            codec.encode(False)
        except BusDataError:
            raise FieldError(
                where,
                f"a {entity.component} is on or off: use the bool codec (or json), "
                f"not {codec.name}",
            ) from None
