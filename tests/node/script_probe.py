"""What stored scripts in the node tests tell the test: the scripts import this module.

A script's code runs in the node's process (the test's), so it can reach
objects of the test: `events` are trio Events by name that the scripts set.
"""

from __future__ import annotations

from collections import defaultdict

import trio

#: Set by scripts at named moments (``events["v1 stopped"].set()``).
events: defaultdict[str, trio.Event] = defaultdict(trio.Event)


def reset() -> None:
    events.clear()
