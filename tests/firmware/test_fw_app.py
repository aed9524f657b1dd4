"""firmware/sat.py on CPython: the app step against a satproto.HostEnd, explicit clock, sim pins."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fw_support import firmware_on_path

satproto = pytest.importorskip(
    "moat_log.firmware.satproto", reason="firmware/satproto.py comes from branch satproto"
)

CONFIG = {
    "id": "boiler",
    "hardware": "sim",
    "keepalive_ms": 200,
    "parts": {
        "door": {"kind": "input", "pin": 4, "pull": "up", "debounce_ms": 0},
        "pump": {"kind": "output", "pin": 5},
        "fan": {"kind": "pwm", "pin": 6},
    },
}


class Line:
    """The serial line as the app sees it: bytes from the host in, bytes to the host out."""

    def __init__(self) -> None:
        self.incoming = b""
        self.written = b""

    def read(self, limit: int = 512) -> bytes:
        data, self.incoming = self.incoming[:limit], self.incoming[limit:]
        return data

    def write(self, data: bytes) -> None:
        self.written += data

    def wait(self, timeout_ms: int) -> bool:
        return bool(self.incoming)


class Bench:
    """An App on sim pins with an explicit clock, talking to a HostEnd."""

    def __init__(self, sat: ModuleType, hw: ModuleType, flash: Path) -> None:
        self.now = 0
        self.sat, self.hw = sat, hw
        self.flash = flash
        self.pins_out: list[dict[str, Any]] = []
        self.pins_in: list[str] = []
        self.host = satproto.HostEnd("node1", session=7)
        self.events: list[Any] = []
        self.app = self.start()

    def channel(self, line: str) -> str:
        if line:
            self.pins_out.append(json.loads(line))
        lines, self.pins_in = self.pins_in, []
        return "\n".join(lines)

    def start(self) -> Any:
        clock = self.hw.Clock(lambda: self.now, lambda a, b: a - b)
        hardware = self.hw.SimHardware(root=str(self.flash), clock=clock, channel=self.channel)
        config, problems = self.sat.load_config(hardware.flash)
        self.line = Line()
        return self.sat.App(hardware, config, problems, serial=self.line)

    def turn(self, ms: int = 10) -> None:
        """Host and satellite each take a turn; then time moves on by *ms*."""
        self.line.incoming += self.host.poll(self.now)
        self.app.step(self.now)
        written, self.line.written = self.line.written, b""
        self.events += self.host.receive(written, self.now)
        self.now += ms

    def until(
        self, kind: type | tuple[type, ...], test: Any = lambda e: True, turns: int = 200
    ) -> Any:
        for _ in range(turns):
            for event in self.events:
                if isinstance(event, kind) and test(event):
                    self.events.remove(event)
                    return event
            self.turn()
        raise AssertionError(f"no {kind} in {turns} turns; got {self.events}")

    def command(self, verb: str, *args: Any) -> Any:
        cseq = self.host.command(verb, *args)
        return self.until((satproto.Done, satproto.Refused), lambda e: e.cseq == cseq)


@pytest.fixture
def firmware() -> Iterator[tuple[ModuleType, ModuleType]]:
    with firmware_on_path():
        import hw
        import sat

        yield sat, hw


@pytest.fixture
def bench(firmware: tuple[ModuleType, ModuleType], tmp_path: Path) -> Bench:
    (tmp_path / "sat.json").write_text(json.dumps(CONFIG))
    sat, hw = firmware
    bench = Bench(sat, hw, tmp_path)
    hello = bench.until(satproto.Hello)
    bench.host.resend(0)
    assert hello.sat_id == "boiler"
    return bench


def test_hello_names_the_parts_and_the_start_report_follows(bench: Bench) -> None:
    assert bench.app.parts.kinds() == {"door": "input", "pump": "output", "fan": "pwm"}
    report = bench.until(satproto.Report)
    assert (report.seq, report.part, report.value) == (1, "door", True)


def test_input_change_is_reported_and_w_reaches_the_pins(bench: Bench) -> None:
    bench.until(satproto.Report)
    bench.pins_in.append('{"pin": 4, "in": 0}')
    report = bench.until(satproto.Report)
    assert (report.seq, report.part, report.value) == (2, "door", False)
    assert isinstance(bench.command("w", "pump", True), satproto.Done)
    assert isinstance(bench.command("w", "fan", 0.5), satproto.Done)
    assert bench.pins_out[-2:] == [{"pin": 5, "out": 1}, {"pin": 6, "duty": 0.5}]
    done = bench.command("r", "pump")
    assert done.result is True


def test_bad_commands_are_refused_with_their_reason(bench: Bench) -> None:
    reasons = [
        bench.command("w", "lamp", True).reason,
        bench.command("w", "door", True).reason,
        bench.command("w", "fan", 1.5).reason,
        bench.command("x").reason,
        bench.command("w", "pump").reason,
        bench.command("commit", "main.py", 3, 0).reason,
    ]
    assert reasons == [
        "no part 'lamp'",
        "part 'door' is an input",
        "pwm duty 1.5 not in 0..1",
        "unknown verb 'x'",
        "'w' takes part, value",
        "file 'main.py': nothing put",
    ]
    assert isinstance(bench.command("r", "door"), satproto.Done)  # and it still runs


def test_put_and_commit_write_a_file_checked_by_size_and_crc(bench: Bench) -> None:
    data = b"print('new firmware')\n"
    assert isinstance(bench.command("put", "extra.py", 0, data[:10]), satproto.Done)
    assert isinstance(bench.command("put", "extra.py", 10, data[10:]), satproto.Done)
    crc = satproto.crc16(data)
    wrong = bench.command("commit", "extra.py", len(data), crc ^ 1)
    assert wrong.reason == f"file 'extra.py': crc 0x{crc:04x} != 0x{crc ^ 1:04x}"
    short = bench.command("commit", "extra.py", len(data) + 1, crc)
    assert short.reason == f"file 'extra.py': {len(data)} bytes != {len(data) + 1}"
    assert not (bench.flash / "extra.py").exists()
    assert isinstance(bench.command("commit", "extra.py", len(data), crc), satproto.Done)
    assert (bench.flash / "extra.py").read_bytes() == data
    assert not (bench.flash / "extra.py.new").exists()
    assert bench.command("put", "../x", 0, b"").reason == "bad file name '../x'"


def test_cfg_saves_only_a_different_config_and_rebuilds_the_parts(bench: Bench) -> None:
    bench.until(satproto.Report)
    same = {"id": "boiler", "keepalive_ms": 200, "parts": CONFIG["parts"]}
    assert isinstance(bench.command("cfg", same), satproto.Done)
    assert (bench.flash / "sat.json").read_text() == json.dumps(CONFIG)  # not rewritten
    new_parts = {"lamp": {"kind": "output", "pin": 9, "init": True}}
    assert isinstance(bench.command("cfg", {"parts": new_parts}), satproto.Done)
    bench.until(satproto.Hello, lambda e: e.parts == {"lamp": "output"})
    assert {"pin": 9, "out": 1} in bench.pins_out
    saved = json.loads((bench.flash / "sat.json").read_text())
    assert saved["parts"] == new_parts
    assert saved["hardware"] == "sim"  # kept: cfg merges over the config
    bad = bench.command("cfg", {"parts": {"a": {"kind": "relay", "pin": 1}}})
    assert bad.reason == "cfg: part 'a': kind 'relay' not one of input, output, adc, pwm, counter"
    assert bench.app.parts.kinds() == {"lamp": "output"}


def test_reset_answers_first_then_restarts_with_the_next_boot(bench: Bench) -> None:
    boot = bench.app.boot
    cseq = bench.host.command("reset")
    with pytest.raises(bench.hw.ResetRequested):
        for _ in range(100):
            bench.turn()
    bench.events += bench.host.receive(bench.line.written, bench.now)  # written before the reset
    assert [e for e in bench.events if isinstance(e, satproto.Done)] == [satproto.Done(cseq, None)]
    bench.app = bench.start()
    assert bench.app.boot == (boot + 1) & 0xFFFFFFFF


def test_a_missing_or_bad_config_gives_defaults_and_a_log(
    firmware: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    sat, hw = firmware
    flash = hw.Flash(str(tmp_path))
    config, problems = sat.load_config(flash)
    assert config["id"] == "sat"
    assert problems == ["no sat.json: defaults"]
    (tmp_path / "sat.json").write_text("{not json")
    config, problems = sat.load_config(flash)
    assert config["parts"] == {}
    assert problems[0].startswith("sat.json is not JSON")
    (tmp_path / "sat.json").write_text(json.dumps({"id": "x", "ring": 0, "parts": {"a": 1}}))
    config, problems = sat.load_config(flash)
    assert (config["id"], config["ring"], config["parts"]) == ("x", 64, {})
    assert problems == [
        "sat.json: ring 0 is not an int > 0: 64",
        "sat.json: part 'a': config is not a map: no parts",
    ]
    bench = Bench(sat, hw, tmp_path)
    log = bench.until(satproto.Log)
    assert (log.level, log.text) == (30, "sat.json: ring 0 is not an int > 0: 64")


def test_the_boot_counter_counts_and_starts_random(
    firmware: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    sat, hw = firmware
    flash = hw.Flash(str(tmp_path))
    first, problem = sat.next_boot(flash, lambda: 0xFFFFFFFF)
    assert (first, problem) == (0xFFFFFFFF, None)
    assert sat.next_boot(flash, lambda: 5) == (0, None)  # wraps at 32 bits
    assert sat.next_boot(flash, lambda: 5) == (1, None)


def test_the_asyncio_task_runs_the_same_step(bench: Bench) -> None:
    """run_async under CPython's asyncio: the start report reaches the host."""
    turns = 0

    async def sleep(ms: int) -> None:
        nonlocal turns
        turns += 1
        written, bench.line.written = bench.line.written, b""
        bench.events += bench.host.receive(written, bench.now)
        bench.line.incoming += bench.host.poll(bench.now)
        bench.now += ms
        if any(isinstance(e, satproto.Report) for e in bench.events):
            bench.line.closed = True  # type: ignore[attr-defined]
        await asyncio.sleep(0)

    asyncio.run(bench.sat.run_async(bench.app, sleep))
    assert [e.part for e in bench.events if isinstance(e, satproto.Report)] == ["door"]
    assert turns >= 1
