"""``demo``: three real nodes on this machine replicate, one is cut off, they heal.

The demo runs three ``moat-log serve`` processes (pi1, pi2, pi3) on
127.0.0.1 with a fresh cluster secret, writes on each, kills pi3, writes on
both sides, restarts pi3 and shows the states and what the links exchanged.
Waiting is event-driven: the ``ready`` line of ``serve``, then watches that
end when a node holds what was written.  Every process it starts is stopped
(or killed) before it returns, also on Ctrl-C or an error.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import asyncclick as click
import trio

from moat_log.client import open_client
from moat_log.defaults import PROG, environment_without_settings
from moat_log.errors import InvalidInputError, MoatLogError
from moat_log.event import Event, Op, Value

from ._main import Settings, cli
from ._output import human_bytes, print_json, print_table, value_text

#: Generous bounds, reached only when something is broken.
STARTUP_TIMEOUT = 20.0
CONVERGE_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
#: The subtree the demo writes.
PREFIX = "home"
NAMES = ("pi1", "pi2", "pi3")

State = dict[str, Value]


class DemoError(MoatLogError):
    """A step of the demo failed (a node did not start, the nodes did not converge)."""


@dataclass(frozen=True, slots=True)
class Write:
    node: str
    path: str
    value: Value


FIRST_WRITES = (
    Write("pi1", "home.kitchen.temp", 21.5),
    Write("pi1", "home.kitchen.humidity", 48),
    Write("pi2", "home.hall.light", "on"),
    Write("pi3", "home.garage.door", "closed"),
)
#: Written on pi1 while pi3 is cut off.
WRITE_DURING_CUT = Write("pi1", "home.heating.setpoint", 20.0)
#: Written on pi3's journal directly while its node is down.
WRITE_OFFLINE = Write("pi3", "home.garage.door", "open")


def moat_log_argv() -> list[str]:
    """How to run this very moat-log (the one in this interpreter), whatever is on $PATH."""
    code = f"import sys; from moat_log.cli import main; sys.argv[0] = {PROG!r}; main()"
    return [sys.executable, "-c", code]


@dataclass
class DemoNode:
    """One ``moat-log serve`` of the demo: config, data directory, process, addresses."""

    name: str
    base: FsPath
    peers: list[str]
    process: trio.Process | None = None
    sync_address: str = ""
    pids: list[int] = field(default_factory=list)
    exit_code: int | None = None

    @property
    def data_dir(self) -> FsPath:
        return self.base / self.name

    @property
    def config(self) -> FsPath:
        return self.base / f"{self.name}.toml"

    @property
    def log(self) -> FsPath:
        return self.base / f"{self.name}.log"

    def write_config(self, key_file: FsPath) -> None:
        peers = ", ".join(json.dumps(peer) for peer in self.peers)
        self.config.write_text(
            f"node = {json.dumps(self.name)}\n"
            f"data_dir = {json.dumps(str(self.data_dir))}\n"
            "[client]\n"
            'listen = ["unix"]\n'
            "[sync]\n"
            'listen = "127.0.0.1:0"\n'
            f"peers = [{peers}]\n"
            f"secret_file = {json.dumps(str(key_file))}\n"
        )

    async def start(self) -> None:
        """Start ``serve`` and wait for its ``ready`` line (bounded by `STARTUP_TIMEOUT`)."""
        log = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.process = await trio.lowlevel.open_process(
                [*moat_log_argv(), "serve", "--config", str(self.config)],
                stdout=subprocess.PIPE,
                stderr=log,
                env=environment_without_settings(),
            )
        finally:
            os.close(log)
        self.pids.append(self.process.pid)
        lines = await self._lines_until_ready()
        addresses = [line.split()[-1] for line in lines if line.startswith("sync listening on")]
        if not addresses:
            raise DemoError(f"{self.name} printed no sync address: {lines}")
        self.sync_address = addresses[0]

    async def _lines_until_ready(self) -> list[str]:
        assert self.process is not None and self.process.stdout is not None
        buffered, lines = b"", list[str]()
        with trio.move_on_after(STARTUP_TIMEOUT):
            while "ready" not in lines:
                data = await self.process.stdout.receive_some()
                if not data:
                    raise DemoError(f"{self.name} exited before it was ready: {self.last_log()}")
                buffered += data
                *complete, buffered = buffered.split(b"\n")
                lines.extend(line.decode() for line in complete)
            return lines
        raise DemoError(f"{self.name} was not ready within {STARTUP_TIMEOUT:g} s: {self.log}")

    def last_log(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"(nothing in {self.log})"

    async def kill(self) -> None:
        """SIGKILL: the node gets no chance to say goodbye, as if it lost power."""
        await self._end(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM, and SIGKILL if it is not gone within `STOP_TIMEOUT`."""
        await self._end(signal.SIGTERM)

    async def _end(self, how: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(how)
            with trio.move_on_after(STOP_TIMEOUT):
                self.exit_code = await process.wait()
            if process.returncode is None:
                process.kill()
                self.exit_code = await process.wait()
            if process.stdout is not None:
                await process.stdout.aclose()


# --- what the nodes hold -----------------------------------------------------


async def holding(node: DemoNode, expected: State) -> State:
    """Watch *node* until its state under `PREFIX` is exactly *expected*; return it."""
    state: State = {}
    async with open_client(data_dir=node.data_dir) as client, client.watch(PREFIX) as items:
        async for item in items:
            if isinstance(item, Event):
                if item.op is Op.SET:
                    state[str(item.path)] = item.value
                else:
                    state.pop(str(item.path), None)
            if state == expected:
                return state
    raise DemoError(f"the watch on {node.name} ended")


async def all_holding(nodes: list[DemoNode], expected: State) -> dict[str, State]:
    """Wait until every node of *nodes* holds *expected* (bounded by `CONVERGE_TIMEOUT`)."""
    states: dict[str, State] = {}

    async def wait_for(node: DemoNode) -> None:
        states[node.name] = await holding(node, expected)

    with trio.move_on_after(CONVERGE_TIMEOUT):
        async with trio.open_nursery() as nursery:
            for node in nodes:
                nursery.start_soon(wait_for, node)
        return {node.name: states[node.name] for node in nodes}
    behind = ", ".join(node.name for node in nodes if node.name not in states)
    raise DemoError(f"{behind} did not converge within {CONVERGE_TIMEOUT:g} s")


async def write(node: DemoNode, writes: list[Write]) -> None:
    async with open_client(data_dir=node.data_dir) as client:
        for item in writes:
            await client.set(item.path, item.value, source="demo")


async def run_cli(node: DemoNode, *args: str) -> str:
    """``moat-log --data-dir NODE ARGS``: the journal directly when the node is down."""
    done = await trio.run_process(
        [*moat_log_argv(), "--data-dir", str(node.data_dir), *args],
        capture_stdout=True,
        capture_stderr=True,
        env=environment_without_settings(),
        check=False,
    )
    if done.returncode != 0:
        raise DemoError(f"moat-log {' '.join(args)}: {done.stderr.decode().strip()}")
    return bytes(done.stdout).decode()


async def exchange(nodes: list[DemoNode]) -> list[dict[str, Any]]:
    """Per node and peer, what its sync link carried (``status()["sync"]["peers"]``)."""
    rows = []
    for node in nodes:
        async with open_client(data_dir=node.data_dir) as client:
            result = await client.status()
        for peer, link in result["sync"]["peers"].items():
            rows.append(
                {
                    "node": node.name,
                    "peer": peer,
                    "events_in": link["events_in"],
                    "events_out": link["events_out"],
                    "bytes_in": link["bytes_in"],
                    "bytes_out": link["bytes_out"],
                }
            )
    return rows


# --- the story ---------------------------------------------------------------


@dataclass
class Story:
    """What the demo did and saw: printed step by step, or as one JSON summary."""

    as_json: bool
    steps: int = 5
    step: int = 0
    summary: dict[str, Any] = field(default_factory=dict)

    def announce(self, text: str) -> None:
        self.step += 1
        self.say(f"\n[{self.step}/{self.steps}] {text}")

    def say(self, text: str) -> None:
        if not self.as_json:
            click.echo(text)

    def states(self, title: str, states: dict[str, State]) -> None:
        if self.as_json:
            return
        paths = sorted({path for state in states.values() for path in state})
        rows = [(path, *(_cell(state, path) for state in states.values())) for path in paths]
        self.say(f"{title}:")
        print_table(("PATH", *states), rows, indent="  ")

    def links(self, rows: list[dict[str, Any]]) -> None:
        if self.as_json:
            return
        self.say("What each link carried (counted since it connected):")
        print_table(
            ("NODE", "PEER", "EVENTS IN", "EVENTS OUT", "BYTES IN", "BYTES OUT"),
            [
                (
                    row["node"],
                    row["peer"],
                    str(row["events_in"]),
                    str(row["events_out"]),
                    human_bytes(row["bytes_in"]),
                    human_bytes(row["bytes_out"]),
                )
                for row in rows
            ],
            indent="  ",
        )


def _cell(state: State, path: str) -> str:
    return value_text(state[path]) if path in state else "-"


def _expected(writes: list[Write]) -> State:
    return {item.path: item.value for item in writes}


async def run_demo(base: FsPath, story: Story) -> None:
    key_file = base / "cluster.key"
    pi1 = DemoNode("pi1", base, [])
    pi2 = DemoNode("pi2", base, [])
    pi3 = DemoNode("pi3", base, [])
    nodes = [pi1, pi2, pi3]
    story.summary.update(nodes=list(NAMES), pids={node.name: node.pids for node in nodes})
    try:
        await _run_steps(nodes, key_file, story)
    finally:
        for node in nodes:
            await node.kill()  # only reached with a node still up when a step failed


async def _run_steps(nodes: list[DemoNode], key_file: FsPath, story: Story) -> None:
    pi1, pi2, pi3 = nodes
    begin = time.monotonic()
    story.announce(
        "Starting three nodes on 127.0.0.1: pi2 dials pi1, pi3 dials pi1 and pi2. "
        "They prove to each other that they know a random secret made for this demo."
    )
    write_secret(key_file)
    for node in nodes:
        node.peers = [other.sync_address for other in nodes[: nodes.index(node)]]
        node.write_config(key_file)
        await node.start()
        story.say(f"  {node.name}: pid {node.pids[-1]}, sync on {node.sync_address}")

    story.announce(
        "Writing on every node. Each sends what it writes to the others; "
        "the table waits until all three hold all of it."
    )
    writes = list(FIRST_WRITES)
    for node in nodes:
        await write(node, [item for item in writes if item.node == node.name])
        for item in writes:
            if item.node == node.name:
                story.say(f"  {node.name}: set {item.path} {value_text(item.value)}")
    states = await all_holding(nodes, _expected(writes))
    story.summary["converged_before_cut"] = states
    story.states("Every node holds the same", states)

    story.announce(
        "Cutting pi3 off: SIGKILL, as if it lost power. pi1 and pi2 keep working; "
        "pi3's journal is written directly while its node is down."
    )
    await pi3.kill()
    story.say(f"  pi3 killed (pid {pi3.pids[-1]})")
    await write(pi1, [WRITE_DURING_CUT])
    story.say(f"  pi1: set {WRITE_DURING_CUT.path} {value_text(WRITE_DURING_CUT.value)}")
    await run_cli(pi3, "set", WRITE_OFFLINE.path, json.dumps(WRITE_OFFLINE.value))
    story.say(
        f"  pi3 (offline): {PROG} --data-dir {pi3.data_dir} set "
        f"{WRITE_OFFLINE.path} {json.dumps(WRITE_OFFLINE.value)}"
    )
    before_cut = _expected(writes)
    writes += [WRITE_DURING_CUT, WRITE_OFFLINE]
    diverged = await all_holding([pi1, pi2], _expected([*FIRST_WRITES, WRITE_DURING_CUT]))
    listing = json.loads(await run_cli(pi3, "ls", PREFIX, "--recursive", "--json"))
    diverged["pi3"] = dict(listing)
    if diverged["pi3"] == before_cut:
        raise DemoError("pi3's journal does not show the write made while it was cut off")
    story.summary["diverged"] = diverged
    story.states("The two sides differ (pi3 read from its journal, offline)", diverged)

    story.announce(
        "Healing: restarting pi3 with the same config. It dials pi1 and pi2 again; "
        "each side fetches exactly the events it lacks."
    )
    await pi3.start()
    started = time.monotonic()
    story.say(f"  pi3: pid {pi3.pids[-1]}, sync on {pi3.sync_address}")
    final = await all_holding(nodes, _expected(writes))
    heal_seconds = time.monotonic() - started
    links = await exchange(nodes)
    story.summary.update(final=final, exchange=links, heal_seconds=round(heal_seconds, 3))
    story.states("Converged again", final)
    story.links(links)
    story.say(f"Healed {heal_seconds * 1000:.0f} ms after pi3 was ready.")

    story.announce("Stopping the three nodes cleanly (SIGTERM).")
    for node in nodes:
        await node.stop()
    story.summary["exit_codes"] = {node.name: node.exit_code for node in nodes}
    story.summary["seconds"] = round(time.monotonic() - begin, 3)
    story.say(f"  exit codes: {', '.join(f'{n.name} {n.exit_code}' for n in nodes)}")


def write_secret(key_file: FsPath) -> None:
    """A fresh cluster secret, 32 random bytes written as hex, readable by its owner only."""
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_hex(32) + "\n")
    key_file.chmod(0o600)  # if it was there before, with other rights


