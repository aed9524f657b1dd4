"""``moat-log ems`` as a user runs it: a real node plans, the CLI shows and compares."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path as FsPath

import pytest
from cli_support import Script

from moat_log.testing import ServeProcess

CONFIG = """
node = "pi1"
data_dir = "{data_dir}"

[client]
listen = ["unix"]

[ems.home]
debounce = 0

[ems.home.inputs]
price_buy = "energy.price.buy"
price_sell = "energy.price.sell"
load = "energy.forecast.load"
soc = "battery.soc"

[ems.home.battery]
capacity_kwh = 10
charge_kw = 3
discharge_kw = 3
"""


def prices() -> str:
    start = int(time.time() // 3600) * 3600
    values = [0.1] * 6 + [0.3] * 6 + [0.5] * 6 + [0.2] * 6
    return json.dumps({"start": start, "step": 3600, "values": values})


@pytest.fixture
def node_config(data_dir: FsPath, tmp_path: FsPath) -> FsPath:
    config = tmp_path / "node.toml"
    config.write_text(CONFIG.format(data_dir=data_dir))
    return config


@pytest.mark.slow
def test_a_node_plans_from_inputs_set_with_the_cli(
    script: Script, node_config: FsPath, tmp_path: FsPath
) -> None:
    script.run("init", "--node", "pi1")
    node = ServeProcess(node_config)
    try:
        script.run("set", "battery.soc", "0.2")
        script.run("set", "energy.price.sell", "0.05")
        script.run("set", "energy.forecast.load", "1.0")
        written = json.loads(script.run("--json", "set", "energy.price.buy", prices()))
        node.wait_for_line(f"(cause {written['id']})")

        plan = json.loads(script.run("ems", "plan", "--json"))
        assert plan["path"] == "ems.home.plan"
        assert plan["source"] == "ems:home"
        assert plan["cause"] == written["id"]
        assert max(plan["plan"]["battery_kw"]) == pytest.approx(3.0)  # charges at its limit

        table = script.run("ems", "plan", "home", "--chart", str(tmp_path / "plan.svg"))
        assert "BATTERY kW" in table and "solver:" in table
        svg = ET.parse(tmp_path / "plan.svg").getroot()
        assert svg.tag.endswith("svg")

        listed = json.loads(script.run("ems", "ls", "--json"))
        assert listed["home"]["state"] == "ok" and listed["home"]["writing"] is True
        status = script.run("status")
        assert "SCHEDULE" in status and "pi1 (this node)" in status
    finally:
        node.stop()

    # the what-if reads the journal only: with the node stopped, and twice the battery
    bigger = tmp_path / "bigger.toml"
    bigger.write_text("[battery]\ncapacity_kwh = 20\n")
    before = script.run("--json", "stats")
    result = json.loads(
        script.run(
            "ems", "whatif", "--node-config", str(node_config), "--since", "-1h",
            "--config", str(bigger), "--json",
        )
    )  # fmt: skip
    assert result["whatif"]["capacity_kwh"] == 20 and result["live"]["capacity_kwh"] == 10
    assert result["stored"]["plans"] >= 1
    assert script.run("--json", "stats") == before


def test_whatif_refuses_a_config_that_changes_the_inputs(
    script: Script, node_config: FsPath, tmp_path: FsPath
) -> None:
    script.run("init", "--node", "pi1")
    other = tmp_path / "other.toml"
    other.write_text('[inputs]\nsoc = "elsewhere"\n')
    line = script.error(
        "ems", "whatif", "--node-config", str(node_config), "--since", "-1h",
        "--config", str(other),
    )  # fmt: skip
    assert "inputs: a what-if keeps the live schedule's" in line


def test_whatif_names_a_bad_key_of_its_config(
    script: Script, node_config: FsPath, tmp_path: FsPath
) -> None:
    script.run("init", "--node", "pi1")
    other = tmp_path / "other.toml"
    other.write_text("[battery]\ncapacity = 20\n")
    line = script.error(
        "ems", "whatif", "--node-config", str(node_config), "--since", "-1h",
        "--config", str(other),
    )  # fmt: skip
    assert "battery.capacity: unknown key" in line and str(other) in line


def test_a_bad_ems_table_is_refused_with_its_path(script: Script, tmp_path: FsPath) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[ems.home]\nslot = 700\n[ems.home.inputs]\nprice_buy = "p"\nsoc = "s"\n')
    line = script.error("ems", "ls", "--node-config", str(config))
    assert "ems.home.slot: 700 s does not divide a day" in line


def test_plan_without_a_plan_says_so(script: Script) -> None:
    script.run("init", "--node", "pi1")
    line = script.error("ems", "plan", "home")
    assert "there is no plan at ems.home.plan" in line
