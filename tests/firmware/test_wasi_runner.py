"""The WASI runner runs real MicroPython on stdin/stdout with a flash and a sim channel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trio

pytestmark = pytest.mark.slow


def _runner(flash: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "moat_log.firmware.wasi_runner", "--flash", str(flash), *args]


def test_stdin_stdout_flash_and_exit_code(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(
        "import sys\n"
        "data = sys.stdin.buffer.read(3)\n"
        "sys.stdout.buffer.write(b'got ' + data)\n"
        "f = open('/flash/written', 'w'); f.write(sys.implementation.name); f.close()\n"
        "sys.exit(7)\n"
    )
    done = subprocess.run(
        _runner(tmp_path), check=False, input=b"abc", capture_output=True, timeout=60
    )
    assert done.returncode == 7, done.stderr
    assert done.stdout == b"got abc"
    assert (tmp_path / "written").read_text() == "micropython"


async def test_sim_channel_carries_lines_both_ways(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(
        "import host\n"
        # what came in while 'ready' was sent is that call's result: keep it
        "got = host.call('sim', 'ready')\n"
        "while not got:\n"
        "    got = host.call('sim', '')\n"
        "host.call('sim', 'echo ' + got)\n"
    )
    sock_path = str(tmp_path / "sim.sock")
    listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await listener.bind(sock_path)
    listener.listen(1)
    with trio.fail_after(60):
        await _exchange(tmp_path, listener, sock_path)
    listener.close()


async def _exchange(tmp_path: Path, listener: trio.socket.SocketType, sock_path: str) -> None:
    async with trio.open_nursery() as nursery:
        process = await nursery.start(trio.run_process, _runner(tmp_path, "--sim", sock_path))
        conn, _ = await listener.accept()
        stream = trio.SocketStream(conn)
        received = b""
        while b"ready\n" not in received:
            received += await _some(stream)
        await stream.send_all(b"pin 4 1\n")
        while b"echo pin 4 1\n" not in received:
            received += await _some(stream)
        assert received == b"ready\necho pin 4 1\n"
        await process.wait()
        assert process.returncode == 0


async def _some(stream: trio.SocketStream) -> bytes:
    data = await stream.receive_some()
    assert data, "the runner closed the sim channel"
    return data
