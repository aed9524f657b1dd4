"""``moat-log satellite simulate``: its stdin lines; the real command, driven by a node."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path as FsPath

import pytest
import trio

from moat_log.cli._satellite_cmds import sim_message
from moat_log.errors import InvalidInputError
from moat_log.journal.change import Change
from moat_log.path import Path
from moat_log.testing import in_process_config, moat_log_script, running_node, short_temp_dir
from moat_log.testing import until_adapter_status as until_status

KINDS = {4: ("door", "input"), 7: ("level", "adc"), 8: ("meter", "counter"), 5: ("pump", "output")}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("4=1\n", {"pin": 4, "in": 1}),
        (" 7 = 1234 ", {"pin": 7, "adc": 1234}),
        ("8=3", {"pin": 8, "pulses": 3}),
        ("adc 9 0.5", {"pin": 9, "adc": 0.5}),
        ("in 4 0", {"pin": 4, "in": 0}),
    ],
)
def test_stdin_lines_become_sim_messages(line: str, message: dict[str, object]) -> None:
    assert sim_message(line, KINDS) == message


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("5=1", "pin 5 is no input, adc or counter"),
        ("9=1", "pins: 4 (door, input), 5 (pump, output)"),
        ("4=on", "'on' is not a number"),
        ("hello", "write PIN=VALUE"),
    ],
)
def test_bad_stdin_lines_say_why(line: str, problem: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(problem)):
        sim_message(line, KINDS)


@pytest.mark.slow
async def test_the_command_runs_a_satellite_that_a_node_drives_and_stops_on_ctrl_c(
    tmp_path: FsPath,
) -> None:
    with short_temp_dir() as folder:
        read_end, write_end = os.pipe()
        process = await trio.lowlevel.open_process(
            [
                *(moat_log_script(), "satellite", "simulate", "--flash", str(folder / "flash")),
                *("--id", "boiler", "--dir", str(folder / "run")),
            ],
            stdin=read_end,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            restore_signals=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        os.close(read_end)
        assert process.stdout is not None
        printed = b""
        with trio.fail_after(30):
            while b"serial port: " not in printed or not printed.endswith(b"\n"):
                printed += await process.stdout.receive_some()
        assert b"installed the firmware" in printed
        port = printed.split(b"serial port: ")[1].split(b"\n")[0].decode()
        config = in_process_config(
            f"""
node = "n1"
[adapters.boiler]
type = "satellite"
port = "{port}"
prefix = "home.boiler"
[adapters.boiler.parts.door]
kind = "input"
pin = 4
[adapters.boiler.parts.pump]
kind = "output"
pin = 5
""",
            tmp_path,
        )
        async with running_node(config) as node:
            status = node.adapters["boiler"]
            await until_status(
                status, lambda s: node.kv.value(Path.parse("home.boiler.door")) is False
            )
            os.write(write_end, b"4=1\n")  # the pin's kind comes from the config the node sent
            await until_status(
                status, lambda s: node.kv.value(Path.parse("home.boiler.door")) is True
            )
            await node.write(Change(Path.parse("home.boiler.pump"), True))
            with trio.fail_after(30):
                while b"pin 5 (pump) out 1\n" not in printed:
                    printed += await process.stdout.receive_some()
        process.send_signal(signal.SIGINT)
        with trio.fail_after(10):
            assert await process.wait() == 0
        os.close(write_end)
        assert process.stderr is not None
        assert (await process.stderr.receive_some()).endswith(b"stopped\n")
