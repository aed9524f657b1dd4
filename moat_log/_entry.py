"""The ``moat-log`` console script's entry point: nothing but the interrupt guard.

A Ctrl-C while the command line's modules load would print a traceback of
whatever import it hit; here it ends the command quietly, with the shell's
status for an interrupt (130).  This module imports nothing, so the guard
is in place before any real work starts.
"""

from __future__ import annotations


def main() -> None:
    try:
        from moat_log.cli import main as run
    except KeyboardInterrupt:
        import sys

        sys.stderr.write("moat-log: interrupted\n")
        raise SystemExit(130) from None
    run()
