"""The satellite adapter with the real firmware against the raw framing, one pty, the same run.

    python tools/bench/satellite.py [--seconds S] [--rounds M] [--json]

The firmware runs in MicroPython (WASI) on one end of a socat pty pair
(`moat_log.adapters.satellite.simulator`), the node's adapter on the other.

(1) reports -> journal: a counter part (``interval_ms = 1``, the firmware's
    loop at ``tick_ms = 1``) gets a pulse as fast as the sim channel takes
    them; the rate at which its reports become durable events in the node's
    journal, over S seconds.  Against: the raw framing over the same pty
    before the firmware starts: REPORT frames (``satproto.frame(pack(...))``)
    written from the firmware's end as fast as the line takes them, read
    and parsed with ``satproto.FrameReader`` at the host's end.
    And: the same firmware to a bare ``satproto.HostEnd`` that ACKs each
    report at once (no journal), which shows what the firmware itself
    makes in MicroPython (WASI); and its command round trip (a ``w`` from
    the bare HostEnd until the sim pin changes).
(2) set -> pin: a set of an owned output until the simulated pin changes,
    p50 / p95 over M sets.  Against: the raw framing's round trip over the
    same pty: a COMMAND frame written at the host's end, parsed at the
    firmware's end by a FrameReader that writes a DONE frame back, until
    the host's end has parsed it.

The ratios say what the protocol, the firmware in MicroPython and the
journal cost over bytes on the line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path as FsPath
from typing import Any

import trio

from moat_log.adapters.satellite.port import open_serial_port
from moat_log.adapters.satellite.simulator import Simulator, install_firmware, open_simulator
from moat_log.firmware import satproto
from moat_log.journal.change import Change
from moat_log.node.server import serve_node
from moat_log.path import Path
from moat_log.testing import in_process_config, until_adapter_status

PUMP = Path.parse("bench.pump")


def node_config(data_dir: FsPath, port: str) -> Any:
    text = f"""
