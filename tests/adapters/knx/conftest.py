"""The KNX tests: the codec's run everywhere; those against knxd only in a network namespace.

The folder ``netns`` holds the tests that need a real knxd.  knxd binds
UDP 0.0.0.0:3671 and routes by multicast, so they run in a private network
namespace: test_knx_netns.py starts ``pytest tests/adapters/knx/netns`` in
one (``unshare -rn``), and this suite does not collect the folder itself.
"""

from __future__ import annotations

from knxd import in_private_netns

collect_ignore = [] if in_private_netns() else ["netns"]
