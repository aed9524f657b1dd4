#!/usr/bin/env bash
# The README's main-job command: install moat-log (once) and run it.
# Until the node server lands (issue 3) the main job is a tour of the journal,
# driven through the real moat-log command line on a scratch data directory.
set -euo pipefail
cd "$(dirname "$0")"
tools/setup-env.sh
exec .venv/bin/python tools/showcase.py "$@"