node = "bench"
[adapters.sat]
type = "satellite"
port = "{port}"
prefix = "bench"
[adapters.sat.parts.meter]
kind = "counter"
pin = 8
interval_ms = 1
[adapters.sat.parts.pump]
kind = "output"
pin = 5
"""
    return in_process_config(text, data_dir)


async def _reader_frames(port: Any, reader: satproto.FrameReader, want: int) -> int:
    got = 0
    while got < want:
        data = await port.read()
        got += sum(1 for is_frame, _ in reader.feed(data, _ms()) if is_frame)
    return got


def _ms() -> int:
    return int(trio.current_time() * 1000)


async def raw_rate(sim: Simulator, seconds: float) -> float:
    """REPORT frames per second from the firmware's end to the host's, parsed."""
    async with (
        open_serial_port(sim.host_port, 115200) as host,
        open_serial_port(sim.firmware_port, 115200) as far,
    ):
        reader = satproto.FrameReader()
        frames = [satproto.frame(satproto.pack([3, n, "meter", n, 0])) for n in range(1, 65)]
        burst = b"".join(frames)
        received = 0
        start = time.perf_counter()
        deadline = start + seconds
        async with trio.open_nursery() as nursery:

            async def send() -> None:
                while True:
                    await far.write(burst)

            nursery.start_soon(send)
            while time.perf_counter() < deadline:
                received += await _reader_frames(host, reader, 64)
            nursery.cancel_scope.cancel()
        return received / (time.perf_counter() - start)


async def raw_round_trips(sim: Simulator, rounds: int) -> list[float]:
    """COMMAND frame out, DONE frame back, over the same pty, parsed at both ends."""
    async with (
        open_serial_port(sim.host_port, 115200) as host,
        open_serial_port(sim.firmware_port, 115200) as far,
    ):
        host_reader, far_reader = satproto.FrameReader(), satproto.FrameReader()

        async def answer() -> None:
            while True:
                data = await far.read()
                for is_frame, payload in far_reader.feed(data, _ms()):
                    if is_frame:
                        cseq = satproto.unpack(payload)[1]
                        await far.write(satproto.frame(satproto.pack([7, cseq])))

        times = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer)
            for n in range(1, rounds + 1):
                start = time.perf_counter()
                await host.write(satproto.frame(satproto.pack([6, n, "w", "pump", n % 2 == 1])))
                await _reader_frames(host, host_reader, 1)
                times.append(time.perf_counter() - start)
            nursery.cancel_scope.cancel()
        return times


async def bare_host(sim: Simulator, seconds: float, rounds: int) -> tuple[float, list[float]]:
    """The firmware with a bare `satproto.HostEnd` (no journal): reports/s, set -> pin times.

    Reports are ACKed at once; a ``w`` command goes out at once.
    """
    end = satproto.HostEnd("bench", 12345)
    async with open_serial_port(sim.host_port, 115200) as port:
        count, start = 0, None
        async with trio.open_nursery() as nursery:

            async def write() -> None:
                while True:
                    data = end.poll(_ms())
                    if data:
                        await port.write(data)
                    await trio.sleep(0.001)  # the bare host's own write cadence

            async def pulse() -> None:
                while True:
                    await sim.set_input(8, "pulses", 1)
                    await trio.lowlevel.checkpoint()

            nursery.start_soon(write)
            while start is None or time.perf_counter() - start < seconds:
                for event in end.receive(await port.read(), _ms()):
                    if isinstance(event, satproto.Hello) and start is None:
                        end.resend(event.last)  # the adapter stored the older ones
                        start = time.perf_counter()
                        nursery.start_soon(pulse)
                    elif isinstance(event, satproto.Report):
                        count += 1
                        end.ack(event.seq, event.boot)
            assert start is not None
            rate = count / (time.perf_counter() - start)
            nursery.cancel_scope.cancel()
        times = []
        async with trio.open_nursery() as nursery:

            async def serve() -> None:
                while True:
                    for event in end.receive(await port.read(), _ms()):
                        if isinstance(event, satproto.Report):
                            end.ack(event.seq, event.boot)

            nursery.start_soon(write)
            nursery.start_soon(serve)
            for n in range(rounds):
                on = n % 2 == 0
                begin = time.perf_counter()
                end.command("w", "pump", on)
                await sim.until(partial(_pin_is, 5, {"out": int(on)}))
                times.append(time.perf_counter() - begin)
            nursery.cancel_scope.cancel()
        return rate, times


async def adapter_rate(node: Any, sim: Simulator, seconds: float) -> tuple[float, int]:
    status = node.adapters["sat"]
    first = status.counts["written"]
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        await sim.set_input(8, "pulses", 1)
        await trio.lowlevel.checkpoint()
    stored = status.counts["written"] - first
    return stored / (time.perf_counter() - start), status.details.get("lost", 0)


async def adapter_round_trips(node: Any, sim: Simulator, rounds: int) -> list[float]:
    times = []
    for n in range(rounds):
        on = n % 2 == 0
        start = time.perf_counter()
        await node.write(Change(PUMP, on))
        await sim.until(partial(_pin_is, 5, {"out": int(on)}))
        times.append(time.perf_counter() - start)
    return times


def _pin_is(pin: int, state: dict[str, Any], sim: Simulator) -> bool:
    return sim.outputs.get(pin) == state


def quantiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000,
    }


async def measure(seconds: float, rounds: int) -> dict[str, Any]:
    result: dict[str, Any] = {"seconds": seconds, "rounds": rounds}
    with tempfile.TemporaryDirectory(prefix="ml-sat-", dir="/tmp") as folder:
        work = FsPath(folder)
        install_firmware(work / "flash", "sat", tick_ms=1)
        async with open_simulator(work / "flash", work / "run", start=False) as sim:
            result["raw_frames_per_s"] = await raw_rate(sim, seconds)
            raw_times = await raw_round_trips(sim, rounds)
            await sim.start_firmware()
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                config = node_config(work / "node", sim.host_port)
                node = await nursery.start(partial(serve_node, config, shutdown_trigger=stop.wait))
                await until_adapter_status(node.adapters["sat"], lambda s: s.state == "connected")
                adapter_times = await adapter_round_trips(node, sim, rounds)
                rate, lost = await adapter_rate(node, sim, seconds)
                result["adapter_reports_per_s"], result["adapter_lost"] = rate, lost
                stop.set()
            result["bare_host_reports_per_s"], bare_times = await bare_host(sim, seconds, rounds)
    result["rate_ratio"] = result["adapter_reports_per_s"] / result["raw_frames_per_s"]
    result["rate_ratio_bare_host"] = (
        result["adapter_reports_per_s"] / result["bare_host_reports_per_s"]
    )
    result["raw_round_trip"] = quantiles(raw_times)
    result["adapter_round_trip"] = quantiles(adapter_times)
    result["bare_host_round_trip"] = quantiles(bare_times)
    result["round_trip_ratio_p50"] = (
        result["adapter_round_trip"]["p50_ms"] / result["raw_round_trip"]["p50_ms"]
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per rate run")
    parser.add_argument("--rounds", type=int, default=100, help="sets for the round trip")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    result = trio.run(measure, args.seconds, args.rounds)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    rate, lost = result["adapter_reports_per_s"], result["adapter_lost"]
    print(f"reports -> journal: {rate:.0f}/s (lost {lost})")
    print(f"raw frames over the pty: {result['raw_frames_per_s']:.0f}/s")
    print(f"ratio: {result['rate_ratio']:.4f}")
    bare = result["bare_host_reports_per_s"]
    print(f"the firmware to a bare HostEnd (no journal): {bare:.0f}/s")
    print(f"ratio to the bare host: {result['rate_ratio_bare_host']:.2f}")
    adapter, raw = result["adapter_round_trip"], result["raw_round_trip"]
    print(f"set -> pin: p50 {adapter['p50_ms']:.2f} ms, p95 {adapter['p95_ms']:.2f} ms")
    print(f"raw round trip: p50 {raw['p50_ms']:.3f} ms, p95 {raw['p95_ms']:.3f} ms")
    print(f"ratio p50: {result['round_trip_ratio_p50']:.1f}")
    bare_rt = result["bare_host_round_trip"]
    print(
        f"bare HostEnd set -> pin: p50 {bare_rt['p50_ms']:.2f} ms, p95 {bare_rt['p95_ms']:.2f} ms"
    )


if __name__ == "__main__":
    main()