def demo_dir(keep: FsPath | None) -> FsPath:
    """*keep* (made if need be), else a fresh temporary directory (short: socket paths)."""
    if keep is None:
        return FsPath(tempfile.mkdtemp(prefix="moat-log-demo-", dir="/tmp"))
    keep.mkdir(parents=True, exist_ok=True)
    if any(keep.iterdir()):
        raise InvalidInputError(f"--keep {keep}: the directory is not empty; give a new one")
    return keep.resolve()


def _try_next(base: FsPath, kept: bool) -> str:
    if kept:
        where = f"The demo's files stay in {base}: pi1/ pi2/ pi3/, their configs and logs."
    else:
        where = f"Keep the demo's files for a look: {PROG} demo --keep DIR"
    return (
        "\nTry next: run such a node by hand, with a [sync] table in its config "
        "(docs/node.md, 'Replication: [sync]'):\n"
        "  head -c 32 /dev/urandom > cluster.key; chmod 600 cluster.key\n"
        f"  {PROG} serve --config node.toml\n"
        f"  {PROG} status      # its peers, events in and out\n"
        f"{where}"
    )


@cli.command()
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=FsPath),
    metavar="DIR",
    help="Keep the three data directories, configs and logs in DIR "
    "[default: a temporary directory, removed at the end].",
)
@click.pass_obj
async def demo(settings: Settings, keep: FsPath | None) -> None:
    """Three nodes on this machine: replicate, cut one off, heal.

    Starts three 'moat-log serve' processes (pi1, pi2, pi3) on 127.0.0.1,
    writes on each, kills pi3, writes on both sides, restarts pi3 and shows
    each node's state and what the links exchanged.  Needs nothing else
    installed and takes a few seconds; every process is stopped at the end.
    With --json: one summary document instead of the tables.

    \b
    Example:
      moat-log demo
      moat-log demo --keep /tmp/demo && moat-log --data-dir /tmp/demo/pi3 log
    """
    base = demo_dir(keep)
    story = Story(as_json=settings.as_json)
    story.say(f"{PROG} demo: three nodes replicating on this machine, in {base}")
    try:
        await run_demo(base, story)
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)
    story.summary.update(data_dir=str(base), kept=keep is not None)
    if settings.as_json:
        print_json(story.summary)
    else:
        click.echo(_try_next(base, keep is not None))
