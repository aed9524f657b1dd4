"""Child process of test_feed: "another process" writing to the same journal.

    python _writer_child.py DATA_DIR

Reads lines ``COUNT NAME`` from stdin; for each, writes COUNT changes under
``k.NAME`` in one transaction and answers ``done`` on stdout.  Ends at EOF.
"""

from __future__ import annotations

import sys

from moat_log.journal.change import Change
from moat_log.journal.store import Journal
from moat_log.path import Path


def main(data_dir: str) -> None:
    with Journal.open(data_dir) as journal:
        for line in sys.stdin:
            count, name = line.split()
            journal.write_batch([Change(Path(["k", name]), n) for n in range(int(count))])
            sys.stdout.write("done\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1])
