"""A real pymodbus TCP server for the tests: run as a script, driven through stdin/stdout.

    python modbus_server.py [--port N] [--device-id 1] [--size 200] [--quiet]

It serves one device with four separate blocks (coils, discrete inputs,
holding and input registers), each of *size* entries from address 0, all
zero.  It uses `SimDevice` (pymodbus 3.16's datastore that 4.0 keeps; the
old contexts are deprecated).  Its lines on stdout:

* ``ready PORT`` once it listens (port 0 picks a free one; restart with
  the same ``--port``);
* ``request FC ADDRESS COUNT`` for every request it answers (not with
  ``--quiet``): the tests count requests with it;
* with ``--tick``, every read of holding register 0 adds 1 to it first (a
  value that changes at every poll: the benchmark's);
* ``ok`` / ``values V ...`` / ``error TEXT`` answering a command on stdin:
  ``set KIND ADDRESS V ...`` and ``get KIND ADDRESS COUNT``, KIND being
  ``co``, ``di``, ``hr`` or ``ir`` (what a device changes by itself, and
  what it holds, without a client's request).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from typing import Any

from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

#: Function codes whose blocks ``set`` and ``get`` address (read coils, read DI, ...).
KINDS = {"co": 1, "di": 2, "hr": 3, "ir": 4}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--device-id", type=int, default=1)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--tick", action="store_true", help="each read of hr 0 adds 1 to it")
    options = parser.parse_args()
    asyncio.run(serve(options))


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def serve(options: argparse.Namespace) -> None:
    quiet = options.quiet

    def note(sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending and not quiet:
            say(f"request {pdu.function_code} {pdu.address} {pdu.count}")
        return pdu

    async def tick(
        function_code: int, start: int, address: int, count: int, registers: list[int], *_: object
    ) -> None:
        if function_code == 3 and address == start == 0:  # a read of hr 0: a fresh value
            registers[0] = (registers[0] + 1) & 0xFFFF

    size = options.size
    bits = [False] * size
    device = SimDevice(
        options.device_id,
        simdata=(
            [SimData(0, values=list(bits), datatype=DataType.BITS)],
            [SimData(0, values=list(bits), datatype=DataType.BITS)],
            [SimData(0, values=[0] * size, datatype=DataType.REGISTERS)],
            [SimData(0, values=[0] * size, datatype=DataType.REGISTERS)],
        ),
        action=tick if options.tick else None,
    )
    server = ModbusTcpServer(device, address=("127.0.0.1", options.port), trace_pdu=note)
    await server.serve_forever(background=True)
    assert server.transport is not None
    listener: Any = server.transport  # an asyncio.Server
    port = listener.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    threading.Thread(target=read_commands, args=(server, loop), daemon=True).start()
    say(f"ready {port}")
    await server.serving


def read_commands(server: ModbusTcpServer, loop: asyncio.AbstractEventLoop) -> None:
    for line in sys.stdin:
        future = asyncio.run_coroutine_threadsafe(command(server, line.split()), loop)
        try:
            say(future.result())
        except Exception as exc:
            say(f"error {type(exc).__name__}: {exc}")


async def command(server: ModbusTcpServer, words: list[str]) -> str:
    verb, kind, address, *rest = words
    device_id = 1
    code = KINDS[kind]
    if verb == "set":
        values: list[int] | list[bool] = [int(v) for v in rest]
        if code in (1, 2):
            values = [bool(v) for v in values]
        await server.async_setValues(device_id, code, int(address), values)
        return "ok"
    (count,) = rest
    got = await server.async_getValues(device_id, code, int(address), int(count))
    return "values " + " ".join(str(int(v)) for v in got)


if __name__ == "__main__":
    main()
