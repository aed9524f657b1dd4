"""tools/bench/why.py runs (with a small journal), so that the benchmark does not rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path as FsPath

import pytest

BENCH = FsPath(__file__).resolve().parents[2] / "tools" / "bench" / "why.py"


@pytest.mark.slow
def test_the_why_benchmark_walks_its_chain_of_twenty_causes() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--events", "3000", "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    figures = json.loads(done.stdout)
    assert figures["events"] == 3000 and figures["causes"] == 20
    assert figures["why_ms"] > 0 and figures["baseline_ms"] > 0
    assert figures["ratio"] == pytest.approx(figures["why_ms"] / figures["baseline_ms"])
