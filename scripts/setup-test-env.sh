#!/usr/bin/env bash
# Installs what the test suites need, on a fresh Debian machine or an already prepared one.
#
#   - Debian packages (only those missing): shellcheck, wrk, systemd-analyze, ps/ss/setpriv, python3-venv, logrotate,
#     a JDK and Maven (the JVM clients and their tests, scripts/build-emrfs-provider.sh), iptables (for
#     iptables-legacy) and nftables (the instance-metadata redirect's back ends, tests/e2e/test_imds.py).
#   - $EMRFS_TEST_VENV (default ~/.cache/emrfs-role-agent/venv): the STS/IAM/S3 emulator (moto server),
#     boto3, the AWS CLI and pytest, pinned in tests/e2e/requirements.txt.
#   - $EMRFS_TEST_SYSTEM_VENV (default /var/cache/emrfs-role-agent-test/venv-system): boto3 and the AWS CLI
#     for clients that the suites run as other OS users. It is built from Debian's /usr/bin/python3 and is
#     world-readable, because the default python may live under /root, which other users cannot enter.
#
# Idempotent: a virtualenv is rebuilt only when its pinned requirements (or its python) change; the hash
# of what it was built from is kept inside it. Needs root for apt-get and the system venv.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUIREMENTS=tests/e2e/requirements.txt
VENV=${EMRFS_TEST_VENV:-$HOME/.cache/emrfs-role-agent/venv}
SYSTEM_VENV=${EMRFS_TEST_SYSTEM_VENV:-/var/cache/emrfs-role-agent-test/venv-system}
DEBIAN_PACKAGES=(shellcheck wrk systemd procps iproute2 util-linux passwd python3-venv logrotate
    openjdk-17-jdk-headless maven iptables nftables)
# The system venv gets only the client side of the pins.
SYSTEM_PACKAGES_RE='^(boto3|botocore|s3transfer|awscli)=='

say() { echo "setup-test-env: $*"; }

install_debian_packages() {
    local missing=() pkg
    for pkg in "${DEBIAN_PACKAGES[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "Debian packages present"
        return
    fi
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local log
    log=$(mktemp)
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
        </dev/null >"$log" 2>&1; then
        cat "$log" >&2
        say "apt-get failed" >&2
        exit 1
    fi
    rm -f "$log"
}

# make_venv DIR PYTHON REQUIREMENTS_TEXT
make_venv() {
    local dir=$1 python=$2 requirements=$3 want have=""
    want=$( { "$python" -c 'import sys; print(sys.version)'; echo "$requirements"; } | sha256sum | cut -d' ' -f1)
    if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c 'import sys' 2>/dev/null; then
        have=$(cat "$dir/.requirements.sha256" 2>/dev/null || true)
    fi
    if [ "$have" = "$want" ]; then
        say "virtualenv up to date: $dir"
        return
    fi
    say "building virtualenv $dir from $python"
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    "$python" -m venv "$dir"
    local reqfile
    reqfile=$(mktemp)
    echo "$requirements" >"$reqfile"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$reqfile"
    rm -f "$reqfile"
    echo "$want" >"$dir/.requirements.sha256"
    say "installed: $("$dir/bin/python" -m pip freeze --disable-pip-version-check | grep -Eci '^[a-z0-9]') packages"
}

install_debian_packages

make_venv "$VENV" "$(command -v python3)" "$(grep -Ev '^\s*(#|$)' "$REQUIREMENTS")"

make_venv "$SYSTEM_VENV" /usr/bin/python3 "$(grep -Ei "$SYSTEM_PACKAGES_RE" "$REQUIREMENTS")"
# Other users must be able to run these clients.
chmod -R a+rX "$(dirname "$SYSTEM_VENV")"

say "ready (EMRFS_TEST_VENV=$VENV EMRFS_TEST_SYSTEM_VENV=$SYSTEM_VENV)"
