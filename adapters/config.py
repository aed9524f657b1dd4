"""The ``[adapters.NAME]`` tables of a node's config: which adapters run, with what.

Every table names its adapter ``type`` (a key of `ADAPTER_TYPES`); the keys
below are common to all types and read here, every other key belongs to
the type, whose module reads it strictly (``read_settings``):

=================== ======================================================
``type``            the adapter type: ``mqtt``, ``modbus``, ``modbus_server``,
                    ``onewire``, ``knx``, ``satellite``
``enabled``         false: configured but not run (status says so)
``durability``      ``sync`` or ``batched`` for the events it writes
                    (default: the node's ``[journal] durability``)
``reconnect_first`` seconds before the first reconnect (default 0.5)
``reconnect_max``   the longest back-off between attempts (default 60)
=================== ======================================================

An adapter type is a module with ``read_settings(name, table, where)``
returning frozen settings whose ``create()`` builds a fresh `Adapter` for
one run of the node.  The module is imported only when a config names it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Protocol

import msgspec
from msgspec import Meta

from moat_log.durability import Durability
from moat_log.records import FieldError, read

from .contract import Adapter

__all__ = ["ADAPTER_TYPES", "AdapterConfig", "AdapterSettings", "adapters_from_table"]

#: Adapter type -> the module that reads its settings.
ADAPTER_TYPES: Final[Mapping[str, str]] = {
    "mqtt": "moat_log.adapters.mqtt.adapter",
    "knx": "moat_log.adapters.knx.adapter",
    "modbus": "moat_log.adapters.modbus.adapter",
    "modbus_server": "moat_log.adapters.modbus.server_adapter",
    "onewire": "moat_log.adapters.onewire.adapter",
    "satellite": "moat_log.adapters.satellite.adapter",
}

_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_COMMON_KEYS: Final = frozenset(
    {"type", "enabled", "durability", "reconnect_first", "reconnect_max"}
)


class AdapterSettings(Protocol):
    """A type's settings for one adapter, as read from its table."""

    def create(self) -> Adapter:
        """A fresh adapter for one run of the node."""
        ...

    def describe(self) -> list[dict[str, object]]:
        """What the adapter maps, one row per item: ``path``, ``address``, ``direction``,
        ``type`` (its codec or data type) and what else the bus has (``moat-log adapters``).
        """
        ...


@dataclass(frozen=True, slots=True)
class AdapterConfig:
    """One ``[adapters.NAME]`` table."""

    name: str
    type: str
    settings: AdapterSettings
    enabled: bool = True
    durability: Durability | None = None
    reconnect_first: float = 0.5
    reconnect_max: float = 60.0


class _CommonKeys(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    type: Annotated[str, Meta(description='an adapter type, e.g. "mqtt"')]
    enabled: bool = True
    durability: Annotated[str, Meta(description='"sync" or "batched"')] | None = None
    reconnect_first: Annotated[float, Meta(gt=0, le=3600, description="seconds 0 .. 3600")] = 0.5
    reconnect_max: Annotated[float, Meta(gt=0, le=86400, description="seconds 0 .. 86400")] = 60.0


def adapters_from_table(table: object, *, where: str = "adapters") -> tuple[AdapterConfig, ...]:
    """Every adapter of the ``[adapters]`` table, in the file's order; raises `FieldError`."""
    if not isinstance(table, dict):
        raise FieldError(where, "must be a table of [adapters.NAME] tables")
    return tuple(_adapter(name, body, f"{where}.{name}") for name, body in table.items())


def _adapter(name: str, body: object, where: str) -> AdapterConfig:
    if not _NAME.fullmatch(name):
        raise FieldError(where, "an adapter's name is 1 to 64 letters, digits, '-' or '_'")
    if not isinstance(body, dict):
        raise FieldError(where, "must be a table")
    common = read(_CommonKeys, {k: v for k, v in body.items() if k in _COMMON_KEYS}, where=where)
    module_name = ADAPTER_TYPES.get(common.type)
    if module_name is None:
        known = ", ".join(sorted(ADAPTER_TYPES))
        raise FieldError(f"{where}.type", f"{common.type!r} is no adapter type; known: {known}")
    if common.reconnect_first > common.reconnect_max:
        raise FieldError(f"{where}.reconnect_first", "must not be more than reconnect_max")
    durability = None
    if common.durability is not None:
        try:
            durability = Durability.parse(common.durability)
        except ValueError as exc:
            raise FieldError(f"{where}.durability", str(exc)) from None
    module: Any = importlib.import_module(module_name)
    own = {k: v for k, v in body.items() if k not in _COMMON_KEYS}
    settings = module.read_settings(name, own, where)
    return AdapterConfig(
        name,
        common.type,
        settings,
        enabled=common.enabled,
        durability=durability,
        reconnect_first=common.reconnect_first,
        reconnect_max=common.reconnect_max,
    )
