#!/usr/bin/env bash
# The README's main-job command: install moat-log (once) and run a node on
# the embedded default: data in ~/.local/share/moat-log (or $MOAT_LOG_DATA_DIR),
# node name from the host name, clients on the data directory's Unix socket
# and 127.0.0.1:27586, no external server.  Ctrl-C stops it cleanly.
# Arguments go to `moat-log serve` (e.g. --config node.toml).
set -euo pipefail
cd "$(dirname "$0")"
tools/setup-env.sh
exec .venv/bin/moat-log serve "$@"
