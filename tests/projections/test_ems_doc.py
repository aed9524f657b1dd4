"""docs/ems.md as a user follows it: its config serves, its scripts feed and read a plan."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path as FsPath

import pytest

from moat_log.node.config import config_from_document
from moat_log.testing import ServeProcess, short_temp_dir

DOC = FsPath(__file__).resolve().parents[2] / "docs" / "ems.md"
_BLOCK = re.compile(r"^```(?P<kind>\w+)\n(?P<body>.*?)^```\n", re.S | re.M)


def blocks(kind: str) -> list[str]:
    return [m["body"] for m in _BLOCK.finditer(DOC.read_text()) if m["kind"] == kind]


def test_the_docs_config_and_mqtt_rules_are_valid() -> None:
    node, mqtt = blocks("toml")[:2]
    config = config_from_document(tomllib.loads(node))
    assert [s.name for s in config.ems] == ["home"]
    assert str(config.ems[0].inputs.soc) == "battery.soc"
    rules = '[adapters.mqtt]\ntype = "mqtt"\nbroker = "127.0.0.1:1883"\n' + mqtt.replace(
        "[[adapters.mqtt.map]]", "[[adapters.mqtt.map]]"
    )
    assert len(config_from_document(tomllib.loads(rules)).adapters) == 1


@pytest.mark.slow
def test_the_docs_scripts_feed_a_node_and_read_its_plan() -> None:
    feed, read = blocks("python")
    node_config = blocks("toml")[0]
    with short_temp_dir() as directory:
        data_dir = directory / "data"
        config = directory / "node.toml"
        text = node_config.replace('data_dir = "/var/lib/moat-log"', f'data_dir = "{data_dir}"')
        config.write_text(text + '\n[client]\nlisten = ["unix"]\n')  # no shared TCP port
        node = ServeProcess(config)
        try:
            env = {**os.environ, "MOAT_LOG_DATA_DIR": str(data_dir)}
            run = subprocess.run(
                [sys.executable, "-c", feed], env=env, capture_output=True, text=True,
                timeout=60, check=False,
            )  # fmt: skip
            assert run.returncode == 0, run.stderr
            node.wait_for_line("ems home: plan of")
            shown = subprocess.run(
                [sys.executable, "-c", read], env=env, capture_output=True, text=True,
                timeout=60, check=False,
            )  # fmt: skip
            assert shown.returncode == 0, shown.stderr
            assert re.fullmatch(r"-?\d+\.\d+ kW now; \d+ slots planned\n", shown.stdout)
        finally:
            node.stop()
