#!/usr/bin/env bash
# Prepare .venv with moat-log installed (editable).  With "test", also the test
# tools and the system packages the tests drive for real.  Idempotent: a second
# run with nothing changed takes well under a second.
#
#   tools/setup-env.sh        # for running moat-log
#   tools/setup-env.sh test   # for running the test suite
set -euo pipefail
cd "$(dirname "$0")/.."

purpose="${1:-run}"

# System packages the test suite starts for real: the MQTT broker the MQTT
# adapter's tests run against; owserver (its --fake and --tester buses) for
# the 1-Wire adapter's, with ow-shell's owread/owwrite/owdir for people
# trying it; knxd (a KNXnet/IP server with a dummy bus) and knxtool for the
# KNX adapter's, which run in a private network namespace (unshare from
# util-linux, ip from iproute2); socat's pty pairs are the serial line
# between a satellite adapter and the firmware in MicroPython.
APT_PACKAGES=(mosquitto mosquitto-clients owserver ow-shell knxd knxd-tools iproute2 socat)

if [ "$purpose" = test ] && [ "${#APT_PACKAGES[@]}" -gt 0 ]; then
    missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    fi
fi

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "moat-log needs Python 3.11 or newer; $python is $("$python" --version 2>&1)" >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv

extras=""; [ "$purpose" = test ] && extras="[test]"
stamp=".venv/.installed-$purpose-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -e "$stamp" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    # setuptools warns on every editable install of a package-dir mapping
    # (journal/ -> moat_log.journal, the layout of docs/architecture.md) that
    # folders named like the package may shadow it; none here does (the
    # mapped folders are imported as moat_log.*, never by their own names,
    # and the wheel test in tests/test_packaging.py builds them so), so the
    # warning is silenced.
    PYTHONWARNINGS="ignore:Editable installation" \
        .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extras"
    touch "$stamp"
fi
