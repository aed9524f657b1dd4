"""Start-up of one ``moat-log`` command as a whole process, against Python's own.

    python tools/bench/cli_start.py [--rounds N] [--json]

Measures, in the same run and interleaved round by round (so that load on
the machine spreads over all of them alike), the wall time of

* ``python -c pass``            the interpreter (with this venv's site)
* ``python -c "import trio"``   the floor of any command that talks to a node
* ``moat-log --help``           the group and every command's help
* ``moat-log get PATH``         through a running ``moat-log serve`` (Unix socket)
* ``moat-log get PATH``         offline, on the journal (no node running)

and prints each median, its ratio to ``python -c pass`` and to ``import
trio``, and the target for ``get`` through a node (<= 0.15 s; a Raspberry
Pi 2 is about ten times slower).  See docs/decisions.md, "CLI start-up".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path as FsPath

from moat_log.defaults import environment_without_settings
from moat_log.testing import moat_log_script, read_until_ready

TARGET_GET_S = 0.15


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of *argv*, in seconds."""
    cpu, start = children_cpu(), time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, children_cpu() - cpu


def start_node(data_dir: FsPath, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``moat-log serve`` on *data_dir*, listening on its Unix socket only."""
    config = data_dir.with_suffix(".toml")
    config.write_text(f'node = "bench"\ndata_dir = "{data_dir}"\n[client]\nlisten = ["unix"]\n')
    node = subprocess.Popen(
        [moat_log_script(), "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    read_until_ready(node)
    return node


def measure(rounds: int, directory: FsPath) -> dict[str, tuple[float, float]]:
    """Per command, the median wall time and the median CPU time in seconds."""
    env = environment_without_settings()
    script, data_dir = moat_log_script(), directory / "data"
    get = [script, "--data-dir", str(data_dir), "get", "bench.value"]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import trio'": [sys.executable, "-c", "import trio"],
        "moat-log --help": [script, "--help"],
        "moat-log get (node)": get,
    }
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    node = start_node(data_dir, env)
    try:
        run_once([*get[:3], "set", "bench.value", "21.5"], env)
        for argv in commands.values():  # warm the page cache and the .pyc files
            run_once(argv, env)
        for _ in range(rounds):
            for name, argv in commands.items():
                runs[name].append(run_once(argv, env))
    finally:
        node.terminate()
        node.wait(timeout=30)
    runs["moat-log get (offline)"] = [run_once(get, env) for _ in range(rounds + 1)][1:]
    return {
        name: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r))
        for name, r in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="runs of each command")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ml-cli-", dir="/tmp") as name:
        medians = measure(args.rounds, FsPath(name))
    if args.json:
        figures = {name: {"wall_s": w, "cpu_s": c} for name, (w, c) in medians.items()}
        print(json.dumps({"median": figures, "target_get_s": TARGET_GET_S}, indent=2))
        return
    python, trio = medians["python -c pass"], medians["python -c 'import trio'"]
    print(f"load average {load:.2f} at the start, {args.rounds} rounds; medians:")
    print(
        f"{'command':<26}{'wall s':>8}{'/python':>8}{'/trio':>7}"
        f"{'cpu s':>8}{'/python':>8}{'/trio':>7}"
    )
    for command, (wall, cpu) in medians.items():
        print(
            f"{command:<26}{wall:>8.3f}{wall / python[0]:>8.1f}{wall / trio[0]:>7.2f}"
            f"{cpu:>8.3f}{cpu / python[1]:>8.1f}{cpu / trio[1]:>7.2f}"
        )
    through_node = medians["moat-log get (node)"][0]
    verdict = "met" if through_node <= TARGET_GET_S else "missed (see the load and /trio)"
    print(f"get through the node: {through_node:.3f} s wall, target <= {TARGET_GET_S} s: {verdict}")


if __name__ == "__main__":
    main()
