"""Runs the tests against a real knxd (tests/adapters/knx/netns/) in a private network namespace.

knxd binds UDP 0.0.0.0:3671 and routes by multicast, which must neither
clash with another knxd (a parallel run, a real installation) nor leak
onto the host's network.  So this one test re-executes pytest on the
``netns`` folder under ``unshare -rn`` with loopback up and a multicast
route on it (knxd.py, `netns_command`), where each test starts its own
knxd on 127.0.0.1:3671 and the node's KNX adapter, a second KNX client and
knxtool all reach it; the rest of the suite runs in the host's namespace.
The inner run's report is shown when it fails.

Without knxd or without the right to make a namespace the test skips,
except in CI (CI=true), where that is a broken setup and fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from knxd import find_ip, find_knxd, netns_command

HERE = Path(__file__).parent
ROOT = HERE.parents[2]


def _need(what: str, ok: bool) -> None:
    if ok:
        return
    message = f"{what} (tools/setup-env.sh test installs knxd; unshare needs user namespaces)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; in CI the KNX tests must run", pytrace=False)
    pytest.skip(message)


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or find_ip() is None:
        return False
    probe = subprocess.run(netns_command(["true"]), capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


@pytest.mark.slow
def test_the_knx_adapter_against_knxd_in_a_private_network_namespace() -> None:
    _need("knxd is not installed", find_knxd() is not None)
    _need("cannot make a network namespace", _can_unshare())
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfE",
        str(HERE / "netns"),
    ]
    run = subprocess.run(
        netns_command(argv),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = (run.stdout + run.stderr)[-20_000:]
    assert run.returncode == 0, f"the KNX tests in their namespace failed:\n{report}"
    assert " passed" in run.stdout, report
