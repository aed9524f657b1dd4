"""A tour of the moat-log journal, through the real command line.

Creates two nodes' journals in a scratch directory, ingests a day of sensor
readings, writes a few values by hand, queries the log and a path's history,
ships the journal to the second node with export/import, and checks both.
Every step prints the command it runs, so the tour doubles as a tutorial.

    python tools/showcase.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOMS = ["kitchen", "living", "bath", "bedroom", "hall"]


def write_sample_day(path: Path, *, lines: int = 5000, seed: int = 7) -> None:
    """Readings of the last 24 hours, in time order, as `ingest` reads them."""
    rnd = random.Random(seed)
    now = time.time_ns()
    start = now - 24 * 3600 * 10**9
    step = (now - start) // (lines + 1)
    temperature = dict.fromkeys(ROOMS, 20.0)
    with path.open("w") as out:
        for i in range(lines):
            room = rnd.choice(ROOMS)
            at = start + (i + 1) * step
            if rnd.random() < 0.8:
                temperature[room] = round(temperature[room] + rnd.uniform(-0.3, 0.3), 2)
                line = {
                    "path": f"home.{room}.temperature",
                    "value": temperature[room],
                    "source": f"onewire:28.{ROOMS.index(room):012X}/temperature",
                }
            else:
                line = {
                    "path": f"home.{room}.light",
                    "value": rnd.random() < 0.5,
                    "source": f"knx:1/1/{ROOMS.index(room)}",
                }
            line["time"] = at
            out.write(json.dumps(line) + "\n")


def run(*args: str) -> None:
    shown = " ".join(shlex.quote(a) for a in ("moat-log", *args))
    # bold on a terminal; plain text into a file or a pipe
    shown = f"\033[1m$ {shown}\033[0m" if sys.stdout.isatty() else f"$ {shown}"
    print(f"\n{shown}", flush=True)
    moat_log = shutil.which("moat-log") or str(Path(sys.executable).parent / "moat-log")
    subprocess.run([moat_log, *args], check=True)


def tour(base: Path) -> None:
    pi1, pi2 = ["--data-dir", str(base / "pi1")], ["--data-dir", str(base / "pi2")]
    sample, export = base / "day.jsonl", base / "pi1.mlog"
    write_sample_day(sample)
    print(f"Scratch directory: {base}")

    print("\n# A node's journal lives in its data directory.")
    run(*pi1, "init", "--node", "pi1")
    print("\n# A day of 1-Wire and KNX readings arrives as JSON lines.")
    run(*pi1, "ingest", str(sample))
    print("\n# Values are typed: JSON when it parses, else a string.")
    run(*pi1, "set", "home.kitchen.setpoint", "21.5")
    run(*pi1, "set", "home.hall.note", "window open in the bath")
    run(*pi1, "set", "home.heating", '{"mode": "eco", "until": "06:00"}')
    run(*pi1, "delete", "home.hall.note")
    print("\n# The newest events, and what happened in the kitchen in the last hour.")
    run(*pi1, "log", "--limit", "6")
    run(*pi1, "log", "--path", "home.kitchen", "--since", "-1h", "--limit", "8")
    print("\n# One path's history, as JSON for scripts.")
    run(*pi1, "--json", "history", "home.kitchen.setpoint")
    print("\n# Ship the journal to a second node: export, import, import again.")
    run(*pi1, "export", "-o", str(export))
    run(*pi2, "init", "--node", "pi2")
    run(*pi2, "import", str(export))
    run(*pi2, "import", str(export))
    print("\n# Both journals are consistent, and pi2 now holds pi1's events.")
    run(*pi2, "verify")
    run(*pi2, "stats")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="use (and keep) this directory")
    args = parser.parse_args()
    try:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            tour(args.keep)
        else:
            with tempfile.TemporaryDirectory(prefix="moat-log-tour-") as base:
                tour(Path(base))
    except subprocess.CalledProcessError as exc:
        print(f"\nthe tour stopped: {exc}", file=sys.stderr)
        return 1
    print("\nThat was the journal.  `moat-log --help` lists every command.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
