"""Another KNX client on the same knxd, for the tests: a bare xknx on its own asyncio loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
from xknx import XKNX
from xknx.dpt.payload import DPTArray, DPTBinary
from xknx.io import ConnectionConfig, ConnectionType
from xknx.telegram import GroupAddress, Telegram
from xknx.telegram.apci import GroupValueRead, GroupValueResponse, GroupValueWrite

from moat_log.adapters.asyncio_bridge import AsyncioBridge, open_asyncio_bridge
from moat_log.adapters.knx.bus import plain_telegram
from moat_log.adapters.knx.mapping import BusTelegram


class BusDevice:
    """Another KNX client on the same knxd (a wall switch, an actuator): bare xknx."""

    def __init__(self, bridge: AsyncioBridge) -> None:
        self.bridge = bridge
        self.xknx: Any = None
        self.telegrams: list[BusTelegram] = []
        #: group address -> payload answered to a GroupValueRead.
        self.answers: dict[str, bytes | int] = {}
        self._changed = trio.Event()

    def _note(self, telegram: BusTelegram) -> None:
        self.telegrams.append(telegram)
        self._changed.set()
        self._changed = trio.Event()

    async def connect(self) -> None:
        call = self.bridge.call_in_trio

        async def start() -> Any:
            xknx = XKNX(
                connection_config=ConnectionConfig(
                    connection_type=ConnectionType.TUNNELING,
                    gateway_ip="127.0.0.1",
                    local_ip="127.0.0.1",
                    auto_reconnect=False,
                )
            )

            def received(telegram: Telegram) -> None:
                plain = plain_telegram(telegram)
                if plain is None:
                    return
                call(self._note, plain)
                address = str(telegram.destination_address)
                if plain.kind == "read" and address in self.answers:
                    xknx.telegrams.put_nowait(
                        Telegram(
                            destination_address=GroupAddress(address),
                            payload=GroupValueResponse(_payload(self.answers[address])),
                        )
                    )

            xknx.telegram_queue.register_telegram_received_cb(received)
            await xknx.start()
            return xknx

        self.xknx = await self.bridge.run(start)

    async def write(self, address: str, payload: bytes | int) -> None:
        """A GroupValueWrite, confirmed by knxd."""
        telegram = Telegram(
            destination_address=GroupAddress(address), payload=GroupValueWrite(_payload(payload))
        )
        await self.bridge.run(self.xknx.cemi_handler.send_telegram, telegram)

    async def read(self, address: str) -> None:
        telegram = Telegram(destination_address=GroupAddress(address), payload=GroupValueRead())
        await self.bridge.run(self.xknx.cemi_handler.send_telegram, telegram)

    async def until(self, predicate: Callable[[list[BusTelegram]], bool]) -> None:
        with trio.fail_after(20):
            while not predicate(self.telegrams):
                await self._changed.wait()

    async def stop(self) -> None:
        async def stop() -> None:
            async with asyncio.timeout(2):
                await self.xknx.stop()

        await self.bridge.run(stop)


def _payload(payload: bytes | int) -> DPTBinary | DPTArray:
    return DPTBinary(payload) if isinstance(payload, int) else DPTArray(payload)


@asynccontextmanager
async def bus_device() -> AsyncIterator[BusDevice]:
    async with open_asyncio_bridge() as bridge:
        device = BusDevice(bridge)
        await device.connect()
        try:
            yield device
        finally:
            with trio.CancelScope(shield=True):
                await device.stop()
