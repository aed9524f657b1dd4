"""Files put on a real firmware over its line: checked renames, refusals, a restart, the CLI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path as FsPath

import pytest
import trio

from moat_log.adapters.satellite.port import open_serial_port
from moat_log.adapters.satellite.simulator import Simulator, install_firmware, open_simulator
from moat_log.adapters.satellite.update import CHUNK, put_files
from moat_log.errors import AdapterError, BusUnavailableError
from moat_log.testing import moat_log_script, short_temp_dir

pytestmark = pytest.mark.slow


@asynccontextmanager
async def simulated() -> AsyncIterator[tuple[Simulator, FsPath]]:
    with short_temp_dir() as folder:
        flash = folder / "flash"
        install_firmware(flash, "garage")
        async with open_simulator(flash, folder / "run") as sim:
            yield sim, flash


async def test_put_writes_files_whole_and_reset_restarts() -> None:
    big = bytes(range(256)) * 7 + b"tail"  # several chunks, not a multiple of one
    assert len(big) > 4 * CHUNK
    seen: list[int] = []
    async with simulated() as (sim, flash):
        result = await put_files(
            sim.host_port,
            [("blob.bin", big), ("note.txt", b"hello")],
            reset=True,
            progress=seen.append,
        )
        assert (flash / "blob.bin").read_bytes() == big
        assert (flash / "note.txt").read_bytes() == b"hello"
        assert not (flash / "blob.bin.new").exists()
        assert sum(seen) == len(big) + 5
        assert result.sat_id == "garage"
        assert result.files == ("blob.bin", "note.txt")
        assert result.new_boot is not None
        assert result.new_boot != result.boot
        assert int((flash / "boot").read_text()) == result.new_boot  # it booted again


async def test_a_refused_put_says_why_and_leaves_the_flash_alone() -> None:
    async with simulated() as (sim, flash):
        before = sorted(p.name for p in flash.iterdir())
        with pytest.raises(AdapterError, match=r"refused put: bad file name '\.\./x'"):
            await put_files(sim.host_port, [("../x", b"data")])
        assert sorted(p.name for p in flash.iterdir()) == before


async def test_a_port_that_does_not_exist_is_named(tmp_path: FsPath) -> None:
    with pytest.raises(BusUnavailableError, match="no-such-tty: cannot open it"):
        await put_files(str(tmp_path / "no-such-tty"), [("a", b"b")])


async def test_a_port_held_by_another_process_says_so() -> None:
    async with simulated() as (sim, _flash), open_serial_port(sim.host_port, 115200):
        with pytest.raises(BusUnavailableError, match="another process has it open"):
            await put_files(sim.host_port, [("a", b"b")])


async def test_cli_puts_a_file_and_reports_json(tmp_path: FsPath) -> None:
    source = tmp_path / "new-config.txt"
    source.write_text("v2")
    async with simulated() as (sim, flash):
        done = await trio.run_process(
            [moat_log_script(), "--json", "satellite", "put", sim.host_port,
             str(source), "--as", "extra.txt"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["satellite"] == "garage"
        assert report["files"] == ["extra.txt"]
        assert report["bytes"] == 2
        assert report["new_boot"] is None
        assert (flash / "extra.txt").read_text() == "v2"


async def test_cli_firmware_flag_puts_this_firmware_and_restarts() -> None:
    from moat_log.adapters.satellite.simulator import firmware_files

    async with simulated() as (sim, flash):
        await put_files(sim.host_port, [("probe", b"")])  # the firmware runs: it is loaded
        (flash / "sat.py").write_text("# an old firmware\n")  # what the update must replace
        done = await trio.run_process(
            [
                moat_log_script(),
                "--json",
                "satellite",
                "put",
                sim.host_port,
                "--firmware",
                "--reset",
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["files"] == [p.name for p in firmware_files()]
        assert report["new_boot"] not in (None, report["boot"])  # it started on the files put
        for source in firmware_files():
            assert (flash / source.name).read_bytes() == source.read_bytes()
