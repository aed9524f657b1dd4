"""Every example of docs/scripting.md runs as written, and prints what the doc says.

Each ```python block is a complete script.  It runs in its own Python
process, with ``$MOAT_LOG_DATA_DIR`` pointing at a fresh data directory,
served by a node in this process (Unix socket, and TCP with the users
``heating`` and ``alice``, whose address and secrets are in the environment
variables the examples name) unless the doc says ``<!-- no node -->`` right
before the block.  A block followed by "Prints:" and a ```text block must
print exactly that.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path as FsPath

import pytest
import trio
from node_support import (
    LOOPBACK_ANY_PORT,
    UNIX,
    config,
    environment,
    running_node,
    tcp_address,
)

from moat_log.node import UserConfig
from moat_log.path import Path
from moat_log.protocol import make_token_verifier, make_verifier
from moat_log.testing import short_temp_dir

DOC = FsPath(__file__).resolve().parents[2] / "docs" / "scripting.md"
NO_NODE = "<!-- no node -->"
HEATING_TOKEN = "a-long-random-token-for-the-heating-script"
ALICE_PASSWORD = "alice's long password"

_BLOCK = re.compile(r"^```python\n(.*?)^```\n", re.S | re.M)
_PRINTS = re.compile(r"\s*Prints:\s*\n\s*```text\n(.*?)^```\n", re.S | re.M)


@dataclass(frozen=True)
class Example:
    line: int
    code: str
    prints: str | None
    needs_node: bool


def examples() -> list[Example]:
    text = DOC.read_text()
    found = []
    for block in _BLOCK.finditer(text):
        before = text[: block.start()].rstrip()
        after = _PRINTS.match(text, block.end())
        found.append(
            Example(
                line=text.count("\n", 0, block.start()) + 1,
                code=block.group(1),
                prints=after.group(1) if after else None,
                needs_node=not before.endswith(NO_NODE),
            )
        )
    return found


@cache
def users() -> dict[str, UserConfig]:
    """As in node.md: heating may read its part and the sensors, alice everything."""
    heating = UserConfig(
        "heating",
        make_token_verifier(HEATING_TOKEN),
        read=(Path.parse("home.heating"), Path.parse("sensor")),
        write=(Path.parse("home.heating"),),
    )
    # The default scrypt cost: the client refuses cheaper parameters.
    alice = UserConfig("alice", make_verifier(ALICE_PASSWORD), read=(Path(),), write=(Path(),))
    return {"heating": heating, "alice": alice}


async def run_example(example: Example, data_dir: FsPath, env: dict[str, str]) -> str:
    env = {**env, "MOAT_LOG_DATA_DIR": str(data_dir)}
    result = await trio.run_process(
        [sys.executable, "-c", example.code],
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 0, f"docs/scripting.md line {example.line} failed:\n{stderr}"
    return str(result.stdout.decode())


EXAMPLES = examples()


def test_the_guide_has_runnable_scripts_for_every_topic() -> None:
    assert len(EXAMPLES) >= 10
    for example in EXAMPLES:
        assert example.code.rstrip().endswith("trio.run(main)"), f"line {example.line}"
    code = "\n".join(example.code for example in EXAMPLES)
    for call in (
        "open_node(",
        ".watch(",
        ".history(",
        "follow=True",
        ".replay(",
        "token=",
        "script_value(",
    ):
        assert call in code, f"no example uses {call}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"line {e.line}" for e in EXAMPLES])
async def test_the_example_runs_and_prints_what_the_guide_says(example: Example) -> None:
    env = environment()
    with short_temp_dir() as base:
        data_dir = base / "data"
        if example.needs_node:
            node_config = config(data_dir, users=users(), listen=(UNIX, LOOPBACK_ANY_PORT))
            async with running_node(node_config) as node:
                env.update(
                    NODE_ADDRESS=tcp_address(node),
                    HEATING_TOKEN=HEATING_TOKEN,
                    ALICE_PASSWORD=ALICE_PASSWORD,
                )
                printed = await run_example(example, data_dir, env)
        else:
            printed = await run_example(example, data_dir, env)
    if example.prints is not None:
        assert printed == example.prints
