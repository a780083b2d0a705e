#!/bin/sh
# Install everything the tests need on Debian 12 (run as root) and run the
# whole suite: lint, types, unit, host, VM and boot tiers. Idempotent.
#   LOCKDOWNCTL_REQUIRE_HOST=1  host-tier skips become failures
#   LOCKDOWNCTL_REQUIRE_VM=1    VM-tier skips become failures (CI sets both)
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -k btf
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
VENV=${LOCKDOWNCTL_VENV:-/opt/lockdownctl-test-venv}
export LOCKDOWNCTL_VENV="$VENV"

pkgs="python3-venv libbpf1 libbpf-dev clang llvm bpftool grub-common"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi
"$repo/scripts/vm-setup.sh"
"$repo/scripts/boot-setup.sh"

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -e "$repo[test]"

cd "$repo"
"$VENV/bin/ruff" check src tests benchmarks
"$VENV/bin/mypy"
exec "$VENV/bin/python" -m pytest "$@"
