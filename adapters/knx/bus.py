"""The asyncio side of the KNX adapter: xknx, run on the node's asyncio loop.

Everything here runs in the loop's thread (`moat_log.adapters.asyncio_bridge`);
the trio side calls `open_xknx`, `send_writes`, `send_reads` and `close_xknx`
through `AsyncioBridge.run`, and gets telegrams and connection changes as
plain data (`BusTelegram`, a state name) through the bridge's feeders.  No
xknx object crosses to trio.

xknx's own reconnect is off: a lost tunnel ends the adapter's connection,
and the supervisor reconnects with its back-off, so status tells what
happened.  Telegrams are sent with ``cemi_handler.send_telegram``, which
returns once the gateway confirmed the frame (L_Data.con) and raises if it
did not, rather than through xknx's queue, which drops a telegram it cannot
send with only a log line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from xknx import XKNX
from xknx.core.connection_state import XknxConnectionState
from xknx.dpt.payload import DPTArray, DPTBinary
from xknx.exceptions import XKNXException
from xknx.io import ConnectionConfig, ConnectionType
from xknx.telegram import GroupAddress, IndividualAddress, Telegram
from xknx.telegram.apci import GroupValueRead, GroupValueResponse, GroupValueWrite

from moat_log.errors import BusUnavailableError

from .dpt import Payload
from .mapping import BusTelegram

__all__ = ["GatewayConfig", "close_xknx", "open_xknx", "send_reads", "send_writes"]

#: How long a clean stop waits for the gateway to answer the disconnect.
STOP_TIMEOUT: Final = 2.0


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """How to reach the bus: a tunnelling gateway, or routing on a multicast group."""

    connection: Literal["tunnelling", "routing"] = "tunnelling"
    gateway_ip: str | None = None
    gateway_port: int = 3671
    local_ip: str | None = None
    individual_address: str | None = None
    multicast_group: str = "224.0.23.12"
    multicast_port: int = 3671

    @property
    def text(self) -> str:
        if self.connection == "routing":
            return f"routing {self.multicast_group}:{self.multicast_port}"
        return f"tunnelling {self.gateway_ip}:{self.gateway_port}"

    def xknx_config(self) -> ConnectionConfig:
        return ConnectionConfig(
            connection_type=(
                ConnectionType.ROUTING if self.connection == "routing" else ConnectionType.TUNNELING
            ),
            gateway_ip=self.gateway_ip,
            gateway_port=self.gateway_port,
            local_ip=self.local_ip,
            individual_address=self.individual_address,
            multicast_group=self.multicast_group,
            multicast_port=self.multicast_port,
            auto_reconnect=False,  # the supervisor reconnects, and status says so
        )


def plain_telegram(telegram: Telegram) -> BusTelegram | None:
    """A group telegram as plain data; None for anything else."""
    destination = telegram.destination_address
    if not isinstance(destination, GroupAddress):
        return None
    apdu = telegram.payload
    kind: Literal["write", "response", "read"]
    if isinstance(apdu, GroupValueWrite):
        kind = "write"
    elif isinstance(apdu, GroupValueResponse):
        kind = "response"
    elif isinstance(apdu, GroupValueRead):
        return BusTelegram(destination.raw, str(telegram.source_address), "read")
    else:
        return None
    value = apdu.value
    payload: Payload = value.value if isinstance(value, DPTBinary) else bytes(value.value)
    return BusTelegram(destination.raw, str(telegram.source_address), kind, payload)


async def open_xknx(
    config: GatewayConfig,
    on_telegram: Callable[[BusTelegram], None],
    on_state: Callable[[str], None],
) -> tuple[XKNX, str]:
    """Connect; returns xknx and our individual address.  Raises `BusUnavailableError`."""
    xknx = XKNX(connection_config=config.xknx_config())
    own: list[IndividualAddress] = []

    def received(telegram: Telegram) -> None:
        if own and telegram.source_address == own[0]:
            return  # our own telegram, should the gateway repeat it: never news
        plain = plain_telegram(telegram)
        if plain is not None:
            on_telegram(plain)

    def state_changed(state: XknxConnectionState) -> None:
        on_state(state.name.lower())

    xknx.telegram_queue.register_telegram_received_cb(received)
    xknx.connection_manager.register_connection_state_changed_cb(state_changed)
    try:
        await xknx.start()
    except (XKNXException, OSError) as exc:
        await _stop_quietly(xknx)
        raise BusUnavailableError(f"KNX {config.text}: cannot connect: {exc}") from None
    own.append(xknx.current_address)
    return xknx, str(xknx.current_address)


async def close_xknx(xknx: XKNX) -> None:
    """Disconnect (as far as the gateway answers within `STOP_TIMEOUT`)."""
    await _stop_quietly(xknx)


async def _stop_quietly(xknx: XKNX) -> None:
    try:
        async with asyncio.timeout(STOP_TIMEOUT):
            await xknx.stop()
    except (XKNXException, OSError, TimeoutError):
        pass


async def send_writes(xknx: XKNX, writes: Sequence[tuple[int, Payload]], interval: float) -> int:
    """Send GroupValueWrites, each confirmed by the gateway, *interval* s apart.

    Returns how many were sent; raises `BusUnavailableError` at the first
    the gateway did not take (the rest were not sent).
    """
    return await _send(xknx, [(a, GroupValueWrite(_xknx_payload(p))) for a, p in writes], interval)


async def send_reads(xknx: XKNX, addresses: Sequence[int], interval: float) -> int:
    """Send a GroupValueRead to each of *addresses*, *interval* s apart."""
    return await _send(xknx, [(address, GroupValueRead()) for address in addresses], interval)


async def _send(
    xknx: XKNX,
    telegrams: Sequence[tuple[int, GroupValueWrite | GroupValueRead]],
    interval: float,
) -> int:
    sent = 0
    for address, apdu in telegrams:
        if sent and interval:
            await asyncio.sleep(interval)
        telegram = Telegram(destination_address=GroupAddress(address), payload=apdu)
        try:
            await xknx.cemi_handler.send_telegram(telegram)
        except (XKNXException, OSError) as exc:
            raise BusUnavailableError(
                f"KNX: sending to {GroupAddress(address)} failed: {exc}"
            ) from None
        sent += 1
    return sent


def _xknx_payload(payload: Payload) -> DPTBinary | DPTArray:
    return DPTBinary(payload) if isinstance(payload, int) else DPTArray(payload)
