#!/usr/bin/env bash
# Install what the tests need (once) and run lint, type check and the tests.
# This is the README's test command; .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")"
tools/setup-env.sh test
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
python tools/typecheck.py
echo "== pytest"
status=0
python -m pytest -p no:cacheprovider "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: the test tree is broken" >&2
fi
exit "$status"
